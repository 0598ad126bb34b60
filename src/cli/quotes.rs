//! Numbers the docs quote from recorded runs, so that they cannot go stale.
//!
//! A quoted value is written in a Markdown doc followed by a marker naming
//! its record and the value's path in it (the marker is invisible in
//! rendered Markdown; bold around the value is allowed):
//!
//! - `<!-- run NAME PATH -->`: a script's run.json, recorded as
//!   docs/papers/runs/NAME.json by `make papers`, e.g. `BLEU-4
//!   **0.303**<!-- run takagi_captions metrics.bleu4 -->`;
//! - `<!-- bench NAME PATH -->`: a benchmark's result, bench/results/NAME.json
//!   as the bench/ scripts write it, e.g. `23.14<!-- bench nsd_load voxlab_s
//!   --> s` or `0.98<!-- bench train_throughput results.0.ratio -->×`.
//!
//! PATH is dotted, array elements by index. A number is compared at the
//! precision it is shown with (`0.303` to three decimals, `1.6e-6` to one
//! decimal of its mantissa), a text value (a layer name) exactly. [`check`]
//! lists the quotes that differ from their records (a test runs it over
//! README.md and docs/); [`update`] rewrites them from the records (`voxlab
//! doc --quotes FILE...`, run by `make papers` after it records the runs).
//! Both take the repository root, under which the two record folders lie.

use std::path::Path;

const OPEN: &str = "<!-- ";
const CLOSE: &str = "-->";

/// Which kind of record a marker names, and so the folder it lies in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// A script's run record, docs/papers/runs/NAME.json.
    Run,
    /// A benchmark result, bench/results/NAME.json.
    Bench,
}

impl Source {
    /// The marker's first word.
    pub fn keyword(self) -> &'static str {
        match self {
            Source::Run => "run",
            Source::Bench => "bench",
        }
    }

    /// The folder of its records, relative to the repository root.
    pub fn folder(self) -> &'static str {
        match self {
            Source::Run => "docs/papers/runs",
            Source::Bench => "bench/results",
        }
    }
}

/// One quoted value: where it is in the text and what it quotes.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    /// 1-based line of the marker.
    pub line: usize,
    /// Byte range of the shown value in the text.
    pub start: usize,
    pub end: usize,
    pub shown: String,
    /// The kind of record and its name (`<folder>/<run>.json`).
    pub source: Source,
    pub run: String,
    /// Dotted path of the value in the record (array elements by index).
    pub path: String,
}

/// Every marked quote of a text, in order; an error for a marker without a
/// value before it or without its record and path. Other HTML comments are
/// left alone.
pub fn find(text: &str) -> Result<Vec<Quote>, String> {
    let mut quotes = Vec::new();
    let mut from = 0;
    while let Some(off) = text[from..].find(OPEN) {
        let marker = from + off;
        let after = &text[marker + OPEN.len()..];
        let Some((source, keyword)) = [Source::Run, Source::Bench]
            .into_iter()
            .map(|s| (s, s.keyword()))
            .find(|(_, k)| after.strip_prefix(k).is_some_and(|r| r.starts_with(' ')))
        else {
            from = marker + OPEN.len();
            continue;
        };
        let line = text[..marker].matches('\n').count() + 1;
        let body_start = marker + OPEN.len() + keyword.len();
        let Some(close) = text[body_start..].find(CLOSE) else {
            return Err(format!(
                "line {line}: a {keyword} marker without its closing -->"
            ));
        };
        let body: Vec<&str> = text[body_start..body_start + close]
            .split_whitespace()
            .collect();
        let [run, path] = body.as_slice() else {
            return Err(format!(
                "line {line}: a {keyword} marker names a record and a path (<!-- {keyword} NAME PATH -->), got '{}'",
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
                "line {line}: no value before the marker of {keyword} {run} {path}"
            ));
        }
        quotes.push(Quote {
            line,
            start,
            end,
            shown: shown.to_string(),
            source,
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

fn load_record(root: &Path, source: Source, name: &str) -> Result<serde_json::Value, String> {
    let file = root.join(source.folder()).join(format!("{name}.json"));
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read the run record {}: {e}", file.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", file.display()))
}

impl Quote {
    /// The record as messages name it: `takagi_captions`, `bench nsd_load`.
    fn record(&self) -> String {
        match self.source {
            Source::Run => self.run.clone(),
            Source::Bench => format!("bench {}", self.run),
        }
    }
}

/// What each quote should read, from the records under the repository
/// `root`: (quote, value).
fn expected(text: &str, root: &Path) -> Result<Vec<(Quote, String)>, String> {
    let mut records = std::collections::BTreeMap::new();
    let mut out = Vec::new();
    for q in find(text)? {
        let key = (q.source, q.run.clone());
        if !records.contains_key(&key) {
            records.insert(key.clone(), load_record(root, q.source, &q.run)?);
        }
        let record = &records[&key];
        let value = lookup(record, &q.path)
            .ok_or_else(|| format!("line {}: {} has no value at {}", q.line, q.record(), q.path))?;
        let want = render(value, &q.shown).ok_or_else(|| {
            format!(
                "line {}: {} {} is {value}, not a number or text",
                q.line,
                q.record(),
                q.path
            )
        })?;
        out.push((q, want));
    }
    Ok(out)
}

/// The quotes of `text` that differ from their records under the
/// repository `root`, one line each ("line 12: 0.35 but takagi_captions
/// metrics.bleu4 is 0.303").
pub fn check(text: &str, root: &Path) -> Result<Vec<String>, String> {
    Ok(expected(text, root)?
        .into_iter()
        .filter(|(q, want)| &q.shown != want)
        .map(|(q, want)| {
            format!(
                "line {}: {} but {} {} is {want}",
                q.line,
                q.shown,
                q.record(),
                q.path
            )
        })
        .collect())
}

/// `text` with every quote rewritten from its record under the repository
/// `root`, and how many changed.
pub fn update(text: &str, root: &Path) -> Result<(String, usize), String> {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut changed = 0;
    for (q, want) in expected(text, root)? {
        out.push_str(&text[at..q.start]);
        out.push_str(&want);
        changed += usize::from(q.shown != want);
        at = q.end;
    }
    out.push_str(&text[at..]);
    Ok((out, changed))
}
