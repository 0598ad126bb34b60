//! Tests of small private-looking helpers, moved here from `#[cfg(test)]`
//! modules in src/ (Cargo.toml has `[lib] test = false`, so those never ran).

mod numfmt {
    use voxlab::numfmt::number;

    #[test]
    fn readable_precision() {
        assert_eq!(number(0.934_123_4), "0.9341");
        assert_eq!(number(1.6e-6), "1.6e-6");
        assert_eq!(number(1.634_56e-6), "1.63e-6");
        assert_eq!(number(166.0), "166");
        assert_eq!(number(3755.0), "3755");
        assert_eq!(number(-0.5), "-0.5");
        assert_eq!(number(1234.5678), "1234.6");
        assert_eq!(number(2.5e7 + 0.5), "2.5e7");
        assert_eq!(number(f64::NAN), "nan");
        assert_eq!(number(-0.0), "0");
        assert_eq!(voxlab::numfmt::value(2.0), "2.0");
        assert_eq!(voxlab::numfmt::value(0.934_123_4), "0.9341");
    }
}

mod voxel_gan {
    use tch::{Device, Kind, Tensor};
    use voxlab::models::voxel_gan::{stages_for, VoxelGan, VoxelGanConfig};

    #[test]
    fn sizes_the_architecture_takes() {
        assert_eq!(stages_for("t", 8, 8).ok(), Some(1));
        assert_eq!(stages_for("t", 64, 64).ok(), Some(4));
        assert_eq!(stages_for("t", 128, 128).ok(), Some(5));
        for (h, w) in [(4, 4), (48, 48), (64, 32), (100, 100)] {
            let e = stages_for("t", h, w)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                e.contains("4·2^k") && e.contains(&format!("{h}×{w}")),
                "{e}"
            );
        }
    }

    #[test]
    fn generator_and_discriminator_shapes() {
        let gan = VoxelGan::new("t", VoxelGanConfig::small(), 7, 32, Device::Cpu).expect("gan");
        let betas = Tensor::randn([3, 7], (Kind::Float, Device::Cpu));
        let x = gan.draw("t", &betas, 2, 1, true).expect("images");
        assert_eq!(x.size(), [6, 3, 32, 32]);
        let again = gan.draw("t", &betas, 2, 1, true).expect("images");
        assert_eq!(f64::try_from((&x - &again).abs().max()).expect("max"), 0.0);
        let mean = gan.draw("t", &betas, 2, 1, false).expect("images");
        assert!(f64::try_from((&x - &mean).abs().max()).expect("max") > 0.0);
        let logits = gan.discriminator_logits(
            &(x * 2.0 - 1.0),
            &Tensor::zeros([6, 7], (Kind::Float, Device::Cpu)),
            false,
        );
        assert_eq!(logits.size(), [6]);
        let zeros = Tensor::zeros([2, 5], (Kind::Float, Device::Cpu));
        let e = gan
            .draw("t", &zeros, 1, 0, true)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("7 voxels") && e.contains("2×5"), "{e}");
    }
}

mod tensor_blocks {
    use tch::{Kind, Tensor as TchTensor};
    use voxlab::tensor::{matmul_in_blocks, Tensor};

    fn randn(shape: &[i64]) -> Tensor {
        Tensor(TchTensor::randn(shape, (Kind::Double, tch::Device::Cpu)))
    }

    #[test]
    fn a_product_in_blocks_equals_the_whole_product() {
        tch::manual_seed(3);
        // 2-D, batched on either side, and a vector right operand.
        for (sa, sb) in [
            (vec![37, 5], vec![5, 4]),
            (vec![3, 37, 5], vec![5, 4]),
            (vec![37, 5], vec![2, 5, 4]),
            (vec![37, 5], vec![5]),
        ] {
            let (a, b) = (randn(&sa), randn(&sb));
            let whole = a.0.matmul(&b.0);
            // About 2 rows of a per block: 19 blocks, the last one short.
            let blocked = matmul_in_blocks(&a, &b, 2.0 * 5.0 * 4.0 * 3.0).expect("blocks");
            assert_eq!(blocked.0.size(), whole.size(), "{sa:?} @ {sb:?}");
            let diff = (&blocked.0 - &whole).abs().max().double_value(&[]);
            assert!(diff < 1e-12, "{sa:?} @ {sb:?}: {diff}");
        }
    }

    #[test]
    fn a_stop_applies_between_the_blocks_of_a_product() {
        let token = voxlab::cancel::Token::new(Some(1e-3), None);
        let _run = voxlab::cancel::enter(token);
        let waited = std::time::Instant::now();
        while voxlab::cancel::check("test").is_ok() {
            assert!(
                waited.elapsed().as_secs() < 10,
                "the watchdog never stopped the run"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let (a, b) = (randn(&[8, 3]), randn(&[3, 3]));
        let err = matmul_in_blocks(&a, &b, 9.0).expect_err("stopped");
        assert!(
            err.to_string()
                .starts_with("matmul: script stopped: it ran longer than --max-seconds"),
            "{err}"
        );
        // A product small enough for one call is not split and still runs.
        assert!(matmul_in_blocks(&a, &b, 1e9).is_ok());
    }
}

mod quotes {
    use voxlab::cli::quotes::{check, find, update, Source};

    /// A repository root with a run record r and a bench record b.
    fn runs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tmp");
        for (folder, name, json) in [
            (
                "docs/papers/runs",
                "r",
                r#"{"duration_s": 41.6, "metrics": {"bleu4": 0.30277, "p": 1.63e-6, "best": {"V1": "layer1"}, "rows": [[0.5, 0.25]]}}"#,
            ),
            (
                "bench/results",
                "b",
                r#"{"voxlab_s": 23.14, "results": [{"model": "unet", "ratio": 1.01}]}"#,
            ),
        ] {
            let folder = dir.path().join(folder);
            std::fs::create_dir_all(&folder).expect("folder");
            std::fs::write(folder.join(format!("{name}.json")), json).expect("write");
        }
        dir
    }

    #[test]
    fn finds_values_before_markers_with_or_without_bold() {
        let text = "BLEU-4 **0.303**<!-- run r metrics.bleu4 -->, p = 1.6e-6<!-- run r metrics.p -->\n(best layer1<!-- run r metrics.best.V1 -->)";
        let q = find(text).expect("quotes");
        let shown: Vec<&str> = q.iter().map(|q| q.shown.as_str()).collect();
        assert_eq!(shown, ["0.303", "1.6e-6", "layer1"]);
        assert_eq!(q[2].line, 2);
        assert_eq!(q[1].path, "metrics.p");
    }

    #[test]
    fn a_quote_that_differs_from_its_record_is_reported_and_rewritten() {
        let dir = runs();
        let good = "0.303<!-- run r metrics.bleu4 --> 1.6e-6<!-- run r metrics.p --> 42<!-- run r duration_s --> 0.25<!-- run r metrics.rows.0.1 -->";
        assert!(check(good, dir.path()).expect("check").is_empty());
        let stale =
            "BLEU-4 **0.35**<!-- run r metrics.bleu4 --> and layer2<!-- run r metrics.best.V1 -->";
        let problems = check(stale, dir.path()).expect("check");
        assert_eq!(
            problems,
            [
                "line 1: 0.35 but r metrics.bleu4 is 0.30",
                "line 1: layer2 but r metrics.best.V1 is layer1"
            ]
        );
        let (fixed, changed) = update(stale, dir.path()).expect("update");
        assert_eq!(changed, 2);
        assert_eq!(
            fixed,
            "BLEU-4 **0.30**<!-- run r metrics.bleu4 --> and layer1<!-- run r metrics.best.V1 -->"
        );
    }

    #[test]
    fn missing_records_and_paths_are_errors() {
        let dir = runs();
        let e = check("1.0<!-- run nope metrics.x -->", dir.path()).expect_err("no record");
        assert!(e.contains("nope.json"), "{e}");
        let e = check("1.0<!-- run r metrics.x -->", dir.path()).expect_err("no path");
        assert!(e.contains("r has no value at metrics.x"), "{e}");
        let e = check("1.0<!-- bench r voxlab_s -->", dir.path()).expect_err("no bench r");
        assert!(e.contains("bench/results/r.json"), "{e}");
        let e = check("<!-- run r metrics.bleu4 -->", dir.path()).expect_err("no value");
        assert!(e.contains("no value before the marker"), "{e}");
    }

    #[test]
    fn bench_markers_read_bench_results_and_other_comments_are_skipped() {
        let dir = runs();
        let text = "<!-- a note --> 23.14<!-- bench b voxlab_s --> s, 1.01<!-- bench b results.0.ratio -->× <!-- runner -->";
        let q = find(text).expect("quotes");
        assert_eq!(q.len(), 2);
        assert_eq!((q[0].source, q[0].shown.as_str()), (Source::Bench, "23.14"));
        assert!(check(text, dir.path()).expect("check").is_empty());
        let stale = "1.1<!-- bench b results.0.ratio -->×";
        assert_eq!(
            check(stale, dir.path()).expect("check"),
            ["line 1: 1.1 but bench b results.0.ratio is 1.0"]
        );
    }
}

mod resample {
    use voxlab::data::resample::{mirror, spline_filter_line, weights};

    #[test]
    fn mirror_reflects_about_the_edge_voxels() {
        assert_eq!(mirror(-1, 5), 1);
        assert_eq!(mirror(-2, 5), 2);
        assert_eq!(mirror(5, 5), 3);
        assert_eq!(mirror(6, 5), 2);
        assert_eq!(mirror(3, 5), 3);
    }

    #[test]
    fn prefiltered_spline_reproduces_the_samples() {
        // At the knots a cubic B-spline with prefiltered coefficients
        // interpolates the data exactly.
        let data = [1.0, 2.0, 4.0, 8.0, 16.0, 3.0];
        let mut c = data.to_vec();
        spline_filter_line(&mut c);
        for (k, want) in data.iter().enumerate() {
            let start = k as i64 - 1;
            let w = weights(k as f64, 3);
            let got: f64 = (0..4)
                .map(|l| c[mirror(start + l as i64, 6) as usize] * w[l])
                .sum();
            assert!((got - want).abs() < 1e-12, "{k}: {got} vs {want}");
        }
    }
}

mod torch_warnings {
    use voxlab::torch_warnings::message;

    #[test]
    fn a_warning_names_the_function_and_drops_libtorch_framing() {
        assert_eq!(
            message("std", "std(): degrees of freedom is <= 0.\nmore"),
            "warning: std: std(): degrees of freedom is <= 0."
        );
        assert_eq!(message("", "Warning: x"), "warning: x");
    }
}
