//! Caption metrics against nltk's corpus_bleu/sentence_bleu and rouge-score's
//! ROUGE-L (tests/fixtures/eval/caption_metrics.json, made by
//! make_caption_metrics.py), caption_scores' chance levels where the answer
//! is known, and bad input.

use voxlab::eval::captions::{
    bleu, caption_scores, derangement, rouge_l, BleuOptions, CaptionScoreOptions, Smoothing,
};

use crate::common::{assert_script_error, eval_script, fixture};

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("str").to_string())
        .collect()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// Within 1e-12, and for the tiny values of an unsmoothed zero precision
/// (~1e-77) within a relative 1e-10, so sys.float_info.min is checked too.
fn close(what: &str, got: f64, want: f64) {
    assert!((got - want).abs() <= 1e-12, "{what}: {got} vs {want}");
    if want != 0.0 {
        assert!(
            ((got - want) / want).abs() <= 1e-10,
            "{what}: {got} vs {want} (relative)"
        );
    } else {
        assert_eq!(got, 0.0, "{what}");
    }
}

#[test]
fn bleu_and_rouge_l_equal_nltk_and_rouge_score() {
    let all: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("eval/caption_metrics.json")).expect("fixture"),
    )
    .expect("json");
    let cases = all["cases"].as_object().expect("cases");
    assert!(cases.len() >= 10);
    for (name, c) in cases {
        let cands = strings(&c["candidates"]);
        let refs: Vec<Vec<String>> = c["references"]
            .as_array()
            .expect("refs")
            .iter()
            .map(strings)
            .collect();
        for (sname, smoothing) in [("none", Smoothing::None), ("method1", Smoothing::Method1)] {
            let corpus = bleu(
                &cands,
                &refs,
                &BleuOptions {
                    smoothing,
                    sentence: false,
                },
            )
            .expect("bleu");
            let want = floats(&c[format!("corpus_bleu_{sname}")]);
            for k in 0..4 {
                close(
                    &format!("{name} corpus BLEU-{} {sname}", k + 1),
                    corpus.scores[k],
                    want[k],
                );
            }
            let sent = bleu(
                &cands,
                &refs,
                &BleuOptions {
                    smoothing,
                    sentence: true,
                },
            )
            .expect("bleu");
            let values = sent.values.expect("values");
            for (i, w) in c[format!("sentence_bleu_{sname}")]
                .as_array()
                .expect("sent")
                .iter()
                .enumerate()
            {
                let w = floats(w);
                for k in 0..4 {
                    close(
                        &format!("{name}[{i}] sentence BLEU-{} {sname}", k + 1),
                        values[k][i],
                        w[k],
                    );
                }
            }
        }
        let r = rouge_l(&cands, &refs).expect("rouge");
        let want = floats(&c["rouge_l"]);
        for (i, (g, w)) in r.values.iter().zip(&want).enumerate() {
            close(&format!("{name}[{i}] ROUGE-L"), *g, *w);
        }
        close(
            &format!("{name} ROUGE-L mean"),
            r.mean,
            want.iter().sum::<f64>() / want.len() as f64,
        );
    }
}

#[test]
fn caption_scores_chance_where_the_answer_is_known() {
    // Distinct captions from a small grammar; the candidates equal their
    // references: every metric is far above chance.
    let colours = ["red", "blue", "green", "yellow", "white", "black"];
    let shapes = ["square", "circle", "triangle", "star", "cross"];
    let places = ["on the left", "on the right", "at the top", "in the middle"];
    let mut refs: Vec<String> = Vec::new();
    for (i, c) in colours.iter().enumerate() {
        for (j, s) in shapes.iter().enumerate() {
            refs.push(format!(
                "a {c} {s} {} near a {} {}",
                places[(i + j) % 4],
                colours[(i + 2 * j) % 6],
                shapes[(3 * i + j) % 5]
            ));
        }
    }
    let n = refs.len();
    let ref_lists: Vec<Vec<String>> = refs.iter().map(|r| vec![r.clone()]).collect();
    let opts = CaptionScoreOptions {
        permutations: 500,
        seed: 3,
        smoothing: Smoothing::None,
    };
    let same = caption_scores(&refs, &ref_lists, &opts, None).expect("scores");
    assert_eq!(same.len(), 5);
    for m in &same {
        assert!((m.score - 1.0).abs() < 1e-12, "{}: {}", m.name, m.score);
        assert!(
            m.chance < 0.9 && m.chance_sd > 0.0,
            "{}: chance {}",
            m.name,
            m.chance
        );
        assert!((m.p - 1.0 / 501.0).abs() < 1e-15, "{}: p {}", m.name, m.p);
        assert_eq!(m.null.len(), 500);
    }
    // Shuffled: candidates paired with other items' references score at chance.
    let shuffled: Vec<String> = derangement(9, 0, n)
        .iter()
        .map(|&j| refs[j].clone())
        .collect();
    let s = caption_scores(&shuffled, &ref_lists, &opts, None).expect("scores");
    for m in &s {
        assert!(
            m.p > 0.05,
            "{}: p {} (score {}, chance {} ± {})",
            m.name,
            m.p,
            m.score,
            m.chance,
            m.chance_sd
        );
        assert!((m.score - m.chance).abs() < 4.0 * m.chance_sd, "{}", m.name);
    }
    // Seeded: the same seed gives the same chance distribution.
    let again = caption_scores(&shuffled, &ref_lists, &opts, None).expect("scores");
    assert_eq!(s, again);
    // Derangements never keep an item's own references.
    for k in 0..50 {
        assert!(derangement(1, k, 2) == vec![1, 0]);
        assert!(derangement(1, k, 7)
            .iter()
            .enumerate()
            .all(|(i, &j)| i != j));
    }
}

#[test]
fn caption_metrics_in_scripts() {
    let v = eval_script(
        r#"set_seed(0);
        let refs = ["a red square on the left", "a blue circle at the top", "a green star in the middle", "a yellow cross on grass", "a black triangle over water", "a white star on the right"];
        let s = caption_scores(refs, refs, #{permutations: 300});
        let b = bleu(refs, refs);
        let r = rouge_l(["A red square, on the LEFT!"], [["a red square on the left", "x"]]);
        let f = plot_bars(s, #{y_label: "score"});
        [s.bleu4, s.bleu4_p, s.rouge_l_chance, s.metrics.len, b.bleu4, r.rouge_l, s.permutations]"#,
    )
    .expect("script");
    let a = v.into_array().expect("array");
    assert_eq!(a[0].as_float().unwrap(), 1.0);
    assert!((a[1].as_float().unwrap() - 1.0 / 301.0).abs() < 1e-15);
    assert!(a[2].as_float().unwrap() < 0.8);
    assert_eq!(a[3].as_int().unwrap(), 5);
    assert_eq!(a[4].as_float().unwrap(), 1.0);
    assert_eq!(a[5].as_float().unwrap(), 1.0);
    assert_eq!(a[6].as_int().unwrap(), 300);
}

#[test]
fn caption_metrics_bad_input() {
    for f in ["bleu", "rouge_l", "caption_scores"] {
        assert_script_error(
            &format!(r#"{f}(["a cat", "a dog"], ["a cat"])"#),
            &[f, "2 candidates and 1 reference lists"],
        );
        assert_script_error(&format!("{f}([], [])"), &[f, "candidates is empty"]);
        assert_script_error(
            &format!(r#"{f}(["a cat"], [[]])"#),
            &[f, "references[0] is an empty list"],
        );
        assert_script_error(
            &format!(r#"{f}(["a cat", "a dog"], ["a cat", ["a dog", "  "]])"#),
            &[f, "references[1][1] is an empty string"],
        );
        assert_script_error(&format!(r#"{f}(["a cat"], [3])"#), &[f, "references[0]"]);
    }
    assert_script_error(
        r#"caption_scores(["a cat", "a dog"], ["a cat", "a dog"], #{permutations: 0})"#,
        &["caption_scores", "permutations", "positive integer"],
    );
    assert_script_error(
        r#"caption_scores(["a cat"], ["a cat"])"#,
        &["caption_scores", "at least 2 candidates"],
    );
    assert_script_error(
        r#"caption_scores(["a cat", "a dog"], ["a cat", "a dog"], #{permutation: 10})"#,
        &[
            "caption_scores",
            "unknown option 'permutation'",
            "permutations",
        ],
    );
    assert_script_error(
        r#"bleu(["a cat"], ["a cat"], #{smoothing: "method7"})"#,
        &["bleu", "smoothing", "none, method1"],
    );
    assert_script_error(
        r#"caption_scores(["a cat", "a dog"], ["a cat", "a dog"], #{encoder: 3})"#,
        &["caption_scores", "encoder", "TextEncoder"],
    );
}
