//! Numbers as people read them in messages and printed results: four
//! significant digits (0.9341), scientific notation for the very small and
//! very large (p = 1.6e-6), and whole numbers without a decimal point
//! (t(166), 3755 of 40176 voxels). Stored values (run.json, files) keep
//! full precision; only text for reading goes through here.

/// A float as text for reading.
pub fn number(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    if x == 0.0 {
        return "0".into();
    }
    let magnitude = x.abs();
    if x.fract() == 0.0 && magnitude < 1e15 {
        return format!("{x:.0}");
    }
    if !(1e-3..1e6).contains(&magnitude) {
        let text = format!("{x:.2e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        return format!("{}e{exponent}", trim_zeros(mantissa));
    }
    let decimals = (3 - magnitude.log10().floor() as i64).max(1) as usize;
    let text = format!("{x:.decimals$}");
    trim_zeros(&text).to_string()
}

/// A float as a printed result (the REPL's echo): as [`number`], but a
/// whole number keeps its ".0" so floats and integers stay apart.
pub fn value(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.1}")
    } else {
        number(x)
    }
}

fn trim_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}
