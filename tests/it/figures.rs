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
    let saved = eval_in(
        &vox,
        "let bg = load_nifti(save_nifti(ones([12, 14, 10]), \"bg.nii\"));\nplot_brain(bg).save(\"b.png\")",
    )
    .expect("plot");
    assert!(saved.to_string().ends_with("b.png"), "saved to {saved}");
    let png = std::fs::read(dir.path().join("b.png")).expect("png");
    let img = image::load_from_memory(&png).expect("image").to_rgb8();
    let grey = img
        .pixels()
        .filter(|p| p[0] == p[1] && p[1] == p[2] && (100..=160).contains(&p[0]))
        .count();
    assert!(grey > 5000, "only {grey} grey pixels");
}

/// The figure a script ends with, and every label it draws.
fn drawn(script: &str) -> (voxlab::plot::Figure, Vec<voxlab::plot::DrawnText>) {
    let dir = tempfile::tempdir().unwrap();
    let vox = engine_in(dir.path());
    let v = eval_in(
        &vox,
        &format!("set_seed(5);\nlet s = randn([12, 8]);\n{script}"),
    )
    .unwrap_or_else(|e| panic!("{e}\n{script}"));
    let fig = v.try_cast::<voxlab::plot::Figure>().expect("a Figure");
    let texts = fig.drawn_text().expect("renders");
    (fig, texts)
}

fn centre(t: &voxlab::plot::DrawnText) -> (i32, i32) {
    ((t.min.0 + t.max.0) / 2, (t.min.1 + t.max.1) / 2)
}

fn overlap(a: &voxlab::plot::DrawnText, b: &voxlab::plot::DrawnText) -> bool {
    a.min.0 <= b.max.0 && b.min.0 <= a.max.0 && a.min.1 <= b.max.1 && b.min.1 <= a.max.1
}

#[test]
fn no_figure_cuts_off_its_text() {
    let long = "[\"layer4.block2.conv_out\", \"layer3.block1.attention_probs\", \"fc.penultimate.hidden\", \"embeddings.position\", \"encoder.layer.11.output\", \"pooler\"]";
    let mut scripts: Vec<String> = FIGURES
        .iter()
        .map(|(_, s, _, _)| format!("{s}\nfig"))
        .collect();
    scripts.extend([
        format!("plot_bars(#{{a: [0.1, -0.2, 0.3, 0.1, 0.2, 0.3]}}, #{{groups: {long}, width: 420, height: 300, title: \"a title\"}})"),
        format!("plot_heatmap(randn([6, 6]), #{{row_labels: {long}, col_labels: {long}, colorbar_label: \"Kendall tau\", width: 500, height: 400}})"),
        "plot_hist(randn([200]), #{marks: [5.0], mark_labels: [\"observed r = 0.52\"]})".to_string(),
        "plot_hist(randn([200]), #{marks: [-5.0, 5.0]})".to_string(),
        "plot_lines(#{train: [0.9, 0.5, 0.3], a_long_validation_series_name: [1.0, 0.7, 0.6]}, #{width: 300, height: 200})".to_string(),
        "let bg = load_nifti(save_nifti(rand([12, 14, 10]), \"bg.nii\"));\nlet lab = load_nifti(save_nifti((rand([12, 14, 10]) * 3.0).floor(), \"l.nii\"));\nplot_brain(bg, #{overlay: lab, labels: [\"EarlyVis\", \"LOC\", \"both\"], title: \"ROIs\"})".to_string(),
    ]);
    // The check sees cut-off text: a title far wider than its figure.
    let (_, texts) = drawn(&format!(
        "plot_lines([1.0, 2.0], #{{title: \"{}\", width: 200, height: 150}})",
        "wide ".repeat(30)
    ));
    assert!(
        texts.iter().any(|t| t.clipped),
        "a too-wide title counts as cut off"
    );
    for script in &scripts {
        let (_, texts) = drawn(script);
        let cut: Vec<&str> = texts
            .iter()
            .filter(|t| t.clipped)
            .map(|t| t.text.as_str())
            .collect();
        assert!(cut.is_empty(), "text cut off: {cut:?}\n{script}");
    }
}

#[test]
fn bar_ticks_and_marks_stay_readable() {
    let (_, texts) = drawn("plot_bars(#{a: [-0.3, 0.25, -0.1]}, #{groups: [\"x\", \"y\", \"z\"]})");
    assert!(
        !texts
            .iter()
            .any(|t| t.text.starts_with("-0")
                && t.text.trim_start_matches(['-', '0', '.']).is_empty()),
        "a tick reads minus zero: {:?}",
        texts.iter().map(|t| &t.text).collect::<Vec<_>>()
    );
    // Narrow bars: "***" of neighbouring bars would run together, so marks
    // stack one star a line, and no two marks overlap.
    let values: Vec<String> = (0..24)
        .map(|i| format!("{}", 0.2 + 0.01 * i as f64))
        .collect();
    let marks: Vec<&str> = (0..24).map(|_| "0.0001").collect();
    let script = format!(
        "plot_bars(#{{a: [{v}], b: [{v}]}}, #{{significance: #{{a: [{m}], b: [{m}]}}, width: 600, height: 400}})",
        v = values.join(", "),
        m = marks.join(", ")
    );
    let (_, texts) = drawn(&script);
    let stars: Vec<&voxlab::plot::DrawnText> = texts
        .iter()
        .filter(|t| t.text.chars().all(|c| c == '*') && !t.text.is_empty())
        .collect();
    assert!(stars.len() >= 48, "{} marks", stars.len());
    for (i, a) in stars.iter().enumerate() {
        for b in &stars[i + 1..] {
            assert!(!overlap(a, b), "marks overlap: {a:?} {b:?}");
        }
    }
    let lines = voxlab::plot::bars_mark_lines("***", 10, |t| 7 * t.chars().count() as u32);
    assert_eq!(lines, vec!["*", "*", "*"]);
    let lines = voxlab::plot::bars_mark_lines("**", 40, |t| 7 * t.chars().count() as u32);
    assert_eq!(lines, vec!["**"]);
}

#[test]
fn square_heatmaps_have_square_cells_and_can_show_values() {
    let (_, texts) = drawn(
        "plot_heatmap(randn([5, 5]), #{width: 900, height: 400, colorbar_label: \"Kendall tau\"})",
    );
    // Index labels: rows share an x, columns share a y.
    let find = |label: &str| -> Vec<(i32, i32)> {
        texts
            .iter()
            .filter(|t| t.text == label)
            .map(centre)
            .collect()
    };
    let (zero, one) = (find("0"), find("1"));
    let row = |v: &Vec<(i32, i32)>| *v.iter().min_by_key(|p| p.0).unwrap();
    let col = |v: &Vec<(i32, i32)>| *v.iter().max_by_key(|p| p.1).unwrap();
    let ch = row(&one).1 - row(&zero).1;
    let cw = col(&one).0 - col(&zero).0;
    assert!(ch > 10 && (cw - ch).abs() <= 2, "cells {cw}×{ch}");
    // The colour-bar label stands right of all its tick labels.
    let label = texts
        .iter()
        .find(|t| t.text == "Kendall tau")
        .expect("label drawn");
    let ticks: Vec<&voxlab::plot::DrawnText> = texts
        .iter()
        .filter(|t| t.min.0 > col(&one).0 + cw * 7 / 2 && t.text != "Kendall tau")
        .collect();
    assert!(
        ticks.len() >= 3,
        "colour-bar ticks found: {ticks:?} of {texts:?}"
    );
    for t in ticks {
        assert!(label.min.0 >= t.max.0 + 4, "{label:?} runs into {t:?}");
    }
    let (_, texts) = drawn("plot_heatmap(tensor([[8, 2], [7, 9]]), #{values: true, row_labels: [\"cat\", \"dog\"], col_labels: [\"cat\", \"dog\"]})");
    for v in ["8", "2", "7", "9"] {
        assert!(texts.iter().any(|t| t.text == v), "{v} not shown");
    }
}

#[test]
fn line_plots_count_from_one_on_whole_number_ticks_and_keep_the_legend_off_the_data() {
    let (_, texts) = drawn("plot_lines(#{train: [0.1, 0.2, 0.35, 0.5, 0.6, 0.7, 0.8], val: [0.05, 0.15, 0.3, 0.4, 0.55, 0.65, 0.9]}, #{x_label: \"epoch\"})");
    let numeric: Vec<&voxlab::plot::DrawnText> = texts
        .iter()
        .filter(|t| t.text.parse::<f64>().is_ok())
        .collect();
    let bottom = numeric.iter().map(|t| t.min.1).max().unwrap();
    let x_ticks: Vec<f64> = numeric
        .iter()
        .filter(|t| (t.min.1 - bottom).abs() <= 3)
        .map(|t| t.text.parse().unwrap())
        .collect();
    assert!(
        x_ticks.iter().all(|x: &f64| x.fract() == 0.0),
        "{x_ticks:?}"
    );
    assert!(
        x_ticks.contains(&1.0) && !x_ticks.contains(&0.0),
        "{x_ticks:?}"
    );
    // Rising curves fill the upper right: the legend goes elsewhere.
    let legend = texts.iter().find(|t| t.text == "train").expect("legend");
    let (fx, fy) = centre(legend);
    let xs: Vec<i32> = numeric.iter().map(|t| t.min.0).collect();
    let right = *xs.iter().max().unwrap();
    assert!(
        !(fx > right / 2 && fy < bottom / 2),
        "legend at {fx},{fy} covers the data"
    );
    // A confidence band widens the axis to cover it.
    let (_, texts) = drawn(
        "plot_lines(#{m: [0.2, 0.4, 0.5]}, #{ci: #{m: [[0.0, 4.0], [0.1, 5.0], [0.3, 6.0]]}})",
    );
    let top = texts
        .iter()
        .filter_map(|t| t.text.parse::<f64>().ok())
        .fold(0.0, f64::max);
    assert!(top >= 5.0, "the axis stops at {top}");
    assert!(eval_in(
        &engine_in(tempfile::tempdir().unwrap().path()),
        "plot_lines(#{m: [1.0, 2.0]}, #{ci: #{n: [[0.0, 1.0], [1.0, 2.0]]}})"
    )
    .is_err());
}

#[test]
fn histogram_marks_are_labelled_inside_the_plot() {
    let (fig, texts) =
        drawn("plot_hist(randn([300]), #{marks: [3.0], mark_labels: [\"observed\"]})");
    let label = texts
        .iter()
        .find(|t| t.text == "observed")
        .expect("label drawn");
    assert!(!label.clipped && label.max.0 < fig.width as i32);
    let (_, texts) = drawn("plot_hist(randn([300]), #{marks: [0.25]})");
    assert!(
        texts.iter().any(|t| t.text == "0.25"),
        "the mark's value labels it"
    );
}

#[test]
fn brain_panels_align_with_orientation_letters_and_a_legend_for_labels() {
    let (_, texts) = drawn("let bg = load_nifti(save_nifti(rand([12, 14, 10]), \"bg.nii\"));\nlet lab = load_nifti(save_nifti((rand([12, 14, 10]) * 3.0).floor(), \"l.nii\"));\nplot_brain(bg, #{overlay: lab, labels: [\"EarlyVis\", \"LOC\"], title: \"ROIs\"})");
    let all: Vec<&str> = texts.iter().map(|t| t.text.as_str()).collect();
    for want in ["P", "A", "L", "R", "EarlyVis", "LOC", "ROIs"] {
        assert!(all.contains(&want), "{want} missing from {all:?}");
    }
    let cut_labels: Vec<i32> = texts
        .iter()
        .filter(|t| {
            t.text.starts_with("x = ") || t.text.starts_with("y = ") || t.text.starts_with("z = ")
        })
        .map(|t| t.min.1)
        .collect();
    assert_eq!(cut_labels.len(), 3);
    assert!(
        cut_labels.iter().all(|y| (y - cut_labels[0]).abs() <= 1),
        "{cut_labels:?}"
    );
}

#[test]
fn image_grids_take_the_height_they_need() {
    let (fig, texts) = drawn(
        "plot_images([rand([4, 3, 8, 8])], #{captions: [\"a\", \"b\", \"c\", \"d\"], width: 600})",
    );
    assert!(fig.height < 300, "height {}", fig.height);
    let lowest = texts.iter().map(|t| t.max.1).max().unwrap();
    assert!(
        fig.height as i32 - lowest < 60,
        "empty margin below the captions: {} px",
        fig.height as i32 - lowest
    );
}
