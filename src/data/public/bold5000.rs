//! BOLD5000 (Chang et al. 2019) in its published layout: per-subject ROI
//! betas `ROIs/CSI{N}/mat/CSI{N}_ROIs_TR{tr}.mat` (left and right EarlyVis,
//! LOC, OPA, PPA, RSC; trials × voxels each), the presentation order
//! `ROIs/stim_lists/CSI0{N}_stim_lists.txt`, the 113 repeated images
//! (`BOLD5000_Stimuli/Scene_Stimuli/repeated_stimuli_113_list.txt`, the test
//! set, as MinD-Vis uses it) and the images under
//! `BOLD5000_Stimuli/Scene_Stimuli/Presented_Stimuli/{COCO,ImageNet,Scene}/`.
//! The ROI files carry no voxel coordinates, so the voxels lie on a line
//! grid (ROI after ROI, in the file's column order).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::{line_mask, line_subset, missing, Betas, ImageOptions};
use crate::data::dataset::{self, Dataset};
use crate::data::images::{self, LoadOptions};
use crate::error::{Error, Result};
use crate::io::mat;

const OP: &str = "load_bold5000";
pub const AREAS: &[&str] = &["EarlyVis", "LOC", "OPA", "PPA", "RSC"];
pub const TRS: &[&str] = &["1", "2", "3", "4", "5", "34"];

#[derive(Debug, Clone)]
pub struct Bold5000Options {
    pub subject: usize,
    /// Which TR's betas: 1–5, or 34 (the mean of TRs 3 and 4).
    pub tr: String,
    pub images: ImageOptions,
    pub drop_nan_voxels: bool,
}

pub struct Layout {
    pub root: PathBuf,
    pub subject: usize,
}

impl Layout {
    pub fn rois(&self, tr: &str) -> PathBuf {
        let n = self.subject;
        self.root
            .join(format!("ROIs/CSI{n}/mat/CSI{n}_ROIs_TR{tr}.mat"))
    }
    pub fn stim_list(&self) -> PathBuf {
        self.root.join(format!(
            "ROIs/stim_lists/CSI{:02}_stim_lists.txt",
            self.subject
        ))
    }
    pub fn repeated(&self) -> PathBuf {
        self.root
            .join("BOLD5000_Stimuli/Scene_Stimuli/repeated_stimuli_113_list.txt")
    }
    pub fn presented(&self) -> PathBuf {
        self.root
            .join("BOLD5000_Stimuli/Scene_Stimuli/Presented_Stimuli")
    }
}

fn read_lines(path: &Path, what: &str) -> Result<Vec<String>> {
    if !path.exists() {
        return Err(missing(OP, path, what));
    }
    let text = crate::io::read_text(OP, path)?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

fn stem(name: &str) -> String {
    Path::new(name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn load(root: &Path, opts: &Bold5000Options) -> Result<Dataset> {
    if !(1..=4).contains(&opts.subject) {
        return Err(Error::invalid(
            OP,
            format!("subject must be 1..4 (CSI1–CSI4), got {}", opts.subject),
        ));
    }
    if !TRS.contains(&opts.tr.as_str()) {
        return Err(Error::invalid(
            OP,
            format!("tr must be one of {}, got '{}'", TRS.join(", "), opts.tr),
        ));
    }
    let layout = Layout {
        root: root.to_path_buf(),
        subject: opts.subject,
    };
    let order = read_lines(&layout.stim_list(), "the presentation order of the trials")?;
    let repeated: HashSet<String> =
        read_lines(&layout.repeated(), "the 113 repeated (test) images")?
            .into_iter()
            .collect();
    let mat_path = layout.rois(&opts.tr);
    if !mat_path.exists() {
        return Err(missing(
            OP,
            &mat_path,
            "the subject's ROI betas (LH/RH × EarlyVis, LOC, OPA, PPA, RSC)",
        ));
    }
    let names: Vec<String> = AREAS
        .iter()
        .flat_map(|a| [format!("LH{a}"), format!("RH{a}")])
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let arrays = mat::load_vars(OP, &mat_path, &refs)?;
    let n_trials = order.len();
    for (n, a) in names.iter().zip(&arrays) {
        if a.dims.len() != 2 || a.dims[0] != n_trials {
            return Err(Error::format(
                OP,
                &mat_path,
                format!(
                    "{n} is {:?}; expected trials × voxels with {n_trials} trials (the lines of {})",
                    a.dims,
                    layout.stim_list().display()
                ),
            ));
        }
    }
    let n_vox: usize = arrays.iter().map(|a| a.dims[1]).sum();
    let mask = line_mask(OP, n_vox)?;
    let mut betas = Betas::zeros(OP, n_trials, n_vox)?;
    let mut rois = Vec::new();
    {
        let out = betas.values();
        let mut start = 0;
        for (n, a) in names.iter().zip(&arrays) {
            let w = a.dims[1];
            for t in 0..n_trials {
                for v in 0..w {
                    out[t * n_vox + start + v] = a.at(t, v) as f32;
                }
            }
            rois.push((n.clone(), (start..start + w).collect::<Vec<usize>>()));
            start += w;
        }
    }
    // Per hemisphere and both together (EarlyVis = LHEarlyVis ∪ RHEarlyVis).
    let mut roi_masks = Vec::new();
    for a in AREAS {
        let mut both = Vec::new();
        for (n, cols) in &rois {
            if n[2..] == **a {
                both.extend(cols.iter().copied());
            }
        }
        if !both.is_empty() {
            roi_masks.push((a.to_string(), line_subset(OP, n_vox, &both)?));
        }
    }
    for (n, cols) in &rois {
        if !cols.is_empty() {
            roi_masks.push((n.clone(), line_subset(OP, n_vox, cols)?));
        }
    }
    let ids: Vec<String> = order.iter().map(|n| stem(n)).collect();
    let splits = order
        .iter()
        .map(|n| {
            if repeated.contains(n) {
                "test"
            } else {
                "train"
            }
        })
        .collect();
    let trials = super::trials(ids, splits);
    let (mask, betas) = dataset::check_nan(
        OP,
        &mat_path,
        mask,
        betas.into_tensor(),
        opts.drop_nan_voxels,
    )?;
    let mut ds = super::dataset(
        format!("bold5000-CSI{}", opts.subject),
        root,
        betas,
        trials,
        mask,
        roi_masks,
    );

    if opts.images.load {
        let dir = layout.presented();
        let mut files: HashMap<String, PathBuf> = HashMap::new();
        for sub in ["COCO", "ImageNet", "Scene"] {
            let d = dir.join(sub);
            if let Ok(rd) = std::fs::read_dir(&d) {
                for e in rd.flatten() {
                    files.insert(e.file_name().to_string_lossy().into_owned(), e.path());
                }
            }
        }
        let (unique, index) = super::unique_stimuli(&ds.trials);
        let by_id: HashMap<String, &String> = order.iter().map(|n| (stem(n), n)).collect();
        let mut paths = Vec::new();
        for id in &unique {
            let name = by_id[id];
            match files.get(name.as_str()) {
                Some(p) => paths.push(p.clone()),
                None => {
                    return Err(Error::format(
                        OP,
                        &dir,
                        format!(
                            "no image {name} (listed in {}) under COCO/, ImageNet/ or Scene/",
                            layout.stim_list().display()
                        ),
                    ))
                }
            }
        }
        ds.stimuli = Some(images::load(
            OP,
            &paths,
            LoadOptions {
                size: opts.images.size,
                filter: opts.images.filter,
            },
        )?);
        ds.image_index = index;
    }
    Ok(ds)
}
