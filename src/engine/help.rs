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

    pub fn option_names(&self) -> String {
        self.options
            .iter()
            .map(|o| o.name)
            .collect::<Vec<_>>()
            .join(", ")
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

    pub fn get(&self, name: &str) -> Option<&'static FnDoc> {
        self.entries.get(name).copied()
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

    /// Names close to `name`, for "did you mean".
    pub fn similar(&self, name: &str) -> Vec<&'static str> {
        let mut scored: Vec<(usize, &'static str)> = self
            .names()
            .map(|n| (edit_distance(n, name), n))
            .filter(|(d, n)| *d <= 2 || n.contains(name))
            .collect();
        scored.sort();
        scored.into_iter().take(3).map(|(_, n)| n).collect()
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

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
