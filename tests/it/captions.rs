//! The BLIP captioner against transformers 5.24's BlipForConditionalGeneration
//! on the tiny random twin (tests/fixtures/hf/tiny-blip, made by make_tiny.py):
//! processor, vision states and decoder logits to 1e-4, identical token ids
//! and strings from greedy and beam search `generate`; the layout of
//! Salesforce/blip-image-captioning-base; save → load; polite errors.

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};
use voxlab::io::safetensors::File;
use voxlab::models::blip::{Blip, GenerateOptions};

use crate::common::{assert_script_error, eval_script, fixture};

const TOL: f64 = 1e-4;

fn dir() -> PathBuf {
    fixture("hf").join("tiny-blip")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("json file")).expect("json")
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shapes differ");
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double)).abs().max().double_value(&[])
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
    (m, r, json(&d.join("reference.json")))
}

fn ids_of(v: &serde_json::Value) -> Vec<Vec<i64>> {
    v.as_array()
        .expect("rows")
        .iter()
        .map(|r| r.as_array().expect("ids").iter().map(|i| i.as_i64().expect("id")).collect())
        .collect()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array().expect("strings").iter().map(|s| s.as_str().expect("string").to_string()).collect()
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
    assert_close("vision last_hidden_state", &last, &r.tensor("test", "vision_last_hidden_state").expect("x"));
    assert_close("vision pooler_output", &pooled, &r.tensor("test", "vision_pooler_output").expect("x"));
    let ids = r.tensor("test", "input_ids").expect("ids");
    let mask = r.tensor("test", "attention_mask").expect("mask");
    let logits = tch::no_grad(|| m.text.logits(&ids, Some(&mask), &last, false));
    let keep = mask.unsqueeze(-1).to_kind(Kind::Float);
    assert_close("decoder logits", &(logits * &keep), &(r.tensor("test", "logits").expect("x") * &keep));
}

#[test]
fn tiny_blip_greedy_and_beam_search_give_transformers_token_ids() {
    let (m, r, j) = setup();
    let pixels = r.tensor("test", "pixel_values").expect("pixels");
    let features = tch::no_grad(|| m.vision.forward(&pixels).0);
    let base = GenerateOptions::default();
    let cases = [
        ("greedy", GenerateOptions { beams: 1, max_len: 12, min_len: 0, repetition_penalty: 1.0, ..base.clone() }),
        ("beam", GenerateOptions { beams: 3, max_len: 12, min_len: 5, repetition_penalty: 1.5, ..base.clone() }),
        ("beam_default", base.clone()),
        ("prompted", GenerateOptions { beams: 1, max_len: 12, min_len: 0, repetition_penalty: 1.0, prompt: Some("a picture of".into()), ..base.clone() }),
    ];
    for (name, o) in cases {
        let ids = m.generate("test", &features, &o).expect("generate");
        assert_eq!(rows(&ids), ids_of(&j[name]["ids"]), "{name}: token ids");
        assert_eq!(m.decode("test", &ids).expect("decode"), strings(&j[name]["text"]), "{name}: strings");
        // one image at a time gives the same captions
        let one = m.caption("test", &features, &o, 1).expect("caption");
        assert_eq!(one, strings(&j[name]["text"]), "{name}: captions one by one");
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
    assert!(text.contains("[2, 17, 32]") && text.contains("[2, 32]"), "{text}");
    assert!(text.contains("true") && text.contains("Captioner[BLIP"), "{text}");
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
    assert_eq!(shapes(out.path()), shapes(&dir()), "names and shapes of the saved weights");
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"] {
        assert!(out.path().join(f).is_file(), "{f} saved");
    }
    let back = Blip::load("test", out.path(), Device::Cpu).expect("loads back");
    let px = r.tensor("test", "pixel_values").expect("pixels");
    let (a, b) = tch::no_grad(|| (m.vision.forward(&px).0, back.vision.forward(&px).0));
    assert_eq!(max_diff(&a, &b), 0.0);
    let o = GenerateOptions { beams: 3, max_len: 12, min_len: 5, repetition_penalty: 1.5, ..GenerateOptions::default() };
    assert_eq!(rows(&back.generate("test", &b, &o).expect("generate")), ids_of(&j["beam"]["ids"]));
    // and as one file
    let one = out.path().join("cap.safetensors");
    m.save("test", &one).expect("save one file");
    let back = Blip::load("test", &one, Device::Cpu).expect("loads one file");
    assert_eq!(max_diff(&a, &tch::no_grad(|| back.vision.forward(&px).0)), 0.0);
}

#[test]
fn the_base_config_builds_the_layout_of_salesforces_released_blip() {
    // Names and shapes of transformers' BlipForConditionalGeneration for
    // Salesforce/blip-image-captioning-base's config.json (make_tiny.py, on
    // the meta device; tied decoder weights left out, as save_pretrained does).
    let d = fixture("hf").join("blip-image-captioning-base-layout");
    let ours = Blip::layout("test", &d.join("config.json")).expect("layout");
    let j = json(&d.join("shapes.json"));
    let mut theirs: Vec<(String, Vec<i64>)> = j["shapes"]
        .as_object()
        .expect("shapes")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_array().expect("shape").iter().map(|x| x.as_i64().expect("dim")).collect()))
        .collect();
    theirs.sort();
    assert_eq!(ours.len(), theirs.len());
    assert_eq!(ours, theirs);
    let params: i64 = ours.iter().map(|(_, s)| s.iter().product::<i64>()).sum();
    assert_eq!(params, 223_971_644, "BLIP base captioning has 224.0M parameters");
}

#[test]
fn bad_captioner_inputs_are_clear_errors() {
    let d = quoted(&dir());
    let clip = quoted(&fixture("hf").join("tiny-clip"));
    assert_script_error(&format!("load_captioner({clip})"), &["load_captioner", "model_type is \"clip\"", "not \"blip\""]);
    assert_script_error("load_captioner(\"/no/such/folder\")", &["load_captioner", "does not exist"]);
    assert_script_error(&format!("caption(load_captioner({d}), zeros([2, 17, 16]))"), &["caption", "features", "N×17×32", "2×17×16"]);
    assert_script_error(&format!("caption(load_captioner({d}), zeros([2, 10, 32]))"), &["caption", "N×17×32"]);
    assert_script_error(&format!("caption(load_captioner({d}), zeros([2, 32]))"), &["caption", "pooled features cannot be captioned"]);
    assert_script_error(&format!("caption(load_captioner({d}), zeros([1, 17, 32]), #{{beams: 0}})"), &["caption", "beams", "≥ 1"]);
    assert_script_error(&format!("caption(load_captioner({d}), zeros([1, 17, 32]), #{{max_len: 4, min_len: 6}})"), &["caption", "min_len", "max_len"]);
    assert_script_error(&format!("caption(load_captioner({d}), zeros([1, 17, 32]), #{{max_len: 99}})"), &["caption", "max_len", "max_position_embeddings"]);
    assert_script_error(&format!("caption(load_captioner({d}), zeros([1, 17, 32]), #{{top_p: 0}})"), &["caption", "top_p"]);
    assert_script_error(&format!("caption(load_captioner({d}), zeros([1, 17, 32]), #{{beam: 2}})"), &["caption", "unknown option 'beam'"]);
    assert_script_error(&format!("caption_features(load_captioner({d}), zeros([2, 1, 32, 32]))"), &["caption_features", "3 colour channels"]);
}
