//! The BLIP captioner against transformers 5.24's BlipForConditionalGeneration
//! on the tiny random twin (tests/fixtures/hf/tiny-blip, made by make_tiny.py):
//! processor, vision states and decoder logits to 1e-4, identical token ids
//! and strings from greedy and beam search `generate`; the layout of
//! Salesforce/blip-image-captioning-base; save → load; polite errors.

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};
use voxlab::io::safetensors::File;
use voxlab::models::blip::{Blip, GenerateOptions};

use crate::common::{assert_script_error, eval_script, fixture, read_json};

const TOL: f64 = 1e-4;

fn dir() -> PathBuf {
    fixture("hf").join("tiny-blip")
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shapes differ");
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

fn assert_close(what: &str, ours: &Tensor, theirs: &Tensor) {
    let d = max_diff(ours, theirs);
    assert!(d <= TOL, "{what}: max |difference| {d:e} > {TOL:e}");
}

fn quoted(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

fn setup() -> (Blip, File, serde_json::Value) {
    let d = dir();
    let m = Blip::load("test", &d, Device::Cpu).expect("loads");
    let r = File::open("test", &d.join("reference.safetensors")).expect("reference");
    (m, r, read_json(&d.join("reference.json")))
}

fn ids_of(v: &serde_json::Value) -> Vec<Vec<i64>> {
    v.as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("ids")
                .iter()
                .map(|i| i.as_i64().expect("id"))
                .collect()
        })
        .collect()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .expect("strings")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

fn rows(t: &Tensor) -> Vec<Vec<i64>> {
    Vec::try_from(t).expect("rows")
}

#[test]
fn tiny_blip_processor_vision_states_and_logits_equal_transformers() {
    let (m, r, _) = setup();
    let mut pixels = Vec::new();
    for i in 0..3 {
        let img = r.tensor("test", &format!("image.{i}")).expect("image");
        let x = img.permute([2, 0, 1]).to_kind(Kind::Float).unsqueeze(0) / 255.0;
        pixels.push(m.preprocess.apply("test", &x).expect("preprocess"));
    }
    let want = r.tensor("test", "pixel_values").expect("pixels");
    assert_close("pixel_values", &Tensor::cat(&pixels, 0), &want);
    let (last, pooled) = tch::no_grad(|| m.vision.forward(&want));
    assert_close(
        "vision last_hidden_state",
        &last,
        &r.tensor("test", "vision_last_hidden_state").expect("x"),
    );
    assert_close(
        "vision pooler_output",
        &pooled,
        &r.tensor("test", "vision_pooler_output").expect("x"),
    );
    let ids = r.tensor("test", "input_ids").expect("ids");
    let mask = r.tensor("test", "attention_mask").expect("mask");
    let logits = tch::no_grad(|| m.text.logits(&ids, Some(&mask), &last, false));
    let keep = mask.unsqueeze(-1).to_kind(Kind::Float);
    assert_close(
        "decoder logits",
        &(logits * &keep),
        &(r.tensor("test", "logits").expect("x") * &keep),
    );
}

#[test]
fn tiny_blip_greedy_and_beam_search_give_transformers_token_ids() {
    let (m, r, j) = setup();
    let pixels = r.tensor("test", "pixel_values").expect("pixels");
    let features = tch::no_grad(|| m.vision.forward(&pixels).0);
    let base = GenerateOptions::default();
    let cases = [
        (
            "greedy",
            GenerateOptions {
                beams: 1,
                max_len: 12,
                min_len: 0,
                repetition_penalty: 1.0,
                ..base.clone()
            },
        ),
        (
            "beam",
            GenerateOptions {
                beams: 3,
                max_len: 12,
                min_len: 5,
                repetition_penalty: 1.5,
                ..base.clone()
            },
        ),
        ("beam_default", base.clone()),
        (
            "prompted",
            GenerateOptions {
                beams: 1,
                max_len: 12,
                min_len: 0,
                repetition_penalty: 1.0,
                prompt: Some("a picture of".into()),
                ..base.clone()
            },
        ),
    ];
    for (name, o) in cases {
        let ids = m.generate("test", &features, &o).expect("generate");
        assert_eq!(rows(&ids), ids_of(&j[name]["ids"]), "{name}: token ids");
        assert_eq!(
            m.decode("test", &ids).expect("decode"),
            strings(&j[name]["text"]),
            "{name}: strings"
        );
        // one image at a time gives the same captions
        let one = m.caption("test", &features, &o, 1).expect("caption");
        assert_eq!(
            one,
            strings(&j[name]["text"]),
            "{name}: captions one by one"
        );
    }
}

#[test]
fn captions_in_scripts_from_images_and_from_features() {
    let d = quoted(&dir());
    let v = eval_script(&format!(
        "let c = load_captioner({d});\nlet z = caption_features(c, rand([2, 3, 45, 60]));\nlet p = caption_features(c, rand([2, 3, 32, 32]), #{{pool: true}});\nlet a = caption(c, z);\nlet g = caption(c, z, #{{beams: 1, max_len: 8, min_len: 2}});\nlet s1 = caption(c, z, #{{sample: true, seed: 3, top_p: 0.8}});\nlet s2 = caption(c, z, #{{sample: true, seed: 3, top_p: 0.8}});\n[z.shape, p.shape, a.len(), g.len(), s1 == s2, c.tokens, c.dim, `${{c}}`]"
    ))
    .expect("script runs");
    let text = format!("{v:?}");
    assert!(
        text.contains("[2, 17, 32]") && text.contains("[2, 32]"),
        "{text}"
    );
    assert!(
        text.contains("true") && text.contains("Captioner[BLIP"),
        "{text}"
    );
}

#[test]
fn saved_captioner_has_the_same_layout_and_loads_back_identical() {
    let (m, r, j) = setup();
    let out = tempfile::tempdir().expect("tmp");
    m.save("test", out.path()).expect("save");
    let shapes = |p: &Path| {
        let f = File::open("test", &p.join("model.safetensors")).expect("weights");
        let mut v = f.shapes("test").expect("shapes");
        v.sort();
        v
    };
    assert_eq!(
        shapes(out.path()),
        shapes(&dir()),
        "names and shapes of the saved weights"
    );
    for f in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "preprocessor_config.json",
    ] {
        assert!(out.path().join(f).is_file(), "{f} saved");
    }
    let back = Blip::load("test", out.path(), Device::Cpu).expect("loads back");
    let px = r.tensor("test", "pixel_values").expect("pixels");
    let (a, b) = tch::no_grad(|| (m.vision.forward(&px).0, back.vision.forward(&px).0));
    assert_eq!(max_diff(&a, &b), 0.0);
    let o = GenerateOptions {
        beams: 3,
        max_len: 12,
        min_len: 5,
        repetition_penalty: 1.5,
        ..GenerateOptions::default()
    };
    assert_eq!(
        rows(&back.generate("test", &b, &o).expect("generate")),
        ids_of(&j["beam"]["ids"])
    );
    // and as one file
    let one = out.path().join("cap.safetensors");
    m.save("test", &one).expect("save one file");
    let back = Blip::load("test", &one, Device::Cpu).expect("loads one file");
    assert_eq!(
        max_diff(&a, &tch::no_grad(|| back.vision.forward(&px).0)),
        0.0
    );
}

#[test]
fn the_base_config_builds_the_layout_of_salesforces_released_blip() {
    // Names and shapes of transformers' BlipForConditionalGeneration for
    // Salesforce/blip-image-captioning-base's config.json (make_tiny.py, on
    // the meta device; tied decoder weights left out, as save_pretrained does).
    let d = fixture("hf").join("blip-image-captioning-base-layout");
    let ours = Blip::layout("test", &d.join("config.json")).expect("layout");
    let j = read_json(&d.join("shapes.json"));
    let mut theirs: Vec<(String, Vec<i64>)> = j["shapes"]
        .as_object()
        .expect("shapes")
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_array()
                    .expect("shape")
                    .iter()
                    .map(|x| x.as_i64().expect("dim"))
                    .collect(),
            )
        })
        .collect();
    theirs.sort();
    assert_eq!(ours.len(), theirs.len());
    assert_eq!(ours, theirs);
    let params: i64 = ours.iter().map(|(_, s)| s.iter().product::<i64>()).sum();
    assert_eq!(
        params, 223_971_644,
        "BLIP base captioning has 224.0M parameters"
    );
}

#[test]
fn bad_captioner_inputs_are_clear_errors() {
    let d = quoted(&dir());
    let clip = quoted(&fixture("hf").join("tiny-clip"));
    assert_script_error(
        &format!("load_captioner({clip})"),
        &["load_captioner", "model_type is \"clip\"", "not \"blip\""],
    );
    assert_script_error(
        "load_captioner(\"/no/such/folder\")",
        &["load_captioner", "does not exist"],
    );
    assert_script_error(
        &format!("caption(load_captioner({d}), zeros([2, 17, 16]))"),
        &["caption", "features", "N×17×32", "2×17×16"],
    );
    assert_script_error(
        &format!("caption(load_captioner({d}), zeros([2, 10, 32]))"),
        &["caption", "N×17×32"],
    );
    assert_script_error(
        &format!("caption(load_captioner({d}), zeros([2, 32]))"),
        &["caption", "pooled features cannot be captioned"],
    );
    assert_script_error(
        &format!("caption(load_captioner({d}), zeros([1, 17, 32]), #{{beams: 0}})"),
        &["caption", "beams", "≥ 1"],
    );
    assert_script_error(
        &format!("caption(load_captioner({d}), zeros([1, 17, 32]), #{{max_len: 4, min_len: 6}})"),
        &["caption", "min_len", "max_len"],
    );
    assert_script_error(
        &format!("caption(load_captioner({d}), zeros([1, 17, 32]), #{{max_len: 99}})"),
        &["caption", "max_len", "max_position_embeddings"],
    );
    assert_script_error(
        &format!("caption(load_captioner({d}), zeros([1, 17, 32]), #{{top_p: 0}})"),
        &["caption", "top_p"],
    );
    assert_script_error(
        &format!("caption(load_captioner({d}), zeros([1, 17, 32]), #{{beam: 2}})"),
        &["caption", "unknown option 'beam'"],
    );
    assert_script_error(
        &format!("caption_features(load_captioner({d}), zeros([2, 1, 32, 32]))"),
        &["caption_features", "3 colour channels"],
    );
}

// ---------------------------------------------------------------------------
// The captioner trained in voxlab (train_captioner) and caption_retrieval.

/// A small simulated subject's stimuli: 120 training and 12 test images.
const SMALL_SUBJECT: &str = "let ds = simulate_subject(#{save: false, n_train: 120, n_test: 12, test_repeats: 1, image_size: 32, grid: [16, 16, 16]});\nlet tr = ds.train();\nlet te = ds.test();\n";

#[test]
fn train_captioner_learns_simulated_captions_and_saves_a_blip_folder_that_loads_back_identical() {
    // 14 epochs of the 120 images: with the six colour-keyed sentence frames
    // the training loss falls 4.19 -> 3.52 in 6 epochs and 4.19 -> 2.49 in 12
    // (release build, one thread), so 6 no longer show the fall asserted below.
    let out = tempfile::tempdir().expect("tmp");
    let saved = out.path().join("trained-captioner");
    let v = eval_script(&format!(
        "{SMALL_SUBJECT}let cap = train_captioner(tr.images, tr.captions, #{{epochs: 14, batch: 16, lr: 0.003, seed: 1, verbose: false}});\nlet h = cap.history;\nlet z = caption_features(cap, te.images);\nlet g = caption(cap, z, #{{beams: 1, repetition_penalty: 1.0}});\nlet b = caption(cap, z, #{{beams: 3}});\ncap.save({s});\nlet back = load_captioner({s});\nlet z2 = caption_features(back, te.images);\n#{{z: z.shape, z_same: (z - z2).abs().max().item(), g: g, b: b, g2: caption(back, z2, #{{beams: 1, repetition_penalty: 1.0}}), b2: caption(back, z2, #{{beams: 3}}), first: h.val_loss[0], last: h.val_loss[h.val_loss.len() - 1], train_first: h.train_loss[0], train_last: h.train_loss[h.train_loss.len() - 1], best: h.best_epoch, vocab: cap.vocab_size, back_vocab: back.vocab_size, history_back: back.history}}",
        s = quoted(&saved)
    ))
    .expect("script runs");
    let m = v.cast::<rhai::Map>();
    let f = |k: &str| {
        m[k].as_float()
            .unwrap_or_else(|_| m[k].as_int().expect("number") as f64)
    };
    let strings = |k: &str| -> Vec<String> {
        m[k].clone()
            .into_array()
            .expect("array")
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    assert_eq!(
        format!("{:?}", m["z"]),
        "[12, 17, 64]",
        "17 image tokens × 64 from the small ViT"
    );
    assert_eq!(f("z_same"), 0.0, "the loaded captioner has the same ViT");
    assert!(
        f("train_last") < 0.6 * f("train_first"),
        "training loss falls: {} → {}",
        f("train_first"),
        f("train_last")
    );
    assert!(
        f("last") < f("first"),
        "validation loss falls: {} → {}",
        f("first"),
        f("last")
    );
    assert!(f("best") >= 1.0, "a best epoch is kept");
    let vocab = f("vocab") as i64;
    assert!(
        (20..80).contains(&vocab),
        "the vocabulary is the captions' word pieces plus 6 specials: {vocab}"
    );
    assert_eq!(f("back_vocab") as i64, vocab);
    assert!(
        m["history_back"].is_unit(),
        "a loaded captioner has no history"
    );
    let (g, b) = (strings("g"), strings("b"));
    assert_eq!(g.len(), 12);
    assert_eq!(g, strings("g2"), "greedy captions after save → load");
    assert_eq!(b, strings("b2"), "beam captions after save → load");
    // the captions speak the grammar's words
    let words = voxlab::data::scenes::vocabulary();
    let hits = g
        .iter()
        .flat_map(|c| voxlab::data::scenes::caption_words(c))
        .filter(|w| words.iter().any(|v| v == w))
        .count();
    assert!(hits >= 12 * 4, "captions use the grammar's words: {g:?}");
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "preprocessor_config.json",
    ] {
        assert!(saved.join(f).is_file(), "{f} saved");
    }
    let cfg = read_json(&saved.join("config.json"));
    assert_eq!(cfg["model_type"], "blip");
    assert_eq!(cfg["text_config"]["vocab_size"].as_i64(), Some(vocab));
    let ids = cfg["voxlab"]["source_token_ids"]
        .as_array()
        .expect("source ids");
    assert_eq!(ids.len() as i64, vocab);
    assert_eq!(ids[2].as_i64(), Some(101), "[CLS] is MiniLM's 101");
    assert_eq!(ids[3].as_i64(), Some(102), "[SEP] is MiniLM's 102");
}

#[test]
fn train_captioner_on_given_features_trains_the_decoder_only() {
    // At the default lr 1e-3 the two captions are learnt on seeds 0-3 at one
    // and two libtorch threads. At 3e-3 (this test's old rate) the loss stalled
    // near 0.5 at two threads and the caption came out "a blue square square
    // square square", so the result depended on the thread count.
    let v = eval_script(
        "set_seed(0);\nlet f = randn([24, 5, 16]);\nlet caps = [];\nfor i in 0..24 { caps.push(if i % 2 == 0 { \"a red circle\" } else { \"a blue square on the left\" }); }\nlet f = f + tensor(caps.map(|c| if c.len() < 14 { 2.0 } else { -2.0 })).reshape([24, 1, 1]);\nlet cap = train_captioner((), caps, #{features: f, epochs: 80, batch: 8, lr: 0.001, seed: 0, val_split: 0.0, verbose: false});\nlet out = caption(cap, f.rows([0, 1]), #{beams: 1, min_len: 0, repetition_penalty: 1.0});\n[cap.tokens, cap.dim, out[0], out[1]]",
    )
    .expect("script runs");
    let a = v.into_array().expect("array");
    assert_eq!(a[0].as_int().ok(), Some(5));
    assert_eq!(a[1].as_int().ok(), Some(16));
    assert_eq!(a[2].to_string(), "a red circle");
    assert_eq!(a[3].to_string(), "a blue square on the left");
}

#[test]
fn caption_retrieval_equals_a_hand_computed_cosine_ranking() {
    let v = eval_script(
        "let corpus = [\"a red circle\", \"a blue square\", \"a green star\", \"a pink moon\"];\nlet e = tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, -3.0]]);\nlet p = tensor([[2.0, 1.0, 0.0], [0.0, -1.0, 2.0]]);\nlet r = caption_retrieval(p, e, corpus, #{k: 3});\nlet d = caption_retrieval(p, e, corpus);\n#{r: r, d: d.index[0].len()}",
    )
    .expect("script runs");
    let m = v.cast::<rhai::Map>();
    let r = m["r"].clone().cast::<rhai::Map>();
    let rows = |k: &str| -> Vec<rhai::Array> {
        r[k].clone()
            .into_array()
            .expect("rows")
            .into_iter()
            .map(|x| x.into_array().expect("row"))
            .collect()
    };
    // by hand: p0 = (2,1,0)/√5 → cos with e0 = 2/√5, e1 = 1/√5, e2 = 3/√10, e3 = 0
    //          p1 = (0,-1,2)/√5 → e0 0, e1 -1/√5, e2 -1/√10, e3 -2/√5
    let idx: Vec<Vec<i64>> = rows("index")
        .iter()
        .map(|r| r.iter().map(|x| x.as_int().expect("int")).collect())
        .collect();
    assert_eq!(idx, vec![vec![2, 0, 1], vec![0, 2, 1]]);
    let caps: Vec<Vec<String>> = rows("captions")
        .iter()
        .map(|r| r.iter().map(|x| x.to_string()).collect())
        .collect();
    assert_eq!(caps[0], ["a green star", "a red circle", "a blue square"]);
    let sim: Vec<Vec<f64>> = rows("similarity")
        .iter()
        .map(|r| r.iter().map(|x| x.as_float().expect("float")).collect())
        .collect();
    let want = [
        [3.0 / 10f64.sqrt(), 2.0 / 5f64.sqrt(), 1.0 / 5f64.sqrt()],
        [0.0, -1.0 / 10f64.sqrt(), -1.0 / 5f64.sqrt()],
    ];
    for (a, b) in sim.iter().zip(want.iter()) {
        for (x, y) in a.iter().zip(b.iter()) {
            assert!((x - y).abs() < 1e-12, "similarity {x} vs {y}");
        }
    }
    assert_eq!(
        m["d"].as_int().ok(),
        Some(4),
        "k defaults to 5, capped at the corpus size"
    );
}

#[test]
fn bad_train_captioner_and_retrieval_inputs_are_clear_errors() {
    let imgs = "let x = rand([4, 3, 16, 16]);\n";
    assert_script_error(
        &format!("{imgs}train_captioner(x, [\"a red circle\", \"a blue square\", \"a star\"])"),
        &["train_captioner", "4 images but 3 captions"],
    );
    assert_script_error(
        &format!("{imgs}train_captioner(x, [])"),
        &["train_captioner", "captions is empty"],
    );
    assert_script_error(
        &format!("{imgs}train_captioner(x, [\"a\", \"\", \"b\", \"c\"])"),
        &["train_captioner", "captions[1] is an empty string"],
    );
    assert_script_error(
        &format!("{imgs}train_captioner(x, [\"a\", 2, \"b\", \"c\"])"),
        &["train_captioner", "captions[1]: expected a string"],
    );
    assert_script_error(
        "train_captioner((), [\"a\", \"b\"], #{features: zeros([2, 6, 8])})",
        &["train_captioner", "features", "g²+1", "2×6×8"],
    );
    assert_script_error(
        "train_captioner((), [\"a\", \"b\"], #{features: zeros([2, 8])})",
        &["train_captioner", "features", "N×tokens×d", "2×8"],
    );
    assert_script_error(
        "train_captioner((), [\"a\", \"b\", \"c\"], #{features: zeros([2, 5, 8])})",
        &["train_captioner", "features", "3 rows"],
    );
    assert_script_error(
        &format!("{imgs}train_captioner(x, [\"a\", \"b\", \"c\", \"d\"], #{{size: \"huge\"}})"),
        &["train_captioner", "size", "small or paper"],
    );
    assert_script_error(
        &format!("{imgs}train_captioner(x, [\"a\", \"b\", \"c\", \"d\"], #{{hidden: 30}})"),
        &["train_captioner", "hidden", "multiple of heads"],
    );
    assert_script_error(
        &format!("{imgs}train_captioner(x, [\"a\", \"b\", \"c\", \"d\"], #{{epoch: 3}})"),
        &["train_captioner", "unknown option 'epoch'"],
    );
    assert_script_error(
        &format!("{imgs}train_captioner(x, [\"a\", \"b\", \"c\", \"d\"], #{{val_split: 1.0}})"),
        &["train_captioner", "val_split"],
    );
    let e = "let e = tensor([[1.0, 0.0], [0.0, 1.0]]);\n";
    assert_script_error(
        &format!("{e}caption_retrieval(tensor([[1.0, 0.0]]), e, [\"a\"])"),
        &["caption_retrieval", "2 rows", "1 captions"],
    );
    assert_script_error(
        &format!("{e}caption_retrieval(tensor([[1.0, 0.0, 0.0]]), e, [\"a\", \"b\"])"),
        &["caption_retrieval", "corpus_embeddings", "M×3", "2×2"],
    );
    assert_script_error(
        &format!("{e}caption_retrieval(tensor([[1.0, 0.0]]), e, [\"a\", \"b\"], #{{k: 0}})"),
        &["caption_retrieval", "k", "≥ 1"],
    );
    assert_script_error(
        &format!("{e}caption_retrieval(tensor([[1.0, 0.0]]), e, [])"),
        &["caption_retrieval", "corpus_captions is empty"],
    );
}

#[test]
fn trained_captioner_captions_held_out_simulated_images_with_bleu4_above_0_3() {
    // The simulated subject's stimuli (default seed; 1200 training images,
    // the 50 test images held out), the small config for 20 epochs
    // (measured in a release build: ~30 s of training, BLEU-4 0.39; the
    // default 30 epochs: ~55 s, BLEU-4 0.44).
    let v = eval_script(
        "let ds = simulate_subject(#{save: false, test_repeats: 1, grid: [16, 16, 16]});\nlet tr = ds.train();\nlet te = ds.test();\nlet cap = train_captioner(tr.images, tr.captions, #{epochs: 20, seed: 0, verbose: false});\nlet out = caption(cap, caption_features(cap, te.images));\nbleu(out, te.captions).bleu4",
    )
    .expect("script runs");
    let b = v.as_float().expect("bleu4");
    assert!(b >= 0.3, "BLEU-4 {b} < 0.3");
}
