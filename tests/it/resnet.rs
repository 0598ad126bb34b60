//! ResNets against torchvision (tests/fixtures/resnet, made by
//! make_resnet_fixtures.py): parameter names and shapes, logits from the same
//! weights, the 22 BNU stages, training and polite errors.

use voxlab::models::resnet::{Arch, ResNet};

use crate::common::{assert_script_error, engine_in, eval_in, eval_script, fixture, voxlab_in};

fn reference() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixture("resnet/torchvision.json")).expect("fixture"),
    )
    .expect("json")
}

#[test]
fn parameter_names_and_shapes_are_torchvisions() {
    let r = reference();
    for (arch, key) in [
        (Arch::ResNet18, "resnet18_keys"),
        (Arch::ResNet50, "resnet50_keys"),
    ] {
        let net = ResNet::new(arch, 3, tch::Device::Cpu).expect("model");
        let ours: Vec<(String, Vec<i64>)> = net
            .state_dict()
            .into_iter()
            .map(|(k, t)| (k, t.size()))
            .collect();
        let theirs = r[key].as_object().expect("keys");
        assert_eq!(ours.len(), theirs.len(), "{key}: number of tensors");
        for (name, shape) in &ours {
            let want: Vec<i64> = theirs
                .get(name)
                .unwrap_or_else(|| panic!("{key}: torchvision has no {name}"))
                .as_array()
                .expect("shape")
                .iter()
                .filter_map(|v| v.as_i64())
                .collect();
            assert_eq!(shape, &want, "{key}: {name}");
        }
    }
}

#[test]
fn torchvision_computes_the_same_logits_from_our_weights() {
    let r = reference();
    // In a separate process: libtorch's generator is global and other tests
    // draw from it in parallel.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("r18.safetensors");
    let o = voxlab_in(
        dir.path(),
        &[
            "-e",
            &format!(
                "set_seed(0); resnet(#{{classes: 3}}).save(\"{}\")",
                path.display()
            ),
        ],
        None,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let (net, _) = ResNet::load(&path, None, tch::Device::Cpu).expect("load");
    let sha = voxlab::cli::record::sha256_hex(&std::fs::read(&path).expect("read"));
    assert_eq!(
        sha,
        r["weights_sha256"].as_str().expect("sha"),
        "seeded weights differ from those torchvision was given"
    );
    let x = (tch::Tensor::arange(2 * 3 * 64 * 64, (tch::Kind::Float, tch::Device::Cpu)) * 0.01)
        .sin()
        .reshape([2, 3, 64, 64]);
    let logits = tch::no_grad(|| net.forward_t(&x, false));
    let got: Vec<f64> =
        Vec::<f64>::try_from(logits.to_kind(tch::Kind::Double).reshape([-1])).expect("values");
    let want: Vec<f64> = r["logits"]
        .as_array()
        .expect("logits")
        .iter()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_f64())
        .collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-4, "logit {g} vs torchvision {w}");
    }
    // Saving and loading again gives the same network.
    let again_path = dir.path().join("again.safetensors");
    net.save(&again_path).expect("save");
    let (back, fresh_fc) = ResNet::load(&again_path, None, tch::Device::Cpu).expect("load");
    assert!(!fresh_fc);
    let again = tch::no_grad(|| back.forward_t(&x, false));
    assert!(f64::try_from((again - logits).abs().max()).expect("max") < 1e-6);
    // A checkpoint with another class count starts a fresh fc (fine-tuning).
    let (three_to_five, fresh) =
        ResNet::load(&again_path, Some(5), tch::Device::Cpu).expect("load");
    assert!(fresh && three_to_five.classes == 5);
}

#[test]
fn resnet18_has_the_22_bnu_stages() {
    let v = eval_script("let m = resnet(#{classes: 3}); [m.stages.len(), m.stages[0], m.stages[5], m.stages[20], m.stages[21], resnet(#{arch: \"resnet50\"}).stages.len()]").expect("stages");
    assert_eq!(
        voxlab::cli::show(&v),
        "[22, \"conv1\", \"layer2.0.conv1\", \"avgpool\", \"fc\", 55]"
    );
    let v = eval_script("let m = resnet(#{classes: 3}); let f = resnet_features(m, rand([3, 3, 32, 32])); [f.len(), f.conv1.shape, f[\"layer4.0.downsample\"].shape, f.avgpool.shape, f.fc.shape]").expect("features");
    assert_eq!(
        voxlab::cli::show(&v),
        "[22, [3, 16384], [3, 512], [3, 512], [3, 3]]"
    );
    let v = eval_script("let f = resnet_features(resnet(), rand([2, 3, 32, 32]), #{layers: [\"conv1\"], pool: true}); f.conv1.shape").expect("pool");
    assert_eq!(voxlab::cli::show(&v), "[2, 64]");
}

#[test]
fn training_learns_a_separable_problem_and_is_deterministic() {
    // Bright vs dark images: a ResNet18 must separate them within a few
    // epochs. Run in its own process twice: same seed, same numbers on CPU.
    let script = r#"
        set_seed(1);
        let n = 16;
        let x = cat([rand([n, 3, 16, 16]) * 0.3 + 0.7, rand([n, 3, 16, 16]) * 0.3]);
        let y = cat([zeros([n]), ones([n])]).astype("i64");
        let m = train_resnet(x, y, #{epochs: 4, batch: 8, lr: 0.001, optimizer: "adam", seed: 3, verbose: false, val_split: 0.25});
        print(m.accuracy(x, y));
        print(m.history.train_loss.len());
        print(m.history.best_epoch > 0);
        print(m.predict(x).sum(1).mean().item());
        print(m.confusion(x, y).sum().item());
        print(m.history.train_loss);
    "#;
    let dir = tempfile::tempdir().expect("temp dir");
    let a = voxlab_in(dir.path(), &["-e", script], None);
    assert_eq!(a.code, 0, "{}", a.stderr);
    let lines: Vec<&str> = a.stdout.lines().collect();
    let acc: f64 = lines[0].parse().expect("accuracy");
    assert!(acc >= 0.9, "accuracy {acc}");
    assert_eq!(lines[1], "4");
    assert_eq!(lines[2], "true");
    assert!((lines[3].parse::<f64>().expect("prob") - 1.0).abs() < 1e-5);
    assert_eq!(lines[4], "32");
    let b = voxlab_in(dir.path(), &["-e", script], None);
    assert_eq!(a.stdout, b.stdout, "same seed, same result on CPU");
}

#[test]
fn labels_from_ratings_uses_the_bnu_bins() {
    let v = eval_script("to_array(labels_from_ratings([1.0, 3.99, 4.0, 5.5, 6.0, 6.01, 9.0]))")
        .expect("labels");
    assert_eq!(voxlab::cli::show(&v), "[0, 0, 1, 1, 1, 2, 2]");
    assert_script_error(
        "labels_from_ratings([1.0, 0.0 / 0.0])",
        &["labels_from_ratings: rating 1 is NaN"],
    );
    assert_script_error(
        "labels_from_ratings([1.0], #{bins: [6, 4]})",
        &["bins must be increasing"],
    );
}

#[test]
fn bad_inputs_are_polite_errors() {
    assert_script_error(
        "resnet(#{arch: \"vgg16\"})",
        &["resnet: arch must be \"resnet18\" or \"resnet50\""],
    );
    assert_script_error(
        "resnet().predict(rand([2, 32, 32]))",
        &["predict: images: expected N×3×H×W"],
    );
    assert_script_error(
        "train_resnet(rand([4, 3, 32, 32]), [0, 1, 0])",
        &["train_resnet: labels: expected one per image (4), got 3"],
    );
    assert_script_error(
        "train_resnet(rand([4, 3, 32, 32]), [0, 1, 0, 5], #{classes: 2})",
        &["labels must be 0..1 for 2 classes"],
    );
    assert_script_error(
        "train_resnet(rand([4, 3, 32, 32]), [0, 1, 0, 1], #{epochs: 0})",
        &["option 'epochs' expects an integer ≥ 1"],
    );
    assert_script_error(
        "resnet_features(resnet(), rand([1, 3, 32, 32]), #{layers: [\"layer9\"]})",
        &["no stage named \"layer9\""],
    );
    assert_script_error(
        "load_resnet(\"/nonexistent/w.safetensors\")",
        &["load_resnet: /nonexistent/w.safetensors"],
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let vox = engine_in(dir.path());
    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, b"not safetensors").expect("write");
    let err = eval_in(&vox, &format!("load_resnet(\"{}\")", bad.display())).expect_err("bad file");
    assert!(err.contains("not a readable safetensors file"), "{err}");
}

#[test]
fn seeded_until_draws_the_early_stages_as_seeded_does() {
    let full = ResNet::seeded(Arch::ResNet18, 1, tch::Device::Cpu, 11).expect("seeded");
    let part =
        ResNet::seeded_until(Arch::ResNet18, 1, tch::Device::Cpu, 11, "layer1").expect("until");
    let part_vars = part.vs.variables();
    let mut compared = 0;
    for (name, w) in full.vs.variables() {
        let p = &part_vars[&name];
        let same = w.equal(p);
        if ["conv1.", "bn1.", "layer1."]
            .iter()
            .any(|s| name.starts_with(s))
        {
            assert!(same, "{name} differs from seeded's");
            compared += 1;
        } else if name.starts_with("layer4.") && name.ends_with("conv1.weight") {
            // Not drawn: the later layers keep libtorch's initialisation.
            assert!(
                !same,
                "{name} was drawn although no stage up to layer1 uses it"
            );
        }
    }
    assert!(compared > 20, "only {compared} variables compared");
    let x = (tch::Tensor::arange(2 * 3 * 32 * 32, (tch::Kind::Float, tch::Device::Cpu)) * 0.01)
        .sin()
        .reshape([2, 3, 32, 32]);
    let a = full.stages_until(&x, "layer1.1.conv2").expect("stages");
    let b = part.stages_until(&x, "layer1.1.conv2").expect("stages");
    assert_eq!(a.len(), b.len());
    for ((n, s), (_, t)) in a.iter().zip(&b) {
        assert!(s.equal(t), "stage {n} differs");
    }
    let err = ResNet::seeded_until(Arch::ResNet18, 1, tch::Device::Cpu, 11, "layer9")
        .err()
        .expect("an error");
    assert!(err.to_string().contains("layer9"), "{err}");
}
