//! Distribution functions for p-values, written for accuracy in the far
//! tails and for large parameters (n = 28,680 gives Beta(14339, 14339)),
//! where a textbook `exp(lnΓ(a+b) − lnΓ(a) − lnΓ(b) + …)` loses ~1e-11.
//!
//! * normal: Cephes `ndtr`, `erf`, `erfc` (what `scipy.special.ndtr` computes).
//! * incomplete beta: Numerical Recipes' continued fraction (modified Lentz),
//!   with the prefactor `x^a y^b / B(a,b)` computed from Stirling's series in
//!   the Kullback–Leibler form when both parameters are large (as TOMS 708's
//!   `brcomp` does), so no large logarithms cancel.
//! * Student t: `stdtr` through the incomplete beta with `x = df/(df+t²)` and
//!   `y = t²/(df+t²)` both formed directly.
//!
//! Accuracy against scipy/mpmath: ≤ 1e-12 relative for df ≤ 3e5, ≤ 6e-11 up to
//! df = 1e7; the continued fraction loses digits beyond that (≈ 1e-9 at
//! df = 1e8; TOMS 708's `bgrat` would be the cure).

// Cephes coefficients are kept digit for digit as published.
#![allow(clippy::excessive_precision)]

use super::common::Alternative;
use statrs::function::gamma::ln_gamma;

// Cephes `ndtr`/`erf`/`erfc` exactly as scipy's xsf library has them
// (statrs' erfc is off by up to ~1e-10 relative near x = 1).
const NDTR_P: [f64; 9] = [
    2.46196981473530512524E-10,
    5.64189564831068821977E-1,
    7.46321056442269912687E0,
    4.86371970985681366614E1,
    1.96520832956077098242E2,
    5.26445194995477358631E2,
    9.34528527171957607540E2,
    1.02755188689515710272E3,
    5.57535335369399327526E2,
];
const NDTR_Q: [f64; 8] = [
    1.32281951154744992508E1,
    8.67072140885989742329E1,
    3.54937778887819891062E2,
    9.75708501743205489753E2,
    1.82390916687909736289E3,
    2.24633760818710981792E3,
    1.65666309194161350182E3,
    5.57535340817727675546E2,
];
const NDTR_R: [f64; 6] = [
    5.64189583547755073984E-1,
    1.27536670759978104416E0,
    5.01905042251180477414E0,
    6.16021097993053585195E0,
    7.40974269950448939160E0,
    2.97886665372100240670E0,
];
const NDTR_S: [f64; 6] = [
    2.26052863220117276590E0,
    9.39603524938001434673E0,
    1.20489539808096656605E1,
    1.70814450747565897222E1,
    9.60896809063285878198E0,
    3.36907645100081516050E0,
];
const NDTR_T: [f64; 5] = [
    9.60497373987051638749E0,
    9.00260197203842689217E1,
    2.23200534594684319226E3,
    7.00332514112805075473E3,
    5.55923013010394962768E4,
];
const NDTR_U: [f64; 5] = [
    3.35617141647503099647E1,
    5.21357949780152679795E2,
    4.59432382970980127987E3,
    2.26290000613890934246E4,
    4.92673942608635921086E4,
];
const MAXLOG: f64 = 7.09782712893383996843E2;

/// Cephes polevl: Σ c_i x^(N−i).
fn polevl(x: f64, c: &[f64]) -> f64 {
    c[1..].iter().fold(c[0], |acc, ci| acc * x + ci)
}

/// Cephes p1evl: like polevl with an implicit leading coefficient 1.
fn p1evl(x: f64, c: &[f64]) -> f64 {
    c[1..].iter().fold(x + c[0], |acc, ci| acc * x + ci)
}

fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return -erf(-x);
    }
    if x > 1.0 {
        return 1.0 - erfc(x);
    }
    let z = x * x;
    x * polevl(z, &NDTR_T) / p1evl(z, &NDTR_U)
}

fn erfc(a: f64) -> f64 {
    if a.is_nan() {
        return f64::NAN;
    }
    let x = a.abs();
    if x < 1.0 {
        return 1.0 - erf(a);
    }
    let z = -a * a;
    if z < -MAXLOG {
        return if a < 0.0 { 2.0 } else { 0.0 };
    }
    let z = z.exp();
    let (p, q) = if x < 8.0 {
        (polevl(x, &NDTR_P), p1evl(x, &NDTR_Q))
    } else {
        (polevl(x, &NDTR_R), p1evl(x, &NDTR_S))
    };
    let mut y = (z * p) / q;
    if a < 0.0 {
        y = 2.0 - y;
    }
    if y != 0.0 {
        y
    } else if a < 0.0 {
        2.0
    } else {
        0.0
    }
}

/// Standard normal CDF, Cephes `ndtr` (scipy.special.ndtr).
pub fn ndtr(a: f64) -> f64 {
    if a.is_nan() {
        return f64::NAN;
    }
    let x = a * std::f64::consts::FRAC_1_SQRT_2;
    let z = x.abs();
    if z < 1.0 {
        0.5 + 0.5 * erf(x)
    } else {
        let y = 0.5 * erfc(z);
        if x > 0.0 {
            1.0 - y
        } else {
            y
        }
    }
}

/// p-value of a standard-normal statistic (scipy `_get_pvalue` with
/// `_SimpleNormal`).
pub fn normal_pvalue(z: f64, alt: Alternative) -> f64 {
    match alt {
        Alternative::Less => ndtr(z),
        Alternative::Greater => ndtr(-z),
        Alternative::TwoSided => 2.0 * ndtr(-z.abs()),
    }
}

/// Stirling-series remainder δ(z) = lnΓ(z) − [(z−½)ln z − z + ½ln 2π], z ≥ 10.
fn stirling_delta(z: f64) -> f64 {
    const C: [f64; 8] = [
        1.0 / 12.0,
        -1.0 / 360.0,
        1.0 / 1260.0,
        -1.0 / 1680.0,
        1.0 / 1188.0,
        -691.0 / 360360.0,
        1.0 / 156.0,
        -3617.0 / 122400.0,
    ];
    let z2 = 1.0 / (z * z);
    let mut acc = 0.0;
    for c in C.iter().rev() {
        acc = acc * z2 + c;
    }
    acc / z
}

/// ln B(a, b), avoiding cancellation when one argument is large.
fn ln_beta(a: f64, b: f64) -> f64 {
    let (p, q) = if a <= b { (a, b) } else { (b, a) };
    if q < 10.0 {
        ln_gamma(p) + ln_gamma(q) - ln_gamma(p + q)
    } else {
        // lnΓ(q) − lnΓ(p+q) by Stirling, without forming either.
        let diff = -(q - 0.5) * (p / q).ln_1p() - p * (p + q).ln() + p + stirling_delta(q)
            - stirling_delta(p + q);
        ln_gamma(p) + diff
    }
}

/// φ(u) = u − 1 − ln u for u = x/x0 = 1 + w, given w = (x − x0)/x0
/// (accurate near u = 1) and x, x0 (for ln u when x ≪ x0).
fn phi1(w: f64, x: f64, x0: f64) -> f64 {
    if w.abs() < 0.1 {
        // Σ_{k≥2} (−1)^k w^k / k
        let mut term = w * w;
        let mut sum = 0.0;
        let mut k = 2.0;
        let mut sign = 1.0;
        while k < 40.0 {
            let t = sign * term / k;
            sum += t;
            if t.abs() < 1e-18 * sum.abs() {
                break;
            }
            term *= w;
            sign = -sign;
            k += 1.0;
        }
        sum
    } else if w < -0.5 {
        w - (x / x0).ln()
    } else {
        w - w.ln_1p()
    }
}

/// x^a y^b / B(a, b) with y = 1 − x given separately.
fn ibeta_front(a: f64, b: f64, x: f64, y: f64) -> f64 {
    if a.min(b) >= 10.0 {
        // Stirling in Kullback–Leibler form (TOMS 708 `brcomp`): with
        // s = a+b, x0 = a/s, y0 = b/s,
        // ln front = −a·φ(x/x0) − b·φ(y/y0) − ½ln(2πs/(ab)) − (δa + δb − δs).
        let s = a + b;
        let x0 = a / s;
        let y0 = b / s;
        // d = x − x0 = y0 − y, from whichever of x, y is the smaller
        let d = if x <= y { x - x0 } else { y0 - y };
        let expo = -(a * phi1(d / x0, x, x0) + b * phi1(-d / y0, y, y0));
        let corr = stirling_delta(a) + stirling_delta(b) - stirling_delta(s);
        (expo - corr).exp() * (a * b / (2.0 * std::f64::consts::PI * s)).sqrt()
    } else {
        // ln x from y when x is near 1 (and vice versa), so a·ln x stays exact
        let lx = if x > 0.5 { (-y).ln_1p() } else { x.ln() };
        let ly = if y > 0.5 { (-x).ln_1p() } else { y.ln() };
        (a * lx + b * ly - ln_beta(a, b)).exp()
    }
}

/// Continued fraction for I_x(a,b) (Numerical Recipes `betacf`), modified Lentz.
/// `y` = 1 − x keeps the first denominator 1 − (a+b)x/(a+1) exact when x is
/// near 1 (it is (1 − b + (a+b)y)/(a+1) there).
fn betacf(a: f64, b: f64, x: f64, y: f64) -> f64 {
    const EPS: f64 = 1e-16;
    const FPMIN: f64 = 1e-300;
    let qab = a + b;
    let qap = a + 1.0;
    let qam = a - 1.0;
    let mut c = 1.0;
    let mut d = if x > 0.5 {
        (1.0 - b + qab * y) / qap
    } else {
        1.0 - qab * x / qap
    };
    if d.abs() < FPMIN {
        d = FPMIN;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..100_000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < FPMIN {
            d = FPMIN;
        }
        c = 1.0 + aa / c;
        if c.abs() < FPMIN {
            c = FPMIN;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < FPMIN {
            d = FPMIN;
        }
        c = 1.0 + aa / c;
        if c.abs() < FPMIN {
            c = FPMIN;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// Regularized incomplete beta and its complement, (I_x(a,b), 1 − I_x(a,b)),
/// with y = 1 − x passed in so callers keep its precision.
pub fn ibeta_pair(a: f64, b: f64, x: f64, y: f64) -> (f64, f64) {
    if a.is_nan() || b.is_nan() || x.is_nan() || y.is_nan() || a <= 0.0 || b <= 0.0 {
        return (f64::NAN, f64::NAN);
    }
    if x <= 0.0 {
        return (0.0, 1.0);
    }
    if y <= 0.0 {
        return (1.0, 0.0);
    }
    let front = ibeta_front(a, b, x, y);
    if x < (a + 1.0) / (a + b + 2.0) {
        let w = (front * betacf(a, b, x, y) / a).clamp(0.0, 1.0);
        (w, 1.0 - w)
    } else {
        let w = (front * betacf(b, a, y, x) / b).clamp(0.0, 1.0);
        (1.0 - w, w)
    }
}

/// Upper tail of Student's t, P(T > t) for t ≥ 0.
fn t_upper_tail(df: f64, t: f64) -> f64 {
    if t.is_infinite() {
        return 0.0;
    }
    let (x, y) = if t > 1e150 {
        (df / t / t, 1.0)
    } else {
        let t2 = t * t;
        (df / (df + t2), t2 / (df + t2))
    };
    0.5 * ibeta_pair(0.5 * df, 0.5, x, y).0
}

/// Student-t CDF `stdtr(df, t)` (scipy.special.stdtr); NaN for df ≤ 0.
pub fn stdtr(df: f64, t: f64) -> f64 {
    if df.is_nan() || t.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if t < 0.0 {
        t_upper_tail(df, -t)
    } else {
        1.0 - t_upper_tail(df, t)
    }
}

/// p-value of a t statistic with `df` degrees of freedom (scipy
/// `_get_pvalue` with `_SimpleStudentT`).
pub fn t_pvalue(t: f64, df: f64, alt: Alternative) -> f64 {
    match alt {
        Alternative::Less => stdtr(df, t),
        Alternative::Greater => stdtr(df, -t),
        Alternative::TwoSided => 2.0 * stdtr(df, -t.abs()),
    }
}

/// p-value of Pearson's r under the null Beta(n/2−1, n/2−1) on (−1, 1)
/// (scipy `pearsonr`'s `_SimpleBeta`).
pub fn pearson_pvalue(r: f64, n: f64, alt: Alternative) -> f64 {
    let ab = n / 2.0 - 1.0;
    let cdf_sf = |v: f64| {
        let x = (v + 1.0) / 2.0;
        ibeta_pair(ab, ab, x, 1.0 - x)
    };
    match alt {
        Alternative::Less => cdf_sf(r).0,
        Alternative::Greater => cdf_sf(r).1,
        Alternative::TwoSided => 2.0 * cdf_sf(r.abs()).1,
    }
}
