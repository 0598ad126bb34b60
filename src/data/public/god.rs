//! GOD (Horikawa & Kamitani 2017) and deeprecon (Shen et al. 2019): bdpy's
//! BData HDF5 files. `/dataset` (samples × columns, float64) holds voxels and
//! per-sample fields alike; `/metadata/{key,description,value}` says which
//! columns a key applies to (value 1) and carries per-column values such as
//! voxel coordinates (NaN where a key does not apply). Older files name the
//! groups `dataSet` / `metaData` and the stimulus key `Label`; `/vmap/<key>`
//! maps a key's numbers to label strings.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{coordinate_grid, grid_subset, line_mask, line_subset, missing, Betas, ImageOptions};
use crate::data::dataset::{self, Cell, Dataset};
use crate::data::images::{self, LoadOptions};
use crate::data::mask::Mask;
use crate::error::{Error, Result};
use crate::io::hdf5::H5;

const OP: &str = "load_god";

/// Which samples form the test split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TestSet {
    /// DataType 2: seen images (50 × 35 trials in GOD).
    Perception,
    /// DataType 3: imagined categories.
    Imagery,
}

#[derive(Debug, Clone)]
pub struct GodOptions {
    /// Folder of the stimulus images (GOD's `training/` and `test/` with
    /// `imageID_training.csv` / `imageID_test.csv`, or any folder of files
    /// named `n<synset>_<image>.*`).
    pub images_dir: Option<PathBuf>,
    pub images: ImageOptions,
    pub test: TestSet,
    /// The key of the voxel columns.
    pub voxels: String,
    pub drop_nan_voxels: bool,
}

/// One BData file as read: the matrix and its metadata.
struct Bdata {
    path: PathBuf,
    n_samples: usize,
    n_cols: usize,
    data: Vec<f64>,
    keys: Vec<String>,
    /// keys × columns.
    values: Vec<f64>,
    vmap: HashMap<String, Vec<(f64, String)>>,
}

fn is_one(x: f64) -> bool {
    (x - 1.0).abs() < 1e-9
}

impl Bdata {
    fn read(path: &Path) -> Result<Bdata> {
        let h = H5::open(OP, path)?;
        let pick = |a: &str, b: &str| {
            if h.has_dataset(a) {
                Some(a.to_string())
            } else if h.has_dataset(b) {
                Some(b.to_string())
            } else {
                None
            }
        };
        let data_name = pick("dataset", "dataSet");
        let meta = if h.has_group("metadata") {
            Some("metadata")
        } else if h.has_group("metaData") {
            Some("metaData")
        } else {
            None
        };
        let (Some(data_name), Some(meta)) = (data_name, meta) else {
            return Err(Error::format(
                OP,
                path,
                format!(
                    "not a bdpy BData file: expected /dataset (or /dataSet) and /metadata/{{key,description,value}} (or /metaData/…); the file has: {}",
                    h.top_level().join(", ")
                ),
            ));
        };
        let (shape, data) = h.read_f64(&data_name)?;
        let keys = h.read_strings(&format!("{meta}/key"))?;
        let (vshape, values) = h.read_f64(&format!("{meta}/value"))?;
        if shape.len() != 2 {
            return Err(Error::format(
                OP,
                path,
                format!("/{data_name} must be samples × columns, got shape {shape:?}"),
            ));
        }
        let (n_samples, n_cols) = (shape[0], shape[1]);
        if vshape.len() != 2 || vshape[0] != keys.len() || vshape[1] != n_cols {
            return Err(Error::format(
                OP,
                path,
                format!(
                    "/{meta}/value must be keys × columns = {} × {n_cols} (the {} keys, the columns of /{data_name}), got shape {vshape:?}",
                    keys.len(),
                    keys.len()
                ),
            ));
        }
        let mut vmap = HashMap::new();
        if h.has_group("vmap") {
            let (groups, _) = h.members("vmap")?;
            for key in groups {
                let (_, entries) = h.members(&format!("vmap/{key}"))?;
                let mut m = Vec::new();
                for e in entries {
                    let v: f64 = e.parse().map_err(|_| {
                        Error::format(
                            OP,
                            path,
                            format!("/vmap/{key}/{e}: the name must be a number"),
                        )
                    })?;
                    let label = h.read_strings(&format!("vmap/{key}/{e}"))?;
                    m.push((v, label.into_iter().next().unwrap_or_default()));
                }
                vmap.insert(key, m);
            }
        }
        Ok(Bdata {
            path: path.to_path_buf(),
            n_samples,
            n_cols,
            data,
            keys,
            values,
            vmap,
        })
    }

    fn key_row(&self, key: &str) -> Option<&[f64]> {
        self.keys
            .iter()
            .position(|k| k == key)
            .map(|i| &self.values[i * self.n_cols..(i + 1) * self.n_cols])
    }

    /// The columns `key` applies to (value 1).
    fn columns(&self, key: &str) -> Option<Vec<usize>> {
        self.key_row(key)
            .map(|r| (0..self.n_cols).filter(|&c| is_one(r[c])).collect())
    }

    /// A per-sample field: the one column of `key`.
    fn field(&self, key: &str) -> Result<Option<Vec<f64>>> {
        let Some(cols) = self.columns(key) else {
            return Ok(None);
        };
        if cols.len() != 1 {
            return Err(Error::format(
                OP,
                &self.path,
                format!(
                    "key '{key}' must mark one column (a value per sample), it marks {}",
                    cols.len()
                ),
            ));
        }
        let c = cols[0];
        Ok(Some(
            (0..self.n_samples)
                .map(|s| self.data[s * self.n_cols + c])
                .collect(),
        ))
    }
}

/// GOD's float id synset.imageID (e.g. 1518878.010042) as its image name
/// (n01518878_10042); the fraction is matched to 6 decimals with a
/// tolerance, never by float equality.
pub fn god_image_name(id: f64) -> Option<String> {
    if !id.is_finite() || id < 0.0 {
        return None;
    }
    let synset = id.floor();
    let frac = (id - synset) * 1e6;
    let image = frac.round();
    if (frac - image).abs() > 1e-3 {
        return None;
    }
    Some(format!("n{:08}_{}", synset as u64, image as u64))
}

/// Key of an id for matching: the id in millionths, rounded.
fn id_key(id: f64) -> i64 {
    (id * 1e6).round() as i64
}

/// Reads `imageID_*.csv` (id, file name) from the images folder, if there.
fn image_names(dir: &Path) -> Result<HashMap<i64, String>> {
    let mut names = HashMap::new();
    for f in ["imageID_training.csv", "imageID_test.csv"] {
        let p = dir.join(f);
        if !p.exists() {
            continue;
        }
        let text = crate::io::read_text(OP, &p)?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let mut parts = line.splitn(2, ',');
            let id = parts.next().unwrap_or("").trim();
            let name = parts.next().unwrap_or("").trim().trim_matches('"');
            let id: f64 = id.parse().map_err(|_| {
                Error::format(
                    OP,
                    &p,
                    format!("line {}: expected `id,\"file name\"`, got '{line}'", i + 1),
                )
            })?;
            let stem = Path::new(name)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            names.insert(id_key(id), stem);
        }
    }
    Ok(names)
}

/// Every image file under `dir` (one level of subfolders, as GOD's
/// training/ and test/), by id (file name without extension).
fn image_files(dir: &Path) -> Result<HashMap<String, PathBuf>> {
    let mut out = HashMap::new();
    let mut scan = |d: &Path| -> Result<()> {
        let rd = std::fs::read_dir(d).map_err(|e| Error::io(OP, d, e))?;
        for e in rd {
            let p = e.map_err(|e| Error::io(OP, d, e))?.path();
            let ext = p
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            if p.is_file() && matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg")) {
                out.insert(images::id_of(&p), p);
            }
        }
        Ok(())
    };
    scan(dir)?;
    let subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(OP, dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    for d in subdirs {
        scan(&d)?;
    }
    Ok(out)
}

/// Reads one or more BData files (GOD: one per subject; deeprecon: a
/// training and a test file) into one Dataset.
pub fn load(paths: &[PathBuf], opts: &GodOptions) -> Result<Dataset> {
    if paths.is_empty() {
        return Err(Error::invalid(OP, "no BData file given"));
    }
    let mut files = Vec::new();
    for p in paths {
        if !p.exists() {
            return Err(missing(OP, p, "a bdpy BData .h5 file"));
        }
        files.push(Bdata::read(p)?);
    }
    let first = &files[0];
    let vkey = opts.voxels.as_str();
    let voxel_cols = |b: &Bdata| -> Result<Vec<usize>> {
        match b.columns(vkey) {
            Some(c) if !c.is_empty() => Ok(c),
            _ => Err(Error::format(
                OP,
                &b.path,
                format!(
                    "no voxel columns: key '{vkey}' is missing or marks none (keys: {})",
                    b.keys.join(", ")
                ),
            )),
        }
    };
    let cols0 = voxel_cols(first)?;
    let n_vox = cols0.len();

    // Voxel coordinates put the voxels on their grid; without them the
    // voxels lie on a line in file order.
    let coords: Option<Vec<[f64; 3]>> = match (
        first.key_row("voxel_x"),
        first.key_row("voxel_y"),
        first.key_row("voxel_z"),
    ) {
        (Some(x), Some(y), Some(z)) => Some(cols0.iter().map(|&c| [x[c], y[c], z[c]]).collect()),
        _ => None,
    };
    let (mask, order, flat) = match &coords {
        Some(c) => coordinate_grid(OP, &first.path, c)?,
        None => (
            line_mask(OP, n_vox)?,
            (0..n_vox).collect(),
            (0..n_vox as i64).collect(),
        ),
    };
    // The other files must hold the same voxels.
    for b in &files[1..] {
        let cols = voxel_cols(b)?;
        let same = cols.len() == n_vox
            && match (
                &coords,
                b.key_row("voxel_x"),
                b.key_row("voxel_y"),
                b.key_row("voxel_z"),
            ) {
                (Some(c), Some(x), Some(y), Some(z)) => cols.iter().zip(c).all(|(&k, p)| {
                    (x[k] - p[0]).abs() < 1e-6
                        && (y[k] - p[1]).abs() < 1e-6
                        && (z[k] - p[2]).abs() < 1e-6
                }),
                (None, _, _, _) => true,
                _ => false,
            };
        if !same {
            return Err(Error::format(
                OP,
                &b.path,
                format!(
                    "its voxels differ from those of {} ({n_vox} voxels{})",
                    first.path.display(),
                    if coords.is_some() {
                        " with these coordinates"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }

    // ROIs: every ROI_* key, on the voxel grid.
    let mut rois: Vec<(String, Mask)> = Vec::new();
    let pos_of_col: HashMap<usize, usize> =
        cols0.iter().enumerate().map(|(i, &c)| (c, i)).collect();
    for key in &first.keys {
        let Some(name) = key.strip_prefix("ROI_") else {
            continue;
        };
        let Some(cols) = first.columns(key) else {
            continue;
        };
        let members: Vec<usize> = cols
            .iter()
            .filter_map(|c| pos_of_col.get(c).copied())
            .collect();
        if members.is_empty() {
            continue;
        }
        let m = if coords.is_some() {
            grid_subset(
                OP,
                &mask,
                &members.iter().map(|&i| flat[i]).collect::<Vec<_>>(),
            )?
        } else {
            line_subset(OP, n_vox, &members)?
        };
        rois.push((name.to_string(), m));
    }

    // Samples: split, stimulus id, label.
    let names = match &opts.images_dir {
        Some(d) => image_names(d)?,
        None => HashMap::new(),
    };
    let mut rows: Vec<(usize, usize)> = Vec::new(); // (file, sample)
    let mut ids = Vec::new();
    let mut splits = Vec::new();
    let mut labels = Vec::new();
    let test_type = match opts.test {
        TestSet::Perception => 2.0,
        TestSet::Imagery => 3.0,
    };
    for (fi, b) in files.iter().enumerate() {
        let stim_key = if b.key_row("stimulus_id").is_some() {
            "stimulus_id"
        } else if b.key_row("Label").is_some() {
            "Label"
        } else {
            return Err(Error::format(
                OP,
                &b.path,
                format!(
                    "no stimulus key: expected 'stimulus_id' (older files: 'Label'); keys: {}",
                    b.keys.join(", ")
                ),
            ));
        };
        let stim = b.field(stim_key)?.unwrap_or_default();
        let datatype = b.field("DataType")?;
        // deeprecon keeps training and test samples in separate files.
        let file_split = {
            let n = b.path.file_name().unwrap_or_default().to_string_lossy();
            if n.contains("Training") {
                Some("train")
            } else if n.contains("Test") {
                Some("test")
            } else {
                None
            }
        };
        let vmap = b.vmap.get(stim_key);
        for s in 0..b.n_samples {
            let split = match &datatype {
                Some(dt) if is_one(dt[s]) => "train",
                Some(dt) if (dt[s] - test_type).abs() < 1e-9 => "test",
                Some(_) => continue,
                None => match file_split {
                    Some(sp) => sp,
                    None => {
                        return Err(Error::format(
                            OP,
                            &b.path,
                            "no 'DataType' key (1 training, 2 perception test, 3 imagery) and the file name says neither Training nor Test",
                        ))
                    }
                },
            };
            let v = stim[s];
            let (id, label) = if let Some(m) = vmap {
                let Some((_, l)) = m.iter().find(|(k, _)| (k - v).abs() < 1e-6) else {
                    return Err(Error::format(
                        OP,
                        &b.path,
                        format!(
                            "sample {}: {stim_key} {v} has no entry in /vmap/{stim_key}",
                            s + 1
                        ),
                    ));
                };
                (l.clone(), l.clone())
            } else {
                let id = names
                    .get(&id_key(v))
                    .cloned()
                    .or_else(|| god_image_name(v))
                    .ok_or_else(|| {
                        Error::format(
                            OP,
                            &b.path,
                            format!(
                                "sample {}: {stim_key} {v} is not a synset.imageID number",
                                s + 1
                            ),
                        )
                    })?;
                let synset = id.split('_').next().unwrap_or("").to_string();
                (id, synset)
            };
            rows.push((fi, s));
            ids.push(id);
            splits.push(split);
            labels.push(Cell::Text(label));
        }
    }
    if rows.is_empty() {
        return Err(Error::format(
            OP,
            &first.path,
            "no training or test samples (DataType 1, 2 or 3)",
        ));
    }

    // Betas: selected samples × voxels in the mask's column order.
    let mut betas = Betas::zeros(OP, rows.len(), n_vox)?;
    let per_file_cols: Vec<Vec<usize>> =
        files.iter().map(|b| voxel_cols(b)).collect::<Result<_>>()?;
    {
        let out = betas.values();
        for (r, &(fi, s)) in rows.iter().enumerate() {
            let b = &files[fi];
            let row = &b.data[s * b.n_cols..(s + 1) * b.n_cols];
            let cols = &per_file_cols[fi];
            let dst = &mut out[r * n_vox..(r + 1) * n_vox];
            for (j, &v) in order.iter().enumerate() {
                dst[j] = row[cols[v]] as f32;
            }
        }
    }
    let trials = super::trials(ids, splits);
    let name = first
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = first.path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let (mask, betas) = dataset::check_nan(
        OP,
        &first.path,
        mask,
        betas.into_tensor(),
        opts.drop_nan_voxels,
    )?;
    let mut ds = super::dataset(name, &dir, betas, trials, mask, rois);
    ds.labels = Some(labels);

    if opts.images.load {
        if let Some(dir) = &opts.images_dir {
            let files = image_files(dir)?;
            let (order, index) = super::unique_stimuli(&ds.trials);
            let mut paths = Vec::with_capacity(order.len());
            for id in &order {
                match files.get(id) {
                    Some(p) => paths.push(p.clone()),
                    None => {
                        let n = ds.trials.iter().filter(|t| &t.stimulus == id).count();
                        return Err(Error::format(
                            OP,
                            dir,
                            format!("no image for stimulus '{id}' ({n} trials); expected {id}.JPEG (or .jpg/.png) here or in a subfolder"),
                        ));
                    }
                }
            }
            let set = images::load(
                OP,
                &paths,
                LoadOptions {
                    size: opts.images.size,
                    filter: opts.images.filter,
                },
            )?;
            ds.stimuli = Some(set);
            ds.image_index = index;
        }
    }
    Ok(ds)
}
