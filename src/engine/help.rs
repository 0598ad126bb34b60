//! The one help registry: REPL `help()`, `voxlab doc` and docs/reference.md
//! are all generated from the [`FnDoc`]s registered next to each function.
//!
//! Option defaults are written once, here, as text; [`super::options::Opts`]
//! parses them, so documentation and behaviour cannot disagree.

use std::collections::BTreeMap;
use std::fmt::Write;

/// One option of a function's trailing options map.
#[derive(Debug)]
pub struct OptDoc {
    pub name: &'static str,
    /// "int", "float", "bool", "string", "array of float", ...
    pub ty: &'static str,
    /// The default as a script would write it; "none" means "not set".
    pub default: &'static str,
    pub meaning: &'static str,
}

/// Documentation of one script function (all its overloads).
#[derive(Debug)]
pub struct FnDoc {
    pub name: &'static str,
    /// Domain heading under which `help()` lists it: "tensor", "io", ...
    pub domain: &'static str,
    /// Every call form, one per line, e.g. "zeros(shape: array) -> Tensor".
    pub signature: &'static str,
    pub summary: &'static str,
    pub options: &'static [OptDoc],
    /// A short script that runs (a test runs every example).
    pub example: &'static str,
}

impl FnDoc {
    pub fn option(&self, name: &str) -> Option<&'static OptDoc> {
        self.options.iter().find(|o| o.name == name)
    }

    /// For a type entry (Tensor, ResNet, ...): the methods and properties its
    /// signature lines document, e.g. "m.predict(images) -> Tensor" → predict.
    pub fn members(&self) -> Vec<&'static str> {
        if !self.name.starts_with(char::is_uppercase) {
            return Vec::new();
        }
        self.signature
            .lines()
            .filter_map(|l| {
                let after = l.trim().split_once('.')?.1;
                let end = after
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (end > 0).then(|| &after[..end])
            })
            .collect()
    }

    /// The call forms of a function entry, parsed from its signature lines
    /// ("fit_ridge(x: Tensor, y: Tensor, opts?: map) -> RidgeModel").
    /// Type entries and free-text lines give none.
    pub fn forms(&self) -> Vec<CallForm> {
        if self.name.starts_with(char::is_uppercase) {
            return Vec::new();
        }
        self.signature.lines().filter_map(CallForm::parse).collect()
    }

    /// Every name this entry documents a call of: its own and those of the
    /// other functions its signature lines list (sqrt, exp, log, ...).
    pub fn call_names(&self) -> Vec<&'static str> {
        let mut names = vec![self.name];
        if self.name.starts_with(char::is_uppercase) {
            return names;
        }
        for line in self.signature.lines() {
            let head = line.trim();
            let end = head
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(head.len());
            if end > 0 && head[end..].starts_with('(') && !names.contains(&&head[..end]) {
                names.push(&head[..end]);
            }
        }
        names
    }

    pub fn option_names(&self) -> String {
        self.options
            .iter()
            .map(|o| o.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One call form of a function: its parameters (name, declared type,
/// optional) and what it returns, read from a signature line.
#[derive(Debug, Clone, PartialEq)]
pub struct CallForm {
    pub name: String,
    pub params: Vec<Param>,
    /// The first word after "->": "Tensor", "map", "#{r, p}" → "map".
    pub returns: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    /// Alternatives as written ("Tensor | array" → ["Tensor", "array"]);
    /// empty when the signature gives no type (any value).
    pub types: Vec<String>,
    pub optional: bool,
}

impl Param {
    /// Whether a value of script type `given` ("Tensor", "int", "string",
    /// ...) fits this parameter.
    pub fn accepts(&self, given: &str) -> bool {
        self.types.is_empty()
            || self.types.iter().any(|t| match t.as_str() {
                "number" => given == "int" || given == "float",
                "float" => given == "float" || given == "int",
                "value" => true,
                t => t == given,
            })
    }

    /// "a Tensor", "an int", "a Tensor or an array".
    pub fn expected(&self) -> String {
        self.types
            .iter()
            .map(|t| with_article(t))
            .collect::<Vec<_>>()
            .join(" or ")
    }
}

pub fn with_article(ty: &str) -> String {
    let vowel = ty.starts_with(|c: char| "aeiouAEIOU".contains(c));
    format!("{} {ty}", if vowel { "an" } else { "a" })
}

impl CallForm {
    fn parse(line: &str) -> Option<CallForm> {
        let line = line.trim();
        let open = line.find('(')?;
        let name = &line[..open];
        if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return None;
        }
        // The matching ')' of the parameter list (options maps hold no parens).
        let close = open + line[open..].find(')')?;
        let inner = line[open + 1..close].trim();
        let params = if inner.is_empty() {
            Vec::new()
        } else {
            inner
                .split(',')
                .map(|p| {
                    let (pname, ty) = p.split_once(':').unwrap_or((p, ""));
                    let pname = pname.trim();
                    let optional = pname.ends_with('?');
                    Param {
                        name: pname.trim_end_matches('?').to_string(),
                        types: ty
                            .split('|')
                            .map(|t| t.trim().to_string())
                            .filter(|t| !t.is_empty())
                            .collect(),
                        optional,
                    }
                })
                .collect()
        };
        let returns = line[close + 1..]
            .trim()
            .strip_prefix("->")
            .map(str::trim)
            .and_then(|r| {
                if r.starts_with("#{") {
                    return Some("map".to_string());
                }
                let end = r
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(r.len());
                (end > 0).then(|| r[..end].to_string())
            });
        Some(CallForm {
            name: name.to_string(),
            params,
            returns,
        })
    }

    /// Whether the form can be called with `n` arguments.
    pub fn takes(&self, n: usize) -> bool {
        let required = self.params.iter().filter(|p| !p.optional).count();
        (required..=self.params.len()).contains(&n)
    }
}

/// Domains in the order `help()` and the reference list them.
pub const DOMAINS: &[(&str, &str)] = &[
    ("session", "Runs, parameters, seeds and devices"),
    (
        "tensor",
        "Tensors: creation, arithmetic, reductions, selection",
    ),
    ("io", "Files: npy, JSON, CSV"),
    (
        "data",
        "Brain data: NIfTI volumes, masks and ROIs, smoothing, DICOM, stimulus images",
    ),
    (
        "stats",
        "Statistics: correlation, Kendall tau, t-tests, multiple comparisons",
    ),
    (
        "models",
        "Models: ridge regression, ResNet classifiers and features",
    ),
    (
        "nets",
        "Networks: pretrained text encoders and CLIP in Hugging Face layouts",
    ),
    (
        "captions",
        "Captions: BLIP captioners in Hugging Face's layout, image-token features, generation",
    ),
    (
        "eval",
        "Evaluation: identification, image similarity, feature correlations",
    ),
    (
        "diffusion",
        "Latent diffusion: Stable Diffusion pipelines in diffusers' layout, latents, generation",
    ),
    (
        "reconstruction",
        "Image reconstruction: the one verb reconstruct and the models it serves",
    ),
    ("plot", "Figures"),
];

#[derive(Default)]
pub struct HelpRegistry {
    entries: BTreeMap<&'static str, &'static FnDoc>,
}

impl HelpRegistry {
    pub fn add(&mut self, doc: &'static FnDoc) {
        self.entries.insert(doc.name, doc);
    }

    /// The entry of a function or type, also for a function documented
    /// inside another's entry (exp in sqrt's).
    pub fn get(&self, name: &str) -> Option<&'static FnDoc> {
        self.entries.get(name).copied().or_else(|| {
            self.entries
                .values()
                .copied()
                .find(|d| d.call_names().contains(&name))
        })
    }

    /// Every call form of `name` across the registry.
    pub fn forms_of(&self, name: &str) -> Vec<CallForm> {
        self.entries
            .values()
            .flat_map(|d| d.forms())
            .filter(|f| f.name == name)
            .collect()
    }

    /// What a value of type `ty` offers after a dot: the properties and
    /// methods its type entry lists and the functions of its domain whose
    /// first parameter takes it (`t.mean()` is `mean(t)`; `fit_ridge(x, y)`
    /// takes a Tensor too but is no method of one).
    pub fn members_of(&self, ty: &str) -> Vec<&'static str> {
        let entry = self.entries.get(ty);
        let mut out: Vec<&'static str> = entry.map(|d| d.members()).unwrap_or_default();
        let domain = entry.map(|d| d.domain);
        for d in self.entries.values() {
            if d.name.starts_with(char::is_uppercase) || Some(d.domain) != domain {
                continue;
            }
            for line in d.signature.lines() {
                let Some(form) = CallForm::parse(line) else {
                    continue;
                };
                if form
                    .params
                    .first()
                    .is_some_and(|p| p.types.iter().any(|t| t == ty))
                {
                    if let Some(name) = d.call_names().into_iter().find(|n| *n == form.name) {
                        out.push(name);
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The type a member or method of `ty` returns, when its documentation says.
    pub fn member_type(&self, ty: &str, member: &str) -> Option<String> {
        if let Some(d) = self.entries.get(ty) {
            for line in d.signature.lines() {
                let Some((_, after)) = line.trim().split_once('.') else {
                    continue;
                };
                let end = after
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                if &after[..end] == member {
                    let ret = after.split_once("->")?.1.trim();
                    let end = ret
                        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .unwrap_or(ret.len());
                    return (end > 0).then(|| ret[..end].to_string());
                }
            }
        }
        self.forms_of(member)
            .into_iter()
            .find(|f| {
                f.params
                    .first()
                    .is_some_and(|p| p.types.iter().any(|t| t == ty))
            })
            .and_then(|f| f.returns)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.keys().copied()
    }

    pub fn all(&self) -> impl Iterator<Item = &'static FnDoc> + '_ {
        self.entries.values().copied()
    }

    fn in_domain(&self, domain: &str) -> Vec<&'static FnDoc> {
        self.entries
            .values()
            .copied()
            .filter(|d| d.domain == domain)
            .collect()
    }

    /// `help()`: every function, by domain, one line each.
    pub fn overview(&self) -> String {
        let mut out = String::new();
        for (domain, title) in DOMAINS {
            let docs = self.in_domain(domain);
            if docs.is_empty() {
                continue;
            }
            let _ = writeln!(out, "{title}:");
            for d in docs {
                let _ = writeln!(out, "  {:<18} {}", d.name, d.summary);
            }
            out.push('\n');
        }
        out.push_str("help(\"name\") shows one function with its options and an example.");
        out
    }

    /// Type entries documenting a method or property of this name.
    pub fn types_with_member(&self, name: &str) -> Vec<&'static FnDoc> {
        self.entries
            .values()
            .copied()
            .filter(|d| d.members().contains(&name))
            .collect()
    }

    /// `help("name")`: the full entry as plain text (for a method, the entries
    /// of the types that have it).
    pub fn describe(&self, name: &str) -> Option<String> {
        let Some(d) = self.get(name) else {
            let types = self.types_with_member(name);
            if types.is_empty() {
                return None;
            }
            let texts: Vec<String> = types.iter().filter_map(|t| self.describe(t.name)).collect();
            return Some(texts.join("\n\n"));
        };
        let mut out = String::new();
        let _ = writeln!(out, "{}", d.signature);
        let _ = writeln!(out, "  {}", d.summary);
        if !d.options.is_empty() {
            let _ = writeln!(out, "options:");
            for o in d.options {
                let _ = writeln!(
                    out,
                    "  {:<14} {:<16} default {:<10} {}",
                    o.name, o.ty, o.default, o.meaning
                );
            }
        }
        let _ = writeln!(out, "example:");
        for line in d.example.lines() {
            let _ = writeln!(out, "  {line}");
        }
        Some(out.trim_end().to_string())
    }

    /// Every name a script can call or read after a dot: functions (also
    /// those documented inside another entry), types, and type members.
    pub fn known_names(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = self
            .entries
            .values()
            .flat_map(|d| {
                let mut names = d.call_names();
                names.extend(d.members());
                names
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether `name` is a documented function, type or member.
    pub fn knows(&self, name: &str) -> bool {
        self.known_names().contains(&name)
    }

    /// Names close to `name`, for "did you mean": few edits away, or one
    /// contains the other (zscore_columns → zscore).
    pub fn similar(&self, name: &str) -> Vec<&'static str> {
        closest(name, self.known_names())
    }

    /// docs/reference.md.
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "# voxlab function reference\n\n\
             Generated from the help registry by `voxlab doc --markdown` (`make docs`); \
             do not edit by hand. In the REPL, `help(\"name\")` shows the same text.\n\n\
             Options go in one trailing map, e.g. `f(x, #{key: value})`; \
             an unknown key is an error that lists the valid ones.\n",
        );
        for (domain, title) in DOMAINS {
            let docs = self.in_domain(domain);
            if docs.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n## {title}\n");
            for d in docs {
                let _ = writeln!(out, "### `{}`\n\n{}\n", d.name, d.summary);
                let _ = writeln!(out, "```\n{}\n```\n", d.signature);
                if !d.options.is_empty() {
                    out.push_str("| option | type | default | meaning |\n|---|---|---|---|\n");
                    for o in d.options {
                        let _ = writeln!(
                            out,
                            "| `{}` | {} | `{}` | {} |",
                            o.name, o.ty, o.default, o.meaning
                        );
                    }
                    out.push('\n');
                }
                let _ = writeln!(out, "```rhai\n{}\n```", d.example.trim_end());
            }
        }
        out
    }
}

/// The (up to three) candidates closest to `name`.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let limit = if name.chars().count() <= 3 { 1 } else { 2 };
    let mut scored: Vec<(usize, &'a str)> = candidates
        .into_iter()
        .filter(|n| *n != name)
        .map(|n| (edit_distance(n, name), n))
        .filter(|(d, n)| {
            *d <= limit
                || (n.len() >= 4 && name.contains(n))
                || (name.len() >= 4 && n.contains(name))
        })
        .collect();
    scored.sort();
    scored.dedup();
    scored.into_iter().take(3).map(|(_, n)| n).collect()
}

/// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`:
/// the optimal-string-alignment distance, so "mena" is one edit from "mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for j in 0..=b.len() {
        d[0][j] = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}
