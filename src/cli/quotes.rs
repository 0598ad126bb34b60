//! Numbers the docs quote from recorded runs, so that they cannot go stale.
//!
//! A quoted value is written in a Markdown doc followed by a marker naming
//! the run record (docs/papers/runs/NAME.json, a script's run.json) and the
//! value's path in it, e.g. `BLEU-4 **0.303**<!-- run takagi_captions
//! metrics.bleu4 -->` (the marker is invisible in rendered Markdown; bold
//! around the value is allowed). A number is compared at the precision it is
//! shown with (`0.303` to three decimals, `1.6e-6` to one decimal of its
//! mantissa), a text value (a layer name) exactly. [`check`] lists the quotes
//! that differ from their records (a test runs it over docs/); [`update`]
//! rewrites them from the records (`voxlab doc --quotes FILE...`, run by
//! `make papers` after it records the runs).

use std::path::Path;

const OPEN: &str = "<!-- run ";
const CLOSE: &str = "-->";

/// One quoted value: where it is in the text and what it quotes.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    /// 1-based line of the marker.
    pub line: usize,
    /// Byte range of the shown value in the text.
    pub start: usize,
    pub end: usize,
    pub shown: String,
    /// Run record name (docs/papers/runs/<run>.json).
    pub run: String,
    /// Dotted path of the value in the record (array elements by index).
    pub path: String,
}

/// Every marked quote of a text, in order; an error for a marker without a
/// value before it or without its run and path.
pub fn find(text: &str) -> Result<Vec<Quote>, String> {
    let mut quotes = Vec::new();
    let mut from = 0;
    while let Some(off) = text[from..].find(OPEN) {
        let marker = from + off;
        let line = text[..marker].matches('\n').count() + 1;
        let body_start = marker + OPEN.len();
        let Some(close) = text[body_start..].find(CLOSE) else {
            return Err(format!("line {line}: a run marker without its closing -->"));
        };
        let body: Vec<&str> = text[body_start..body_start + close]
            .split_whitespace()
            .collect();
        let [run, path] = body.as_slice() else {
            return Err(format!(
                "line {line}: a run marker names a record and a path (<!-- run NAME PATH -->), got '{}'",
                body.join(" ")
            ));
        };
        // The value ends before any bold markers and starts after the
        // previous space, bracket, parenthesis or bold marker.
        let head = text[..marker].trim_end_matches('*');
        let end = head.len();
        let start = head
            .rfind(|c: char| c.is_whitespace() || "*([{|,;:=".contains(c))
            .map_or(0, |i| {
                i + head[i..].chars().next().map_or(1, char::len_utf8)
            });
        let shown = &text[start..end];
        if shown.is_empty() {
            return Err(format!(
                "line {line}: no value before the marker of {run} {path}"
            ));
        }
        quotes.push(Quote {
            line,
            start,
            end,
            shown: shown.to_string(),
            run: run.to_string(),
            path: path.to_string(),
        });
        from = body_start + close + CLOSE.len();
    }
    Ok(quotes)
}

/// The value at a dotted path of a record.
fn lookup<'a>(record: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.').try_fold(record, |v, key| match v {
        serde_json::Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => v.get(key),
    })
}

/// A recorded value written as `shown` is written: numbers at its precision
/// (fixed decimals, or a mantissa's decimals in e-notation), text as it is.
pub fn render(value: &serde_json::Value, shown: &str) -> Option<String> {
    if let Some(text) = value.as_str() {
        return Some(text.to_string());
    }
    let v = value.as_f64()?;
    let decimals = |s: &str| s.split_once('.').map_or(0, |(_, d)| d.len());
    Some(match shown.split_once(['e', 'E']) {
        Some((mantissa, _)) => format!("{v:.*e}", decimals(mantissa)),
        None => format!("{v:.*}", decimals(shown)),
    })
}

fn load_record(runs: &Path, name: &str) -> Result<serde_json::Value, String> {
    let file = runs.join(format!("{name}.json"));
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read the run record {}: {e}", file.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", file.display()))
}

/// What each quote should read, from the records in `runs`: (quote, value).
fn expected(text: &str, runs: &Path) -> Result<Vec<(Quote, String)>, String> {
    let mut records = std::collections::BTreeMap::new();
    let mut out = Vec::new();
    for q in find(text)? {
        if !records.contains_key(&q.run) {
            records.insert(q.run.clone(), load_record(runs, &q.run)?);
        }
        let record = &records[&q.run];
        let value = lookup(record, &q.path)
            .ok_or_else(|| format!("line {}: {} has no value at {}", q.line, q.run, q.path))?;
        let want = render(value, &q.shown).ok_or_else(|| {
            format!(
                "line {}: {} {} is {value}, not a number or text",
                q.line, q.run, q.path
            )
        })?;
        out.push((q, want));
    }
    Ok(out)
}

/// The quotes of `text` that differ from their records in `runs`, one line
/// each ("line 12: 0.35 but takagi_captions metrics.bleu4 is 0.303").
pub fn check(text: &str, runs: &Path) -> Result<Vec<String>, String> {
    Ok(expected(text, runs)?
        .into_iter()
        .filter(|(q, want)| &q.shown != want)
        .map(|(q, want)| {
            format!(
                "line {}: {} but {} {} is {want}",
                q.line, q.shown, q.run, q.path
            )
        })
        .collect())
}

/// `text` with every quote rewritten from its record, and how many changed.
pub fn update(text: &str, runs: &Path) -> Result<(String, usize), String> {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut changed = 0;
    for (q, want) in expected(text, runs)? {
        out.push_str(&text[at..q.start]);
        out.push_str(&want);
        changed += usize::from(q.shown != want);
        at = q.end;
    }
    out.push_str(&text[at..]);
    Ok((out, changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(
            dir.path().join("r.json"),
            r#"{"duration_s": 41.6, "metrics": {"bleu4": 0.30277, "p": 1.63e-6, "best": {"V1": "layer1"}, "rows": [[0.5, 0.25]]}}"#,
        )
        .expect("write");
        dir
    }

    #[test]
    fn finds_values_before_markers_with_or_without_bold() {
        let text = "BLEU-4 **0.303**<!-- run r metrics.bleu4 -->, p = 1.6e-6<!-- run r metrics.p -->\n(best layer1<!-- run r metrics.best.V1 -->)";
        let q = find(text).expect("quotes");
        let shown: Vec<&str> = q.iter().map(|q| q.shown.as_str()).collect();
        assert_eq!(shown, ["0.303", "1.6e-6", "layer1"]);
        assert_eq!(q[2].line, 2);
        assert_eq!(q[1].path, "metrics.p");
    }

    #[test]
    fn a_quote_that_differs_from_its_record_is_reported_and_rewritten() {
        let dir = runs();
        let good = "0.303<!-- run r metrics.bleu4 --> 1.6e-6<!-- run r metrics.p --> 42<!-- run r duration_s --> 0.25<!-- run r metrics.rows.0.1 -->";
        assert!(check(good, dir.path()).expect("check").is_empty());
        let stale =
            "BLEU-4 **0.35**<!-- run r metrics.bleu4 --> and layer2<!-- run r metrics.best.V1 -->";
        let problems = check(stale, dir.path()).expect("check");
        assert_eq!(
            problems,
            [
                "line 1: 0.35 but r metrics.bleu4 is 0.30",
                "line 1: layer2 but r metrics.best.V1 is layer1"
            ]
        );
        let (fixed, changed) = update(stale, dir.path()).expect("update");
        assert_eq!(changed, 2);
        assert_eq!(
            fixed,
            "BLEU-4 **0.30**<!-- run r metrics.bleu4 --> and layer1<!-- run r metrics.best.V1 -->"
        );
    }

    #[test]
    fn missing_records_and_paths_are_errors() {
        let dir = runs();
        let e = check("1.0<!-- run nope metrics.x -->", dir.path()).expect_err("no record");
        assert!(e.contains("nope.json"), "{e}");
        let e = check("1.0<!-- run r metrics.x -->", dir.path()).expect_err("no path");
        assert!(e.contains("r has no value at metrics.x"), "{e}");
        let e = check("<!-- run r metrics.bleu4 -->", dir.path()).expect_err("no value");
        assert!(e.contains("no value before the marker"), "{e}");
    }
}
