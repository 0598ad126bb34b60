//! The one numeric array type scripts see, and its fallible operations.
//!
//! [`Tensor`] wraps `tch::Tensor` (which is neither `Clone` nor `Sync`):
//! cloning shares storage through `shallow_clone`, as Rhai copies values
//! freely. Every operation a script can reach uses tch's `f_` forms so bad
//! shapes become [`Error`]s, never aborts. Nothing here knows Rhai.

use std::fmt;

use tch::{Kind, Tensor as TchTensor};

use crate::error::{Error, Result};

pub struct Tensor(pub TchTensor);

impl Clone for Tensor {
    fn clone(&self) -> Self {
        Tensor(self.0.shallow_clone())
    }
}

impl From<TchTensor> for Tensor {
    fn from(t: TchTensor) -> Self {
        Tensor(t)
    }
}

/// Runs a tch call, turning its error into ours with the op name.
pub fn tc<T>(op: &'static str, r: std::result::Result<T, tch::TchError>) -> Result<T> {
    r.map_err(|e| Error::torch(op, e))
}

pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Float => "f32",
        Kind::Double => "f64",
        Kind::Half => "f16",
        Kind::BFloat16 => "bf16",
        Kind::Int64 => "i64",
        Kind::Int => "i32",
        Kind::Int16 => "i16",
        Kind::Int8 => "i8",
        Kind::Uint8 => "u8",
        Kind::Bool => "bool",
        _ => "other",
    }
}

pub fn parse_kind(op: &'static str, name: &str) -> Result<Kind> {
    Ok(match name {
        "f32" | "float32" | "float" => Kind::Float,
        "f64" | "float64" | "double" => Kind::Double,
        "f16" | "float16" => Kind::Half,
        "i64" | "int64" | "int" | "long" => Kind::Int64,
        "i32" | "int32" => Kind::Int,
        "i16" | "int16" => Kind::Int16,
        "i8" | "int8" => Kind::Int8,
        "u8" | "uint8" => Kind::Uint8,
        "bool" => Kind::Bool,
        other => {
            return Err(Error::invalid(
                op,
                format!("unknown dtype \"{other}\"; expected one of f32, f64, f16, i64, i32, i16, i8, u8, bool"),
            ))
        }
    })
}

pub fn is_floating(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
    )
}

/// "1200×4466", or "scalar".
pub fn shape_text(shape: &[i64]) -> String {
    if shape.is_empty() {
        "scalar".into()
    } else {
        shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("×")
    }
}

impl Tensor {
    pub fn inner(&self) -> &TchTensor {
        &self.0
    }

    pub fn shape(&self) -> Vec<i64> {
        self.0.size()
    }

    pub fn ndim(&self) -> usize {
        self.0.dim()
    }

    pub fn numel(&self) -> usize {
        self.0.numel()
    }

    pub fn kind(&self) -> Kind {
        self.0.kind()
    }

    pub fn device(&self) -> tch::Device {
        self.0.device()
    }

    /// Reads a single-element tensor as f64.
    pub fn item(&self, op: &'static str) -> Result<f64> {
        if self.numel() != 1 {
            return Err(Error::shape(
                op,
                "tensor",
                "a single element",
                shape_text(&self.shape()),
            ));
        }
        let t = tc(op, self.0.f_to_kind(Kind::Double))?;
        tc(
            op,
            t.f_double_value(&[])
                .or_else(|_| tc_flat(&t).and_then(|f| f.f_double_value(&[0]))),
        )
    }

    /// All elements as f64 in C order (copied to the CPU).
    pub fn to_f64_vec(&self, op: &'static str) -> Result<Vec<f64>> {
        let t = tc(op, self.0.f_to_kind(Kind::Double))?;
        let t = tc(op, t.f_to_device(tch::Device::Cpu))?;
        let t = tc(op, t.f_contiguous())?;
        let t = tc(op, t.f_reshape([-1]))?;
        tc(op, Vec::<f64>::try_from(&t))
    }

    /// A float tensor (f32 unless it is already floating) for statistics.
    pub fn as_floating(&self, op: &'static str) -> Result<TchTensor> {
        if is_floating(self.kind()) {
            Ok(self.0.shallow_clone())
        } else {
            tc(op, self.0.f_to_kind(Kind::Float))
        }
    }

    /// Builds a tensor from f64 values in C order.
    pub fn from_f64(op: &'static str, values: &[f64], shape: &[i64], kind: Kind) -> Result<Tensor> {
        let t = tc(op, TchTensor::f_from_slice(values))?;
        let t = tc(op, t.f_reshape(shape))?;
        let t = tc(op, t.f_to_kind(kind))?;
        Ok(Tensor(tc(op, t.f_to_device(crate::device::current()))?))
    }

    /// Mean and population standard deviation over every element, in f64.
    pub fn summary(&self) -> Option<(f64, f64)> {
        if self.numel() == 0 {
            return None;
        }
        let t = self.0.f_to_kind(Kind::Double).ok()?;
        let mean = t.f_mean(Kind::Double).ok()?.f_double_value(&[]).ok()?;
        let sd = if self.numel() > 1 {
            t.f_std(false).ok()?.f_double_value(&[]).ok()?
        } else {
            0.0
        };
        Some((mean, sd))
    }
}

fn tc_flat(t: &TchTensor) -> std::result::Result<TchTensor, tch::TchError> {
    t.f_reshape([-1])
}

fn fmt_num(x: f64) -> String {
    crate::numfmt::number(x)
}

/// Tensors up to this many rows and columns print their values.
const PRINT_VALUES_UP_TO: i64 = 10;

impl Tensor {
    /// The values of a small 1-D or 2-D tensor as rows of text, for printing.
    fn value_rows(&self) -> Option<Vec<Vec<String>>> {
        let shape = self.shape();
        let (rows, cols) = match shape.as_slice() {
            [n] => (1, *n),
            [r, c] => (*r, *c),
            _ => return None,
        };
        if rows > PRINT_VALUES_UP_TO || cols > PRINT_VALUES_UP_TO || rows * cols == 0 {
            return None;
        }
        let flat = self
            .0
            .f_to_device(tch::Device::Cpu)
            .and_then(|t| t.f_to_kind(Kind::Double))
            .and_then(|t| t.f_reshape([-1]))
            .ok()?;
        let values = Vec::<f64>::try_from(&flat).ok()?;
        let is_bool = self.kind() == Kind::Bool;
        let text = |x: f64| {
            if is_bool {
                (x != 0.0).to_string()
            } else {
                fmt_num(x)
            }
        };
        Some(
            values
                .chunks(cols as usize)
                .map(|row| row.iter().map(|&x| text(x)).collect())
                .collect(),
        )
    }

    /// How many elements of a bool tensor are true.
    fn count_true(&self) -> Option<i64> {
        self.0
            .f_sum(Kind::Int64)
            .and_then(|t| t.f_int64_value(&[]))
            .ok()
    }
}

/// Rows of numbers as a bracketed matrix with right-aligned columns.
fn matrix_text(rows: &[Vec<String>], one_d: bool) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let line = |r: &Vec<String>| {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:>w$}"))
            .collect();
        format!("[{}]", cells.join(", "))
    };
    if one_d {
        let cells: Vec<&str> = rows[0].iter().map(String::as_str).collect();
        return format!("[{}]", cells.join(", "));
    }
    let lines: Vec<String> = rows.iter().map(line).collect();
    format!("[{}]", lines.join(",\n "))
}

impl fmt::Display for Tensor {
    /// `Tensor[f32; 1200×4466; cpu] mean=0.013 sd=0.998`: never a wall of
    /// numbers. Small vectors and matrices (a 4×4 affine) show their values;
    /// bool tensors (masks) how many elements are true.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape = self.shape();
        write!(
            f,
            "Tensor[{}; {}; {}]",
            kind_name(self.kind()),
            shape_text(&shape),
            crate::device::name(self.device())
        )?;
        if self.numel() == 1 {
            if let Ok(v) = self.item("print") {
                if self.kind() == Kind::Bool {
                    return write!(f, " {}", v != 0.0);
                }
                return write!(f, " {}", fmt_num(v));
            }
        }
        if self.kind() == Kind::Bool {
            if let Some(n) = self.count_true() {
                write!(f, " {n} true of {}", self.numel())?;
            }
        }
        if let Some(rows) = self.value_rows() {
            return if shape.len() == 1 {
                write!(f, " {}", matrix_text(&rows, true))
            } else {
                write!(f, "\n{}", matrix_text(&rows, false))
            };
        }
        if self.kind() == Kind::Bool {
            return Ok(());
        }
        match self.summary() {
            Some((mean, sd)) => write!(f, " mean={} sd={}", fmt_num(mean), fmt_num(sd)),
            None => write!(f, " empty"),
        }
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Which axis, counting from the end when negative; checked against ndim.
pub fn axis(op: &'static str, t: &Tensor, axis: i64) -> Result<i64> {
    let n = t.ndim() as i64;
    let a = if axis < 0 { axis + n } else { axis };
    if n == 0 || a < 0 || a >= n {
        return Err(Error::invalid(
            op,
            format!(
                "axis {axis} is out of range for a tensor of shape {} ({} axes)",
                shape_text(&t.shape()),
                n
            ),
        ));
    }
    Ok(a)
}

/// Z-scores along `axis` (population sd, as scipy.stats.zscore with ddof=0).
/// Constant slices give NaN, as in scipy.
pub fn zscore(t: &Tensor, ax: i64, ddof: i64) -> Result<Tensor> {
    const OP: &str = "zscore";
    let a = axis(OP, t, ax)?;
    let x = t.as_floating(OP)?;
    let mean = tc(OP, x.f_mean_dim(Some([a].as_slice()), true, x.kind()))?;
    let sd = tc(
        OP,
        x.f_std_correction(Some([a].as_slice()), tch::Scalar::int(ddof), true),
    )?;
    let centred = tc(OP, x.f_sub(&mean))?;
    Ok(Tensor(tc(OP, centred.f_div(&sd))?))
}

/// Multiply-adds per block of a large product on the CPU: tens of
/// milliseconds of work on one core, so a stop (a limit, Ctrl-C) applies
/// between blocks instead of after the whole product.
const MATMUL_BLOCK_MACS: f64 = 1e9;

/// Matrix product with a clear message when the inner sizes differ. A large
/// product on the CPU is computed in blocks of a's rows with a stop check
/// between them (one libtorch call cannot be interrupted); on a GPU the
/// kernels are queued at once, so blocks would not stop anything sooner.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    matmul_in_blocks(a, b, MATMUL_BLOCK_MACS)
}

/// [`matmul`] with blocks of about `block_macs` multiply-adds.
pub fn matmul_in_blocks(a: &Tensor, b: &Tensor, block_macs: f64) -> Result<Tensor> {
    const OP: &str = "matmul";
    let (sa, sb) = (a.shape(), b.shape());
    if sa.is_empty() || sb.is_empty() {
        return Err(Error::invalid(
            OP,
            "matmul needs tensors with at least one axis",
        ));
    }
    let inner_a = sa[sa.len() - 1];
    let inner_b = if sb.len() == 1 {
        sb[0]
    } else {
        sb[sb.len() - 2]
    };
    if inner_a != inner_b {
        return Err(Error::shape(
            OP,
            format!("inner sizes of {} and {}", shape_text(&sa), shape_text(&sb)),
            format!("a's last axis ({inner_a}) to equal b's first matrix axis"),
            inner_b.to_string(),
        ));
    }
    let rows = if sa.len() >= 2 { sa[sa.len() - 2] } else { 1 };
    let cols = if sb.len() >= 2 { sb[sb.len() - 1] } else { 1 };
    let batch = |s: &[i64]| -> f64 { s.iter().rev().skip(2).map(|&d| d as f64).product() };
    let row_macs = batch(&sa).max(batch(&sb)) * inner_a as f64 * cols as f64;
    let block_rows = (block_macs / row_macs.max(1.0)).floor().max(1.0) as i64;
    if a.0.device() != tch::Device::Cpu || sa.len() < 2 || block_rows >= rows {
        return Ok(Tensor(tc(OP, a.0.f_matmul(&b.0))?));
    }
    let mut blocks = Vec::new();
    for start in (0..rows).step_by(block_rows as usize) {
        crate::cancel::check(OP)?;
        let len = block_rows.min(rows - start);
        let part = tc(OP, a.0.f_narrow(-2, start, len))?;
        blocks.push(tc(OP, part.f_matmul(&b.0))?);
    }
    // a's rows are the output's last axis but one, or its last for a vector b.
    let row_axis = if sb.len() == 1 { -1 } else { -2 };
    Ok(Tensor(tc(OP, TchTensor::f_cat(&blocks, row_axis))?))
}

/// Selects entries along an axis by index (negative counts from the end).
pub fn take(op: &'static str, t: &Tensor, ax: i64, indices: &[i64]) -> Result<Tensor> {
    let a = axis(op, t, ax)?;
    let len = t.shape()[a as usize];
    let mut fixed = Vec::with_capacity(indices.len());
    for &i in indices {
        let j = if i < 0 { i + len } else { i };
        if j < 0 || j >= len {
            return Err(Error::invalid(
                op,
                format!("index {i} is out of range for axis {a} of length {len}"),
            ));
        }
        fixed.push(j);
    }
    let idx = tc(op, TchTensor::f_from_slice(&fixed))?;
    let idx = tc(op, idx.f_to_device(t.device()))?;
    Ok(Tensor(tc(op, t.0.f_index_select(a, &idx))?))
}

/// Concatenates along an existing axis, checking the other sizes agree.
pub fn cat(tensors: &[Tensor], ax: i64) -> Result<Tensor> {
    const OP: &str = "cat";
    let first = tensors
        .first()
        .ok_or_else(|| Error::invalid(OP, "expected at least one tensor, got an empty array"))?;
    let a = axis(OP, first, ax)?;
    let s0 = first.shape();
    for (i, t) in tensors.iter().enumerate().skip(1) {
        let s = t.shape();
        let agrees = s.len() == s0.len()
            && s.iter()
                .zip(&s0)
                .enumerate()
                .all(|(k, (x, y))| k as i64 == a || x == y);
        if !agrees {
            return Err(Error::shape(
                OP,
                format!("tensor {i} (all axes but {a} must match tensor 0)"),
                shape_text(&s0),
                shape_text(&s),
            ));
        }
    }
    let inner: Vec<&TchTensor> = tensors.iter().map(|t| &t.0).collect();
    Ok(Tensor(tc(OP, TchTensor::f_cat(&inner, a))?))
}

pub fn stack(tensors: &[Tensor], ax: i64) -> Result<Tensor> {
    const OP: &str = "stack";
    let first = tensors
        .first()
        .ok_or_else(|| Error::invalid(OP, "expected at least one tensor, got an empty array"))?;
    let s0 = first.shape();
    for (i, t) in tensors.iter().enumerate().skip(1) {
        if t.shape() != s0 {
            return Err(Error::shape(
                OP,
                format!("tensor {i} (all must have tensor 0's shape)"),
                shape_text(&s0),
                shape_text(&t.shape()),
            ));
        }
    }
    let n = s0.len() as i64 + 1;
    let a = if ax < 0 { ax + n } else { ax };
    if a < 0 || a >= n {
        return Err(Error::invalid(
            OP,
            format!("axis {ax} is out of range for stacking into {n} axes"),
        ));
    }
    let inner: Vec<&TchTensor> = tensors.iter().map(|t| &t.0).collect();
    Ok(Tensor(tc(OP, TchTensor::f_stack(&inner, a))?))
}
