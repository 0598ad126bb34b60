//! Hugging Face folders as people download them: `config.json`, weights in
//! safetensors (`model.safetensors`, `diffusion_pytorch_model.safetensors`,
//! or shards listed in `*.safetensors.index.json`) and `tokenizer.json`.
//!
//! Architectures build themselves from a [`Config`] and name their
//! parameters as the reference implementation does; [`load_weights`] then
//! fills the VarStore by name, converting float16/bfloat16 to the store's
//! dtype, and refuses a missing, unexpected or mis-shaped parameter with an
//! error naming the file and the first offenders with both shapes.
//! [`save_weights`] and [`write_config`] write the same layout back, so a
//! folder voxlab saves loads with `from_pretrained`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;
use tch::nn::VarStore;

use crate::error::{Error, Result};
use crate::io::safetensors as st;
use crate::tensor::{shape_text, tc};

/// A parsed config.json (or one of its sub-objects, e.g. CLIP's
/// `text_config`), remembering its file for error messages.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    /// "" at the top level; "text_config." inside a sub-config.
    pub prefix: String,
    pub value: Value,
}

impl Config {
    pub fn read(op: &'static str, path: &Path) -> Result<Config> {
        let text = crate::io::read_text(op, path)?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| Error::format(op, path, format!("not valid JSON: {e}")))?;
        if !value.is_object() {
            return Err(Error::format(op, path, "expected a JSON object"));
        }
        Ok(Config {
            path: path.to_path_buf(),
            prefix: String::new(),
            value,
        })
    }

    fn bad(&self, op: &'static str, key: &str, expected: &str) -> Error {
        let got = match self.value.get(key) {
            None => "nothing (the key is missing)".to_string(),
            Some(v) => v.to_string(),
        };
        Error::format(
            op,
            &self.path,
            format!("\"{}{key}\": expected {expected}, got {got}", self.prefix),
        )
    }

    pub fn has(&self, key: &str) -> bool {
        self.value.get(key).is_some_and(|v| !v.is_null())
    }

    /// A positive integer the architecture cannot do without.
    pub fn int(&self, op: &'static str, key: &str) -> Result<i64> {
        match self.value.get(key).and_then(Value::as_i64) {
            Some(v) if v > 0 => Ok(v),
            _ => Err(self.bad(op, key, "a positive integer")),
        }
    }

    pub fn int_or(&self, op: &'static str, key: &str, default: i64) -> Result<i64> {
        if self.has(key) {
            self.value
                .get(key)
                .and_then(Value::as_i64)
                .ok_or_else(|| self.bad(op, key, "an integer"))
        } else {
            Ok(default)
        }
    }

    pub fn float_or(&self, op: &'static str, key: &str, default: f64) -> Result<f64> {
        if self.has(key) {
            self.value
                .get(key)
                .and_then(Value::as_f64)
                .ok_or_else(|| self.bad(op, key, "a number"))
        } else {
            Ok(default)
        }
    }

    pub fn str_or(&self, op: &'static str, key: &str, default: &str) -> Result<String> {
        if self.has(key) {
            self.value
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| self.bad(op, key, "a string"))
        } else {
            Ok(default.to_string())
        }
    }

    pub fn bool_or(&self, op: &'static str, key: &str, default: bool) -> Result<bool> {
        if self.has(key) {
            self.value
                .get(key)
                .and_then(Value::as_bool)
                .ok_or_else(|| self.bad(op, key, "true or false"))
        } else {
            Ok(default)
        }
    }

    /// A list of positive integers (diffusers' `block_out_channels`).
    pub fn ints(&self, op: &'static str, key: &str, default: &[i64]) -> Result<Vec<i64>> {
        if !self.has(key) {
            return Ok(default.to_vec());
        }
        let list = self.value.get(key).and_then(Value::as_array);
        let ints: Option<Vec<i64>> =
            list.and_then(|l| l.iter().map(|v| v.as_i64().filter(|&i| i > 0)).collect());
        match ints {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(self.bad(op, key, "a non-empty list of positive integers")),
        }
    }

    /// One positive integer per block: a list of `n`, or one integer for
    /// all (diffusers' `layers_per_block`, `attention_head_dim`).
    pub fn ints_per(
        &self,
        op: &'static str,
        key: &str,
        n: usize,
        default: i64,
    ) -> Result<Vec<i64>> {
        match self.value.get(key) {
            None | Some(Value::Null) => Ok(vec![default; n]),
            Some(Value::Number(x)) => match x.as_i64() {
                Some(v) if v > 0 => Ok(vec![v; n]),
                _ => Err(self.bad(op, key, "a positive integer")),
            },
            Some(_) => {
                let v = self.ints(op, key, &[])?;
                if v.len() != n {
                    return Err(self.bad(
                        op,
                        key,
                        &format!("one integer or a list of {n} (one per block)"),
                    ));
                }
                Ok(v)
            }
        }
    }

    /// A list of strings (diffusers' `down_block_types`).
    pub fn strs(&self, op: &'static str, key: &str, default: &[&str]) -> Result<Vec<String>> {
        if !self.has(key) {
            return Ok(default.iter().map(|s| s.to_string()).collect());
        }
        let list = self.value.get(key).and_then(Value::as_array);
        let strs: Option<Vec<String>> =
            list.and_then(|l| l.iter().map(|v| v.as_str().map(str::to_string)).collect());
        match strs {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(self.bad(op, key, "a non-empty list of strings")),
        }
    }

    /// Refuses a setting the architecture does not implement: `key` must
    /// be absent, null, or equal to one of `allowed`.
    pub fn only(&self, op: &'static str, key: &str, allowed: &[Value]) -> Result<()> {
        match self.value.get(key) {
            None | Some(Value::Null) => Ok(()),
            Some(v) if allowed.contains(v) => Ok(()),
            Some(_) => {
                let shown: Vec<String> = allowed.iter().map(Value::to_string).collect();
                let expected = if shown.is_empty() {
                    "null (voxlab does not implement this setting)".to_string()
                } else {
                    format!(
                        "null or {} (voxlab does not implement the others)",
                        shown.join(" or ")
                    )
                };
                Err(self.bad(op, key, &expected))
            }
        }
    }

    /// A nested config object (`text_config`, `vision_config`); an empty
    /// one when absent, so every key takes its default.
    pub fn sub(&self, op: &'static str, key: &str) -> Result<Config> {
        let value = match self.value.get(key) {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(v @ Value::Object(_)) => v.clone(),
            Some(_) => return Err(self.bad(op, key, "an object")),
        };
        Ok(Config {
            path: self.path.clone(),
            prefix: format!("{}{key}.", self.prefix),
            value,
        })
    }
}

/// The folder a model comes from, checked to exist.
pub fn model_dir(op: &'static str, dir: &Path) -> Result<PathBuf> {
    if !dir.is_dir() {
        let why = if dir.exists() {
            "is a file, not a model folder (config.json + *.safetensors)"
        } else {
            "does not exist"
        };
        return Err(Error::invalid(op, format!("{}: {why}", dir.display())));
    }
    Ok(dir.to_path_buf())
}

/// Weight-file stems diffusers writes, in order of preference.
pub const DIFFUSERS_WEIGHTS: &[&str] = &["diffusion_pytorch_model", "model"];

/// A diffusers model folder (`unet/`, `vae/`): the folder, its config.json
/// and its weight files.
pub fn diffusers_folder(op: &'static str, dir: &Path) -> Result<(PathBuf, Config, Vec<PathBuf>)> {
    let dir = model_dir(op, dir)?;
    let cfg = read_config(op, &dir)?;
    let files = weight_files(op, &dir, DIFFUSERS_WEIGHTS)?;
    Ok((dir, cfg, files))
}

/// Writes a diffusers model folder: config.json and
/// diffusion_pytorch_model.safetensors.
pub fn save_diffusers(op: &'static str, vs: &VarStore, config: &Value, dir: &Path) -> Result<()> {
    create_folder(op, dir)?;
    write_config(op, &dir.join("config.json"), config)?;
    save_weights(op, vs, &dir.join("diffusion_pytorch_model.safetensors"))
}

/// The folder's config.json.
pub fn read_config(op: &'static str, dir: &Path) -> Result<Config> {
    let path = dir.join("config.json");
    if !path.is_file() {
        return Err(Error::format(
            op,
            dir,
            "no config.json: not a Hugging Face model folder",
        ));
    }
    Config::read(op, &path)
}

/// The weight files of a folder: `<stem>.safetensors`, or the shards its
/// `<stem>.safetensors.index.json` lists; `stems` in order of preference.
pub fn weight_files(op: &'static str, dir: &Path, stems: &[&str]) -> Result<Vec<PathBuf>> {
    for stem in stems {
        let one = dir.join(format!("{stem}.safetensors"));
        if one.is_file() {
            return Ok(vec![one]);
        }
        let index = dir.join(format!("{stem}.safetensors.index.json"));
        if index.is_file() {
            let text = crate::io::read_text(op, &index)?;
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| Error::format(op, &index, format!("not valid JSON: {e}")))?;
            let map = v
                .get("weight_map")
                .and_then(Value::as_object)
                .ok_or_else(|| Error::format(op, &index, "no \"weight_map\" object"))?;
            let mut files: Vec<String> = map
                .values()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect();
            files.sort();
            files.dedup();
            return Ok(files.into_iter().map(|f| dir.join(f)).collect());
        }
    }
    let bin = dir.join("pytorch_model.bin");
    let hint = if bin.is_file() || dir.join("diffusion_pytorch_model.bin").is_file() {
        " (only PyTorch .bin weights are there: convert them once with \
         `safetensors.torch.save_file(torch.load(path), \"model.safetensors\")`)"
    } else {
        ""
    };
    Err(Error::format(
        op,
        dir,
        format!(
            "no weights: expected {}{hint}",
            stems
                .iter()
                .map(|s| format!("{s}.safetensors"))
                .collect::<Vec<_>>()
                .join(" or ")
        ),
    ))
}

/// How a checkpoint's names map onto a model's.
#[derive(Debug, Clone, Copy, Default)]
pub struct NameRules<'a> {
    /// Prefixes a checkpoint may put before the model's names (a task head
    /// model's `bert.` around the encoder).
    pub strip_prefixes: &'a [&'a str],
    /// Checkpoint names that are not parameters of this model and are
    /// skipped: task heads, saved buffers (a name matches when it starts
    /// with or ends with the entry).
    pub ignore: &'a [&'a str],
    /// Model parameters the checkpoint may lack (left as initialised): a
    /// name matches when it starts with the entry.
    pub optional: &'a [&'a str],
}

fn matches_any(name: &str, patterns: &[&str]) -> bool {
    patterns
        .iter()
        .any(|p| name.starts_with(p) || name.ends_with(p))
}

/// diffusers' attention blocks of the VAE's mid-block were named
/// query/key/value/proj_attn before diffusers 0.14; Stable Diffusion v1
/// repositories still ship those names.
const OLD_DIFFUSERS_ATTENTION: &[(&str, &str)] = &[
    (".query.", ".to_q."),
    (".key.", ".to_k."),
    (".value.", ".to_v."),
    (".proj_attn.", ".to_out.0."),
];

/// Old BERT checkpoints name LayerNorm parameters gamma and beta; old
/// diffusers VAEs name their mid-block attention differently.
fn modern_name(name: &str) -> String {
    if name.contains("mid_block.attentions.") {
        for (old, new) in OLD_DIFFUSERS_ATTENTION {
            if name.contains(old) {
                return name.replacen(old, new, 1);
            }
        }
    }
    if let Some(stem) = name.strip_suffix(".gamma") {
        format!("{stem}.weight")
    } else if let Some(stem) = name.strip_suffix(".beta") {
        format!("{stem}.bias")
    } else {
        name.to_string()
    }
}

const SHOW: usize = 5;

fn listing(items: &[String]) -> String {
    let mut text = items
        .iter()
        .take(SHOW)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOW {
        text.push_str(&format!(" and {} more", items.len() - SHOW));
    }
    text
}

/// What [`load_weights`] did.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub loaded: usize,
    /// Optional parameters the files did not have.
    pub absent_optional: Vec<String>,
    /// Checkpoint names skipped by the rules.
    pub ignored: Vec<String>,
}

/// Fills every variable of `vs` from the safetensors `files` by name.
pub fn load_weights(
    op: &'static str,
    vs: &VarStore,
    files: &[PathBuf],
    rules: NameRules,
) -> Result<LoadReport> {
    let mut vars: BTreeMap<String, tch::Tensor> = vs.variables().into_iter().collect();
    let mut report = LoadReport::default();
    let (mut unexpected, mut mismatched) = (Vec::new(), Vec::new());
    let mut wrong_shape: std::collections::HashSet<String> = Default::default();
    let mut found: HashMap<String, PathBuf> = HashMap::new();
    let shown = files
        .first()
        .map(|f| f.display().to_string())
        .unwrap_or_default();
    for path in files {
        let file = st::File::open(op, path)?;
        for (key, shape) in file.shapes(op)? {
            let modern = modern_name(&key);
            let target = std::iter::once(modern.clone())
                .chain(
                    rules
                        .strip_prefixes
                        .iter()
                        .filter_map(|p| modern.strip_prefix(p).map(str::to_string)),
                )
                .find(|name| vars.contains_key(name));
            let Some(name) = target else {
                if matches_any(&key, rules.ignore) {
                    report.ignored.push(key);
                } else {
                    unexpected.push(key);
                }
                continue;
            };
            let Some(var) = vars.get_mut(&name) else {
                continue;
            };
            if var.size() != shape {
                mismatched.push(format!(
                    "{key} is {} in the file but {} in the model",
                    shape_text(&shape),
                    shape_text(&var.size())
                ));
                wrong_shape.insert(name);
                continue;
            }
            let t = file.tensor(op, &key)?;
            let t = tc(op, t.f_to_kind(var.kind()))?;
            let t = tc(op, t.f_to_device(var.device()))?;
            tch::no_grad(|| tc(op, var.f_copy_(&t)))?;
            found.insert(name, path.clone());
            report.loaded += 1;
        }
    }
    let mut missing = Vec::new();
    for name in vars.keys() {
        if !found.contains_key(name) && !wrong_shape.contains(name) {
            if matches_any(name, rules.optional) {
                report.absent_optional.push(name.clone());
            } else {
                missing.push(name.clone());
            }
        }
    }
    let mut problems = Vec::new();
    if !mismatched.is_empty() {
        problems.push(format!(
            "{} parameter(s) have the wrong shape for config.json: {}",
            mismatched.len(),
            listing(&mismatched)
        ));
    }
    if !missing.is_empty() {
        problems.push(format!(
            "{} parameter(s) the model needs are missing: {}",
            missing.len(),
            listing(&missing)
        ));
    }
    if !unexpected.is_empty() {
        problems.push(format!(
            "{} tensor(s) are not parameters of this architecture: {}",
            unexpected.len(),
            listing(&unexpected)
        ));
    }
    if !problems.is_empty() {
        return Err(Error::format(
            op,
            Path::new(&shown),
            format!(
                "{} (does config.json describe these weights?)",
                problems.join("; ")
            ),
        ));
    }
    Ok(report)
}

/// Names and shapes of every variable of `vs`, sorted by name: the layout a
/// weights file for the architecture must hold.
pub fn layout_of(vs: &VarStore) -> Vec<(String, Vec<i64>)> {
    let mut v: Vec<(String, Vec<i64>)> = vs
        .variables()
        .into_iter()
        .map(|(k, t)| (k, t.size()))
        .collect();
    v.sort();
    v
}

/// Writes every variable of `vs` under its own (Hugging Face) name as
/// float32 safetensors, with `format: pt` in the header as transformers
/// writes it (its loader checks for it).
pub fn save_weights(op: &'static str, vs: &VarStore, path: &Path) -> Result<()> {
    let mut tensors: Vec<(String, tch::Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(name, t)| (name, t.detach()))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    st::write(op, path, &tensors, Some(meta))
}

/// Creates the folder a save writes into, checked against the sandbox.
pub fn create_folder(op: &'static str, dir: &Path) -> Result<()> {
    crate::sandbox::check_write(op, dir)?;
    if dir.is_file() {
        return Err(Error::invalid(
            op,
            format!(
                "{}: is a file; the model is saved as a folder there, give another path",
                dir.display()
            ),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(op, dir, e))
}

/// Writes a transformers model folder that `from_pretrained` reads:
/// config.json, model.safetensors (every variable of `vs` under its own
/// name) and the side files (tokenizer files and the like).
pub fn save_folder(
    op: &'static str,
    dir: &Path,
    vs: &VarStore,
    config: &Value,
    files: &[(String, String)],
) -> Result<()> {
    create_folder(op, dir)?;
    write_config(op, &dir.join("config.json"), config)?;
    save_weights(op, vs, &dir.join("model.safetensors"))?;
    write_side_files(op, dir, files)
}

/// A transformers model as [`save_folder`] writes it, or for a path ending
/// in .safetensors as one file with the config and side files in its
/// metadata (`format` names the model kind; [`unpack_single`] reads it).
pub fn save_model(
    op: &'static str,
    path: &Path,
    vs: &VarStore,
    format: &str,
    config: &Value,
    files: &[(String, String)],
) -> Result<()> {
    if super::text::is_single_file(path) {
        return save_single(op, path, vs, format, config, files);
    }
    save_folder(op, path, vs, config, files)
}

/// A tokenizer as the text of its tokenizer.json, without the truncation
/// voxlab sets on load (transformers truncates by its own settings).
pub fn tokenizer_json(op: &'static str, tokenizer: &tokenizers::Tokenizer) -> Result<String> {
    let mut tok = tokenizer.clone();
    tok.with_truncation(None)
        .map_err(|e| Error::invalid(op, e.to_string()))?;
    tok.to_string(true)
        .map_err(|e| Error::invalid(op, format!("cannot write tokenizer.json: {e}")))
}

/// Writes a config.json (pretty, as transformers does).
pub fn write_config(op: &'static str, path: &Path, config: &Value) -> Result<()> {
    let text =
        serde_json::to_string_pretty(config).map_err(|e| Error::invalid(op, e.to_string()))?;
    crate::io::write_atomic(op, path, format!("{text}\n").as_bytes())
}

/// The small text files of a model folder that voxlab keeps as they are
/// (tokenizer and preprocessor configs, vocabularies), read at load so a
/// save can write them again wherever the model came from.
pub fn read_side_files(
    op: &'static str,
    dir: &Path,
    names: &[&str],
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for name in names {
        let p = dir.join(name);
        if p.is_file() {
            let text = crate::io::read_text(op, &p)?;
            out.push((name.to_string(), text));
        }
    }
    Ok(out)
}

/// Writes side files (name, text) into `dest`.
pub fn write_side_files(op: &'static str, dest: &Path, files: &[(String, String)]) -> Result<()> {
    for (name, text) in files {
        crate::io::write_atomic(op, &dest.join(name), text.as_bytes())?;
    }
    Ok(())
}

/// The key of the header metadata under which a single-file model keeps its
/// config.json and side files.
const SINGLE_KEY: &str = "voxlab";

/// Writes a whole model as one safetensors file: the weights under their
/// Hugging Face names and, in the header metadata (`voxlab`), a JSON object
/// with the model `format`, its config.json and its side files (tokenizer.json
/// and the like) as text. [`unpack_single`] reads it back.
pub fn save_single(
    op: &'static str,
    path: &Path,
    vs: &VarStore,
    format: &str,
    config: &Value,
    files: &[(String, String)],
) -> Result<()> {
    let mut tensors: Vec<(String, tch::Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.detach()))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let files: serde_json::Map<String, Value> = files
        .iter()
        .map(|(n, t)| (n.clone(), Value::String(t.clone())))
        .collect();
    let meta = serde_json::json!({"format": format, "voxlab": crate::VERSION, "config": config, "files": files});
    let mut header = HashMap::new();
    header.insert("format".to_string(), "pt".to_string());
    header.insert(SINGLE_KEY.to_string(), meta.to_string());
    st::write(op, path, &tensors, Some(header))
}

/// A single-file model unpacked as a model folder (config.json, side files
/// and a link to the weights) in a temporary folder, removed on drop.
pub struct Unpacked {
    pub dir: PathBuf,
}

impl Drop for Unpacked {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads a file written by [`save_single`] and checks it holds `format`.
pub fn unpack_single(op: &'static str, path: &Path, format: &str) -> Result<Unpacked> {
    let file = st::File::open(op, path)?;
    let meta = file.metadata(op)?;
    let text = meta.get(SINGLE_KEY).ok_or_else(|| {
        Error::format(op, path, "no voxlab metadata: not a model saved by voxlab as one file (give a model folder instead)")
    })?;
    let v: Value = serde_json::from_str(text)
        .map_err(|e| Error::format(op, path, format!("bad metadata: {e}")))?;
    let found = v.get("format").and_then(Value::as_str).unwrap_or("");
    if found != format {
        return Err(Error::format(
            op,
            path,
            format!("holds a {found}, not a {format}"),
        ));
    }
    static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("voxlab-model-{}-{n}", std::process::id()));
    crate::sandbox::check_write(op, dir.as_ref())?;
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(op, &dir, e))?;
    let unpacked = Unpacked { dir: dir.clone() };
    let config = v.get("config").cloned().unwrap_or(Value::Null);
    write_config(op, &dir.join("config.json"), &config)?;
    if let Some(files) = v.get("files").and_then(Value::as_object) {
        let files: Vec<(String, String)> = files
            .iter()
            .filter(|(name, _)| !name.contains("..") && !name.starts_with('/'))
            .map(|(n, t)| (n.clone(), t.as_str().unwrap_or("").to_string()))
            .collect();
        write_side_files(op, &dir, &files)?;
    }
    let target = std::fs::canonicalize(path).map_err(|e| Error::io(op, path, e))?;
    std::os::unix::fs::symlink(&target, dir.join("model.safetensors"))
        .map_err(|e| Error::io(op, &dir, e))?;
    Ok(unpacked)
}

/// The folder's tokenizer.json through Hugging Face's `tokenizers`,
/// checked against the model's vocabulary size.
pub fn load_tokenizer(
    op: &'static str,
    dir: &Path,
    vocab_size: i64,
) -> Result<tokenizers::Tokenizer> {
    let path = dir.join("tokenizer.json");
    crate::sandbox::check_read(op, &path)?;
    if !path.is_file() {
        return Err(Error::format(
            op,
            dir,
            "no tokenizer.json (save one with `AutoTokenizer.from_pretrained(...).save_pretrained(dir)`)",
        ));
    }
    let tok = tokenizers::Tokenizer::from_file(&path)
        .map_err(|e| Error::format(op, &path, format!("not a tokenizer.json: {e}")))?;
    let n = tok.get_vocab_size(true) as i64;
    if n > vocab_size {
        return Err(Error::format(
            op,
            &path,
            format!(
                "the tokenizer has {n} tokens but config.json's vocab_size is {vocab_size}: \
                 it belongs to another model"
            ),
        ));
    }
    Ok(tok)
}
