//! Public datasets read in place into a [`Dataset`] (docs/datasets.md): GOD
//! and deeprecon (bdpy BData HDF5), NSD and BOLD5000, in the folder layouts
//! they are published in. Each loader reads only what was selected (ROI
//! voxels × trials, the images used) and checks the files against each other
//! before returning; on any error nothing is returned.

pub mod bold5000;
pub mod god;
pub mod nsd;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::{Kind, Tensor as TchTensor};

use super::dataset::{Dataset, Trial};
use super::mask::Mask;
use crate::error::{Error, Result};
use crate::io::images::Filter;
use crate::tensor::{tc, Tensor};

/// How the loaders read stimulus images.
#[derive(Debug, Clone, Copy)]
pub struct ImageOptions {
    pub load: bool,
    pub size: Option<(usize, usize)>,
    pub filter: Filter,
}

/// A trials × voxels f32 CPU tensor filled row block by row block, so the
/// betas are built in place (no second copy of the output).
pub(crate) struct Betas {
    tensor: TchTensor,
    pub rows: usize,
    pub cols: usize,
}

impl Betas {
    pub fn zeros(op: &'static str, rows: usize, cols: usize) -> Result<Betas> {
        let tensor = tc(
            op,
            TchTensor::f_zeros([rows as i64, cols as i64], (Kind::Float, tch::Device::Cpu)),
        )?;
        Ok(Betas { tensor, rows, cols })
    }

    /// The values, row-major.
    pub fn values(&mut self) -> &mut [f32] {
        let n = self.rows * self.cols;
        if n == 0 {
            return &mut [];
        }
        // SAFETY: a fresh contiguous CPU float tensor of n elements, owned by
        // self and borrowed mutably for the slice's lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.tensor.data_ptr() as *mut f32, n) }
    }

    pub fn into_tensor(self) -> Tensor {
        Tensor(self.tensor)
    }
}

/// A grid for voxels that come without coordinates (BOLD5000's ROI
/// matrices, BData files without voxel_x/y/z): voxel i at (i, 0, 0), 1 mm.
pub(crate) fn line_mask(op: &'static str, n: usize) -> Result<Mask> {
    let ones = tc(
        op,
        TchTensor::f_ones([n as i64, 1, 1], (Kind::Bool, tch::Device::Cpu)),
    )?;
    Mask::from_tensor(op, &Tensor(ones), identity())
}

pub(crate) fn identity() -> [[f64; 4]; 4] {
    [
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
}

/// The mask of `cols` (a subset of the line grid of `n` voxels).
pub(crate) fn line_subset(op: &'static str, n: usize, cols: &[usize]) -> Result<Mask> {
    let mut v = vec![0f64; n];
    for &c in cols {
        v[c] = 1.0;
    }
    let t = Tensor::from_f64(op, &v, &[n as i64, 1, 1], Kind::Float)?;
    Mask::from_tensor(op, &t, identity())
}

/// Voxels given by scanner coordinates (mm): the regular grid they lie on
/// (step = the smallest spacing along each axis), its mask, and for each
/// mask column (C order over x, y, z, as every Dataset) the index of the
/// voxel in `coords`; also each voxel's C-order flat grid index. Two voxels
/// at one grid point are an error.
pub(crate) fn coordinate_grid(
    op: &'static str,
    path: &Path,
    coords: &[[f64; 3]],
) -> Result<(Mask, Vec<usize>, Vec<i64>)> {
    let mut lo = [f64::INFINITY; 3];
    let mut step = [f64::INFINITY; 3];
    for a in 0..3 {
        let mut v: Vec<f64> = coords.iter().map(|c| c[a]).collect();
        if v.iter().any(|x| !x.is_finite()) {
            return Err(Error::format(
                op,
                path,
                "voxel coordinates must be finite numbers",
            ));
        }
        v.sort_by(|x, y| x.total_cmp(y));
        lo[a] = v[0];
        for w in v.windows(2) {
            let d = w[1] - w[0];
            if d > 1e-6 && d < step[a] {
                step[a] = d;
            }
        }
        if !step[a].is_finite() {
            step[a] = 1.0;
        }
    }
    let mut ijk = Vec::with_capacity(coords.len());
    let mut dims = [0i64; 3];
    for (n, c) in coords.iter().enumerate() {
        let mut p = [0i64; 3];
        for a in 0..3 {
            let f = (c[a] - lo[a]) / step[a];
            let r = f.round();
            if (f - r).abs() > 1e-3 {
                return Err(Error::format(
                    op,
                    path,
                    format!(
                        "voxel {} at ({}, {}, {}) is off the {}×{}×{} mm grid of the others",
                        n + 1,
                        c[0],
                        c[1],
                        c[2],
                        step[0],
                        step[1],
                        step[2]
                    ),
                ));
            }
            p[a] = r as i64;
            dims[a] = dims[a].max(p[a] + 1);
        }
        ijk.push(p);
    }
    // Coordinates on no common grid (e.g. jittered floats) would span an
    // enormous one; a voxel grid of a brain has at most a few million points.
    let points = dims.iter().try_fold(1i64, |a, &d| a.checked_mul(d));
    if points.is_none_or(|n| n > 50_000_000) {
        return Err(Error::format(
            op,
            path,
            format!(
                "voxel coordinates span a {}×{}×{} grid of {}×{}×{} mm steps: not a regular voxel grid",
                dims[0], dims[1], dims[2], step[0], step[1], step[2]
            ),
        ));
    }
    let flat = |p: &[i64; 3]| ((p[0] * dims[1] + p[1]) * dims[2] + p[2]) as usize;
    let mut at: HashMap<usize, usize> = HashMap::new();
    for (n, p) in ijk.iter().enumerate() {
        if let Some(m) = at.insert(flat(p), n) {
            return Err(Error::format(
                op,
                path,
                format!("voxels {} and {} have the same coordinates", m + 1, n + 1),
            ));
        }
    }
    // C order over (x, y, z): sort by the flat C index.
    let mut order: Vec<usize> = (0..coords.len()).collect();
    order.sort_by_key(|&n| flat(&ijk[n]));
    let mut grid = vec![0f64; (dims[0] * dims[1] * dims[2]) as usize];
    for p in &ijk {
        grid[flat(p)] = 1.0;
    }
    let affine = [
        [step[0], 0.0, 0.0, lo[0]],
        [0.0, step[1], 0.0, lo[1]],
        [0.0, 0.0, step[2], lo[2]],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let t = Tensor::from_f64(op, &grid, &dims, Kind::Float)?;
    let mask = Mask::from_tensor(op, &t, affine)?;
    let flat_ijk: Vec<i64> = ijk.iter().map(|p| flat(p) as i64).collect();
    Ok((mask, order, flat_ijk))
}

/// A mask on `like`'s grid with the grid points at C-order flat indices
/// `flat`.
pub(crate) fn grid_subset(op: &'static str, like: &Mask, flat: &[i64]) -> Result<Mask> {
    let d = like.shape();
    let mut grid = vec![0f64; (d[0] * d[1] * d[2]) as usize];
    for &f in flat {
        grid[f as usize] = 1.0;
    }
    let t = Tensor::from_f64(op, &grid, &d, Kind::Float)?;
    Mask::from_tensor(op, &t, like.affine)
}

/// Trials (stimulus ids and splits) with repeats counted from 0 in order.
pub(crate) fn trials(ids: Vec<String>, splits: Vec<&'static str>) -> Vec<Trial> {
    let mut seen: HashMap<String, i64> = HashMap::new();
    ids.into_iter()
        .zip(splits)
        .map(|(s, sp)| {
            let c = seen.entry(s.clone()).or_insert(0);
            *c += 1;
            Trial {
                stimulus: s,
                split: sp.to_string(),
                repeat: *c - 1,
            }
        })
        .collect()
}

/// Unique stimulus ids in order of first appearance and each trial's row.
pub(crate) fn unique_stimuli(trials: &[Trial]) -> (Vec<String>, Vec<i64>) {
    let mut order = Vec::new();
    let mut pos: HashMap<&str, i64> = HashMap::new();
    let index = trials
        .iter()
        .map(|t| {
            *pos.entry(t.stimulus.as_str()).or_insert_with(|| {
                order.push(t.stimulus.clone());
                order.len() as i64 - 1
            })
        })
        .collect();
    (order, index)
}

/// A Dataset with the parts every loader has; images, captions and labels
/// are filled in by the caller.
pub(crate) fn dataset(
    name: String,
    dir: &Path,
    betas: Tensor,
    trials: Vec<Trial>,
    mask: Mask,
    rois: Vec<(String, Mask)>,
) -> Dataset {
    let n = trials.len();
    Dataset {
        name,
        dir: dir.to_path_buf(),
        betas,
        trials,
        mask,
        rois,
        stimuli: None,
        image_index: vec![-1; n],
        captions: None,
        labels: None,
        ratings: Vec::new(),
    }
}

pub(crate) fn missing(op: &'static str, path: &Path, what: &str) -> Error {
    Error::io(
        op,
        path,
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no such file ({what})"),
        ),
    )
}

/// What a path given to `load_dataset` holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// voxlab's own layout (dataset.json), or a folder of nothing known.
    Layout,
    /// A bdpy BData file (GOD, deeprecon).
    Bdata(PathBuf),
    /// An NSD root and subject.
    Nsd { root: PathBuf, subject: usize },
    /// A BOLD5000 root and subject.
    Bold5000 { root: PathBuf, subject: usize },
}

fn number_after(name: &str, prefix: &str) -> Option<usize> {
    name.strip_prefix(prefix).and_then(|s| s.parse().ok())
}

/// Recognises the public layouts from the path alone: a BData .h5 file (or a
/// folder with exactly one), an NSD root or a path inside
/// `nsddata_betas/ppdata/subjNN`, a BOLD5000 root or `ROIs/CSI{N}` inside
/// it. A root holding several subjects is an error listing them.
pub fn detect(op: &'static str, path: &Path) -> Result<Source> {
    if path.join("dataset.json").exists() {
        return Ok(Source::Layout);
    }
    if path.is_file() {
        if crate::io::hdf5::is_hdf5(path) {
            return Ok(Source::Bdata(path.to_path_buf()));
        }
        return Ok(Source::Layout);
    }
    // Inside an NSD subject's betas (…/nsddata_betas/ppdata/subjNN[/…]) or a
    // BOLD5000 subject's ROI folder (…/ROIs/CSI{N}[/mat]).
    let comps: Vec<String> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    for i in 0..comps.len() {
        if comps[i] == "nsddata_betas" && comps.get(i + 1).map(String::as_str) == Some("ppdata") {
            if let Some(s) = comps.get(i + 2).and_then(|c| number_after(c, "subj")) {
                let root: PathBuf = comps[..i].iter().collect();
                return Ok(Source::Nsd { root, subject: s });
            }
        }
        if comps[i] == "ROIs" {
            if let Some(s) = comps.get(i + 1).and_then(|c| number_after(c, "CSI")) {
                let root: PathBuf = comps[..i].iter().collect();
                return Ok(Source::Bold5000 { root, subject: s });
            }
        }
    }
    let subjects = |dir: PathBuf, prefix: &str| -> Vec<usize> {
        let mut v: Vec<usize> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| number_after(&e.file_name().to_string_lossy(), prefix))
                    .collect()
            })
            .unwrap_or_default();
        v.sort_unstable();
        v
    };
    let one = |found: Vec<usize>, what: &str, hint: &str| -> Result<usize> {
        match found.as_slice() {
            [s] => Ok(*s),
            [] => Err(Error::format(
                op,
                path,
                format!("{what} has no subject's data ({hint})"),
            )),
            many => Err(Error::format(
                op,
                path,
                format!(
                    "{what} holds subjects {}; name one: {hint}",
                    many.iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    };
    if path
        .join("nsddata/experiments/nsd/nsd_expdesign.mat")
        .exists()
    {
        let s = one(
            subjects(path.join("nsddata_betas/ppdata"), "subj"),
            "this NSD root",
            "give <root>/nsddata_betas/ppdata/subjNN, or load_nsd(root, #{subject: N})",
        )?;
        return Ok(Source::Nsd {
            root: path.to_path_buf(),
            subject: s,
        });
    }
    if path.join("ROIs/stim_lists").is_dir() {
        let s = one(
            subjects(path.join("ROIs"), "CSI"),
            "this BOLD5000 root",
            "give <root>/ROIs/CSI{N}, or load_bold5000(root, #{subject: N})",
        )?;
        return Ok(Source::Bold5000 {
            root: path.to_path_buf(),
            subject: s,
        });
    }
    if path.is_dir() {
        let mut h5: Vec<PathBuf> = std::fs::read_dir(path)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("h5"))
                    .filter(|p| crate::io::hdf5::is_hdf5(p))
                    .collect()
            })
            .unwrap_or_default();
        h5.sort();
        match h5.len() {
            0 => {}
            1 => return Ok(Source::Bdata(h5.remove(0))),
            _ => {
                let names: Vec<String> = h5
                    .iter()
                    .map(|p| {
                        p.file_name()
                            .unwrap_or_default()
                            .to_string_lossy()
                            .into_owned()
                    })
                    .collect();
                return Err(Error::format(
                    op,
                    path,
                    format!(
                        "no dataset.json, and several BData files ({}); give one of them",
                        names.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(Source::Layout)
}
