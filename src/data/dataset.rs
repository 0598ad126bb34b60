//! Stimulus–response datasets on disk (docs/dataset-layout.md): a folder
//! with a `dataset.json` manifest naming betas, a brain mask, ROIs, a trial
//! table, stimulus images, captions, labels and ratings.
//!
//! Every trial-aligned part (betas rows, trial table, per-trial images,
//! captions, labels, ratings) has one entry per trial in the same order, so
//! selecting trials selects all of them together.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tch::{Kind, Tensor as TchTensor};

use super::images::{self, ImageSet, LoadOptions};
use super::mask::Mask;
use super::volume::Volume;
use crate::error::{Error, Result};
use crate::io::images::Filter;
use crate::io::table::{self, Column};
use crate::tensor::{shape_text, tc, Tensor};

const OP: &str = "load_dataset";

/// The keys of `dataset.json` (docs/dataset.schema.json).
pub const KEYS: &[&str] = &[
    "format",
    "name",
    "description",
    "betas",
    "mask",
    "rois",
    "atlas",
    "trials",
    "stimuli",
    "captions",
    "labels",
    "ratings",
];

/// One trial: which stimulus was shown, in which split, which repeat.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    pub stimulus: String,
    pub split: String,
    pub repeat: i64,
}

/// A label or caption value: text or a number, as the file had it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Number(f64),
    Texts(Vec<String>),
}

#[derive(Clone)]
pub struct Dataset {
    pub name: String,
    pub dir: PathBuf,
    /// trials × voxels (voxels in the brain mask's nilearn order), f32.
    pub betas: Tensor,
    pub trials: Vec<Trial>,
    pub mask: Mask,
    pub rois: Vec<(String, Mask)>,
    /// Unique stimulus images; `image_index[i]` is trial i's row (or None).
    pub stimuli: Option<ImageSet>,
    pub image_index: Vec<i64>,
    pub captions: Option<Vec<Cell>>,
    pub labels: Option<Vec<Cell>>,
    /// Rating name → one value per trial.
    pub ratings: Vec<(String, Vec<f64>)>,
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.trials.len();
        let train = self.trials.iter().filter(|t| t.split == "train").count();
        let test = self.trials.iter().filter(|t| t.split == "test").count();
        write!(
            f,
            "Dataset[{}{n} trials ({train} train, {test} test); {} voxels; {} ROIs",
            if self.name.is_empty() {
                String::new()
            } else {
                format!("{}: ", self.name)
            },
            self.mask.count(),
            self.rois.len()
        )?;
        if let Some(s) = &self.stimuli {
            let sh = s.data.shape();
            write!(f, "; {} images 3×{}×{}", s.ids.len(), sh[2], sh[3])?;
        }
        write!(f, "]")
    }
}

/// Options of `load_dataset`.
#[derive(Debug, Clone)]
pub struct DatasetOptions {
    /// Load the stimulus images (else `.images` is absent).
    pub images: bool,
    pub image_size: Option<(usize, usize)>,
    pub filter: Filter,
    /// NaN betas: drop the voxels (with a warning) instead of failing.
    pub drop_nan_voxels: bool,
}

fn fmt_id(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

fn column_strings(c: &Column) -> Vec<String> {
    match c {
        Column::Text(v) => v.clone(),
        Column::Number(v) => v.iter().map(|&x| fmt_id(x)).collect(),
    }
}

struct Manifest {
    dir: PathBuf,
    file: PathBuf,
    json: serde_json::Map<String, Value>,
}

impl Manifest {
    fn part(&self, key: &str) -> Result<Option<PathBuf>> {
        match self.json.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(self.dir.join(s))),
            Some(other) => Err(Error::format(
                OP,
                &self.file,
                format!("'{key}' must be a path (a string), got {other}"),
            )),
        }
    }

    fn required(&self, key: &str) -> Result<PathBuf> {
        self.part(key)?.ok_or_else(|| {
            Error::format(
                OP,
                &self.file,
                format!("the required part '{key}' is missing"),
            )
        })
    }
}

fn must_exist(path: &Path, manifest: &Path, key: &str) -> Result<()> {
    if path.exists() {
        Ok(())
    } else {
        Err(Error::format(
            OP,
            manifest,
            format!("'{key}' names {}, which does not exist", path.display()),
        ))
    }
}

/// Reads and validates a dataset folder.
pub fn load(dir: &Path, opts: &DatasetOptions) -> Result<Dataset> {
    let file = dir.join("dataset.json");
    let text = crate::io::read_text(OP, &file)?;
    let json: Value = serde_json::from_str(&text)
        .map_err(|e| Error::format(OP, &file, format!("not valid JSON: {e}")))?;
    let Value::Object(json) = json else {
        return Err(Error::format(
            OP,
            &file,
            "the manifest must be a JSON object",
        ));
    };
    let m = Manifest {
        dir: dir.to_path_buf(),
        file: file.clone(),
        json,
    };
    for key in m.json.keys() {
        if !KEYS.contains(&key.as_str()) {
            return Err(Error::format(
                OP,
                &file,
                format!("unknown part '{key}'; valid keys are: {}", KEYS.join(", ")),
            ));
        }
    }
    if let Some(f) = m.json.get("format") {
        if f.as_i64() != Some(1) {
            return Err(Error::format(
                OP,
                &file,
                format!("unsupported format {f} (this voxlab reads format 1)"),
            ));
        }
    }
    let name = m
        .json
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();

    // Brain mask and betas.
    let betas_path = m.required("betas")?;
    must_exist(&betas_path, &file, "betas")?;
    let mask_path = m.part("mask")?;
    if let Some(p) = &mask_path {
        must_exist(p, &file, "mask")?;
    }
    let is_npy = betas_path.extension().and_then(|e| e.to_str()) == Some("npy");
    let (mask, betas) = if is_npy {
        let mp = mask_path.clone().ok_or_else(|| {
            Error::format(
                OP,
                &file,
                "betas in .npy (trials × voxels) need a 'mask' saying where the voxels are",
            )
        })?;
        let mask = Mask::load(OP, &mp)?;
        let b = crate::io::npy::load_npy(&betas_path).map_err(|e| match e {
            Error::Format { path, msg, .. } => Error::format(OP, path, msg),
            Error::Io { path, source, .. } => Error::io(OP, path, source),
            other => other,
        })?;
        let s = b.shape();
        if s.len() != 2 || s[1] != mask.count() as i64 {
            return Err(Error::format(
                OP,
                &betas_path,
                format!(
                    "betas must be trials × {} (the mask's voxels in {}), got {}",
                    mask.count(),
                    mp.display(),
                    shape_text(&s)
                ),
            ));
        }
        let b = tc(OP, b.0.f_to_kind(Kind::Float))?;
        (mask, Tensor(b))
    } else {
        let vol = Volume::load(&betas_path, false).map_err(|e| match e {
            Error::Format { path, msg, .. } => Error::format(OP, path, msg),
            Error::Io { path, source, .. } => Error::io(OP, path, source),
            other => other,
        })?;
        if vol.data.ndim() != 4 {
            return Err(Error::format(
                OP,
                &betas_path,
                format!(
                    "betas must be 4-D (x·y·z·trials), got {}",
                    shape_text(&vol.shape())
                ),
            ));
        }
        let mask = match &mask_path {
            Some(p) => Mask::load(OP, p)?,
            None => {
                let s = vol.shape();
                let ones = tc(
                    OP,
                    TchTensor::f_ones([s[0], s[1], s[2]], (Kind::Bool, tch::Device::Cpu)),
                )?;
                Mask::from_tensor(OP, &Tensor(ones), vol.affine)?
            }
        };
        mask.check_grid(
            OP,
            &format!("betas {}", betas_path.display()),
            &vol.shape(),
            &vol.affine,
        )
        .map_err(|e| with_file(e, mask_path.as_deref().unwrap_or(&betas_path)))?;
        let b = mask.apply(OP, &vol)?;
        (mask, b)
    };
    let n_trials = betas.shape()[0] as usize;

    // Trials.
    let trials_path = m.required("trials")?;
    must_exist(&trials_path, &file, "trials")?;
    let table = table::load_csv(&trials_path, b',').map_err(|e| with_file(e, &trials_path))?;
    let stim_col = table.column("stimulus").ok_or_else(|| {
        Error::format(
            OP,
            &trials_path,
            "no 'stimulus' column (the stimulus id of each trial)",
        )
    })?;
    let stimuli_ids = column_strings(stim_col);
    if stimuli_ids.len() != n_trials {
        return Err(Error::format(
            OP,
            &trials_path,
            format!(
                "{} trial rows but {} has {n_trials} trials",
                stimuli_ids.len(),
                betas_path.display()
            ),
        ));
    }
    let splits = match table.column("split") {
        Some(c) => column_strings(c),
        None => vec!["train".to_string(); n_trials],
    };
    for (i, s) in splits.iter().enumerate() {
        if s != "train" && s != "test" {
            return Err(Error::format(
                OP,
                &trials_path,
                format!("row {}: split must be train or test, got '{s}'", i + 2),
            ));
        }
    }
    let repeats: Vec<i64> = match table.column("repeat") {
        Some(Column::Number(v)) => v
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                if x.fract() == 0.0 && x >= 0.0 {
                    Ok(x as i64)
                } else {
                    Err(Error::format(
                        OP,
                        &trials_path,
                        format!("row {}: repeat must be a whole number ≥ 0, got {x}", i + 2),
                    ))
                }
            })
            .collect::<Result<_>>()?,
        Some(Column::Text(_)) => {
            return Err(Error::format(
                OP,
                &trials_path,
                "column 'repeat' must be numbers",
            ))
        }
        None => {
            let mut seen: HashMap<&str, i64> = HashMap::new();
            stimuli_ids
                .iter()
                .map(|s| {
                    let c = seen.entry(s.as_str()).or_insert(0);
                    *c += 1;
                    *c - 1
                })
                .collect()
        }
    };
    let trials: Vec<Trial> = stimuli_ids
        .iter()
        .zip(&splits)
        .zip(&repeats)
        .map(|((s, sp), &r)| Trial {
            stimulus: s.clone(),
            split: sp.clone(),
            repeat: r,
        })
        .collect();
    for (i, t) in trials.iter().enumerate() {
        if t.stimulus.is_empty() {
            return Err(Error::format(
                OP,
                &trials_path,
                format!("row {}: empty stimulus id", i + 2),
            ));
        }
    }

    // ROIs: one file per ROI, or an atlas with a label table.
    let mut rois: Vec<(String, Mask)> = Vec::new();
    match m.json.get("rois") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                let Some(p) = v.as_str() else {
                    return Err(Error::format(OP, &file, format!("rois.{k} must be a path")));
                };
                let p = dir.join(p);
                must_exist(&p, &file, &format!("rois.{k}"))?;
                rois.push((k.clone(), Mask::load(OP, &p)?));
            }
        }
        Some(_) => {
            return Err(Error::format(
                OP,
                &file,
                "'rois' must be an object name → mask file",
            ))
        }
    }
    if let Some(atlas) = m.json.get("atlas") {
        let (Some(img), Some(lab)) = (
            atlas.get("image").and_then(Value::as_str),
            atlas.get("labels").and_then(Value::as_str),
        ) else {
            return Err(Error::format(
                OP,
                &file,
                "'atlas' must be {\"image\": path, \"labels\": path}",
            ));
        };
        for (k, mk) in super::mask::load_atlas(OP, &dir.join(img), &dir.join(lab))? {
            if rois.iter().any(|(n, _)| *n == k) {
                return Err(Error::format(
                    OP,
                    &file,
                    format!("ROI '{k}' is defined twice"),
                ));
            }
            rois.push((k, mk));
        }
    }
    for (k, r) in &rois {
        mask.check_grid(OP, &format!("ROI '{k}'"), &r.shape(), &r.affine)?;
        let outside = roi_columns(&mask, r)?.iter().filter(|&&c| c < 0).count();
        if outside > 0 {
            return Err(Error::format(
                OP,
                &file,
                format!(
                    "ROI '{k}': {outside} of its {} voxels lie outside the brain mask",
                    r.count()
                ),
            ));
        }
    }

    // NaN betas (after the ROI check, so ROIs are checked against the mask
    // as given; dropped voxels then simply leave the ROIs too).
    let (mask, betas) = check_nan(OP, &betas_path, mask, betas, opts.drop_nan_voxels)?;

    // Stimulus images (unique, in order of first appearance).
    let mut stimuli = None;
    let mut image_index = vec![-1; n_trials];
    if let Some(sdir) = m.part("stimuli")? {
        must_exist(&sdir, &file, "stimuli")?;
        if opts.images {
            let files = images::list_dir(OP, &sdir)?;
            let by_id: HashMap<String, PathBuf> =
                files.into_iter().map(|p| (images::id_of(&p), p)).collect();
            let mut order: Vec<String> = Vec::new();
            let mut pos: HashMap<String, i64> = HashMap::new();
            for (i, t) in trials.iter().enumerate() {
                if !by_id.contains_key(&t.stimulus) {
                    return Err(Error::format(
                        OP,
                        &trials_path,
                        format!(
                            "row {}: stimulus '{}' has no image in {}",
                            i + 2,
                            t.stimulus,
                            sdir.display()
                        ),
                    ));
                }
                let k = *pos.entry(t.stimulus.clone()).or_insert_with(|| {
                    order.push(t.stimulus.clone());
                    order.len() as i64 - 1
                });
                image_index[i] = k;
            }
            let paths: Vec<PathBuf> = order.iter().map(|id| by_id[id].clone()).collect();
            stimuli = Some(images::load(
                OP,
                &paths,
                LoadOptions {
                    size: opts.image_size,
                    filter: opts.filter,
                },
            )?);
        }
    }

    // Captions: {stimulus: "text" | ["text", ...]}.
    let captions = match m.part("captions")? {
        None => None,
        Some(p) => {
            must_exist(&p, &file, "captions")?;
            let t = crate::io::read_text(OP, &p)?;
            let v: Value = serde_json::from_str(&t)
                .map_err(|e| Error::format(OP, &p, format!("not valid JSON: {e}")))?;
            let Value::Object(map) = v else {
                return Err(Error::format(
                    OP,
                    &p,
                    "captions must be an object stimulus id → caption",
                ));
            };
            let mut out = Vec::with_capacity(n_trials);
            for (i, tr) in trials.iter().enumerate() {
                let cell = match map.get(&tr.stimulus) {
                    Some(Value::String(s)) => Cell::Text(s.clone()),
                    Some(Value::Array(a)) => Cell::Texts(
                        a.iter()
                            .map(|x| x.as_str().unwrap_or_default().to_string())
                            .collect(),
                    ),
                    _ => {
                        return Err(Error::format(
                            OP,
                            &p,
                            format!(
                                "no caption for stimulus '{}' (trial row {})",
                                tr.stimulus,
                                i + 2
                            ),
                        ))
                    }
                };
                out.push(cell);
            }
            Some(out)
        }
    };

    // Labels and ratings: CSVs keyed by a 'stimulus' column.
    let per_stimulus =
        |key: &str| -> Result<Option<(PathBuf, table::Table, HashMap<String, usize>)>> {
            let Some(p) = m.part(key)? else {
                return Ok(None);
            };
            must_exist(&p, &file, key)?;
            let t = table::load_csv(&p, b',').map_err(|e| with_file(e, &p))?;
            let ids = column_strings(
                t.column("stimulus")
                    .ok_or_else(|| Error::format(OP, &p, "no 'stimulus' column"))?,
            );
            let rows: HashMap<String, usize> =
                ids.into_iter().enumerate().map(|(i, s)| (s, i)).collect();
            Ok(Some((p, t, rows)))
        };
    let row_of = |p: &Path, rows: &HashMap<String, usize>, t: &Trial, i: usize| -> Result<usize> {
        rows.get(&t.stimulus).copied().ok_or_else(|| {
            Error::format(
                OP,
                p,
                format!("no row for stimulus '{}' (trial row {})", t.stimulus, i + 2),
            )
        })
    };
    let labels = match per_stimulus("labels")? {
        None => None,
        Some((p, t, rows)) => {
            let col = t
                .column("label")
                .or_else(|| {
                    t.columns
                        .iter()
                        .find(|(n, _)| n != "stimulus")
                        .map(|(_, c)| c)
                })
                .ok_or_else(|| Error::format(OP, &p, "no 'label' column"))?;
            let mut out = Vec::with_capacity(n_trials);
            for (i, tr) in trials.iter().enumerate() {
                let r = row_of(&p, &rows, tr, i)?;
                out.push(match col {
                    Column::Number(v) => Cell::Number(v[r]),
                    Column::Text(v) => Cell::Text(v[r].clone()),
                });
            }
            Some(out)
        }
    };
    let mut ratings = Vec::new();
    if let Some((p, t, rows)) = per_stimulus("ratings")? {
        for (name, col) in &t.columns {
            if name == "stimulus" {
                continue;
            }
            let v = match col {
                Column::Number(v) => v,
                Column::Text(cells) => {
                    // Ratings are numbers: name the first cell that is not.
                    let (row, cell) = cells
                        .iter()
                        .enumerate()
                        .find(|(_, c)| !c.is_empty() && c.parse::<f64>().is_err())
                        .map_or((0, ""), |(r, c)| (r + 1, c.as_str()));
                    return Err(Error::format(
                        OP,
                        &p,
                        format!("row {row}, column '{name}': {cell:?} is not a number (ratings are numbers; empty cells are missing)"),
                    ));
                }
            };
            let mut out = Vec::with_capacity(n_trials);
            for (i, tr) in trials.iter().enumerate() {
                out.push(v[row_of(&p, &rows, tr, i)?]);
            }
            ratings.push((name.clone(), out));
        }
    }

    Ok(Dataset {
        name,
        dir: dir.to_path_buf(),
        betas,
        trials,
        mask,
        rois,
        stimuli,
        image_index,
        captions,
        labels,
        ratings,
    })
}

fn with_file(e: Error, file: &Path) -> Error {
    match e {
        Error::Format { path, msg, .. } => Error::format(OP, path, msg),
        Error::Io { path, source, .. } => Error::io(OP, path, source),
        Error::ShapeMismatch {
            what,
            expected,
            got,
            ..
        } => Error::format(OP, file, format!("{what}: expected {expected}, got {got}")),
        Error::InvalidArgument { msg, .. } => Error::format(OP, file, msg),
        other => other,
    }
}

/// Fails on NaN or infinite betas naming the first voxel and trial, or
/// drops the voxels (`op` is the loader named in the message).
pub(crate) fn check_nan(
    op: &'static str,
    path: &Path,
    mask: Mask,
    betas: Tensor,
    drop: bool,
) -> Result<(Mask, Tensor)> {
    // Infinite betas break every statistic as NaN does: both fail (or drop).
    let nan = tc(op, tc(op, betas.0.f_isfinite())?.f_logical_not())?;
    let has_nan = tc(op, tc(op, betas.0.f_isnan())?.f_any())?.int64_value(&[]) != 0;
    let has_inf = tc(op, tc(op, betas.0.f_isinf())?.f_any())?.int64_value(&[]) != 0;
    let kind = match (has_nan, has_inf) {
        (true, true) => "NaN or infinite",
        (false, true) => "infinite",
        _ => "NaN",
    };
    let per_voxel = tc(op, nan.f_any_dim(0, false))?;
    let bad = tc(op, per_voxel.f_nonzero())?;
    let n_bad = bad.size()[0];
    if n_bad == 0 {
        return Ok((mask, betas));
    }
    let first_v = bad.int64_value(&[0, 0]);
    let col = tc(op, nan.f_select(1, first_v))?;
    let first_t = tc(op, col.f_nonzero())?.int64_value(&[0, 0]);
    let xyz = tc(op, mask.data.0.f_nonzero())?;
    let (x, y, z) = (
        xyz.int64_value(&[first_v, 0]),
        xyz.int64_value(&[first_v, 1]),
        xyz.int64_value(&[first_v, 2]),
    );
    let what = format!(
        "{n_bad} voxels have {kind} betas (the first: voxel ({x}, {y}, {z}), column {first_v}, trial row {})",
        first_t + 1
    );
    if !drop {
        return Err(Error::format(
            op,
            path,
            format!("{what}; load with #{{nan: \"drop\"}} to drop them"),
        ));
    }
    eprintln!("warning: {op}: {}: {what}; dropped them", path.display());
    let keep = tc(op, per_voxel.f_logical_not())?;
    // Remove the voxels from the mask grid too.
    let vals = tc(op, keep.f_to_kind(Kind::Float))?;
    let filled = mask.unmask(op, &Tensor(vals))?;
    let mut new_mask = Mask::from_tensor(op, &filled.data, mask.affine)?;
    new_mask.voxel_size = mask.voxel_size.clone();
    let cols = tc(op, keep.f_nonzero())?;
    let cols = tc(op, cols.f_reshape([-1]))?;
    let b = tc(op, betas.0.f_index_select(1, &cols))?;
    Ok((new_mask, Tensor(b)))
}

/// Column of each ROI voxel among the brain mask's voxels (−1 if outside).
pub fn roi_columns(mask: &Mask, roi: &Mask) -> Result<Vec<i64>> {
    let d = mask.shape();
    let n = (d[0] * d[1] * d[2]) as usize;
    let mut lookup = vec![-1i64; n];
    let mi = mask.c_order_indices(OP)?.to_f64_vec(OP)?;
    for (k, &i) in mi.iter().enumerate() {
        lookup[i as usize] = k as i64;
    }
    Ok(roi
        .c_order_indices(OP)?
        .to_f64_vec(OP)?
        .iter()
        .map(|&i| lookup[i as usize])
        .collect())
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.trials.len()
    }

    pub fn is_empty(&self) -> bool {
        self.trials.is_empty()
    }

    /// The trials at `idx` (in that order), with every aligned part.
    pub fn select(&self, op: &'static str, idx: &[i64]) -> Result<Dataset> {
        let n = self.len() as i64;
        let idx: Vec<i64> = idx
            .iter()
            .map(|&i| {
                let j = if i < 0 { i + n } else { i };
                if (0..n).contains(&j) {
                    Ok(j)
                } else {
                    Err(Error::invalid(
                        op,
                        format!("trial index {i} is out of range for {n} trials"),
                    ))
                }
            })
            .collect::<Result<_>>()?;
        let t = TchTensor::from_slice(&idx).to_device(self.betas.device());
        let betas = Tensor(tc(op, self.betas.0.f_index_select(0, &t))?);
        let pick = |v: &Vec<Cell>| idx.iter().map(|&i| v[i as usize].clone()).collect();
        Ok(Dataset {
            betas,
            trials: idx
                .iter()
                .map(|&i| self.trials[i as usize].clone())
                .collect(),
            image_index: idx.iter().map(|&i| self.image_index[i as usize]).collect(),
            captions: self.captions.as_ref().map(pick),
            labels: self.labels.as_ref().map(pick),
            ratings: self
                .ratings
                .iter()
                .map(|(k, v)| (k.clone(), idx.iter().map(|&i| v[i as usize]).collect()))
                .collect(),
            ..self.clone()
        })
    }

    pub fn split(&self, op: &'static str, which: &str) -> Result<Dataset> {
        let idx: Vec<i64> = (0..self.len() as i64)
            .filter(|&i| self.trials[i as usize].split == which)
            .collect();
        self.select(op, &idx)
    }

    /// Mean betas over the repeats of each stimulus (trials grouped by
    /// stimulus id, in order of first appearance); the other parts take the
    /// first trial's value and `repeat` becomes the number averaged.
    pub fn average_repeats(&self, op: &'static str) -> Result<Dataset> {
        let mut groups: Vec<(String, Vec<i64>)> = Vec::new();
        let mut pos: HashMap<&str, usize> = HashMap::new();
        for (i, t) in self.trials.iter().enumerate() {
            let g = *pos.entry(t.stimulus.as_str()).or_insert_with(|| {
                groups.push((t.stimulus.clone(), Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(i as i64);
        }
        for (s, g) in &groups {
            let splits: Vec<&str> = g
                .iter()
                .map(|&i| self.trials[i as usize].split.as_str())
                .collect();
            if splits.iter().any(|x| *x != splits[0]) {
                return Err(Error::invalid(
                    op,
                    format!("stimulus '{s}' appears in both train and test trials"),
                ));
            }
        }
        let firsts: Vec<i64> = groups.iter().map(|(_, g)| g[0]).collect();
        let mut out = self.select(op, &firsts)?;
        let rows = groups
            .iter()
            .map(|(_, g)| {
                let t = TchTensor::from_slice(g).to_device(self.betas.device());
                let sel = tc(op, self.betas.0.f_index_select(0, &t))?;
                tc(op, sel.f_mean_dim(0, false, Kind::Float))
            })
            .collect::<Result<Vec<_>>>()?;
        out.betas = Tensor(tc(op, TchTensor::f_stack(&rows, 0))?);
        for (t, (_, g)) in out.trials.iter_mut().zip(&groups) {
            t.repeat = g.len() as i64;
        }
        Ok(out)
    }

    /// Betas of one ROI: trials × the ROI's voxels (in the brain mask).
    pub fn roi(&self, op: &'static str, name: &str) -> Result<Tensor> {
        let Some((_, r)) = self.rois.iter().find(|(n, _)| n == name) else {
            let names: Vec<&str> = self.rois.iter().map(|(n, _)| n.as_str()).collect();
            return Err(Error::invalid(
                op,
                format!(
                    "no ROI '{name}'; the dataset has: {}",
                    if names.is_empty() {
                        "(none)".into()
                    } else {
                        names.join(", ")
                    }
                ),
            ));
        };
        // Voxels dropped for NaN betas have no column.
        let cols: Vec<i64> = roi_columns(&self.mask, r)?
            .into_iter()
            .filter(|&c| c >= 0)
            .collect();
        let t = TchTensor::from_slice(&cols).to_device(self.betas.device());
        Ok(Tensor(tc(op, self.betas.0.f_index_select(1, &t))?))
    }

    /// One image per trial (ids are the stimulus ids), if images were loaded.
    pub fn trial_images(&self, op: &'static str) -> Result<Option<ImageSet>> {
        let Some(s) = &self.stimuli else {
            return Ok(None);
        };
        let t = TchTensor::from_slice(&self.image_index).to_device(s.data.device());
        Ok(Some(ImageSet {
            data: Tensor(tc(op, s.data.0.f_index_select(0, &t))?),
            ids: self.trials.iter().map(|t| t.stimulus.clone()).collect(),
        }))
    }
}

/// Writes `ds` in the dataset layout (docs/dataset-layout.md) under `dir`, so
/// that [`load`] gives the same betas, trials, ROIs, mask, captions, labels
/// and ratings. Betas go out as a 4-D float32 NIfTI on the mask's grid (zeros
/// outside the mask); stimulus images as 8-bit PNG (exact for images that
/// were read from 8-bit files at their size). Captions, labels and ratings
/// are written per stimulus, from its first trial.
pub fn save(ds: &Dataset, dir: &Path, op: &'static str) -> Result<()> {
    use serde_json::json;
    let io = |p: &Path, e| Error::io(op, p, e);
    crate::sandbox::check_write(OP, dir.join("rois").as_ref())?;
    std::fs::create_dir_all(dir.join("rois")).map_err(|e| io(dir, e))?;
    let betas = Tensor(tc(op, ds.betas.0.f_to_device(tch::Device::Cpu))?);
    ds.mask
        .unmask(op, &betas)?
        .save(&dir.join("betas.nii.gz"))?;
    ds.mask.to_volume(op)?.save(&dir.join("mask.nii.gz"))?;
    let mut manifest = serde_json::Map::new();
    manifest.insert("format".into(), json!(1));
    manifest.insert("name".into(), json!(ds.name));
    manifest.insert("betas".into(), json!("betas.nii.gz"));
    manifest.insert("mask".into(), json!("mask.nii.gz"));
    let mut rois = serde_json::Map::new();
    for (name, roi) in &ds.rois {
        let file = format!("rois/{name}.nii.gz");
        roi.to_volume(op)?.save(&dir.join(&file))?;
        rois.insert(name.clone(), json!(file));
    }
    manifest.insert("rois".into(), Value::Object(rois));

    let text = |v: Vec<String>| Column::Text(v);
    table::save_csv(
        &table::Table {
            columns: vec![
                (
                    "stimulus".into(),
                    text(ds.trials.iter().map(|t| t.stimulus.clone()).collect()),
                ),
                (
                    "split".into(),
                    text(ds.trials.iter().map(|t| t.split.clone()).collect()),
                ),
                (
                    "repeat".into(),
                    Column::Number(ds.trials.iter().map(|t| t.repeat as f64).collect()),
                ),
            ],
        },
        &dir.join("trials.csv"),
    )?;
    manifest.insert("trials".into(), json!("trials.csv"));

    // The first trial of each stimulus, in order of first appearance.
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<usize> = (0..ds.trials.len())
        .filter(|&i| seen.insert(ds.trials[i].stimulus.as_str()))
        .collect();
    let ids: Vec<String> = firsts
        .iter()
        .map(|&i| ds.trials[i].stimulus.clone())
        .collect();

    if let Some(s) = &ds.stimuli {
        images::save(op, &s.data, &s.ids, &dir.join("stimuli"), "png")?;
        manifest.insert("stimuli".into(), json!("stimuli"));
    }
    if let Some(c) = &ds.captions {
        let map: serde_json::Map<String, Value> = firsts
            .iter()
            .map(|&i| {
                let v = match &c[i] {
                    Cell::Text(s) => json!(s),
                    Cell::Texts(v) => json!(v),
                    Cell::Number(x) => json!(fmt_id(*x)),
                };
                (ds.trials[i].stimulus.clone(), v)
            })
            .collect();
        let text = serde_json::to_string_pretty(&Value::Object(map))
            .map_err(|e| Error::invalid(op, format!("captions: {e}")))?;
        crate::io::write_atomic(op, &dir.join("captions.json"), text.as_bytes())?;
        manifest.insert("captions".into(), json!("captions.json"));
    }
    if let Some(l) = &ds.labels {
        let numeric = firsts.iter().all(|&i| matches!(l[i], Cell::Number(_)));
        let col = if numeric {
            Column::Number(
                firsts
                    .iter()
                    .map(|&i| match l[i] {
                        Cell::Number(x) => x,
                        _ => f64::NAN,
                    })
                    .collect(),
            )
        } else {
            text(
                firsts
                    .iter()
                    .map(|&i| match &l[i] {
                        Cell::Text(s) => s.clone(),
                        Cell::Number(x) => fmt_id(*x),
                        Cell::Texts(v) => v.join(" "),
                    })
                    .collect(),
            )
        };
        table::save_csv(
            &table::Table {
                columns: vec![
                    ("stimulus".into(), text(ids.clone())),
                    ("label".into(), col),
                ],
            },
            &dir.join("labels.csv"),
        )?;
        manifest.insert("labels".into(), json!("labels.csv"));
    }
    if !ds.ratings.is_empty() {
        let mut columns = vec![("stimulus".to_string(), text(ids.clone()))];
        for (name, v) in &ds.ratings {
            columns.push((
                name.clone(),
                Column::Number(firsts.iter().map(|&i| v[i]).collect()),
            ));
        }
        table::save_csv(&table::Table { columns }, &dir.join("ratings.csv"))?;
        manifest.insert("ratings".into(), json!("ratings.csv"));
    }
    let text = serde_json::to_string_pretty(&Value::Object(manifest))
        .map_err(|e| Error::invalid(op, format!("dataset.json: {e}")))?;
    crate::io::write_atomic(op, &dir.join("dataset.json"), text.as_bytes())
}
