//! NSD (Allen et al. 2022) in its published folder layout: per-session betas
//! (`betas_sessionNN.nii.gz`, int16 = percent signal change × 300, 750 trials
//! each, or the `.hdf5` copies), the design file `nsd_expdesign.mat`, the
//! stimulus table, the subject's ROI volumes, the stimulus brick
//! `nsd_stimuli.hdf5` and COCO's caption files.
//!
//! Splits as Takagi & Nishimoto and Brain-Diffuser use them: the shared 1000
//! images are the test set (their repeats kept as trials, to average), the
//! subject's other images the training set. Sessions are streamed one volume
//! at a time and only the selected voxels are kept, so memory is the output
//! (voxels × trials) plus one volume per session being read.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{missing, Betas, ImageOptions};
use crate::data::dataset::{Cell, Dataset};
use crate::data::images;
use crate::data::mask::Mask;
use crate::data::volume::Volume;
use crate::error::{Error, Result};
use crate::io::hdf5::H5;
use crate::io::images::Rgb8;
use crate::io::mat;
use crate::io::nifti;
use crate::io::table::{self, Column};

const OP: &str = "load_nsd";
/// Trials of every NSD session.
pub const TRIALS_PER_SESSION: usize = 750;
/// NSD's betas are percent signal change × 300, stored as int16.
const BETA_SCALE: f32 = 300.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BetasFormat {
    /// `.nii.gz` when present, else `.hdf5`.
    Auto,
    Nifti,
    Hdf5,
}

#[derive(Debug, Clone)]
pub struct NsdOptions {
    pub subject: usize,
    /// 1-based session numbers; None: every session whose betas are there.
    pub sessions: Option<Vec<usize>>,
    /// The ROI volume selecting the voxels (values > 0), e.g. nsdgeneral.
    pub roi: String,
    /// Atlases whose labels become ROIs (inside the selection).
    pub atlases: Vec<String>,
    pub betas: BetasFormat,
    pub images: ImageOptions,
    pub captions: bool,
    /// Every COCO caption of an image (an array per trial) instead of the
    /// first one (a string per trial, what train_captioner takes).
    pub all_captions: bool,
}

/// The files of one subject under an NSD root.
pub struct Layout {
    pub root: PathBuf,
    pub subject: usize,
}

impl Layout {
    fn subj(&self) -> String {
        format!("subj{:02}", self.subject)
    }
    pub fn design(&self) -> PathBuf {
        self.root.join("nsddata/experiments/nsd/nsd_expdesign.mat")
    }
    pub fn stim_info(&self) -> PathBuf {
        self.root
            .join("nsddata/experiments/nsd/nsd_stim_info_merged.csv")
    }
    pub fn roi(&self, name: &str) -> PathBuf {
        self.root
            .join("nsddata/ppdata")
            .join(self.subj())
            .join("func1pt8mm/roi")
            .join(format!("{name}.nii.gz"))
    }
    pub fn label_table(&self, name: &str) -> PathBuf {
        self.root
            .join("nsddata/freesurfer")
            .join(self.subj())
            .join("label")
            .join(format!("{name}.mgz.ctab"))
    }
    pub fn betas_dir(&self) -> PathBuf {
        self.root
            .join("nsddata_betas/ppdata")
            .join(self.subj())
            .join("func1pt8mm/betas_fithrf_GLMdenoise_RR")
    }
    pub fn betas(&self, session: usize, ext: &str) -> PathBuf {
        self.betas_dir()
            .join(format!("betas_session{session:02}.{ext}"))
    }
    pub fn stimuli(&self) -> PathBuf {
        self.root
            .join("nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5")
    }
    pub fn captions(&self, split: &str) -> PathBuf {
        self.root
            .join("nsddata_stimuli/stimuli/nsd/annotations")
            .join(format!("captions_{split}.json"))
    }
}

/// Label names of an atlas: its FreeSurfer colour table when NSD's is there,
/// else the labels NSD documents.
fn label_names(layout: &Layout, atlas: &str) -> Result<Vec<(i64, String)>> {
    let p = layout.label_table(atlas);
    if p.exists() {
        let text = crate::io::read_text(OP, &p)?;
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let mut it = line.split_whitespace();
            let (Some(k), Some(name)) = (it.next(), it.next()) else {
                continue;
            };
            let k: i64 = k.parse().map_err(|_| {
                Error::format(
                    OP,
                    &p,
                    format!("line {}: expected `index name`, got '{line}'", i + 1),
                )
            })?;
            if k > 0 {
                out.push((k, name.to_string()));
            }
        }
        return Ok(out);
    }
    let known: &[&str] = match atlas {
        "streams" => &[
            "early",
            "midventral",
            "midlateral",
            "midparietal",
            "ventral",
            "lateral",
            "parietal",
        ],
        "prf-visualrois" => &["V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4"],
        _ => {
            return Err(missing(
                OP,
                &p,
                &format!("the label table of atlas '{atlas}' (index name per line)"),
            ))
        }
    };
    Ok(known
        .iter()
        .enumerate()
        .map(|(i, n)| (i as i64 + 1, n.to_string()))
        .collect())
}

fn load_volume(path: &Path, what: &str) -> Result<Volume> {
    if !path.exists() {
        return Err(missing(OP, path, what));
    }
    Volume::load(path, false).map_err(|e| match e {
        Error::Format { path, msg, .. } => Error::format(OP, path, msg),
        Error::Io { path, source, .. } => Error::io(OP, path, source),
        other => other,
    })
}

/// The design: per trial of the selected sessions, the 0-based 73k image
/// index, and the shared images.
struct Design {
    images: Vec<usize>,
    shared: HashSet<usize>,
}

fn design(layout: &Layout, sessions: &[usize]) -> Result<Design> {
    let p = layout.design();
    let v = mat::load_vars(OP, &p, &["masterordering", "subjectim", "sharedix"])?;
    let (order, subjectim, sharedix) = (&v[0], &v[1], &v[2]);
    let n_trials = order.data.len();
    if subjectim.dims.len() != 2 || layout.subject == 0 || layout.subject > subjectim.dims[0] {
        return Err(Error::format(
            OP,
            &p,
            format!(
                "subjectim is {:?} (subjects × images); subject {} is not in it",
                subjectim.dims, layout.subject
            ),
        ));
    }
    let n_images = subjectim.dims[1];
    let mut images = Vec::with_capacity(sessions.len() * TRIALS_PER_SESSION);
    for &s in sessions {
        let end = s * TRIALS_PER_SESSION;
        if s == 0 || end > n_trials {
            return Err(Error::format(
                OP,
                &p,
                format!(
                    "masterordering has {n_trials} trials ({} sessions of {TRIALS_PER_SESSION}); session {s} is not among them",
                    n_trials / TRIALS_PER_SESSION
                ),
            ));
        }
        for t in end - TRIALS_PER_SESSION..end {
            let m = order.data[t];
            if m.fract() != 0.0 || m < 1.0 || m as usize > n_images {
                return Err(Error::format(
                    OP,
                    &p,
                    format!(
                        "masterordering[{}] is {m}, not an image number 1..{n_images}",
                        t + 1
                    ),
                ));
            }
            let im = subjectim.at(layout.subject - 1, m as usize - 1);
            if im.fract() != 0.0 || im < 1.0 {
                return Err(Error::format(
                    OP,
                    &p,
                    format!(
                        "subjectim({}, {m}) is {im}, not a 1-based 73k index",
                        layout.subject
                    ),
                ));
            }
            images.push(im as usize - 1);
        }
    }
    let mut shared = HashSet::new();
    for (i, &x) in sharedix.data.iter().enumerate() {
        if x.fract() != 0.0 || x < 1.0 {
            return Err(Error::format(
                OP,
                &p,
                format!("sharedix[{}] is {x}, not a 1-based 73k index", i + 1),
            ));
        }
        shared.insert(x as usize - 1);
    }
    Ok(Design { images, shared })
}

/// The betas files of the sessions, each checked to exist.
fn session_files(layout: &Layout, opts: &NsdOptions) -> Result<(Vec<usize>, Vec<PathBuf>)> {
    let pick = |s: usize| -> Option<PathBuf> {
        let nii = layout.betas(s, "nii.gz");
        let h5 = layout.betas(s, "hdf5");
        match opts.betas {
            BetasFormat::Nifti => Some(nii),
            BetasFormat::Hdf5 => Some(h5),
            BetasFormat::Auto if nii.exists() => Some(nii),
            BetasFormat::Auto if h5.exists() => Some(h5),
            BetasFormat::Auto => None,
        }
    };
    let sessions: Vec<usize> = match &opts.sessions {
        Some(s) => s.clone(),
        None => {
            let found: Vec<usize> = (1..=40)
                .filter(|&s| pick(s).is_some_and(|p| p.exists()))
                .collect();
            if found.is_empty() {
                return Err(missing(
                    OP,
                    &layout.betas(1, "nii.gz"),
                    "no betas_sessionNN.nii.gz or .hdf5 in this folder",
                ));
            }
            found
        }
    };
    let mut files = Vec::new();
    for &s in &sessions {
        let p = pick(s).unwrap_or_else(|| layout.betas(s, "nii.gz"));
        if !p.exists() {
            return Err(missing(
                OP,
                &p,
                &format!("the betas of session {s} ({TRIALS_PER_SESSION} trials)"),
            ));
        }
        files.push(p);
    }
    Ok((sessions, files))
}

/// Streams one session's betas into `out` (its 750 rows × the mask's
/// voxels), divided by 300.
fn read_session(
    path: &Path,
    grid: &[i64],
    affine: &[[f64; 4]; 4],
    idx: &[usize],
    out: &mut [f32],
) -> Result<()> {
    let k = idx.len();
    let n_xyz = (grid[0] * grid[1] * grid[2]) as usize;
    let is_h5 = path.extension().and_then(|e| e.to_str()) == Some("hdf5");
    let wrong_grid = |got: String| {
        Error::format(
            OP,
            path,
            format!(
                "expected volumes on the ROI's {}×{}×{} grid, got {got}",
                grid[0], grid[1], grid[2]
            ),
        )
    };
    let too_many = || {
        Error::format(
            OP,
            path,
            format!("more than the {TRIALS_PER_SESSION} trials of an NSD session (the design file's count)"),
        )
    };
    if is_h5 {
        let h = H5::open(OP, path)?;
        if !h.has_dataset("betas") {
            return Err(Error::format(
                OP,
                path,
                format!(
                    "expected a dataset /betas (trials × z × y × x); the file has: {}",
                    h.top_level().join(", ")
                ),
            ));
        }
        let shape = h.shape("betas")?;
        let want = [
            TRIALS_PER_SESSION,
            grid[2] as usize,
            grid[1] as usize,
            grid[0] as usize,
        ];
        if shape.len() != 4 || shape[1..] != want[1..] {
            return Err(wrong_grid(format!(
                "/betas of shape {shape:?} (expected {want:?})"
            )));
        }
        if shape[0] != TRIALS_PER_SESSION {
            return Err(Error::format(
                OP,
                path,
                format!("/betas has {} trials; an NSD session has {TRIALS_PER_SESSION} (the design file's count)", shape[0]),
            ));
        }
        for t in 0..TRIALS_PER_SESSION {
            // z × y × x in C order is NIfTI's file order (x fastest).
            let (_, v) = h.read_f64_at("betas", t)?;
            let row = &mut out[t * k..(t + 1) * k];
            for (o, &i) in row.iter_mut().zip(idx) {
                *o = v[i] as f32 / BETA_SCALE;
            }
        }
        return Ok(());
    }
    let mut n_read = 0usize;
    let img = nifti::read_nifti_volumes(path, &mut |t, vol| {
        if vol.len() != n_xyz {
            return Err(wrong_grid(format!("{} voxels per volume", vol.len())));
        }
        if t >= TRIALS_PER_SESSION {
            return Err(too_many());
        }
        let row = &mut out[t * k..(t + 1) * k];
        for (o, &i) in row.iter_mut().zip(idx) {
            *o = vol[i] / BETA_SCALE;
        }
        n_read = t + 1;
        Ok(())
    })
    .map_err(|e| match e {
        Error::Format { path, msg, .. } => Error::format(OP, path, msg),
        Error::Io { path, source, .. } => Error::io(OP, path, source),
        other => other,
    })?;
    let d = &img.dims;
    if d.len() < 3 || d[..3] != [grid[0] as usize, grid[1] as usize, grid[2] as usize] {
        return Err(wrong_grid(format!("dims {d:?}")));
    }
    if n_read != TRIALS_PER_SESSION {
        return Err(Error::format(
            OP,
            path,
            format!("{n_read} trials; an NSD session has {TRIALS_PER_SESSION} (the design file's count)"),
        ));
    }
    if !crate::data::mask::affines_close(&img.affine, affine) {
        return Err(Error::format(
            OP,
            path,
            format!(
                "affine {} differs from the ROI's {}",
                crate::data::mask::affine_text(&img.affine),
                crate::data::mask::affine_text(affine)
            ),
        ));
    }
    Ok(())
}

/// The betas of the sessions: trials × mask voxels, sessions read in
/// parallel, each streamed.
pub fn read_betas(mask: &Mask, files: &[PathBuf]) -> Result<crate::tensor::Tensor> {
    let idx = mask.file_order_indices(OP)?;
    let k = idx.len();
    let mut betas = Betas::zeros(OP, files.len() * TRIALS_PER_SESSION, k)?;
    let (grid, affine) = (mask.shape(), mask.affine);
    if k > 0 {
        betas
            .values()
            .par_chunks_mut(TRIALS_PER_SESSION * k)
            .zip(files.par_iter())
            .try_for_each(|(out, f)| read_session(f, &grid, &affine, &idx, out))?;
    }
    Ok(betas.into_tensor())
}

/// nsdId → (cocoId, cocoSplit) from nsd_stim_info_merged.csv.
fn coco_ids(path: &Path) -> Result<HashMap<usize, (u64, String)>> {
    if !path.exists() {
        return Err(missing(
            OP,
            path,
            "NSD's stimulus table, for the COCO ids of the captions",
        ));
    }
    let t = table::load_csv(path, b',').map_err(|e| match e {
        Error::Format { path, msg, .. } => Error::format(OP, path, msg),
        Error::Io { path, source, .. } => Error::io(OP, path, source),
        other => other,
    })?;
    let col = |n: &str| {
        t.column(n)
            .ok_or_else(|| Error::format(OP, path, format!("no column '{n}'")))
    };
    let (Column::Number(nsd), Column::Number(coco)) = (col("nsdId")?, col("cocoId")?) else {
        return Err(Error::format(
            OP,
            path,
            "columns nsdId and cocoId must be numbers",
        ));
    };
    let Column::Text(split) = col("cocoSplit")? else {
        return Err(Error::format(
            OP,
            path,
            "column cocoSplit must be text (train2017/val2017)",
        ));
    };
    Ok(nsd
        .iter()
        .zip(coco)
        .zip(split)
        .map(|((&n, &c), s)| (n as usize, (c as u64, s.clone())))
        .collect())
}

#[derive(serde::Deserialize)]
struct CocoCaptions {
    annotations: Vec<CocoCaption>,
}

#[derive(serde::Deserialize)]
struct CocoCaption {
    image_id: u64,
    caption: String,
}

/// The captions of the images `wanted` (73k indices), joined by cocoId.
fn captions(layout: &Layout, wanted: &[usize]) -> Result<HashMap<usize, Vec<String>>> {
    let info_path = layout.stim_info();
    let info = coco_ids(&info_path)?;
    let mut by_coco: HashMap<u64, Vec<String>> = HashMap::new();
    let mut splits: Vec<&str> = Vec::new();
    for &w in wanted {
        let Some((c, s)) = info.get(&w) else {
            return Err(Error::format(
                OP,
                &info_path,
                format!("no row for nsdId {w}"),
            ));
        };
        by_coco.entry(*c).or_default();
        if !splits.contains(&s.as_str()) {
            splits.push(s.as_str());
        }
    }
    for split in splits {
        let p = layout.captions(split);
        if !p.exists() {
            return Err(missing(OP, &p, "COCO's caption annotations"));
        }
        let f = crate::io::open_read(OP, &p)?;
        let c: CocoCaptions = serde_json::from_reader(std::io::BufReader::new(f)).map_err(|e| {
            Error::format(OP, &p, format!("expected COCO captions ({{\"annotations\": [{{\"image_id\", \"caption\"}}]}}): {e}"))
        })?;
        for a in c.annotations {
            if let Some(v) = by_coco.get_mut(&a.image_id) {
                v.push(a.caption.trim().to_string());
            }
        }
    }
    let mut out = HashMap::new();
    for &w in wanted {
        let (c, s) = &info[&w];
        let caps = by_coco[c].clone();
        if caps.is_empty() {
            return Err(Error::format(
                OP,
                layout.captions(s),
                format!("no caption for COCO image {c} (nsdId {w})"),
            ));
        }
        out.insert(w, caps);
    }
    Ok(out)
}

/// The images `wanted` (73k indices) from the stimulus brick, one at a time.
fn brick_images(
    layout: &Layout,
    wanted: &[usize],
    opts: &ImageOptions,
) -> Result<images::ImageSet> {
    let p = layout.stimuli();
    if !p.exists() {
        return Err(missing(
            OP,
            &p,
            "NSD's stimulus brick (imgBrick: images × h × w × 3, uint8)",
        ));
    }
    let h = H5::open(OP, &p)?;
    if !h.has_dataset("imgBrick") {
        return Err(Error::format(
            OP,
            &p,
            format!(
                "expected a dataset imgBrick (images × h × w × 3); the file has: {}",
                h.top_level().join(", ")
            ),
        ));
    }
    let shape = h.shape("imgBrick")?;
    if shape.len() != 4 || shape[3] != 3 {
        return Err(Error::format(
            OP,
            &p,
            format!("imgBrick must be images × h × w × 3, got {shape:?}"),
        ));
    }
    if let Some(&w) = wanted.iter().find(|&&w| w >= shape[0]) {
        let n = wanted.iter().filter(|&&x| x >= shape[0]).count();
        return Err(Error::format(
            OP,
            &p,
            format!("imgBrick has {} images; {n} of the trials' images are beyond it (the first: 73k index {w})", shape[0]),
        ));
    }
    let decoded: Vec<Rgb8> = wanted
        .iter()
        .map(|&w| {
            let (s, v) = h.read_f64_at("imgBrick", w)?;
            let img = Rgb8 {
                height: s[0],
                width: s[1],
                pixels: v.into_iter().map(|x| x as u8).collect(),
            };
            Ok(match opts.size {
                Some((hh, ww)) => crate::io::images::resize(&img, ww, hh, opts.filter),
                None => img,
            })
        })
        .collect::<Result<_>>()?;
    let ids = wanted.iter().map(|w| w.to_string()).collect();
    images::from_rgb(OP, ids, &decoded, &|i| format!("imgBrick[{}]", wanted[i]))
}

pub fn load(root: &Path, opts: &NsdOptions) -> Result<Dataset> {
    let layout = Layout {
        root: root.to_path_buf(),
        subject: opts.subject,
    };
    if !(1..=8).contains(&opts.subject) {
        return Err(Error::invalid(
            OP,
            format!("subject must be 1..8, got {}", opts.subject),
        ));
    }
    if !layout.design().exists() {
        return Err(missing(
            OP,
            &layout.design(),
            "NSD's design file (masterordering, subjectim, sharedix)",
        ));
    }
    let (sessions, files) = session_files(&layout, opts)?;
    let design = design(&layout, &sessions)?;

    // The selection and the atlases' labels inside it.
    let roi_path = layout.roi(&opts.roi);
    let sel = load_volume(
        &roi_path,
        &format!("the ROI '{}' selecting the voxels", opts.roi),
    )?;
    let positive = crate::tensor::tc(OP, sel.data.0.f_gt(0.0))?;
    let mask = Mask::from_tensor(OP, &crate::tensor::Tensor(positive), sel.affine)?;
    if mask.count() == 0 {
        return Err(Error::format(
            OP,
            &roi_path,
            "no voxel > 0: nothing selected",
        ));
    }
    let mut rois: Vec<(String, Mask)> = vec![(opts.roi.clone(), mask.clone())];
    for atlas in &opts.atlases {
        let p = layout.roi(atlas);
        let vol = load_volume(&p, &format!("the atlas '{atlas}'"))?;
        mask.check_grid(
            OP,
            &format!("atlas '{atlas}' ({})", p.display()),
            &vol.shape(),
            &vol.affine,
        )?;
        let mut merged: Vec<(String, tch::Tensor)> = Vec::new();
        for (k, name) in label_names(&layout, atlas)? {
            let inside = crate::tensor::tc(OP, vol.data.0.f_eq(k as f64))?;
            let inside = crate::tensor::tc(OP, inside.f_logical_and(&mask.data.0))?;
            let m = Mask::from_tensor(
                OP,
                &crate::tensor::Tensor(inside.shallow_clone()),
                mask.affine,
            )?;
            if m.count() == 0 {
                continue;
            }
            // prf-visualrois splits V1–V3 into ventral and dorsal parts;
            // their union is the area (V1 = V1v ∪ V1d).
            if let Some(area) = name.strip_suffix('v').or_else(|| name.strip_suffix('d')) {
                if matches!(area, "V1" | "V2" | "V3") {
                    match merged.iter_mut().find(|(n, _)| n == area) {
                        Some((_, t)) => *t = crate::tensor::tc(OP, t.f_logical_or(&inside))?,
                        None => merged.push((area.to_string(), inside)),
                    }
                }
            }
            if rois.iter().any(|(n, _)| *n == name) {
                return Err(Error::format(
                    OP,
                    &p,
                    format!("ROI '{name}' is defined twice"),
                ));
            }
            rois.push((name, m));
        }
        for (name, t) in merged {
            if !rois.iter().any(|(n, _)| *n == name) {
                rois.push((
                    name,
                    Mask::from_tensor(OP, &crate::tensor::Tensor(t), mask.affine)?,
                ));
            }
        }
    }

    let betas = read_betas(&mask, &files)?;
    let ids: Vec<String> = design.images.iter().map(|i| i.to_string()).collect();
    let splits: Vec<&'static str> = design
        .images
        .iter()
        .map(|i| {
            if design.shared.contains(i) {
                "test"
            } else {
                "train"
            }
        })
        .collect();
    let trials = super::trials(ids, splits);
    let (order, index) = super::unique_stimuli(&trials);
    let wanted: Vec<usize> = order.iter().map(|s| s.parse().unwrap_or(0)).collect();
    let mut ds = super::dataset(
        format!("nsd-subj{:02}", opts.subject),
        root,
        betas,
        trials,
        mask,
        rois,
    );
    if opts.captions {
        let caps = captions(&layout, &wanted)?;
        ds.captions = Some(
            index
                .iter()
                .map(|&i| {
                    let c = &caps[&wanted[i as usize]];
                    if opts.all_captions {
                        Cell::Texts(c.clone())
                    } else {
                        Cell::Text(c[0].clone())
                    }
                })
                .collect(),
        );
    }
    if opts.images.load {
        ds.stimuli = Some(brick_images(&layout, &wanted, &opts.images)?);
        ds.image_index = index;
    }
    Ok(ds)
}
