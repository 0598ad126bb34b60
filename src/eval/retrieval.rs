//! Caption retrieval: the captions of a corpus nearest (by cosine) to
//! predicted embeddings, in any embedding space (MiniLM, CLIP text, ...).

use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::tensor::{shape_text, tc};

/// The nearest corpus items to each prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrieval {
    /// Corpus indices per prediction, nearest first (N × k).
    pub index: Vec<Vec<i64>>,
    /// Their cosine similarities (N × k).
    pub similarity: Vec<Vec<f64>>,
}

/// Top-`k` corpus rows (M × d) by cosine similarity to each row of `pred`
/// (N × d); k is capped at M. Rows of zero norm have similarity 0.
pub fn retrieve(op: &'static str, pred: &Tensor, corpus: &Tensor, k: usize) -> Result<Retrieval> {
    let (p, c) = (pred.size(), corpus.size());
    if p.len() != 2 || p[0] == 0 {
        return Err(Error::shape(
            op,
            "pred",
            "N×d (one predicted embedding per row)",
            shape_text(&p),
        ));
    }
    if c.len() != 2 || c[0] == 0 {
        return Err(Error::shape(
            op,
            "corpus_embeddings",
            "M×d (one embedding per corpus caption)",
            shape_text(&c),
        ));
    }
    if c[1] != p[1] {
        return Err(Error::shape(
            op,
            "corpus_embeddings",
            format!("M×{} (the width of pred)", p[1]),
            shape_text(&c),
        ));
    }
    if k == 0 {
        return Err(Error::BadOption {
            op,
            key: "k".into(),
            expected: "an integer ≥ 1".into(),
            got: "0".into(),
        });
    }
    let k = (k as i64).min(c[0]);
    let unit = |x: &Tensor| -> Result<Tensor> {
        let x = tc(op, x.f_to_kind(Kind::Double))?;
        let norm = tc(op, x.f_norm_scalaropt_dim(2, [1i64].as_slice(), true))?.clamp_min(1e-300);
        Ok(x / norm)
    };
    let sim = tc(op, unit(pred)?.f_matmul(&unit(corpus)?.tr()))?;
    let (values, indices) = tc(op, sim.f_topk(k, 1, true, true))?;
    let values = values.to_device(tch::Device::Cpu);
    let indices = indices.to_device(tch::Device::Cpu);
    Ok(Retrieval {
        index: Vec::try_from(&indices)
            .map_err(|e: tch::TchError| Error::invalid(op, e.to_string()))?,
        similarity: Vec::try_from(&values)
            .map_err(|e: tch::TchError| Error::invalid(op, e.to_string()))?,
    })
}
