//! GOD (bdpy BData), NSD and BOLD5000 read in place: the same matrices,
//! splits, ROI selections, image ids, images and captions as the reference
//! tools read from the same files (tests/fixtures/datasets/make_datasets.py
//! wrote them with bdpy, h5py, scipy and nibabel, and stored what those
//! tools read back in references.json); `ds.save` converts into voxlab's
//! layout; bad input is an error naming the file.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{engine_in, eval_in, fixture};
use voxlab::data::dataset::{Cell, Dataset};
use voxlab::data::public::bold5000::{self, Bold5000Options};
use voxlab::data::public::god::{self, GodOptions, TestSet};
use voxlab::data::public::nsd::{self, BetasFormat, NsdOptions};
use voxlab::data::public::ImageOptions;
use voxlab::io::images::Filter;

fn refs() -> Value {
    let p = fixture("datasets/references.json");
    serde_json::from_str(&std::fs::read_to_string(p).expect("references.json")).expect("json")
}

fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_f64().unwrap_or(f64::NAN))
                .collect()
        })
        .collect()
}

fn rows_of(t: &voxlab::tensor::Tensor) -> Vec<Vec<f64>> {
    let s = t.shape();
    let v = t.to_f64_vec("test").expect("values");
    if s[1] == 0 {
        return vec![Vec::new(); s[0] as usize];
    }
    v.chunks(s[1] as usize).map(|c| c.to_vec()).collect()
}

fn assert_close(got: &[Vec<f64>], want: &[Vec<f64>], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: rows");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{what}: columns of row {i}");
        for (j, (a, b)) in g.iter().zip(w).enumerate() {
            assert!((a - b).abs() <= tol, "{what}[{i}][{j}]: {a} vs {b}");
        }
    }
}

fn no_images() -> ImageOptions {
    ImageOptions {
        load: false,
        size: None,
        filter: Filter::Bicubic,
    }
}

fn with_images() -> ImageOptions {
    ImageOptions {
        load: true,
        ..no_images()
    }
}

fn god_opts(images: Option<PathBuf>) -> GodOptions {
    GodOptions {
        images: if images.is_some() {
            with_images()
        } else {
            no_images()
        },
        images_dir: images,
        test: TestSet::Perception,
        voxels: "VoxelData".into(),
        drop_nan_voxels: false,
    }
}

/// Trial images as H×W×3 bytes (what PIL decodes), per trial.
fn trial_pixels(ds: &Dataset) -> Vec<Vec<f64>> {
    let set = ds.trial_images("test").expect("images").expect("loaded");
    rows_of(&voxlab::tensor::Tensor(
        set.data
            .0
            .permute([0, 2, 3, 1])
            .reshape([set.ids.len() as i64, -1]),
    ))
    .into_iter()
    .map(|r| r.into_iter().map(|x| (x * 255.0).round()).collect())
    .collect()
}

fn flat_image(v: &Value) -> Vec<f64> {
    let mut out = Vec::new();
    for row in v.as_array().expect("rows") {
        for px in row.as_array().expect("pixels") {
            for c in px.as_array().expect("rgb") {
                out.push(c.as_f64().unwrap_or(-1.0));
            }
        }
    }
    out
}

#[test]
fn god_matches_bdpy() {
    let r = &refs()["god"];
    let ds = god::load(
        &[fixture("datasets/god/Subject1.h5")],
        &god_opts(Some(fixture("datasets/god/images"))),
    )
    .expect("load_god");
    // bdpy's samples (all DataTypes) → the perception split; voxels in the
    // grid's C order over (x, y, z).
    let datatype: Vec<f64> = r["DataType"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let kept: Vec<usize> = (0..datatype.len())
        .filter(|&i| datatype[i] == 1.0 || datatype[i] == 2.0)
        .collect();
    let xyz = matrix(&r["voxel_xyz"]);
    let mut order: Vec<usize> = (0..xyz.len()).collect();
    order.sort_by(|&a, &b| xyz[a].partial_cmp(&xyz[b]).unwrap());
    let x = matrix(&r["VoxelData"]);
    let want: Vec<Vec<f64>> = kept
        .iter()
        .map(|&s| order.iter().map(|&v| x[s][v]).collect())
        .collect();
    assert_close(&rows_of(&ds.betas), &want, 1e-6, "GOD betas");
    let splits: Vec<&str> = ds.trials.iter().map(|t| t.split.as_str()).collect();
    let want_splits: Vec<&str> = kept
        .iter()
        .map(|&s| if datatype[s] == 1.0 { "train" } else { "test" })
        .collect();
    assert_eq!(splits, want_splits);
    let ids: Vec<f64> = r["stimulus_id"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    for (t, &s) in ds.trials.iter().zip(&kept) {
        let key = format!("{:.6}", ids[s]);
        assert_eq!(
            Some(t.stimulus.as_str()),
            r["image_names"][&key].as_str(),
            "sample {s}"
        );
    }
    // Every ROI: bdpy's selection, in the same column order.
    for (name, sel) in r["rois"].as_object().unwrap() {
        let sel = matrix(sel);
        let got = rows_of(&ds.roi("test", name).expect("roi"));
        // bdpy's ROI columns are in file order; ours in grid order: compare
        // each as the set of columns (sorted by their values in row 0).
        let cols = |m: &[Vec<f64>], rows: &[usize]| -> Vec<Vec<f64>> {
            let n = m.first().map_or(0, |r| r.len());
            let mut c: Vec<Vec<f64>> = (0..n)
                .map(|j| rows.iter().map(|&i| m[i][j]).collect())
                .collect();
            c.sort_by(|a, b| a.partial_cmp(b).unwrap());
            c
        };
        let all: Vec<usize> = (0..got.len()).collect();
        assert_close(
            &cols(&got, &all),
            &cols(&sel, &kept),
            1e-6,
            &format!("ROI {name}"),
        );
    }
    // Images, as PIL decodes the JPEGs (decoders may differ by a level).
    let px = trial_pixels(&ds);
    for (t, p) in ds.trials.iter().zip(&px) {
        let want = flat_image(&r["images"][&t.stimulus]);
        assert_close(&[p.clone()], &[want], 2.0, &format!("image {}", t.stimulus));
    }
    assert_eq!(
        ds.labels.as_ref().unwrap()[0],
        Cell::Text("n01518878".into()),
        "labels are synsets"
    );
    // Imagery as the test split.
    let im = god::load(
        &[fixture("datasets/god/Subject1.h5")],
        &GodOptions {
            test: TestSet::Imagery,
            ..god_opts(None)
        },
    )
    .expect("imagery");
    assert_eq!(im.trials.iter().filter(|t| t.split == "test").count(), 4);
}

#[test]
fn god_old_layout_with_vmap() {
    let r = &refs()["god"]["old"];
    let ds =
        god::load(&[fixture("datasets/god/old_layout.h5")], &god_opts(None)).expect("old layout");
    assert_close(
        &rows_of(&ds.betas),
        &matrix(&r["VoxelData"]),
        1e-6,
        "betas (file order: no coordinates)",
    );
    assert_close(
        &rows_of(&ds.roi("test", "V1").unwrap()),
        &matrix(&r["V1"]),
        1e-6,
        "V1",
    );
    let labels: Vec<&str> = r["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    let ids: Vec<&str> = ds.trials.iter().map(|t| t.stimulus.as_str()).collect();
    assert_eq!(ids, labels, "Label through its vmap");
    let splits: Vec<&str> = ds.trials.iter().map(|t| t.split.as_str()).collect();
    assert_eq!(splits, ["train", "train", "train", "train", "test", "test"]);
}

fn nsd_opts(sessions: Option<Vec<usize>>) -> NsdOptions {
    NsdOptions {
        subject: 1,
        sessions,
        roi: "nsdgeneral".into(),
        atlases: vec!["streams".into(), "prf-visualrois".into()],
        betas: BetasFormat::Auto,
        images: with_images(),
        captions: true,
        all_captions: true,
    }
}

#[test]
fn nsd_matches_the_nibabel_loop() {
    let r = &refs()["nsd"];
    let ds = nsd::load(&fixture("datasets/nsd"), &nsd_opts(None)).expect("load_nsd");
    let want = voxlab::io::npy::load_npy(&fixture("datasets/nsd_betas.npy")).expect("npy");
    assert_eq!(ds.betas.shape(), want.shape());
    assert_close(&rows_of(&ds.betas), &rows_of(&want), 1e-6, "NSD betas");
    let ids: Vec<String> = r["nsd_id"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap().to_string())
        .collect();
    let got: Vec<String> = ds.trials.iter().map(|t| t.stimulus.clone()).collect();
    assert_eq!(got, ids, "each trial's 73k image");
    let splits: Vec<&str> = ds.trials.iter().map(|t| t.split.as_str()).collect();
    let want_splits: Vec<&str> = r["split"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(splits, want_splits, "shared images are the test split");
    assert_eq!(ds.mask.count() as u64, r["n_voxels"].as_u64().unwrap());
    let roi_cols = |name: &str| {
        voxlab::data::dataset::roi_columns(
            &ds.mask,
            &ds.rois.iter().find(|(n, _)| n == name).unwrap().1,
        )
        .unwrap()
    };
    let want_v1: Vec<i64> = r["V1_cols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();
    assert_eq!(roi_cols("V1"), want_v1, "V1 = V1v ∪ V1d inside nsdgeneral");
    let want_ventral: Vec<i64> = r["streams_ventral_cols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();
    assert_eq!(roi_cols("ventral"), want_ventral);
    assert_eq!(
        roi_cols("early").len() as u64,
        r["streams_early"].as_u64().unwrap()
    );
    let px = trial_pixels(&ds);
    for (t, p) in ds.trials.iter().zip(&px).step_by(97) {
        assert_eq!(
            p,
            &flat_image(&r["images"][&t.stimulus]),
            "imgBrick row {}",
            t.stimulus
        );
    }
    for (t, c) in ds
        .trials
        .iter()
        .zip(ds.captions.as_ref().unwrap())
        .step_by(89)
    {
        let want: Vec<String> = r["captions"][&t.stimulus]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect();
        assert_eq!(c, &Cell::Texts(want), "captions of {}", t.stimulus);
    }
    // The .hdf5 copy of session 2 reads as the .nii.gz does.
    let h5 = nsd::load(
        &fixture("datasets/nsd"),
        &NsdOptions {
            betas: BetasFormat::Hdf5,
            images: no_images(),
            captions: false,
            ..nsd_opts(Some(vec![2]))
        },
    )
    .expect("hdf5 betas");
    assert_close(
        &rows_of(&h5.betas),
        &rows_of(&want)[750..],
        1e-6,
        "hdf5 session 2",
    );
}

#[test]
fn bold5000_matches_scipy() {
    let r = &refs()["bold5000"];
    let ds = bold5000::load(
        &fixture("datasets/bold5000"),
        &Bold5000Options {
            subject: 1,
            tr: "34".into(),
            images: with_images(),
            drop_nan_voxels: false,
        },
    )
    .expect("load_bold5000");
    for (name, m) in r["rois"].as_object().unwrap() {
        assert_close(
            &rows_of(&ds.roi("test", name).unwrap()),
            &matrix(m),
            1e-6,
            name,
        );
    }
    let early = rows_of(&ds.roi("test", "EarlyVis").unwrap());
    let lh = matrix(&r["rois"]["LHEarlyVis"]);
    assert_close(
        &[early[0][..lh[0].len()].to_vec()],
        &[lh[0].clone()],
        1e-6,
        "EarlyVis = LH then RH",
    );
    let ids: Vec<&str> = ds.trials.iter().map(|t| t.stimulus.as_str()).collect();
    let want: Vec<&str> = r["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(ids, want);
    let splits: Vec<&str> = ds.trials.iter().map(|t| t.split.as_str()).collect();
    let want: Vec<&str> = r["split"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(splits, want, "the repeated images are the test split");
    for (t, p) in ds.trials.iter().zip(&trial_pixels(&ds)) {
        assert_close(
            &[p.clone()],
            &[flat_image(&r["images"][&t.stimulus])],
            2.0,
            &t.stimulus,
        );
    }
}

/// Every paper script reads `--set data=DIR` through load_dataset: the
/// public layouts load from their folders, and `ds.save` converts them into
/// voxlab's layout, which loads back the same.
#[test]
fn load_dataset_detects_and_save_converts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let f = |p: &str| fixture(p).display().to_string();
    let script = format!(
        r#"
        let out = [];
        for p in ["{god}", "{nsd}", "{nsd_subj}", "{bold}"] {{
            let ds = load_dataset(p, #{{image_size: 4}});
            let back = load_dataset(ds.save("converted"), #{{image_size: 4}});
            let same_rois = 0.0;
            for k in ds.rois.keys() {{
                let d = (ds.roi(k) - back.roi(k)).abs().max().item();
                if d > same_rois {{ same_rois = d; }}
            }}
            out.push([ds.len, (ds.betas - back.betas).abs().max().item(), ds.trials == back.trials,
                      same_rois, ds.rois.keys() == back.rois.keys(),
                      (ds.images.data - back.images.data).abs().max().item(), ds.test().average_repeats().len]);
        }}
        out"#,
        god = f("datasets/god/Subject1.h5"),
        nsd = f("datasets/nsd"),
        nsd_subj = f("datasets/nsd/nsddata_betas/ppdata/subj01"),
        bold = f("datasets/bold5000"),
    );
    let out = eval_in(&vox, &script).expect("script");
    let rows = out.into_array().unwrap();
    let expect_len = [12, 1500, 1500, 14];
    for (row, n) in rows.iter().zip(expect_len) {
        let v = row.clone().into_array().unwrap();
        assert_eq!(v[0].as_int().unwrap(), n, "{v:?}");
        assert!(v[1].as_float().unwrap() < 1e-6, "betas survive save: {v:?}");
        assert!(v[2].as_bool().unwrap(), "trials survive save");
        assert!(v[3].as_float().unwrap() < 1e-6, "ROIs survive save");
        assert!(v[4].as_bool().unwrap(), "ROI names survive save");
        assert!(
            v[5].as_float().unwrap() < 1e-6,
            "images survive save (8-bit PNG)"
        );
        assert!(v[6].as_int().unwrap() > 0);
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let q = to.join(e.file_name());
        if p.is_dir() {
            copy_tree(&p, &q);
        } else {
            std::fs::copy(&p, &q).unwrap();
        }
    }
}

fn err_text<T>(r: voxlab::error::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "{msg:?} should mention {p:?}");
    }
}

#[test]
fn nsd_bad_input_names_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("nsd");
    copy_tree(&fixture("datasets/nsd"), &root);
    let quiet = || NsdOptions {
        images: no_images(),
        captions: false,
        ..nsd_opts(None)
    };
    // A session that is not there.
    let e = err_text(nsd::load(
        &root,
        &NsdOptions {
            sessions: Some(vec![1, 3]),
            ..quiet()
        },
    ));
    assert_mentions(
        &e,
        &[
            "load_nsd",
            "betas_session03.nii.gz",
            "session 3",
            "750 trials",
        ],
    );
    // A session beyond the design file.
    let b = root.join("nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR");
    std::fs::copy(
        b.join("betas_session01.nii.gz"),
        b.join("betas_session03.nii.gz"),
    )
    .unwrap();
    let e = err_text(nsd::load(
        &root,
        &NsdOptions {
            sessions: Some(vec![3]),
            ..quiet()
        },
    ));
    assert_mentions(
        &e,
        &[
            "nsd_expdesign.mat",
            "masterordering has 1500 trials",
            "session 3",
        ],
    );
    // Trial counts disagreeing with the design (749 volumes).
    let roi = voxlab::data::Volume::load(
        &root.join("nsddata/ppdata/subj01/func1pt8mm/roi/nsdgeneral.nii.gz"),
        false,
    )
    .unwrap();
    let dims = [4usize, 3, 3, 749];
    voxlab::io::nifti::write_nifti(
        &b.join("betas_session01.nii.gz"),
        &dims,
        &vec![0f32; dims.iter().product()],
        roi.affine,
        &Default::default(),
    )
    .unwrap();
    let e = err_text(nsd::load(
        &root,
        &NsdOptions {
            sessions: Some(vec![1]),
            ..quiet()
        },
    ));
    assert_mentions(&e, &["betas_session01.nii.gz", "749 trials", "750"]);
    // A missing ROI file.
    std::fs::remove_file(root.join("nsddata/ppdata/subj01/func1pt8mm/roi/nsdgeneral.nii.gz"))
        .unwrap();
    let e = err_text(nsd::load(
        &root,
        &NsdOptions {
            sessions: Some(vec![2]),
            ..quiet()
        },
    ));
    assert_mentions(&e, &["nsdgeneral.nii.gz", "ROI 'nsdgeneral'"]);
    // A stimulus file of another layout.
    let mut root2 = dir.path().join("nsd2");
    copy_tree(&fixture("datasets/nsd"), &root2);
    std::fs::copy(
        fixture("datasets/god/Subject1.h5"),
        root2.join("nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5"),
    )
    .unwrap();
    let e = err_text(nsd::load(
        &root2,
        &NsdOptions {
            sessions: Some(vec![1]),
            images: with_images(),
            ..quiet()
        },
    ));
    assert_mentions(&e, &["nsd_stimuli.hdf5", "imgBrick", "metadata/"]);
    // Captions missing for some images.
    root2.push("nsddata_stimuli/stimuli/nsd/annotations/captions_val2017.json");
    std::fs::write(&root2, r#"{"annotations": []}"#).unwrap();
    let e = err_text(nsd::load(
        &dir.path().join("nsd2"),
        &NsdOptions {
            sessions: Some(vec![1]),
            captions: true,
            ..quiet()
        },
    ));
    assert_mentions(&e, &["captions_val2017.json", "no caption for COCO image"]);
}

#[test]
fn god_and_bold5000_bad_input_names_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    // HDF5 of another layout, and a file that is not HDF5.
    let e = err_text(god::load(
        &[fixture(
            "datasets/nsd/nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5",
        )],
        &god_opts(None),
    ));
    assert_mentions(
        &e,
        &[
            "load_god",
            "nsd_stimuli.hdf5",
            "not a bdpy BData file",
            "imgBrick",
        ],
    );
    let e = err_text(god::load(
        &[fixture("datasets/references.json")],
        &god_opts(None),
    ));
    assert_mentions(&e, &["references.json", "not an HDF5 file"]);
    let e = err_text(god::load(
        &[dir.path().join("Subject9.h5")],
        &god_opts(None),
    ));
    assert_mentions(&e, &["Subject9.h5", "BData"]);
    // Images missing for some trials.
    let imgs = dir.path().join("images");
    copy_tree(&fixture("datasets/god/images"), &imgs);
    std::fs::remove_file(imgs.join("test/n01858441_11077.JPEG")).unwrap();
    let e = err_text(god::load(
        &[fixture("datasets/god/Subject1.h5")],
        &god_opts(Some(imgs.clone())),
    ));
    assert_mentions(&e, &["n01858441_11077", "3 trials", "images"]);

    let root = dir.path().join("bold5000");
    copy_tree(&fixture("datasets/bold5000"), &root);
    let opts = || Bold5000Options {
        subject: 1,
        tr: "34".into(),
        images: with_images(),
        drop_nan_voxels: false,
    };
    // A missing TR file.
    let e = err_text(bold5000::load(
        &root,
        &Bold5000Options {
            tr: "2".into(),
            ..opts()
        },
    ));
    assert_mentions(&e, &["CSI1_ROIs_TR2.mat", "ROI betas"]);
    // An image missing.
    let list = std::fs::read_to_string(root.join("ROIs/stim_lists/CSI01_stim_lists.txt")).unwrap();
    let first = list.lines().next().unwrap().to_string();
    for sub in ["COCO", "ImageNet", "Scene"] {
        let _ = std::fs::remove_file(
            root.join("BOLD5000_Stimuli/Scene_Stimuli/Presented_Stimuli")
                .join(sub)
                .join(&first),
        );
    }
    let e = err_text(bold5000::load(&root, &opts()));
    assert_mentions(&e, &[&first, "Presented_Stimuli"]);
    // ROI matrices whose trials disagree with the stimulus list.
    let short: Vec<&str> = list.lines().skip(1).collect();
    std::fs::write(
        root.join("ROIs/stim_lists/CSI01_stim_lists.txt"),
        short.join("\n"),
    )
    .unwrap();
    let e = err_text(bold5000::load(&root, &opts()));
    assert_mentions(
        &e,
        &["CSI1_ROIs_TR34.mat", "13 trials", "CSI01_stim_lists.txt"],
    );
}

#[test]
fn nsd_first_caption_by_default() {
    let r = &refs()["nsd"];
    let ds = nsd::load(
        &fixture("datasets/nsd"),
        &NsdOptions {
            all_captions: false,
            images: no_images(),
            ..nsd_opts(Some(vec![1]))
        },
    )
    .expect("load_nsd");
    let t = &ds.trials[0];
    let first = r["captions"][&t.stimulus][0].as_str().unwrap().to_string();
    assert_eq!(ds.captions.as_ref().unwrap()[0], Cell::Text(first));
}

/// A MATLAB v7.3 file (HDF5 behind a 512-byte header, variables stored
/// transposed) gives the same variables as the v5 file scipy wrote.
#[test]
fn mat_v73_reads_as_v5() {
    let names = ["masterordering", "subjectim", "sharedix"];
    let v5 = voxlab::io::mat::load_vars(
        "test",
        &fixture("datasets/nsd/nsddata/experiments/nsd/nsd_expdesign.mat"),
        &names,
    )
    .expect("v5");
    let v73 = voxlab::io::mat::load_vars(
        "test",
        &fixture("datasets/nsd/nsd_expdesign_v73.mat"),
        &names,
    )
    .expect("v7.3");
    for ((a, b), n) in v5.iter().zip(&v73).zip(names) {
        assert_eq!(a.dims, b.dims, "{n}: MATLAB size");
        assert_eq!(a.data, b.data, "{n}: values in column-major order");
    }
    assert_eq!(v5[1].dims, [8, 10]);
    let e = err_text(voxlab::io::mat::load_vars(
        "test",
        &fixture("datasets/nsd/nsd_expdesign_v73.mat"),
        &["nope"],
    ));
    assert_mentions(
        &e,
        &[
            "nsd_expdesign_v73.mat",
            "no variable 'nope'",
            "masterordering",
        ],
    );
}
