//! Masks, ROIs, smoothing, DICOM and images against nilearn/scipy/Pillow/
//! dcm2niix reference values (tests/fixtures/data, made by
//! make_data_fixtures.py) and the real files in ../shared/realdata.

use std::path::{Path, PathBuf};

use crate::common::{assert_script_error, engine_in, eval_in, fixture};

fn expected() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixture("data/expected.json")).expect("expected.json"),
    )
    .expect("json")
}

fn realdata(sub: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/realdata")
        .join(sub);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipped: ../shared/realdata/{sub} is not present");
        None
    }
}

fn npy(rel: &str) -> Vec<f64> {
    voxlab::io::npy::load_npy(&fixture(rel))
        .expect("npy fixture")
        .to_f64_vec("test")
        .expect("values")
}

fn floats(v: &rhai::Dynamic) -> Vec<f64> {
    fn walk(v: &rhai::Dynamic, out: &mut Vec<f64>) {
        if let Some(a) = v.read_lock::<rhai::Array>() {
            a.iter().for_each(|x| walk(x, out));
        } else if let Ok(x) = v.as_float() {
            out.push(x);
        } else if let Ok(i) = v.as_int() {
            out.push(i as f64);
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn mask_column_order_matches_nilearn_on_real_rois() {
    let Some(rois) = realdata("rois") else { return };
    let exp = expected();
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let masks = exp["masks"].as_object().expect("masks");
    assert_eq!(masks.len(), 15);
    for (name, want) in masks {
        let path = rois.join(name);
        // apply_mask on an image whose value is each voxel's C-order index.
        let script = format!(
            r#"let m = load_mask("{p}");
               let s = m.shape;
               let idx = arange(s[0] * s[1] * s[2]).reshape(s).astype("f64");
               let v = unmask(apply_mask(load_nifti(save_nifti(idx, "idx.nii", #{{affine: m.affine}}), #{{dtype: "f64"}}), m), m);
               let cols = apply_mask(v, m);
               let w = arange(m.count).astype("f64") + 1.0;
               [m.count, to_array(cols), (cols * w).sum().item(), (m.indices.astype("f64") - cols).abs().max().item()]"#,
            p = path.display()
        );
        let out = eval_in(&vox, &script).unwrap_or_else(|e| panic!("{name}: {e}"));
        let parts = out.into_array().expect("array");
        let count = want["count"].as_f64().expect("count");
        assert_eq!(parts[0].as_int().expect("count") as f64, count, "{name}");
        let cols = floats(&parts[1]);
        let first: Vec<f64> = want["first"]
            .as_array()
            .expect("first")
            .iter()
            .map(|x| x.as_f64().expect("f"))
            .collect();
        let last: Vec<f64> = want["last"]
            .as_array()
            .expect("last")
            .iter()
            .map(|x| x.as_f64().expect("f"))
            .collect();
        assert_eq!(&cols[..10], &first[..], "{name} first columns");
        assert_eq!(&cols[cols.len() - 10..], &last[..], "{name} last columns");
        assert_eq!(
            parts[2].as_float().expect("weighted"),
            want["weighted"].as_f64().expect("weighted"),
            "{name} order checksum"
        );
        assert_eq!(parts[3].as_float().expect("indices"), 0.0, "{name} indices");
    }
}

#[test]
fn four_d_masking_and_unmasking_match_nilearn() {
    let Some(nifti) = realdata("nifti") else {
        return;
    };
    let exp = &expected()["example4d_masked"];
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let script = format!(
        r#"let m = load_mask("{m}");
           let v = load_nifti("{v}");
           let x = apply_mask(v, m);
           let back = unmask(x, m);
           [x.shape, to_array(x.flatten()), back.shape, back.data.sum().item(), to_array(back.affine - v.affine)]"#,
        m = fixture("data/mask_example4d.nii.gz").display(),
        v = nifti.join("example4d.nii.gz").display()
    );
    let out = eval_in(&vox, &script).expect("4-D masking");
    let parts = out.into_array().expect("array");
    assert_eq!(floats(&parts[0]), floats_json(&exp["shape"]));
    assert_eq!(floats(&parts[1]), npy("data/masked_example4d.npy"));
    assert_eq!(floats(&parts[2]), floats_json(&exp["unmask_shape"]));
    assert_eq!(
        parts[3].as_float().expect("sum"),
        exp["unmask_sum"].as_f64().expect("sum")
    );
    assert!(floats(&parts[4]).iter().all(|d| d.abs() < 1e-4));
}

fn floats_json(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

#[test]
fn atlas_union_and_intersection_on_real_rois() {
    let Some(rois) = realdata("rois") else { return };
    let exp = expected();
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let out = eval_in(
        &vox,
        &format!(
            r#"let a = load_atlas("{img}", "{csv}");
               let counts = #{{}};
               for k in a.keys() {{ counts[k] = a[k].count; }}
               [counts, a.LHEarlyVis.to_string()]"#,
            img = fixture("data/csi1_atlas.nii.gz").display(),
            csv = fixture("data/csi1_atlas_labels.csv").display()
        ),
    )
    .expect("atlas");
    let parts = out.into_array().expect("array");
    let counts = parts[0].read_lock::<rhai::Map>().expect("map").clone();
    let want = exp["atlas_counts"].as_object().expect("counts");
    assert_eq!(counts.len(), want.len());
    for (k, n) in want {
        assert_eq!(
            counts[k.as_str()].as_int().expect("int") as u64,
            n.as_u64().expect("n"),
            "{k}"
        );
    }
    assert_eq!(
        parts[1].clone().into_string().expect("text"),
        "Mask[210 voxels; 71×89×72; 2×2×2 mm]"
    );

    let csi = rois.join("bool_masks");
    let mni = rois.join("group_mni_bool_masks");
    let f = |d: &Path, n: &str| d.join(n).display().to_string();
    let out = eval_in(
        &vox,
        &format!(
            r#"let l = load_mask("{l}"); let r = load_mask("{r}");
               let ev = load_mask("{ev}"); let loc = load_mask("{loc}");
               [roi_union(l, r).count, roi_union([l, r]).count, roi_intersect(ev, loc).count, roi_intersect([l, r]).count]"#,
            l = f(&csi, "derivatives_spm_sub-CSI1_sub-CSI1_mask-LHEarlyVis.nii.gz"),
            r = f(&csi, "derivatives_spm_sub-CSI1_sub-CSI1_mask-RHEarlyVis.nii.gz"),
            ev = f(&mni, "EarlyVis.nii.gz"),
            loc = f(&mni, "LOC.nii.gz"),
        ),
    )
    .expect("union");
    let u = exp["union_csi1_earlyvis"].as_f64().expect("u");
    let i = exp["intersect_mni_earlyvis_loc"].as_f64().expect("i");
    assert_eq!(floats(&out), vec![u, u, i, 0.0]);

    // Different grids: an error that shows both.
    let err = eval_in(
        &vox,
        &format!(
            r#"roi_union(load_mask("{}"), load_mask("{}"))"#,
            f(&csi, "derivatives_spm_sub-CSI1_sub-CSI1_mask-LHLOC.nii.gz"),
            f(&mni, "LOC.nii.gz")
        ),
    )
    .expect_err("grid mismatch");
    assert!(
        err.contains("roi_union: mask 2 grid: expected the mask's 71×89×72, got 91×109×91"),
        "{err}"
    );
}

#[test]
fn mask_errors_are_polite() {
    assert_script_error(
        r#"let m = load_mask(save_nifti(ones([4, 4, 3]), "m.nii"));
           apply_mask(load_nifti(save_nifti(ones([4, 4, 2]), "v.nii")), m)"#,
        &["apply_mask: volume grid: expected the mask's 4×4×3, got 4×4×2"],
    );
    assert_script_error(
        r#"let m = load_mask(save_nifti(ones([4, 4, 3]), "m.nii"));
           apply_mask(load_nifti(save_nifti(ones([4, 4, 3]), "v.nii", #{affine: eye(4) * 2})), m)"#,
        &[
            "apply_mask: volume affine: expected the mask's [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], got [[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1]]",
        ],
    );
    assert_script_error(
        r#"let m = load_mask(save_nifti(ones([4, 4, 3]), "m.nii")); unmask(ones([3, 47]), m)"#,
        &["unmask: data: expected 48 (voxels) or t×48, got 3×47"],
    );
    assert_script_error(
        r#"load_mask(save_nifti(ones([4, 4, 3, 2]), "m.nii"))"#,
        &[
            "load_mask:",
            "m.nii: a mask is 3-D (x·y·z), got shape 4×4×3×2",
        ],
    );
    assert_script_error(
        r#"load_mask("/nonexistent/m.nii")"#,
        &["load_mask: /nonexistent/m.nii"],
    );
    assert_script_error(
        r#"let img = save_nifti(tensor([[[1, 1], [2, 0]]]), "atlas.nii");
           load_atlas(img, save_csv(#{index: [1, 3], name: ["V1", "V3"]}, "labels.csv"))"#,
        &[
            "load_atlas:",
            "labels.csv: row 3: label 3 ('V3') has no voxels in",
        ],
    );
    assert_script_error(
        "roi_union([1, 2])",
        &["roi_union: item 0 is a i64, not a Mask"],
    );
}

#[test]
fn smoothing_matches_nilearn_smooth_img() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    for (name, fwhm) in [
        ("smooth_fwhm6", "6.0"),
        ("smooth_fwhm_3_5_0", "[3.0, 5, 0]"),
        ("smooth_fwhm30", "30"),
    ] {
        let out = eval_in(
            &vox,
            &format!(
                r#"let s = smooth(load_nifti("{}"), {fwhm});
                   to_array(s.data.transpose(0, 2).flatten())"#,
                fixture("data/smooth_input.nii.gz").display()
            ),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        // nibabel's array is C order over x, y, z: transpose so flatten agrees.
        let got = floats(&out);
        let want = npy_c_order_xyz(&format!("data/{name}.npy"), [9, 7, 6]);
        let d = max_abs_diff(&got, &want);
        assert!(d < 1e-5, "{name}: max |diff| {d}");
    }
    let Some(nifti) = realdata("nifti") else {
        return;
    };
    let out = eval_in(
        &vox,
        &format!(
            r#"let s = smooth(load_nifti("{}"), 8);
               to_array(s.data.take([12], 2).transpose(0, 2).flatten())"#,
            nifti.join("anatomical.nii").display()
        ),
    )
    .expect("anatomical");
    let want = npy_c_order_xyz("data/smooth_anatomical_fwhm8_slice12.npy", [33, 41, 1]);
    let got = floats(&out);
    let rel = max_abs_diff(&got, &want) / want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    assert!(rel < 1e-5, "anatomical slice: relative max |diff| {rel}");
    let exp = &expected()["smooth_example4d_fwhm5"];
    let out = eval_in(
        &vox,
        &format!(
            r#"let s = smooth(load_nifti("{}"), 5).data.astype("f64");
               [s.sum().item(), (s * s).sum().item(), s[64][48][12][1]]"#,
            nifti.join("example4d.nii.gz").display()
        ),
    )
    .expect("4d");
    let got = floats(&out);
    for (g, k) in got.iter().zip(["sum", "sumsq", "v_64_48_12_1"]) {
        let w = exp[k].as_f64().expect(k);
        assert!((g - w).abs() / w.abs() < 1e-6, "{k}: {g} vs {w}");
    }
    assert_script_error(
        r#"smooth(load_nifti(save_nifti(ones([3, 3, 3]), "o.nii")), [1, 2])"#,
        &["smooth: fwhm is one number or three (x, y, z), got 2 numbers"],
    );
    assert_script_error(
        r#"smooth(load_nifti(save_nifti(ones([3, 3, 3]), "o.nii")), -1)"#,
        &["smooth: fwhm must be finite and ≥ 0 mm, got -1"],
    );
}

/// A fixture saved from a C-order x·y·z array, reordered so that it
/// matches `data.transpose(0, 2).flatten()` (z·y·x C order = x fastest).
fn npy_c_order_xyz(rel: &str, dims: [usize; 3]) -> Vec<f64> {
    let v = npy(rel);
    let [nx, ny, nz] = dims;
    let mut out = vec![0.0; v.len()];
    for x in 0..nx {
        for y in 0..ny {
            for z in 0..nz {
                out[(z * ny + y) * nx + x] = v[(x * ny + y) * nz + z];
            }
        }
    }
    out
}

#[test]
fn images_match_pillow_decode_and_resize() {
    let Some(dir) = realdata("images") else {
        return;
    };
    let exp = &expected()["images"];
    let files: Vec<String> = exp["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f.as_str().expect("name").to_string())
        .collect();
    let tmp = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(tmp.path());
    for (filter, size, fixture_name, hw) in [
        (
            "bicubic",
            "64",
            "data/images_bicubic_64.npy",
            (64usize, 64usize),
        ),
        (
            "bilinear",
            "[24, 40]",
            "data/images_bilinear_24x40.npy",
            (24, 40),
        ),
    ] {
        let out = eval_in(
            &vox,
            &format!(
                r#"let s = load_images("{}", #{{size: {size}, filter: "{filter}"}});
                   [s.ids, s.data.shape, to_array((s.data * 255.0).transpose(1, 2).transpose(2, 3).flatten())]"#,
                dir.display()
            ),
        )
        .unwrap_or_else(|e| panic!("{filter}: {e}"));
        let parts = out.into_array().expect("array");
        let ids: Vec<String> = parts[0]
            .clone()
            .into_array()
            .expect("ids")
            .into_iter()
            .map(|d| d.into_string().expect("id"))
            .collect();
        let stems: Vec<String> = files
            .iter()
            .map(|f| f.rsplit_once('.').expect("ext").0.to_string())
            .collect();
        assert_eq!(ids, stems);
        assert_eq!(
            floats(&parts[1]),
            vec![files.len() as f64, 3.0, hw.0 as f64, hw.1 as f64]
        );
        // N×H×W×3 uint8 from Pillow; ours N×3×H×W in [0, 1] → ×255, channels last.
        let got = floats(&parts[2]);
        let want = npy(fixture_name);
        let per = hw.0 * hw.1 * 3;
        for (k, f) in files.iter().enumerate() {
            let g = &got[k * per..(k + 1) * per];
            let w = &want[k * per..(k + 1) * per];
            let d = max_abs_diff(g, w);
            if f.ends_with(".png") {
                // Same pixels decoded, same fixed-point resampling: equal bytes.
                assert!(d < 1e-3, "{filter} {f}: max |diff| {d} (of 255)");
            } else {
                // JPEG decoders differ by a level or two (IDCT, chroma upsampling).
                let mean = g.iter().zip(w).map(|(a, b)| (a - b).abs()).sum::<f64>() / per as f64;
                assert!(d <= 8.0 && mean < 1.0, "{filter} {f}: max {d}, mean {mean}");
            }
        }
    }
    // Full resolution (all the same size is required, so load one by one).
    for f in &files {
        let out = eval_in(
            &vox,
            &format!(
                r#"let s = load_images(["{}"]); [s.data.shape, to_array(s.data.mean(3).mean(2).mean(0))]"#,
                dir.join(f).display()
            ),
        )
        .unwrap_or_else(|e| panic!("{f}: {e}"));
        let parts = out.into_array().expect("array");
        let want = &exp["full"][f.as_str()];
        let sz = floats_json(&want["size"]);
        assert_eq!(floats(&parts[0])[2..], sz[..], "{f} size");
        let d = max_abs_diff(&floats(&parts[1]), &floats_json(&want["mean_rgb"]));
        let tol = if f.ends_with(".png") { 1e-6 } else { 2e-3 };
        assert!(d < tol, "{f}: channel means differ by {d}");
    }
}

#[test]
fn images_save_grid_and_errors() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(tmp.path());
    let out = eval_in(
        &vox,
        r#"set_seed(1);
           let x = rand([3, 3, 5, 7]);
           let paths = save_images(image_set(x, ["a", "b", "c"]), "stim");
           let back = load_images(out_dir() + "/stim");
           let g = image_grid(back, #{cols: 2, padding: 1, pad_value: 1.0});
           let gp = save_images(g, "grid.png");
           let g2 = load_images([gp]);
           [paths.len(), back.ids, (back.data - x).abs().max().item(), g.shape,
            g.take([0], 1).min().item(), (g2.data.take([0], 0).flatten() - g.flatten()).abs().max().item(),
            back.select([-1]).ids, back.to_string()]"#,
    )
    .expect("save/load");
    let parts = out.into_array().expect("array");
    assert_eq!(parts[0].as_int().expect("n"), 3);
    assert_eq!(voxlab::cli::show(&parts[1]), r#"["a", "b", "c"]"#);
    assert!(parts[2].as_float().expect("diff") <= 0.5 / 255.0 + 1e-6);
    assert_eq!(voxlab::cli::show(&parts[3]), "[3, 13, 17]");
    assert_eq!(parts[4].as_float().expect("pad"), 1.0);
    assert!(parts[5].as_float().expect("grid diff") <= 0.5 / 255.0 + 1e-6);
    assert_eq!(voxlab::cli::show(&parts[6]), r#"["c"]"#);
    assert_eq!(
        parts[7].clone().into_string().expect("text"),
        "ImageSet[3 images; 3×5×7; a, b, c]"
    );
    std::fs::write(tmp.path().join("broken.png"), b"not an image").expect("write");
    assert_script_error(
        &format!(
            r#"load_images(["{}"])"#,
            tmp.path().join("broken.png").display()
        ),
        &["load_images:", "broken.png: cannot decode the image"],
    );
    assert_script_error(
        r#"save_images(rand([2, 3, 4, 4]), "a"); save_images(rand([3, 5, 5]), "a/z.png"); load_images(out_dir() + "/a")"#,
        &["load_images: images differ in size"],
    );
    assert_script_error(
        r#"load_images("/nonexistent/stimuli")"#,
        &["load_images: /nonexistent/stimuli"],
    );
    assert_script_error(
        r#"load_images(out_dir(), #{size: 0})"#,
        &["load_images: option 'size' expects a positive integer or [height, width]"],
    );
    assert_script_error(
        r#"image_grid(rand([2, 1, 4, 4]))"#,
        &["image_grid: images: expected 3 colour channels (N×3×H×W), got 2×1×4×4"],
    );
}

#[test]
fn dicom_conversion_matches_dcm2niix_reference() {
    let Some(dicom) = realdata("dicom") else {
        return;
    };
    if voxlab::io::dicom::find_dcm2niix().is_none() {
        eprintln!("skipped: dcm2niix is not installed (make env installs it)");
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(tmp.path());
    let out = eval_in(
        &vox,
        &format!(
            r#"let files = dicom_to_nifti("{d}", "nifti");
               let want = load_nifti("{d}/emri_small.dcm2niix.nii.gz");
               let found = [];
               for f in files {{
                   let v = load_nifti(f);
                   if v.shape == want.shape {{
                       found.push([(v.data - want.data).abs().max().item(), (v.affine - want.affine).abs().max().item()]);
                   }}
               }}
               [files.len(), found, files.map(|f| f.ends_with(".nii.gz"))]"#,
            d = dicom.display()
        ),
    )
    .expect("dcm2niix");
    let parts = out.into_array().expect("array");
    assert_eq!(parts[0].as_int().expect("n"), 2, "two DICOM series");
    assert_eq!(voxlab::cli::show(&parts[1]), "[[0.0, 0.0]]");
    assert_eq!(voxlab::cli::show(&parts[2]), "[true, true]");
    // Missing converter: a clear message (run through the binary so the
    // environment variable does not leak into other tests).
    let mut cmd = std::process::Command::new(crate::common::bin());
    let out = cmd
        .args([
            "-e",
            &format!(
                r#"dicom_to_nifti("{}", "{}")"#,
                dicom.display(),
                tmp.path().join("o").display()
            ),
        ])
        .env("VOXLAB_DCM2NIIX", "/nonexistent/dcm2niix")
        .output()
        .expect("voxlab runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        err.contains("dicom_to_nifti: dcm2niix was not found (looked at /nonexistent/dcm2niix); install it with `pip install dcm2niix`"),
        "{err}"
    );
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    assert_script_error(
        &format!(r#"dicom_to_nifti("{}", "out")"#, empty.display()),
        &[
            "dicom_to_nifti: dcm2niix",
            "converted nothing",
            "no DICOM images found",
        ],
    );
}

/// Files of ≥ 2 Mi voxels are read by parallel workers: check both the
/// direct path (f32) and the converting path (int16 with scl_slope).
#[test]
fn large_uncompressed_nifti_reads_in_parallel_exactly() {
    use voxlab::io::nifti::{write_nifti, WriteOptions};
    let dir = tempfile::tempdir().expect("temp dir");
    let dims = [150usize, 140, 110]; // 2.31 Mi voxels
    let n: usize = dims.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 20011) as f32 - 10000.0)
        .collect();
    let eye = [
        [2.0, 0.0, 0.0, 0.0],
        [0.0, 2.0, 0.0, 0.0],
        [0.0, 0.0, 2.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let f32_path = dir.path().join("big.nii");
    write_nifti(&f32_path, &dims, &values, eye, &WriteOptions::default()).expect("write");
    let v = voxlab::data::Volume::load(&f32_path, false).expect("load f32");
    // Tensor [x, y, z] → file order (x fastest): transpose(0, 2) then flatten.
    let got = v.data.0.transpose(0, 2).contiguous().reshape([-1]);
    let got: Vec<f32> = Vec::try_from(&got).expect("values");
    assert!(got == values, "f32 values differ");

    // The same header as int16 with scl_slope 0.5 (NIfTI-1 offsets).
    let bytes = std::fs::read(&f32_path).expect("read");
    let vox_offset = f32::from_le_bytes(bytes[108..112].try_into().expect("4")) as usize;
    let mut out = bytes[..vox_offset].to_vec();
    out[70..72].copy_from_slice(&4i16.to_le_bytes());
    out[72..74].copy_from_slice(&16i16.to_le_bytes());
    out[112..116].copy_from_slice(&0.5f32.to_le_bytes());
    out[116..120].copy_from_slice(&0.0f32.to_le_bytes());
    for &x in &values {
        out.extend_from_slice(&(x as i16).to_le_bytes());
    }
    let i16_path = dir.path().join("big_i16.nii");
    std::fs::write(&i16_path, out).expect("write i16");
    let v = voxlab::data::Volume::load(&i16_path, false).expect("load i16");
    let got = v.data.0.transpose(0, 2).contiguous().reshape([-1]);
    let got: Vec<f32> = Vec::try_from(&got).expect("values");
    assert!(
        got.iter().zip(&values).all(|(g, x)| *g == *x * 0.5),
        "int16 values differ"
    );
}

/// resize_images resizes as load_images' size option does (the
/// Pillow-verified path above): the same bytes for every filter, the ids
/// kept, a tensor's ids its row numbers; a bad size or filter is refused.
#[test]
fn resize_images_equals_resizing_on_load() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(tmp.path());
    for filter in ["bicubic", "bilinear", "lanczos", "box", "nearest"] {
        let v = eval_in(
            &vox,
            &format!(
                r#"set_seed(4);
                   save_images(image_set(rand([3, 3, 20, 30]), ["a", "b", "c"]), "stim_{filter}");
                   let dir = out_dir() + "/stim_{filter}";
                   let on_load = load_images(dir, #{{size: [12, 16], filter: "{filter}"}});
                   let after = resize_images(load_images(dir), [12, 16], #{{filter: "{filter}"}});
                   [after.ids, after.data.shape, (after.data - on_load.data).abs().max().item()]"#
            ),
        )
        .unwrap_or_else(|e| panic!("{filter}: {e}"));
        assert_eq!(
            v.to_string(),
            r#"[["a", "b", "c"], [3, 3, 12, 16], 0.0]"#,
            "{filter}"
        );
    }
    let v = eval_in(
        &vox,
        "let s = resize_images(rand([2, 3, 8, 8]), 4); [s.ids, s.data.shape]",
    )
    .expect("a tensor resizes");
    assert_eq!(v.to_string(), r#"[["0", "1"], [2, 3, 4, 4]]"#);
    assert_script_error(
        "resize_images(rand([2, 3, 8, 8]), 0)",
        &[
            "resize_images",
            "size",
            "positive integer or [height, width]",
        ],
    );
    assert_script_error(
        "resize_images(rand([2, 3, 8, 8]), 4, #{filter: \"cubic\"})",
        &["resize_images", "filter", "bicubic"],
    );
    assert_script_error(
        "resize_images(rand([2, 8, 8]), 4)",
        &["resize_images", "N×3×H×W"],
    );
}
