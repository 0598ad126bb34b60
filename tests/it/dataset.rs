//! load_dataset: the layout of docs/dataset-layout.md, alignment of every
//! trial-aligned part, and validation errors that name the file and row.

use crate::common::{engine_in, eval_in};

/// Writes a small dataset into `<out_dir>/ds` (7 trials: 3 train stimuli,
/// 2 test stimuli shown twice; 5 stimulus images; a mask; two ROIs).
const MAKE: &str = r#"
    set_seed(7);
    let d = out_dir() + "/ds";
    let bold = randn([4, 4, 3, 7]);
    save_nifti(bold, d + "/betas.nii.gz");
    let m = zeros([4, 4, 3]);
    let mask = tensor([[[1, 1, 1], [1, 1, 1], [0, 0, 0], [1, 0, 1]],
                       [[1, 1, 1], [1, 1, 1], [0, 0, 0], [1, 0, 1]],
                       [[0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0]],
                       [[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1]]]);
    save_nifti(mask, d + "/mask.nii.gz");
    let v1 = tensor([[[1, 1, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]],
                     [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]],
                     [[0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0]],
                     [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 1]]]);
    save_nifti(v1, d + "/rois/V1.nii.gz");
    save_nifti(mask * 0 + v1, d + "/rois/V1copy.nii.gz");
    save_csv(#{stimulus: ["s1", "s2", "s3", "t1", "t2", "t1", "t2"],
               split: ["train", "train", "train", "test", "test", "test", "test"]}, d + "/trials.csv");
    save_images(image_set(rand([5, 3, 8, 8]), ["s1", "s2", "s3", "t1", "t2"]), d + "/stimuli");
    save_json(#{s1: "a red square", s2: "a blue circle", s3: ["a cat", "a small cat"], t1: "two dogs", t2: "a tree"}, d + "/captions.json");
    save_csv(#{stimulus: ["t2", "t1", "s3", "s2", "s1"], label: [4, 3, 2, 1, 0]}, d + "/labels.csv");
    save_csv(#{stimulus: ["s1", "s2", "s3", "t1", "t2"], valence: [1.5, 2, 3, 4, 5], arousal: [9, 8, 7, 6, 5]}, d + "/ratings.csv");
    let manifest = #{format: 1, name: "tiny", betas: "betas.nii.gz", mask: "mask.nii.gz",
        rois: #{V1: "rois/V1.nii.gz"}, trials: "trials.csv", stimuli: "stimuli",
        captions: "captions.json", labels: "labels.csv", ratings: "ratings.csv"};
    save_json(manifest, d + "/dataset.json");
"#;

#[test]
fn dataset_parts_stay_aligned() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let script = format!(
        r#"{MAKE}
        let ds = load_dataset(d);
        let v = load_nifti(d + "/betas.nii.gz");
        let m = load_mask(d + "/mask.nii.gz");
        let x = apply_mask(v, m);
        let te = ds.test().average_repeats();
        let manual = (x.rows([3]) + x.rows([5])) / 2.0;
        let v1 = apply_mask(v, load_mask(d + "/rois/V1.nii.gz"));
        [ds.to_string(), ds.len, ds.betas.shape, (ds.betas - x).abs().max().item(),
         ds.train().len, te.trials, (te.betas.rows([0]) - manual).abs().max().item(),
         (ds.roi("V1") - v1).abs().max().item(), ds.images.ids, te.images.ids,
         (ds.images.data.rows([5]) - ds.images.data.rows([3])).abs().max().item(),
         te.captions, ds.train().labels, to_array(ds.ratings.valence), ds.rois.V1.count,
         ds.select([-1, 0]).trials.stimulus]"#
    );
    let out = eval_in(&vox, &script).expect("dataset");
    let p = out.into_array().expect("array");
    let show = |i: usize| voxlab::cli::show(&p[i]);
    assert_eq!(
        p[0].clone().into_string().expect("text"),
        "Dataset[tiny: 7 trials (3 train, 4 test); 29 voxels; 1 ROIs; 5 images 3×8×8]"
    );
    assert_eq!(show(1), "7");
    assert_eq!(show(2), "[7, 29]");
    assert_eq!(show(3), "0.0");
    assert_eq!(show(4), "3");
    assert_eq!(
        show(5),
        r#"#{repeat: [2, 2], split: ["test", "test"], stimulus: ["t1", "t2"]}"#
    );
    assert!(p[6].as_float().expect("avg") < 1e-6);
    assert_eq!(show(7), "0.0");
    assert_eq!(show(8), r#"["s1", "s2", "s3", "t1", "t2", "t1", "t2"]"#);
    assert_eq!(show(9), r#"["t1", "t2"]"#);
    assert_eq!(show(10), "0.0");
    assert_eq!(show(11), r#"["two dogs", "a tree"]"#);
    assert_eq!(show(12), "[0.0, 1.0, 2.0]");
    assert_eq!(show(13), "[1.5, 2.0, 3.0, 4.0, 5.0, 4.0, 5.0]");
    assert_eq!(show(14), "4");
    assert_eq!(show(15), r#"["t2", "s1"]"#);
}

fn load_error(edit: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    eval_in(&vox, &format!("{MAKE}\n{edit}\nload_dataset(d)")).expect_err("should fail")
}

#[test]
fn dataset_validation_names_file_and_row() {
    // Issue 15: infinite betas fail as NaN ones do; a text cell in a ratings
    // column is named instead of the column vanishing.
    let e = load_error(
        r#"let b = randn([4, 4, 3, 7]); b = b / (b - b + (arange(7) - 2).astype("f32")); save_nifti(b, d + "/betas.nii.gz");"#,
    );
    assert!(
        e.contains("voxels have infinite betas") && e.contains("trial row 3"),
        "{e}"
    );
    let e = load_error(
        r#"save_csv(#{stimulus: ["s1", "s2", "s3", "t1", "t2"], valence: [1.5, "high", 3, 4, 5]}, d + "/ratings.csv");"#,
    );
    assert!(
        e.contains("ratings.csv: row 2, column 'valence': \"high\" is not a number"),
        "{e}"
    );
    let e = load_error(r#"save_csv(#{stimulus: ["s1", "s2"]}, d + "/trials.csv");"#);
    assert!(
        e.contains("load_dataset:")
            && e.contains("trials.csv: 2 trial rows but")
            && e.contains("has 7 trials"),
        "{e}"
    );
    let e = load_error(
        r#"save_csv(#{stimulus: ["s1", "s2", "s3", "t1", "t2", "t1", "zz"]}, d + "/trials.csv");"#,
    );
    assert!(
        e.contains("trials.csv: row 8: stimulus 'zz' has no image in"),
        "{e}"
    );
    let e = load_error(r#"save_nifti(ones([4, 4, 3]), d + "/rois/V1.nii.gz"); "#);
    assert!(
        e.contains("dataset.json: ROI 'V1': 19 of its 48 voxels lie outside the brain mask"),
        "{e}"
    );
    let e = load_error(
        r#"let b = randn([4, 4, 3, 7]); b = (b - b) / (b - b + (arange(7) - 2).astype("f32")); save_nifti(b, d + "/betas.nii.gz");"#,
    );
    assert!(
        e.contains("betas.nii.gz: 29 voxels have NaN betas")
            && e.contains("trial row 3")
            && e.contains("#{nan: \"drop\"}"),
        "{e}"
    );
    let e = load_error(r#"save_json(#{trials: "trials.csv"}, d + "/dataset.json");"#);
    assert!(
        e.contains("dataset.json: the required part 'betas' is missing"),
        "{e}"
    );
    let e = load_error(
        r#"save_json(#{betas: "nope.nii", trials: "trials.csv"}, d + "/dataset.json");"#,
    );
    assert!(
        e.contains("dataset.json: 'betas' names") && e.contains("nope.nii, which does not exist"),
        "{e}"
    );
    let e = load_error(r#"save_json(#{s1: "x"}, d + "/captions.json");"#);
    assert!(
        e.contains("captions.json: no caption for stimulus 's2' (trial row 3)"),
        "{e}"
    );
}

#[test]
fn npy_betas_and_dropped_nan_voxels() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let out = eval_in(
        &vox,
        &format!(
            r#"{MAKE}
            let x = randn([7, 29]);
            let bad = x.cols([0, 1, 2]);
            save_npy(cat([x.cols([0, 1, 2]) / 0.0 * 0.0, x.cols(arange(3, 29))], 1), d + "/betas.npy");
            save_json(#{{betas: "betas.npy", mask: "mask.nii.gz", trials: "trials.csv", rois: #{{V1: "rois/V1.nii.gz"}}}}, d + "/dataset.json");
            let ds = load_dataset(d, #{{nan: "drop"}});
            [ds.betas.shape, ds.mask.count, (ds.betas - x.cols(arange(3, 29))).abs().max().item(), ds.roi("V1").shape, ds.images]"#
        ),
    )
    .expect("npy dataset");
    assert_eq!(voxlab::cli::show(&out), "[[7, 26], 26, 0.0, [7, 2], ()]");
}

#[test]
fn schema_lists_exactly_the_keys_the_loader_reads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dataset.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("schema")).expect("json");
    let mut keys: Vec<&str> = schema["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    let mut loader: Vec<&str> = voxlab::data::dataset::KEYS.to_vec();
    loader.sort();
    assert_eq!(keys, loader);
    let e = load_error(
        r#"save_json(#{betas: "betas.nii.gz", trials: "trials.csv", captons: "c.json"}, d + "/dataset.json");"#,
    );
    assert!(
        e.contains("dataset.json: unknown part 'captons'; valid keys are: format, name"),
        "{e}"
    );
}
