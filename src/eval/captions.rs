//! Caption metrics equal to the tools papers cite, and their chance levels.
//!
//! - [`bleu`]: BLEU-1 … BLEU-4 as `nltk.translate.bleu_score.corpus_bleu`
//!   (uniform weights, clipped counts against the maximum count over a
//!   candidate's references, brevity penalty against the closest reference
//!   length with ties to the shorter, as nltk picks it) or, per candidate, as
//!   `sentence_bleu`; optionally with `SmoothingFunction().method1`
//!   (ε = 0.1 added to zero numerators). Without smoothing a zero precision
//!   becomes `sys.float_info.min` as in nltk (the score is then ~1e-77, not
//!   0) and a warning says so, as nltk's `warnings.warn` does. Tokens: the
//!   text lower-cased and split on whitespace (Python's `str.lower().split()`).
//! - [`rouge_l`]: ROUGE-L F-measure as `rouge_score.rouge_scorer.RougeScorer(['rougeL'])`
//!   with its default tokenizer (lower-case, every run of characters other
//!   than a–z and 0–9 is a separator); several references: the maximum F,
//!   as `score_multi`.
//! - [`text_similarity`]: cosine of L2-normalised sentence embeddings per pair.
//! - [`caption_scores`]: each metric with its chance level from random
//!   pairings of candidates with other items' references (derangements drawn
//!   by [`crate::stats::permutation::random_permutation`]), mean ± sd and the
//!   permutation p-value (1 + #{chance ≥ observed})/(1 + n).
//!
//! Speed: texts are tokenised once into integer ids; every n-gram (n ≤ 4)
//! of the candidates is interned to one integer, so a candidate holds a
//! sorted list of (n-gram, count) and a reference set a sorted list of
//! (n-gram, maximum count); clipping a pair is a merge of the two lists.
//! Permutations reuse these statistics; candidates and permutations run on
//! rayon.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::models::text::{EmbedOptions, TextEncoder};
use crate::stats::permutation::{permutation_pvalue, random_permutation};
use crate::stats::Alternative;

/// Highest n-gram order.
pub const MAX_N: usize = 4;

/// nltk's `SmoothingFunction` methods voxlab offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Smoothing {
    /// nltk's default (method0): a zero precision becomes sys.float_info.min.
    #[default]
    None,
    /// method1: ε = 0.1 added to zero numerators.
    Method1,
}

impl Smoothing {
    pub const NAMES: &'static [&'static str] = &["none", "method1"];
    pub fn parse(op: &'static str, s: &str) -> Result<Self> {
        match s {
            "none" | "method0" => Ok(Smoothing::None),
            "method1" => Ok(Smoothing::Method1),
            other => Err(Error::BadOption {
                op,
                key: "smoothing".into(),
                expected: format!("one of {}", Self::NAMES.join(", ")),
                got: format!("\"{other}\""),
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct BleuOptions {
    pub smoothing: Smoothing,
    /// Per-candidate sentence BLEU instead of corpus BLEU.
    pub sentence: bool,
}

/// BLEU-1 … BLEU-4: corpus scores, or with `sentence` the mean of the
/// per-candidate scores and the scores themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct Bleu {
    pub scores: [f64; MAX_N],
    /// Per candidate (sentence BLEU only): values[n-1][i].
    pub values: Option<Vec<Vec<f64>>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RougeL {
    pub mean: f64,
    pub values: Vec<f64>,
}

/// A small fast hasher for integer keys (FxHash's multiply–rotate).
#[derive(Default)]
struct Fx(u64);
impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(last));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u128(&mut self, v: u128) {
        self.write_u64(v as u64);
        self.write_u64((v >> 64) as u64);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}
type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// Python's `str.isspace` (what `str.split()` splits on): Unicode
/// White_Space plus the information separators U+001C–U+001F.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// BLEU's tokens: `text.lower().split()`.
pub fn bleu_tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(py_space)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn not_rouge_char(c: char) -> bool {
    !(c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// rouge-score's default tokens: lower-case, runs of [a-z0-9].
pub fn rouge_tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(not_rouge_char)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Candidates and their references, checked.
fn check(op: &'static str, candidates: &[String], references: &[Vec<String>]) -> Result<()> {
    if candidates.is_empty() {
        return Err(Error::invalid(
            op,
            "candidates is empty: give at least one caption",
        ));
    }
    if candidates.len() != references.len() {
        return Err(Error::shape(
            op,
            "candidates and references",
            "one reference list per candidate",
            format!(
                "{} candidates and {} reference lists",
                candidates.len(),
                references.len()
            ),
        ));
    }
    for (i, r) in references.iter().enumerate() {
        if r.is_empty() {
            return Err(Error::invalid(
                op,
                format!("references[{i}] is an empty list: give at least one reference caption"),
            ));
        }
        if let Some(j) = r.iter().position(|s| s.chars().all(py_space)) {
            return Err(Error::invalid(
                op,
                format!("references[{i}][{j}] is an empty string: a reference needs words"),
            ));
        }
    }
    Ok(())
}

/// Token ids of every text, one vocabulary.
struct Vocab(FxMap<String, u32>);
impl Vocab {
    fn new() -> Self {
        Vocab(FxMap::default())
    }
    /// Ids of borrowed tokens (empty pieces skipped); allocates only new words.
    fn ids_of<'a>(&mut self, tokens: impl Iterator<Item = &'a str>) -> Vec<u32> {
        tokens
            .filter(|t| !t.is_empty())
            .map(|t| match self.0.get(t) {
                Some(&id) => id,
                None => {
                    let n = self.0.len() as u32;
                    self.0.insert(t.to_string(), n);
                    n
                }
            })
            .collect()
    }
}

/// n-gram key: ids + 1 packed in 32-bit lanes (0 = no token), so n-grams of
/// different orders never collide.
fn ngram_key(ids: &[u32]) -> u128 {
    ids.iter().fold(0u128, |k, &t| (k << 32) | (t as u128 + 1))
}

#[derive(Debug, Clone)]
struct CandStats {
    len: usize,
    /// (n-gram id, count, order − 1), sorted by id.
    ngrams: Vec<(u32, u32, u8)>,
}

#[derive(Debug, Clone)]
struct RefStats {
    lens: Vec<usize>,
    /// (n-gram id, maximum count over the references), sorted by id; only
    /// n-grams some candidate has.
    max_counts: Vec<(u32, u32)>,
}

/// Tokenised BLEU statistics of a set of candidates and reference lists.
pub struct BleuStats {
    cands: Vec<CandStats>,
    refs: Vec<RefStats>,
}

fn count_ngrams(ids: &[u32], mut f: impl FnMut(u128, usize)) {
    for n in 1..=MAX_N.min(ids.len()) {
        for w in ids.windows(n) {
            f(ngram_key(w), n - 1);
        }
    }
}

/// Sorted keys → (key, count) runs.
fn runs<K: Ord + Copy>(mut keys: Vec<K>) -> Vec<(K, u32)> {
    keys.sort_unstable();
    let mut out: Vec<(K, u32)> = Vec::with_capacity(keys.len());
    for k in keys {
        match out.last_mut() {
            Some((last, c)) if *last == k => *c += 1,
            _ => out.push((k, 1)),
        }
    }
    out
}

/// Candidates and references lower-cased (in parallel), as both metrics'
/// tokenisers start.
fn lowercased(
    candidates: &[String],
    references: &[Vec<String>],
) -> (Vec<String>, Vec<Vec<String>>) {
    let clow = candidates.par_iter().map(|c| c.to_lowercase()).collect();
    let rlow = references
        .par_iter()
        .map(|rs| rs.iter().map(|r| r.to_lowercase()).collect())
        .collect();
    (clow, rlow)
}

impl BleuStats {
    pub fn new(candidates: &[String], references: &[Vec<String>]) -> Self {
        // Ids in one pass over the borrowed tokens.
        let (clow, rlow) = lowercased(candidates, references);
        let mut vocab = Vocab::new();
        let cids: Vec<Vec<u32>> = clow
            .iter()
            .map(|t| vocab.ids_of(t.split(py_space)))
            .collect();
        let rids: Vec<Vec<Vec<u32>>> = rlow
            .iter()
            .map(|rs| rs.iter().map(|t| vocab.ids_of(t.split(py_space))).collect())
            .collect();
        // Each candidate's n-gram counts (parallel), then one interning pass.
        let ckeys: Vec<Vec<((u128, u8), u32)>> = cids
            .par_iter()
            .map(|ids| {
                let mut keys = Vec::new();
                count_ngrams(ids, |k, o| keys.push((k, o as u8)));
                runs(keys)
            })
            .collect();
        let mut intern: FxMap<u128, u32> = FxMap::default();
        let cands: Vec<CandStats> = ckeys
            .into_iter()
            .zip(&cids)
            .map(|(keys, ids)| {
                let mut ngrams: Vec<(u32, u32, u8)> = keys
                    .into_iter()
                    .map(|((k, o), c)| {
                        let n = intern.len() as u32;
                        (*intern.entry(k).or_insert(n), c, o)
                    })
                    .collect();
                ngrams.sort_unstable();
                CandStats {
                    len: ids.len(),
                    ngrams,
                }
            })
            .collect();
        let refs: Vec<RefStats> = rids
            .par_iter()
            .map(|rs| {
                let mut max: Vec<(u32, u32)> = Vec::new();
                for r in rs {
                    let mut keys = Vec::new();
                    count_ngrams(r, |k, _| {
                        if let Some(&id) = intern.get(&k) {
                            keys.push(id);
                        }
                    });
                    max.extend(runs(keys));
                }
                // The maximum count of each n-gram over the references.
                max.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
                max.dedup_by_key(|e| e.0);
                RefStats {
                    lens: rs.iter().map(Vec::len).collect(),
                    max_counts: max,
                }
            })
            .collect();
        BleuStats { cands, refs }
    }

    pub fn len(&self) -> usize {
        self.cands.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cands.is_empty()
    }

    /// Statistics of candidate i against the references of item j.
    fn pair(&self, i: usize, j: usize) -> PairStats {
        let c = &self.cands[i];
        let r = &self.refs[j];
        let mut num = [0u64; MAX_N];
        let (mut a, mut b) = (0, 0);
        while a < c.ngrams.len() && b < r.max_counts.len() {
            let (ca, cb) = (c.ngrams[a], r.max_counts[b]);
            match ca.0.cmp(&cb.0) {
                std::cmp::Ordering::Less => a += 1,
                std::cmp::Ordering::Greater => b += 1,
                std::cmp::Ordering::Equal => {
                    num[ca.2 as usize] += ca.1.min(cb.1) as u64;
                    a += 1;
                    b += 1;
                }
            }
        }
        let mut den = [0u64; MAX_N];
        for (n, d) in den.iter_mut().enumerate() {
            *d = (c.len.saturating_sub(n) as u64).max(1);
        }
        // nltk: min by (|ref − hyp|, ref).
        let h = c.len;
        let closest = r
            .lens
            .iter()
            .copied()
            .min_by_key(|&l| (l.abs_diff(h), l))
            .unwrap_or(0);
        PairStats {
            num,
            den,
            hyp: h as u64,
            refl: closest as u64,
        }
    }

    /// Corpus statistics of candidate i against the references of item `to(i)`.
    fn corpus(&self, to: impl Fn(usize) -> usize + Sync) -> PairStats {
        let n = self.cands.len();
        let sum = |mut a: PairStats, b: PairStats| {
            for k in 0..MAX_N {
                a.num[k] += b.num[k];
                a.den[k] += b.den[k];
            }
            a.hyp += b.hyp;
            a.refl += b.refl;
            a
        };
        if n >= 2048 {
            (0..n)
                .into_par_iter()
                .map(|i| self.pair(i, to(i)))
                .reduce(PairStats::default, sum)
        } else {
            (0..n)
                .map(|i| self.pair(i, to(i)))
                .fold(PairStats::default(), sum)
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct PairStats {
    num: [u64; MAX_N],
    den: [u64; MAX_N],
    hyp: u64,
    refl: u64,
}

/// Neumaier's compensated sum (math.fsum to the last bit or so).
fn fsum(v: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for x in v {
        let t = s + x;
        c += if s.abs() >= x.abs() {
            (s - t) + x
        } else {
            (x - t) + s
        };
        s = t;
    }
    s + c
}

impl PairStats {
    /// BLEU-1 … BLEU-4 as nltk's corpus_bleu computes them from these sums,
    /// and the orders (1-based) whose precision was zero and not smoothed.
    fn bleu(&self, smoothing: Smoothing) -> ([f64; MAX_N], Vec<usize>) {
        if self.num[0] == 0 {
            return ([0.0; MAX_N], Vec::new());
        }
        let bp = if self.hyp > self.refl {
            1.0
        } else if self.hyp == 0 {
            0.0
        } else {
            (1.0 - self.refl as f64 / self.hyp as f64).exp()
        };
        let mut zero = Vec::new();
        let p: Vec<f64> = (0..MAX_N)
            .map(|n| {
                if self.num[n] != 0 {
                    self.num[n] as f64 / self.den[n] as f64
                } else {
                    match smoothing {
                        Smoothing::None => {
                            zero.push(n + 1);
                            f64::MIN_POSITIVE
                        }
                        Smoothing::Method1 => 0.1 / self.den[n] as f64,
                    }
                }
            })
            .collect();
        let mut out = [0.0; MAX_N];
        for (k, o) in out.iter_mut().enumerate() {
            let w = 1.0 / (k + 1) as f64;
            *o = bp * fsum(p[..=k].iter().map(|&pi| w * pi.ln())).exp();
        }
        (out, zero)
    }
}

fn warn_zero(op: &str, orders: &[usize], sentences: usize) {
    let Some(&first) = orders.iter().min() else {
        return;
    };
    let which = if sentences > 0 {
        format!("{sentences} candidate(s) contain 0 counts of {first}-gram (or higher) overlaps")
    } else {
        format!("the candidates contain 0 counts of {first}-gram overlaps")
    };
    eprintln!(
        "warning: {op}: {which}; as in nltk, BLEU-{first} and above then evaluate to ~0 \
(sys.float_info.min stands for the zero precision) however many lower-order overlaps there are; \
consider smoothing: \"method1\" or a lower n-gram order"
    );
}

/// BLEU-1 … BLEU-4 (see the module docs).
pub fn bleu(candidates: &[String], references: &[Vec<String>], opts: &BleuOptions) -> Result<Bleu> {
    const OP: &str = "bleu";
    check(OP, candidates, references)?;
    let stats = BleuStats::new(candidates, references);
    Ok(bleu_of(OP, &stats, opts))
}

fn bleu_of(op: &str, stats: &BleuStats, opts: &BleuOptions) -> Bleu {
    if !opts.sentence {
        let (scores, zero) = stats.corpus(|i| i).bleu(opts.smoothing);
        warn_zero(op, &zero, 0);
        return Bleu {
            scores,
            values: None,
        };
    }
    let per: Vec<([f64; MAX_N], Vec<usize>)> = (0..stats.len())
        .into_par_iter()
        .map(|i| stats.pair(i, i).bleu(opts.smoothing))
        .collect();
    let zero: Vec<usize> = per
        .iter()
        .filter_map(|(_, z)| z.iter().min().copied())
        .collect();
    warn_zero(op, &zero, zero.len());
    let values: Vec<Vec<f64>> = (0..MAX_N)
        .map(|k| per.iter().map(|(s, _)| s[k]).collect())
        .collect();
    let n = stats.len() as f64;
    let mut scores = [0.0; MAX_N];
    for k in 0..MAX_N {
        scores[k] = values[k].iter().sum::<f64>() / n;
    }
    Bleu {
        scores,
        values: Some(values),
    }
}

/// Length of the longest common subsequence (one DP row).
fn lcs(a: &[u32], b: &[u32], row: &mut Vec<u32>) -> u32 {
    row.clear();
    row.resize(b.len() + 1, 0);
    for &x in a {
        let mut diag = 0;
        for j in 0..b.len() {
            let up = row[j + 1];
            row[j + 1] = if x == b[j] { diag + 1 } else { up.max(row[j]) };
            diag = up;
        }
    }
    row[b.len()]
}

/// Tokenised ROUGE inputs.
pub struct RougeStats {
    cands: Vec<Vec<u32>>,
    refs: Vec<Vec<Vec<u32>>>,
}

impl RougeStats {
    pub fn new(candidates: &[String], references: &[Vec<String>]) -> Self {
        let (clow, rlow) = lowercased(candidates, references);
        let mut vocab = Vocab::new();
        let cands = clow
            .iter()
            .map(|t| vocab.ids_of(t.split(not_rouge_char)))
            .collect();
        let refs = rlow
            .iter()
            .map(|rs| {
                rs.iter()
                    .map(|t| vocab.ids_of(t.split(not_rouge_char)))
                    .collect()
            })
            .collect();
        RougeStats { cands, refs }
    }

    /// rouge-score's ROUGE-L F of candidate i against item j's references
    /// (the maximum over them, as score_multi).
    fn f(&self, i: usize, j: usize, row: &mut Vec<u32>) -> f64 {
        let pred = &self.cands[i];
        let mut best = f64::NEG_INFINITY;
        for target in &self.refs[j] {
            let f = if target.is_empty() || pred.is_empty() {
                0.0
            } else {
                let l = lcs(target, pred, row) as f64;
                let p = l / pred.len() as f64;
                let r = l / target.len() as f64;
                if p + r > 0.0 {
                    2.0 * p * r / (p + r)
                } else {
                    0.0
                }
            };
            best = best.max(f);
        }
        best
    }

    fn mean(&self, to: impl Fn(usize) -> usize + Sync) -> f64 {
        let n = self.cands.len();
        // Collected, then summed in order: the same bits on any thread count.
        let values: Vec<f64> = if n >= 512 {
            (0..n)
                .into_par_iter()
                .map_init(Vec::new, |row, i| self.f(i, to(i), row))
                .collect()
        } else {
            let mut row = Vec::new();
            (0..n).map(|i| self.f(i, to(i), &mut row)).collect()
        };
        let total: f64 = values.iter().sum();
        total / n as f64
    }
}

/// ROUGE-L F per candidate and its mean (see the module docs).
pub fn rouge_l(candidates: &[String], references: &[Vec<String>]) -> Result<RougeL> {
    check("rouge_l", candidates, references)?;
    let s = RougeStats::new(candidates, references);
    let values: Vec<f64> = (0..s.cands.len())
        .into_par_iter()
        .map_init(Vec::new, |row, i| s.f(i, i, row))
        .collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    Ok(RougeL { mean, values })
}

/// Rows of an N×d tensor as f32 vectors, L2-normalised.
fn unit_rows(op: &'static str, t: &tch::Tensor) -> Result<Vec<Vec<f32>>> {
    let t = crate::tensor::tc(op, t.f_to_kind(tch::Kind::Float))?
        .to_device(tch::Device::Cpu)
        .contiguous();
    let s = t.size();
    if s.len() != 2 {
        return Err(Error::invalid(
            op,
            format!("embeddings must be N×d, got {s:?}"),
        ));
    }
    let (n, d) = (s[0] as usize, s[1] as usize);
    let mut flat = vec![0f32; n * d];
    t.f_copy_data(&mut flat, n * d).map_err(|e| Error::Torch {
        op,
        msg: e.to_string(),
    })?;
    Ok(flat
        .chunks(d.max(1))
        .take(n)
        .map(|r| {
            let norm = r
                .iter()
                .map(|x| (*x as f64) * (*x as f64))
                .sum::<f64>()
                .sqrt()
                .max(1e-12);
            r.iter().map(|x| (*x as f64 / norm) as f32).collect()
        })
        .collect())
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// Cosine similarity of the embeddings of a[i] and b[i] (N pairs).
pub fn text_similarity(encoder: &TextEncoder, a: &[String], b: &[String]) -> Result<Vec<f64>> {
    const OP: &str = "text_similarity";
    let embed = |t: &[String]| {
        encoder.embed(
            OP,
            t,
            &EmbedOptions {
                normalize: Some(true),
                ..Default::default()
            },
        )
    };
    similarity_with(OP, &embed, a, b)
}

/// [`text_similarity`] with any embedding function (a CLIP text tower, say).
pub fn similarity_with(
    op: &'static str,
    embed: &dyn Fn(&[String]) -> Result<tch::Tensor>,
    a: &[String],
    b: &[String],
) -> Result<Vec<f64>> {
    if a.is_empty() {
        return Err(Error::invalid(op, "no texts: give at least one pair"));
    }
    if a.len() != b.len() {
        return Err(Error::shape(
            op,
            "a and b",
            "as many texts in b as in a",
            format!("{} and {}", a.len(), b.len()),
        ));
    }
    let ea = unit_rows(op, &embed(a)?)?;
    let eb = unit_rows(op, &embed(b)?)?;
    Ok(ea.iter().zip(&eb).map(|(x, y)| dot(x, y)).collect())
}

/// Options of [`caption_scores`].
#[derive(Debug, Clone, Copy)]
pub struct CaptionScoreOptions {
    pub permutations: usize,
    pub seed: u64,
    pub smoothing: Smoothing,
}

impl Default for CaptionScoreOptions {
    fn default() -> Self {
        CaptionScoreOptions {
            permutations: 1000,
            seed: 0,
            smoothing: Smoothing::None,
        }
    }
}

/// One metric against its chance level.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricScore {
    pub name: &'static str,
    pub score: f64,
    pub chance: f64,
    pub chance_sd: f64,
    pub p: f64,
    pub null: Vec<f64>,
}

/// The metric names in the order [`caption_scores`] returns them.
pub const METRICS: [&str; 6] = ["bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "similarity"];

/// The k-th random pairing of n items with other items (a derangement:
/// π(i) ≠ i), by rejection from uniform permutations.
pub fn derangement(seed: u64, k: u64, n: usize) -> Vec<usize> {
    let mut attempt: u64 = 0;
    loop {
        let s = seed.wrapping_add(attempt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let p = random_permutation(s, k, n);
        if p.iter().enumerate().all(|(i, &j)| i != j) {
            return p;
        }
        attempt += 1;
    }
}

/// BLEU-1…4, ROUGE-L and (with `embed`) embedding similarity of each
/// candidate with its own references, each against the same metric over
/// `permutations` random pairings of candidates with other items'
/// references. Similarity with several references is the mean cosine over
/// them.
pub fn caption_scores(
    candidates: &[String],
    references: &[Vec<String>],
    opts: &CaptionScoreOptions,
    embed: Option<&dyn Fn(&[String]) -> Result<tch::Tensor>>,
) -> Result<Vec<MetricScore>> {
    const OP: &str = "caption_scores";
    check(OP, candidates, references)?;
    if opts.permutations == 0 {
        return Err(Error::BadOption {
            op: OP,
            key: "permutations".into(),
            expected: "a positive integer".into(),
            got: "0".into(),
        });
    }
    let n = candidates.len();
    if n < 2 {
        return Err(Error::invalid(
            OP,
            "need at least 2 candidates to pair them with other items' references",
        ));
    }
    let bs = BleuStats::new(candidates, references);
    let rs = RougeStats::new(candidates, references);
    // Similarity: candidate rows and the per-item mean of normalised
    // reference rows (mean cosine = dot with the mean).
    let sim = match embed {
        None => None,
        Some(f) => {
            let c = unit_rows(OP, &f(candidates)?)?;
            let flat: Vec<String> = references.iter().flatten().cloned().collect();
            let r = unit_rows(OP, &f(&flat)?)?;
            let mut at = 0;
            let means: Vec<Vec<f32>> = references
                .iter()
                .map(|rs| {
                    let d = r[at].len();
                    let mut m = vec![0f64; d];
                    for row in &r[at..at + rs.len()] {
                        for (x, y) in m.iter_mut().zip(row) {
                            *x += *y as f64;
                        }
                    }
                    at += rs.len();
                    m.into_iter()
                        .map(|x| (x / rs.len() as f64) as f32)
                        .collect()
                })
                .collect();
            Some((c, means))
        }
    };
    let metrics = |to: &(dyn Fn(usize) -> usize + Sync)| -> Vec<f64> {
        let (b, _) = bs.corpus(to).bleu(opts.smoothing);
        let mut v = b.to_vec();
        v.push(rs.mean(to));
        if let Some((c, m)) = &sim {
            v.push((0..n).map(|i| dot(&c[i], &m[to(i)])).sum::<f64>() / n as f64);
        }
        v
    };
    let observed = {
        let (b, zero) = bs.corpus(|i| i).bleu(opts.smoothing);
        warn_zero(OP, &zero, 0);
        let mut v = b.to_vec();
        v.push(rs.mean(|i| i));
        if let Some((c, m)) = &sim {
            v.push((0..n).map(|i| dot(&c[i], &m[i])).sum::<f64>() / n as f64);
        }
        v
    };
    let nulls: Vec<Vec<f64>> = (0..opts.permutations as u64)
        .into_par_iter()
        .map(|k| {
            let p = derangement(opts.seed, k, n);
            metrics(&|i| p[i])
        })
        .collect();
    Ok(observed
        .iter()
        .enumerate()
        .map(|(m, &score)| {
            let null: Vec<f64> = nulls.iter().map(|v| v[m]).collect();
            let mean = null.iter().sum::<f64>() / null.len() as f64;
            let var = null.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / null.len() as f64;
            MetricScore {
                name: METRICS[m],
                score,
                chance: mean,
                chance_sd: var.sqrt(),
                p: permutation_pvalue(score, &null, false, Alternative::Greater),
                null,
            }
        })
        .collect())
}
