//! The engine's error path: options checking, panics caught, REPL-safe.

use voxlab::engine::error::{guard, install_panic_hook};

use crate::common::{assert_script_error, engine_in, eval_in};

#[test]
fn unknown_option_lists_valid_keys_and_wrong_type_names_the_key() {
    assert_script_error(
        "zscore(ones([3, 2]), #{axs: 1})",
        &[
            "zscore: unknown option 'axs'",
            "valid options are: axis, ddof",
        ],
    );
    assert_script_error(
        "zscore(ones([3, 2]), #{axis: \"rows\"})",
        &["zscore: option 'axis' expects an integer, got a string"],
    );
    assert_script_error(
        "ones([2], #{dtype: \"f128\"})",
        &["ones: unknown dtype \"f128\""],
    );
    assert_script_error(
        "load_csv(\"x.csv\", #{delimiter: \";;\"})",
        &["load_csv: option 'delimiter' expects one character"],
    );
}

#[test]
fn a_panic_inside_a_primitive_is_a_script_error_and_the_engine_survives() {
    install_panic_hook();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut vox = engine_in(dir.path());
    vox.engine.register_fn("explode", || {
        guard("explode", || -> voxlab::Result<i64> {
            panic!("index out of bounds")
        })
    });
    // A function that forgot its guard: the runner's own catch still holds.
    vox.engine.register_fn("explode_unguarded", || -> i64 {
        panic!("unguarded failure")
    });
    let err = eval_in(&vox, "let a = 1;\nexplode()").expect_err("must fail");
    assert!(
        err.starts_with("explode: internal error: index out of bounds"),
        "{err}"
    );
    assert!(err.contains("bug in voxlab"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let err = eval_in(&vox, "explode_unguarded()").expect_err("must fail");
    assert!(err.contains("internal error: unguarded failure"), "{err}");
    // The same engine keeps working afterwards.
    let v = eval_in(&vox, "40 + 2").expect("engine still usable");
    assert_eq!(v.as_int().ok(), Some(42));
}

#[test]
fn libtorch_errors_are_cut_to_their_first_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let err = eval_in(&vox, "ones([2, 3]) + ones([4, 5])").expect_err("shapes do not broadcast");
    assert!(
        err.starts_with("tensor arithmetic: cannot apply '+' to shapes 2×3 and 4×5"),
        "{err}"
    );
    assert!(
        !err.contains('\n'),
        "multi-line torch message leaked: {err}"
    );
    assert!(!err.contains("Exception raised from"), "{err}");
}

#[test]
fn params_convert_to_the_defaults_type() {
    let dir = tempfile::tempdir().expect("temp dir");
    let session = voxlab::engine::Session::new(
        dir.path().to_path_buf(),
        [
            ("n", "7"),
            ("rate", "0.5"),
            ("quick", "true"),
            ("alphas", "[1, 10]"),
            ("name", "s01"),
            ("bad", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    );
    let vox = voxlab::engine::build(session, Default::default());
    let v = eval_in(&vox, "[param(\"n\", 1), param(\"rate\", 1.0), param(\"quick\", false), param(\"alphas\", [1.0]), param(\"name\", \"x\"), param(\"absent\", 3)]").expect("params");
    let shown = voxlab::cli::show(&v);
    assert_eq!(shown, "[7, 0.5, true, [1, 10], \"s01\", 3]");
    let err = eval_in(&vox, "param(\"bad\", 1)").expect_err("not an int");
    assert!(
        err.contains("param: --set bad=x: expected an integer"),
        "{err}"
    );
}

#[test]
fn set_seed_makes_random_numbers_repeat() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let a = eval_in(&vox, "set_seed(7); randn([5]).sum().item()").expect("a");
    let b = eval_in(&vox, "set_seed(7); randn([5]).sum().item()").expect("b");
    let c = eval_in(&vox, "set_seed(8); randn([5]).sum().item()").expect("c");
    assert_eq!(a.as_float().ok(), b.as_float().ok());
    assert_ne!(a.as_float().ok(), c.as_float().ok());
}

#[test]
fn device_is_reported_and_unavailable_cuda_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let d = eval_in(&vox, "device()").expect("device").to_string();
    assert!(d == "cpu" || d == "cuda", "{d}");
    if !tch::Cuda::is_available() {
        let err = eval_in(&vox, "set_device(\"cuda\")").expect_err("no GPU here");
        assert!(
            err.contains("set_device: device \"cuda\" is not available"),
            "{err}"
        );
    }
    let err = eval_in(&vox, "set_device(\"tpu\")").expect_err("unknown");
    assert!(
        err.contains("expected a device \"cpu\", \"cuda\" or \"cuda:N\", got \"tpu\""),
        "{err}"
    );
}

#[test]
fn json_and_csv_round_trip() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let v = eval_in(&vox, r#"
        let p = save_json(#{a: 1, b: [1.5, "x"], t: tensor([[1, 2]]), nan: 0.0 / 0.0}, "sub/r.json");
        let back = load_json(p);
        [back.a, back.b, back.t, back.nan]
    "#).expect("json");
    assert_eq!(voxlab::cli::show(&v), "[1, [1.5, \"x\"], [[1.0, 2.0]], ()]");
    let v = eval_in(
        &vox,
        r#"
        let p = save_csv(#{id: ["a", "b", "c"], rating: [1, 2.5, 9]}, "t.csv");
        let t = load_csv(p);
        [t.id, t.rating]
    "#,
    )
    .expect("csv");
    assert_eq!(
        voxlab::cli::show(&v),
        "[[\"a\", \"b\", \"c\"], [1.0, 2.5, 9.0]]"
    );
    std::fs::write(dir.path().join("m.tsv"), "stim\tvalence\nx\t3\ny\t\n").expect("write");
    let script = format!("let t = load_csv(\"{}\", #{{delimiter: \"\\t\"}}); [t.stim, t.valence[0], t.valence[1].is_nan()]", dir.path().join("m.tsv").display());
    let v = eval_in(&vox, &script).expect("tsv");
    assert_eq!(voxlab::cli::show(&v), "[[\"x\", \"y\"], 3.0, true]");
    let err = eval_in(&vox, "load_json(\"/nonexistent/x.json\")").expect_err("missing");
    assert!(
        err.contains("load_json: /nonexistent/x.json: No such file"),
        "{err}"
    );
}

#[test]
fn an_option_given_as_unit_takes_its_default() {
    // zscore of [1, 3] along axis 0 with ddof 0: [-1, 1].
    assert_eq!(
        crate::common::eval_f64("zscore(tensor([[1.0], [3.0]]), #{axis: (), ddof: ()})[1][0]"),
        1.0
    );
}

/// Every function that converts a script value to a tensor names the
/// argument that had the wrong type (the conversion takes the name).
#[test]
fn a_wrong_argument_type_names_the_argument_in_every_domain() {
    let got = "expected a Tensor or an array of numbers, got string";
    for (script, named) in [
        ("rdm(\"x\")", "rdm: x:"),
        ("rsa(randn([3, 3]), \"b\")", "rsa: rdm_b:"),
        (
            "identification(\"p\", randn([4, 3]))",
            "identification: pred:",
        ),
        (
            "identification(randn([4, 3]), \"t\")",
            "identification: truth:",
        ),
        (
            "unmask(\"x\", load_mask(save_nifti(ones([2, 2, 2]), \"m.nii\")))",
            "unmask: x:",
        ),
        ("save_npy(\"t\", \"t.npy\")", "save_npy: t:"),
        (
            "pearson_columns(randn([4, 2]), \"m\")",
            "pearson_columns: measured:",
        ),
        ("noise_ceiling(\"b\")", "noise_ceiling: betas:"),
        ("cat([randn([2]), \"s\"])", "cat: tensors[1]:"),
        ("feature_corr(randn([3, 2]), \"t\")", "feature_corr: truth:"),
        ("ssim(\"a\", rand([1, 3, 8, 8]))", "ssim: a:"),
        ("plot_heatmap(\"m\")", "plot_heatmap: matrix:"),
        ("plot_scatter([1, 2], \"y\")", "plot_scatter: y:"),
        ("plot_lines(#{fit: \"s\"})", "plot_lines: series 'fit':"),
        ("plot_bars(\"t\")", "plot_bars: table:"),
        (
            "plot_hist(#{observed: \"v\"})",
            "plot_hist: values.observed:",
        ),
        ("plot_images(\"i\")", "plot_images: images:"),
    ] {
        assert_script_error(script, &[&format!("{named} {got}")]);
    }
}
