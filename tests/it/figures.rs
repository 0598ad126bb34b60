//! Every figure kind saved as PNG and SVG: a valid image of the requested
//! size, and the same figure twice gives the same bytes.

use crate::common::{assert_script_error, engine_in, eval_in};

/// (name, script making a Figure called `fig`, width, height)
const FIGURES: &[(&str, &str, u32, u32)] = &[
    ("bars", "let r = kendall_fdr(#{V1: rdm(s), IT: rdm(s + randn([12, 8]))}, [#{name: \"conv1\", rdm: rdm(s)}, #{name: \"fc\", rdm: rdm(randn([12, 8]))}]);\nlet fig = plot_bars(r, #{y_label: \"Kendall tau\", width: 640, height: 420});", 640, 420),
    ("bars_err", "let fig = plot_bars(#{a: [0.2, -0.1, 0.3], b: [0.1, 0.2, 0.05]}, #{groups: [\"l1\", \"l2\", \"l3\"], error_bars: #{a: [0.02, 0.03, 0.01], b: [0.01, 0.01, 0.02]}, significance: #{a: [true, false, true], b: [false, false, true]}});", 1000, 500),
    ("box", "let fig = plot_box(#{a: randn([20]), b: randn([20]) + 1.0}, #{pairs: [[\"a\", \"b\"]], width: 500, height: 400});", 500, 400),
    ("heatmap", "let fig = plot_heatmap(rdm(s), #{colorbar_label: \"1 - r\", colormap: \"coolwarm\"});", 800, 500),
    ("scatter", "let fig = plot_scatter(s.cols([0]).flatten(), s.cols([1]).flatten(), #{line: \"identity\"});", 600, 500),
    ("hist", "let fig = plot_hist(#{x: randn([100]), y: randn([100])}, #{bins: 12, marks: [0.5]});", 700, 500),
    ("images", "let fig = plot_images([rand([3, 3, 8, 8]), rand([3, 1, 8, 8])], #{row_titles: [\"seen\", \"decoded\"], captions: [\"one\", \"two words\", \"three\"], width: 400, height: 300});", 400, 300),
    ("brain", "let bg = load_nifti(save_nifti(rand([12, 14, 10]), \"bg.nii\"));\nlet st = load_nifti(save_nifti(randn([6, 7, 5]) * 3.0, \"st.nii\", #{affine: eye(4) * 2}));\nlet fig = plot_brain(bg, #{overlay: st, threshold: 2.0, cut_coords: [5.0, 6.0, 4.0]});", 1000, 380),
];

fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |o: usize| u32::from_be_bytes(bytes[o..o + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn every_figure_saves_as_png_and_svg_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    for (name, script, w, h) in FIGURES {
        let mut saved = Vec::new();
        // One figure, rendered twice: libtorch's generator is shared with
        // tests running in parallel, so the data is made only once.
        let vox = engine_in(dir.path());
        let full = format!(
            "set_seed(5);\nlet s = randn([12, 8]);\n{script}\n[fig.save(\"{name}0.png\"), fig.save(\"{name}0.svg\"), fig.save(\"{name}1.png\"), fig.save(\"{name}1.svg\")]"
        );
        let _ = eval_in(&vox, &full).unwrap_or_else(|e| panic!("{name}: {e}"));
        for round in 0..2 {
            let png = std::fs::read(dir.path().join(format!("{name}{round}.png"))).unwrap();
            let svg =
                std::fs::read_to_string(dir.path().join(format!("{name}{round}.svg"))).unwrap();
            assert_eq!(png_size(&png), (*w, *h), "{name}: PNG size");
            assert!(
                svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
                "{name}: SVG"
            );
            assert!(
                svg.contains(&format!("width=\"{w}\"")) && svg.contains(&format!("height=\"{h}\"")),
                "{name}: SVG size"
            );
            // The PNG decodes.
            image::load_from_memory(&png).unwrap_or_else(|e| panic!("{name}: {e}"));
            saved.push((png, svg));
        }
        assert!(
            saved[0].0 == saved[1].0,
            "{name}: PNG bytes differ between two runs"
        );
        assert!(
            saved[0].1 == saved[1].1,
            "{name}: SVG bytes differ between two runs"
        );
    }
}

#[test]
fn brain_on_real_mni_template_and_neurovault_map() {
    let root = std::path::Path::new("/work/shared/realdata/nifti");
    let bg = root.join("mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz");
    let st = root.join("image_10426.nii.gz");
    if !bg.exists() || !st.exists() {
        eprintln!("real data not present; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let vox = engine_in(dir.path());
    let script = format!(
        "let bg = load_nifti(\"{}\");\nlet st = load_nifti(\"{}\");\nplot_brain(bg, #{{overlay: st, threshold: 3.0, colorbar_label: \"z\"}}).save(\"b.png\")",
        bg.display(),
        st.display()
    );
    let _ = eval_in(&vox, &script).unwrap();
    let png = std::fs::read(dir.path().join("b.png")).unwrap();
    assert_eq!(png_size(&png), (1000, 380));
    // The overlay is drawn: hot (red/yellow) and cold (blue) pixels exist.
    let img = image::load_from_memory(&png).unwrap().to_rgb8();
    let hot = img.pixels().filter(|p| p[0] > 200 && p[2] < 60).count();
    let cold = img.pixels().filter(|p| p[2] > 200 && p[0] < 60).count();
    assert!(hot > 500 && cold > 500, "hot {hot}, cold {cold}");
}

#[test]
fn figure_errors_are_polite() {
    assert_script_error(
        "plot_bars(#{a: [1, 2]}, #{groups: [\"x\"]})",
        &["plot_bars", "groups"],
    );
    assert_script_error(
        "plot_bars(#{a: [1, 2]}, #{significance: #{b: [0.1, 0.2]}})",
        &["plot_bars", "no entry for series 'a'"],
    );
    assert_script_error(
        "plot_box(#{a: [1, 2, 3], b: [1, 2]}, #{pairs: [[\"a\", \"b\"]]})",
        &["plot_box", "paired"],
    );
    assert_script_error(
        "plot_box(#{a: [1, 2, 3]}, #{pairs: [[\"a\", \"z\"]]})",
        &["plot_box", "no group 'z'"],
    );
    assert_script_error(
        "plot_box(#{a: [1.0, 2.0]}, #{test: \"anova\"})",
        &["plot_box", "test"],
    );
    assert_script_error("plot_scatter([1, 2], [1, 2, 3])", &["plot_scatter"]);
    assert_script_error("plot_hist([1, 2], #{bins: 0})", &["plot_hist", "bins"]);
    assert_script_error("plot_images(rand([2, 4, 8, 8]))", &["plot_images", "3×H×W"]);
    assert_script_error(
        "plot_heatmap(randn([3, 3]), #{colormap: \"jet\"})",
        &["plot_heatmap", "colormap"],
    );
    assert_script_error(
        "let v = load_nifti(save_nifti(rand([4, 4, 4]), \"v.nii\")); plot_brain(v, #{cut_coords: [1.0, 2.0]})",
        &["plot_brain", "cut_coords"],
    );
}

/// plot_brain's default cuts equal nilearn's find_xyz_cut_coords
/// (tests/fixtures/plot/make_cut_fixtures.py) on maps where the largest
/// cluster and the most extreme voxel disagree.
#[test]
fn default_brain_cuts_equal_nilearn() {
    let path = crate::common::fixture("plot/cuts.json");
    let fx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    let dims: Vec<usize> = fx["dims"]
        .as_array()
        .expect("dims")
        .iter()
        .map(|d| d.as_u64().expect("dim") as usize)
        .collect();
    let mut affine = [[0.0; 4]; 4];
    for (i, row) in fx["affine"].as_array().expect("affine").iter().enumerate() {
        for (j, v) in row.as_array().expect("row").iter().enumerate() {
            affine[i][j] = v.as_f64().expect("number");
        }
    }
    for case in fx["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let values: Vec<f32> = fx["maps"][name]
            .as_array()
            .expect("map")
            .iter()
            .map(|v| v.as_f64().expect("value") as f32)
            .collect();
        let threshold = case["threshold"].as_f64();
        let got = voxlab::plot::find_cut([dims[0], dims[1], dims[2]], &values, &affine, threshold)
            .expect("a cut");
        for a in 0..3 {
            let want = case["cut"][a].as_f64().expect("cut");
            assert!(
                (got[a] - want).abs() < 1e-5,
                "{name} threshold {threshold:?}: {got:?} vs nilearn {}",
                case["cut"]
            );
        }
    }
}

/// A constant background (a mask, say) is drawn grey, not black.
#[test]
fn constant_background_is_grey() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    eval_in(
        &vox,
        "let bg = load_nifti(save_nifti(ones([12, 14, 10]), \"bg.nii\"));\nplot_brain(bg).save(\"b.png\")",
    )
    .expect("plot");
    let png = std::fs::read(dir.path().join("b.png")).expect("png");
    let img = image::load_from_memory(&png).expect("image").to_rgb8();
    let grey = img
        .pixels()
        .filter(|p| p[0] == p[1] && p[1] == p[2] && (100..=160).contains(&p[0]))
        .count();
    assert!(grey > 5000, "only {grey} grey pixels");
}
