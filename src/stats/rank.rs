//! Ranking with ties.

/// Ranks `x` from 1 to n, tied values getting the mean of the ranks they
/// span: rank_i = (first_i + last_i)/2 + 1 over the sorted order. Matches
/// `scipy.stats.rankdata(x, method='average')`: any NaN makes every rank NaN
/// (scipy's default nan_policy 'propagate'); -0.0 ties with 0.0.
pub fn rankdata_average(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    if x.iter().any(|v| v.is_nan()) {
        return vec![f64::NAN; n];
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| cmp_nan_last(x[a], x[b]));
    let mut ranks = vec![0.0; n];
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && x[idx[j]] == x[idx[i]] {
            j += 1;
        }
        // ranks i+1 ..= j, mean (i+1+j)/2
        let r = (i + 1 + j) as f64 / 2.0;
        for &k in &idx[i..j] {
            ranks[k] = r;
        }
        i = j;
    }
    ranks
}

/// Total order for sorting: numbers ascending (-0.0 == 0.0), NaN last.
pub(crate) fn cmp_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        (true, true) => std::cmp::Ordering::Equal,
    }
}

/// Dense ranks 0..k (equal values share one) and the number k of distinct
/// values; -0.0 ties with 0.0 and NaNs rank last, tied with each other.
pub(crate) fn dense_ranks(x: &[f64]) -> (Vec<u32>, usize) {
    let n = x.len();
    // Sorting (key, index) pairs with keys whose integer order is the float
    // order is several times faster than an index sort comparing floats
    // through the index (no indirection, no partial_cmp).
    let mut keyed: Vec<(u64, u32)> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| (ordered_bits(v), i as u32))
        .collect();
    keyed.sort_unstable();
    let mut out = vec![0u32; n];
    let mut rank = 0u32;
    for w in 0..n {
        if w > 0 && keyed[w].0 != keyed[w - 1].0 {
            rank += 1;
        }
        out[keyed[w].1 as usize] = rank;
    }
    (out, if n == 0 { 0 } else { rank as usize + 1 })
}

/// A u64 whose unsigned order is the numeric order of `v` (-0.0 mapped to
/// 0.0, every NaN to one key above +inf).
fn ordered_bits(v: f64) -> u64 {
    if v.is_nan() {
        return u64::MAX;
    }
    let b = (v + 0.0).to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}
