//! Script face of [`crate::tensor`]: creation, arithmetic, reductions,
//! selection, conversion. Conversions between Rhai values and tensors live
//! here too, for every other registration file to use.

use rhai::{Array, Dynamic, Engine, Map, FLOAT, INT};
use tch::{Kind, Tensor as TchTensor};

use super::error::{guard, RhaiResult};
use super::help::{FnDoc, HelpRegistry, OptDoc};
use super::options::Opts;
use crate::device;
use crate::error::{Error, Result};
use crate::tensor::{self as ts, kind_name, shape_text, tc, Tensor};

// ---------------------------------------------------------------------------
// Conversions shared by all registration files.

/// Most dimensions a tensor may have (libtorch's own limit).
pub const MAX_DIMS: usize = 64;

/// Flattens a (nested) Rhai array of numbers/bools into values and a shape.
pub fn array_to_values(op: &'static str, arr: &Array) -> Result<(Vec<f64>, Vec<i64>)> {
    fn walk(
        op: &'static str,
        v: &Dynamic,
        depth: usize,
        shape: &mut Vec<i64>,
        out: &mut Vec<f64>,
    ) -> Result<()> {
        if let Some(arr) = v.read_lock::<Array>() {
            if depth >= MAX_DIMS {
                return Err(Error::invalid(
                    op,
                    format!("the array is nested more than {MAX_DIMS} deep; a tensor has at most {MAX_DIMS} dimensions"),
                ));
            }
            if depth == shape.len() {
                shape.push(arr.len() as i64);
            } else if shape[depth] != arr.len() as i64 {
                return Err(Error::invalid(
                    op,
                    format!(
                        "ragged nested array: a row at depth {depth} has {} elements, expected {}",
                        arr.len(),
                        shape[depth]
                    ),
                ));
            }
            for x in arr.iter() {
                walk(op, x, depth + 1, shape, out)?;
            }
            return Ok(());
        }
        if depth < shape.len() {
            return Err(Error::invalid(
                op,
                "ragged nested array: a number stands where a row was expected",
            ));
        }
        let x = if let Ok(f) = v.as_float() {
            f
        } else if let Ok(i) = v.as_int() {
            i as f64
        } else if let Ok(b) = v.as_bool() {
            f64::from(u8::from(b))
        } else if let Some(t) = v.read_lock::<Tensor>() {
            t.item(op)?
        } else {
            return Err(Error::invalid(
                op,
                format!("expected numbers in the array, got a {}", v.type_name()),
            ));
        };
        out.push(x);
        Ok(())
    }
    let mut shape = Vec::new();
    let mut values = Vec::new();
    crate::cancel::reserve(op, "the array's values", arr.len() as f64 * 8.0)?;
    walk(
        op,
        &Dynamic::from_array(arr.clone()),
        0,
        &mut shape,
        &mut values,
    )?;
    Ok((values, shape))
}

/// The leaves of a nested array as integers, when every one is an integer
/// or a bool (so that i64 tensors are built exactly, not through floats).
/// The nesting was checked by [`array_to_values`].
fn array_ints(v: &Dynamic, out: &mut Vec<i64>) -> bool {
    if let Some(arr) = v.read_lock::<Array>() {
        return arr.iter().all(|x| array_ints(x, out));
    }
    if let Ok(i) = v.as_int() {
        out.push(i);
        true
    } else if let Ok(b) = v.as_bool() {
        out.push(i64::from(b));
        true
    } else {
        false
    }
}

/// The values an integer or bool dtype holds, for range checks.
fn int_range(kind: Kind) -> Option<(f64, f64)> {
    Some(match kind {
        Kind::Uint8 => (0.0, 255.0),
        Kind::Int8 => (-128.0, 127.0),
        Kind::Int16 => (-32768.0, 32767.0),
        Kind::Int => (-2147483648.0, 2147483647.0),
        Kind::Int64 => (-9.223372036854776e18, 9.223372036854776e18),
        Kind::Bool => (0.0, 1.0),
        _ => return None,
    })
}

/// An integer dtype holds `x` exactly, or an error naming the dtype's range.
fn check_fits(op: &'static str, kind: Kind, x: f64) -> Result<()> {
    let Some((lo, hi)) = int_range(kind) else {
        return Ok(());
    };
    if !x.is_finite() || x < lo || x > hi {
        return Err(Error::invalid(
            op,
            format!("{x} does not fit in {} ({lo} to {hi})", kind_name(kind)),
        ));
    }
    if x.fract() != 0.0 {
        return Err(Error::invalid(
            op,
            format!(
                "{x} is not an integer, so it does not fit in {}",
                kind_name(kind)
            ),
        ));
    }
    Ok(())
}

/// The argument named `arg` of `op` as a tensor: a Tensor as is, an array of
/// numbers, or a number. Every error names the argument, e.g. "fit_ridge: x:
/// expected a Tensor or an array of numbers, got string".
pub fn to_tensor(op: &'static str, arg: &str, v: &Dynamic) -> Result<Tensor> {
    script_tensor(op, v).map_err(|e| name_argument(e, arg))
}

fn script_tensor(op: &'static str, v: &Dynamic) -> Result<Tensor> {
    if let Some(t) = v.read_lock::<Tensor>() {
        return Ok(t.clone());
    }
    if let Some(arr) = v.read_lock::<Array>() {
        let (values, shape) = array_to_values(op, &arr)?;
        return Tensor::from_f64(op, &values, &shape, Kind::Float);
    }
    if let Ok(x) = v.as_float() {
        return Tensor::from_f64(op, &[x], &[], Kind::Float);
    }
    if let Ok(i) = v.as_int() {
        return Tensor::from_f64(op, &[i as f64], &[], Kind::Float);
    }
    Err(Error::invalid(
        op,
        format!(
            "expected a Tensor or an array of numbers, got {}",
            v.type_name()
        ),
    ))
}

/// Puts the argument's name in front of an invalid-argument message.
pub fn name_argument(err: Error, arg: &str) -> Error {
    match err {
        Error::InvalidArgument { op, msg } => Error::InvalidArgument {
            op,
            msg: format!("{arg}: {msg}"),
        },
        other => other,
    }
}

/// Indices along an axis of `len`: as [`to_indices`], but a boolean mask
/// must have exactly `len` entries (a shorter one would silently select
/// from the start only).
pub fn to_indices_along(op: &'static str, v: &Dynamic, len: i64) -> Result<Vec<i64>> {
    if let Some(t) = v.read_lock::<Tensor>() {
        if t.kind() == Kind::Bool && (t.ndim() != 1 || t.numel() as i64 != len) {
            return Err(Error::shape(
                op,
                "boolean mask",
                format!("{len} entries (one per element of the axis)"),
                shape_text(&t.shape()),
            ));
        }
    }
    to_indices(op, v)
}

/// Indices from an array of integers or an integer/bool Tensor (bool = mask).
pub fn to_indices(op: &'static str, v: &Dynamic) -> Result<Vec<i64>> {
    if let Some(t) = v.read_lock::<Tensor>() {
        let t = if t.kind() == Kind::Bool {
            let nz = tc(op, t.0.f_nonzero())?;
            tc(op, nz.f_reshape([-1]))?
        } else if ts::is_floating(t.kind()) {
            return Err(Error::invalid(
                op,
                "index tensors must hold integers or booleans, got floats",
            ));
        } else {
            t.0.shallow_clone()
        };
        let t = tc(op, t.f_to_kind(Kind::Int64))?;
        let t = tc(op, t.f_to_device(tch::Device::Cpu))?;
        let t = tc(op, t.f_reshape([-1]))?;
        return tc(op, Vec::<i64>::try_from(&t));
    }
    if let Some(arr) = v.read_lock::<Array>() {
        return arr
            .iter()
            .map(|x| {
                x.as_int().map_err(|_| {
                    Error::invalid(
                        op,
                        format!("indices must be integers, got a {}", x.type_name()),
                    )
                })
            })
            .collect();
    }
    if let Ok(i) = v.as_int() {
        return Ok(vec![i]);
    }
    Err(Error::invalid(
        op,
        format!("expected an array of indices, got {}", v.type_name()),
    ))
}

/// Shape from an array of non-negative integers.
pub fn to_shape(op: &'static str, arr: &Array) -> Result<Vec<i64>> {
    arr.iter()
        .map(|x| match x.as_int() {
            Ok(i) if i >= 0 => Ok(i),
            Ok(i) => Err(Error::invalid(
                op,
                format!("a shape needs sizes ≥ 0, got {i}"),
            )),
            Err(_) => Err(Error::invalid(
                op,
                format!("a shape is an array of integers, got a {}", x.type_name()),
            )),
        })
        .collect()
}

/// Nested Rhai arrays of a tensor's values (ints stay ints, exactly; bools bools).
pub fn to_nested_array(op: &'static str, t: &Tensor) -> Result<Dynamic> {
    let shape = t.shape();
    let kind = t.kind();
    let leaves: Vec<Dynamic> = if kind == Kind::Bool {
        t.to_f64_vec(op)?
            .into_iter()
            .map(|x| Dynamic::from_bool(x != 0.0))
            .collect()
    } else if ts::is_floating(kind) {
        t.to_f64_vec(op)?
            .into_iter()
            .map(Dynamic::from_float)
            .collect()
    } else {
        let flat = tc(op, t.0.f_reshape([-1]))?;
        let flat = tc(
            op,
            tc(op, flat.f_to_kind(Kind::Int64))?.f_to_device(tch::Device::Cpu),
        )?;
        tc(op, Vec::<i64>::try_from(&flat))?
            .into_iter()
            .map(Dynamic::from_int)
            .collect()
    };
    fn build(values: &[Dynamic], shape: &[i64]) -> Dynamic {
        match shape.split_first() {
            None => values[0].clone(),
            Some((&n, rest)) => {
                let stride: usize = rest.iter().map(|&d| d as usize).product();
                let arr: Array = (0..n as usize)
                    .map(|i| build(&values[i * stride..(i + 1) * stride], rest))
                    .collect();
                Dynamic::from_array(arr)
            }
        }
    }
    if leaves.is_empty() && shape.is_empty() {
        return Ok(Dynamic::from_array(Array::new()));
    }
    Ok(build(&leaves, &shape))
}

fn dtype_opt(opts: &Opts, op: &'static str) -> Result<Kind> {
    ts::parse_kind(op, &opts.string("dtype")?)
}

fn on_device(op: &'static str, t: TchTensor) -> Result<Tensor> {
    Ok(Tensor(tc(op, t.f_to_device(device::current()))?))
}

// ---------------------------------------------------------------------------
// Help entries.

const DTYPE: OptDoc = OptDoc {
    name: "dtype",
    ty: "string",
    default: "f32",
    meaning: "element type: f32, f64, i64, i32, i16, i8, u8, bool",
};

pub static TENSOR: FnDoc = FnDoc {
    name: "tensor",
    domain: "tensor",
    signature: "tensor(values: array | number, opts?: map) -> Tensor",
    summary: "Make a tensor from nested arrays of numbers (float32 unless dtype says otherwise).",
    options: &[DTYPE],
    example: "let t = tensor([[1, 2], [3, 4]]);\nprint(t.shape);   // [2, 2]",
};
pub static ZEROS: FnDoc = FnDoc {
    name: "zeros",
    domain: "tensor",
    signature: "zeros(shape: array, opts?: map) -> Tensor",
    summary: "A tensor of zeros of the given shape on the current device.",
    options: &[DTYPE],
    example: "let z = zeros([3, 4]);",
};
pub static ONES: FnDoc = FnDoc {
    name: "ones",
    domain: "tensor",
    signature: "ones(shape: array, opts?: map) -> Tensor",
    summary: "A tensor of ones of the given shape on the current device.",
    options: &[DTYPE],
    example: "let o = ones([2, 5], #{dtype: \"f64\"});",
};
pub static FULL: FnDoc = FnDoc {
    name: "full",
    domain: "tensor",
    signature: "full(shape: array, value: number, opts?: map) -> Tensor",
    summary: "A tensor filled with one value.",
    options: &[DTYPE],
    example: "let h = full([2, 2], 0.5);",
};
pub static EYE: FnDoc = FnDoc {
    name: "eye",
    domain: "tensor",
    signature: "eye(n: int, opts?: map) -> Tensor",
    summary: "The n×n identity matrix.",
    options: &[DTYPE],
    example: "let i = eye(3);",
};
pub static RANDN: FnDoc = FnDoc {
    name: "randn",
    domain: "tensor",
    signature: "randn(shape: array, opts?: map) -> Tensor",
    summary: "Standard normal random numbers (reproducible under set_seed).",
    options: &[DTYPE],
    example: "set_seed(1);\nlet x = randn([100, 20]);",
};
pub static RAND: FnDoc = FnDoc {
    name: "rand",
    domain: "tensor",
    signature: "rand(shape: array, opts?: map) -> Tensor",
    summary: "Uniform random numbers in [0, 1) (reproducible under set_seed).",
    options: &[DTYPE],
    example: "let u = rand([10]);",
};
pub static RANDPERM: FnDoc = FnDoc {
    name: "randperm",
    domain: "tensor",
    signature: "randperm(n: int) -> array",
    summary: "A random permutation of 0..n as an array of integers (reproducible under set_seed).",
    options: &[],
    example: "let order = randperm(5);",
};
pub static ARANGE: FnDoc = FnDoc { name: "arange", domain: "tensor", signature: "arange(end: number) -> Tensor\narange(start: number, end: number) -> Tensor\narange(start: number, end: number, step: number) -> Tensor", summary: "Evenly spaced values in [start, end) (like numpy.arange); integers give an i64 tensor.", options: &[], example: "let k = arange(0, 10, 2);   // 0 2 4 6 8" };
pub static LINSPACE: FnDoc = FnDoc {
    name: "linspace",
    domain: "tensor",
    signature: "linspace(start: number, end: number, n: int) -> Tensor",
    summary: "n evenly spaced values from start to end inclusive.",
    options: &[],
    example: "let x = linspace(0.0, 1.0, 5);",
};
pub static SHAPE_PROPS: FnDoc = FnDoc {
    name: "Tensor", domain: "tensor",
    signature: "t.shape -> array\nt.dtype -> string\nt.device -> string\nt.ndim -> int\nt.numel -> int\nt[i] -> Tensor (a number for 1-D tensors)\n+ - * / with tensors or numbers (broadcasting); unary -; > < >= <= == != compare element-wise into bool tensors; | & ! combine bool tensors (masks); % is the remainder with the divisor's sign, as numpy's %",
    summary: "The numeric array type: properties, indexing and operators.",
    options: &[],
    example: "let t = tensor([[1, 2], [3, 4]]);\nlet u = (t + 1) * 2 - t / 4;\nprint(t[1]);        // the second row\nprint(t[1][0]);     // 3.0\nprint(t > 2);\nlet r = arange(0, 7) % 3;   // 0 1 2 0 1 2 0",
};
pub static TO_ARRAY: FnDoc = FnDoc {
    name: "to_array",
    domain: "tensor",
    signature: "to_array(t: Tensor) -> array",
    summary: "The tensor's values as nested arrays (floats, ints or bools by dtype).",
    options: &[],
    example: "let a = to_array(tensor([1, 2]));   // [1.0, 2.0]",
};
pub static ITEM: FnDoc = FnDoc {
    name: "item",
    domain: "tensor",
    signature: "item(t: Tensor) -> float",
    summary: "The value of a one-element tensor.",
    options: &[],
    example: "let s = tensor([1, 2, 3]).sum().item();",
};
pub static ASTYPE: FnDoc = FnDoc {
    name: "astype",
    domain: "tensor",
    signature: "astype(t: Tensor, dtype: string) -> Tensor",
    summary: "Converts to another element type (f32, f64, i64, ...).",
    options: &[],
    example: "let d = randn([3]).astype(\"f64\");",
};
pub static TO_DEVICE: FnDoc = FnDoc {
    name: "to_device",
    domain: "tensor",
    signature: "to_device(t: Tensor, device: string) -> Tensor",
    summary: "Moves a tensor to \"cpu\" or \"cuda\".",
    options: &[],
    example: "let c = ones([2]).to_device(\"cpu\");",
};
pub static RESHAPE: FnDoc = FnDoc {
    name: "reshape",
    domain: "tensor",
    signature: "reshape(t: Tensor, shape: array) -> Tensor",
    summary: "Same values in a new shape; one size may be -1 (inferred).",
    options: &[],
    example: "let m = arange(6).reshape([2, -1]);",
};
pub static FLATTEN: FnDoc = FnDoc {
    name: "flatten",
    domain: "tensor",
    signature: "flatten(t: Tensor) -> Tensor",
    summary: "All values as a 1-D tensor in C order.",
    options: &[],
    example: "let v = ones([2, 3]).flatten();",
};
pub static TRANSPOSE: FnDoc = FnDoc {
    name: "transpose",
    domain: "tensor",
    signature:
        "transpose(t: Tensor) -> Tensor\ntranspose(t: Tensor, axis0: int, axis1: int) -> Tensor",
    summary: "Swaps the two axes of a matrix, or the two given axes.",
    options: &[],
    example: "let tt = ones([2, 3]).transpose();   // 3×2",
};
pub static MATMUL: FnDoc = FnDoc {
    name: "matmul",
    domain: "tensor",
    signature: "matmul(a: Tensor, b: Tensor) -> Tensor",
    summary: "Matrix product (batched for more than two axes).",
    options: &[],
    example: "let p = matmul(ones([2, 3]), ones([3, 4]));",
};
pub static SUM: FnDoc = FnDoc {
    name: "sum",
    domain: "tensor",
    signature: "sum(t: Tensor) -> Tensor\nsum(t: Tensor, axis: int) -> Tensor",
    summary: "Sum of all elements, or along an axis (which disappears).",
    options: &[],
    example: "let col_sums = ones([3, 2]).sum(0);",
};
pub static MEAN: FnDoc = FnDoc {
    name: "mean",
    domain: "tensor",
    signature: "mean(t: Tensor) -> Tensor\nmean(t: Tensor, axis: int) -> Tensor\nmean(t: Tensor, opts: map) -> Tensor",
    summary: "Mean of all elements, or along an axis (positionally or as #{axis}, like zscore).",
    options: &[AXIS_NONE],
    example: "let m = randn([10, 4]).mean(0);\nlet same = randn([10, 4]).mean(#{axis: 0});",
};
pub static STD: FnDoc = FnDoc {
    name: "std",
    domain: "tensor",
    signature: "std(t: Tensor) -> Tensor\nstd(t: Tensor, axis: int) -> Tensor\nstd(t: Tensor, axis: int, ddof: int) -> Tensor\nstd(t: Tensor, opts: map) -> Tensor",
    summary: "Standard deviation with divisor n − ddof (ddof 0 by default, as numpy); axis and ddof positionally or as #{axis, ddof}, like zscore.",
    options: &[
        AXIS_NONE,
        OptDoc {
            name: "ddof",
            ty: "int",
            default: "0",
            meaning: "delta degrees of freedom: the divisor is n − ddof",
        },
    ],
    example: "let s = randn([10, 4]).std(0, 1);\nlet same = randn([10, 4]).std(#{axis: 0, ddof: 1});",
};
const AXIS_NONE: OptDoc = OptDoc {
    name: "axis",
    ty: "int",
    default: "none",
    meaning: "axis to reduce (negative counts from the end); none: all elements",
};
pub static MIN: FnDoc = FnDoc {
    name: "min",
    domain: "tensor",
    signature: "min(t: Tensor) -> Tensor\nmin(t: Tensor, axis: int) -> Tensor",
    summary: "Smallest element, or smallest along an axis.",
    options: &[],
    example: "let lo = tensor([3, 1, 2]).min();",
};
pub static MAX: FnDoc = FnDoc {
    name: "max",
    domain: "tensor",
    signature: "max(t: Tensor) -> Tensor\nmax(t: Tensor, axis: int) -> Tensor",
    summary: "Largest element, or largest along an axis.",
    options: &[],
    example: "let hi = tensor([[1, 5], [7, 2]]).max(1);",
};
pub static ARGMAX: FnDoc = FnDoc {
    name: "argmax",
    domain: "tensor",
    signature: "argmax(t: Tensor) -> int\nargmax(t: Tensor, axis: int) -> Tensor",
    summary: "Index of the largest element (flat), or along an axis (an i64 tensor).",
    options: &[],
    example: "let best = tensor([[0.1, 0.9], [0.7, 0.3]]).argmax(1);",
};
pub static ARGMIN: FnDoc = FnDoc {
    name: "argmin",
    domain: "tensor",
    signature: "argmin(t: Tensor) -> int\nargmin(t: Tensor, axis: int) -> Tensor",
    summary: "Index of the smallest element (flat), or along an axis.",
    options: &[],
    example: "let i = tensor([3, 1, 2]).argmin();   // 1",
};
pub static ROWS: FnDoc = FnDoc { name: "rows", domain: "tensor", signature: "rows(t: Tensor, indices: array | Tensor) -> Tensor", summary: "Rows (axis 0) by index; a bool tensor selects where true; negative indices count from the end.", options: &[], example: "let x = arange(12).reshape([4, 3]);\nlet first_last = x.rows([0, -1]);" };
pub static COLS: FnDoc = FnDoc {
    name: "cols",
    domain: "tensor",
    signature: "cols(t: Tensor, indices: array | Tensor) -> Tensor",
    summary: "Columns (axis 1) by index or bool mask.",
    options: &[],
    example: "let x = arange(12).reshape([4, 3]);\nlet c = x.cols([2]);",
};
pub static TAKE: FnDoc = FnDoc {
    name: "take",
    domain: "tensor",
    signature: "take(t: Tensor, indices: array | Tensor, axis: int) -> Tensor",
    summary: "Entries along any axis by index or bool mask.",
    options: &[],
    example: "let x = ones([2, 3, 4]);\nlet y = x.take([0, 3], 2);",
};
pub static SLICE: FnDoc = FnDoc {
    name: "slice",
    domain: "tensor",
    signature: "slice(t: Tensor, axis: int, start: int, end: int) -> Tensor",
    summary: "The contiguous range start..end (end excluded) along an axis.",
    options: &[],
    example: "let head = arange(10).slice(0, 0, 3);",
};
pub static CAT: FnDoc = FnDoc {
    name: "cat",
    domain: "tensor",
    signature: "cat(tensors: array) -> Tensor\ncat(tensors: array, axis: int) -> Tensor",
    summary: "Concatenates tensors along an existing axis (0 by default).",
    options: &[],
    example: "let both = cat([ones([2, 3]), zeros([1, 3])]);   // 3×3",
};
pub static STACK: FnDoc = FnDoc {
    name: "stack",
    domain: "tensor",
    signature: "stack(tensors: array) -> Tensor\nstack(tensors: array, axis: int) -> Tensor",
    summary: "Stacks equal-shaped tensors along a new axis (0 by default).",
    options: &[],
    example: "let s = stack([ones([3]), zeros([3])]);   // 2×3",
};
pub static ZSCORE: FnDoc = FnDoc {
    name: "zscore",
    domain: "tensor",
    signature: "zscore(t: Tensor, opts?: map) -> Tensor",
    summary: "(x − mean) / sd along an axis, as scipy.stats.zscore; constant slices give NaN.",
    options: &[
        OptDoc {
            name: "axis",
            ty: "int",
            default: "0",
            meaning: "axis to standardise along (0: each column over rows)",
        },
        OptDoc {
            name: "ddof",
            ty: "int",
            default: "0",
            meaning: "delta degrees of freedom of the sd",
        },
    ],
    example: "let z = zscore(randn([50, 8]));",
};
pub static SOFTMAX: FnDoc = FnDoc {
    name: "softmax",
    domain: "tensor",
    signature: "softmax(t: Tensor, axis: int) -> Tensor",
    summary: "exp(x) / Σ exp(x) along an axis.",
    options: &[],
    example: "let p = softmax(tensor([[1, 2, 3]]), 1);",
};
pub static ELEMENTWISE: FnDoc = FnDoc {
    name: "sqrt",
    domain: "tensor",
    signature: "sqrt(t: Tensor) -> Tensor\nexp(t: Tensor) -> Tensor\nlog(t: Tensor) -> Tensor\nabs(t: Tensor) -> Tensor\npow(t: Tensor, p: number) -> Tensor",
    summary: "Element-wise maths: sqrt, exp, log, abs, pow.",
    options: &[],
    example: "let r = sqrt(abs(randn([4])));\nlet sq = pow(tensor([1, 2]), 2);",
};
pub static CLAMP: FnDoc = FnDoc {
    name: "clamp",
    domain: "tensor",
    signature: "clamp(t: Tensor, lo: number, hi: number) -> Tensor",
    summary: "Limits every value to [lo, hi] (e.g. decoded pixels to [0, 1]).",
    options: &[],
    example: "let c = tensor([-0.5, 0.3, 1.7]).clamp(0.0, 1.0);   // 0 0.3 1",
};
pub static NAN_TO_NUM: FnDoc = FnDoc {
    name: "nan_to_num",
    domain: "tensor",
    signature: "nan_to_num(t: Tensor, value: number) -> Tensor",
    summary: "Replaces NaN (and ±inf) with a number.",
    options: &[],
    example: "let clean = nan_to_num(tensor([1, 2]) / 0, 0.0);",
};

const ALL_DOCS: &[&FnDoc] = &[
    &TENSOR,
    &ZEROS,
    &ONES,
    &FULL,
    &EYE,
    &RANDN,
    &RAND,
    &RANDPERM,
    &ARANGE,
    &LINSPACE,
    &SHAPE_PROPS,
    &TO_ARRAY,
    &ITEM,
    &ASTYPE,
    &TO_DEVICE,
    &RESHAPE,
    &FLATTEN,
    &TRANSPOSE,
    &MATMUL,
    &SUM,
    &MEAN,
    &STD,
    &MIN,
    &MAX,
    &ARGMAX,
    &ARGMIN,
    &ROWS,
    &COLS,
    &TAKE,
    &SLICE,
    &CAT,
    &STACK,
    &ZSCORE,
    &SOFTMAX,
    &ROUNDING,
    &INVERSE,
    &SOLVE,
    &DET,
    &ELEMENTWISE,
    &CLAMP,
    &NAN_TO_NUM,
];

/// Functions documented under another entry (`sqrt` documents its siblings).
pub const ALIASES: &[(&str, &str)] = &[
    ("exp", "sqrt"),
    ("log", "sqrt"),
    ("abs", "sqrt"),
    ("pow", "sqrt"),
];

// ---------------------------------------------------------------------------
// Registration.

fn creator(
    engine: &mut Engine,
    doc: &'static FnDoc,
    make: fn(&[i64], Kind) -> std::result::Result<TchTensor, tch::TchError>,
) {
    let op = doc.name;
    let build = move |shape: Array, opts: Map| -> RhaiResult<Tensor> {
        guard(op, || {
            let opts = Opts::parse(doc, opts)?;
            let kind = dtype_opt(&opts, op)?;
            let shape = to_shape(op, &shape)?;
            if (op == "rand" || op == "randn") && !ts::is_floating(kind) {
                return Err(Error::invalid(
                    op,
                    format!(
                        "random numbers need a float dtype (f32, f64, f16), got {}",
                        kind_name(kind)
                    ),
                ));
            }
            check_shape(op, &shape, kind)?;
            on_device(op, tc(op, make(&shape, kind))?)
        })
    };
    engine.register_fn(op, move |shape: Array| build(shape, Map::new()));
    engine.register_fn(op, build);
}

/// A shape a constructor can allocate: at most [`MAX_DIMS`] axes, and the
/// memory is there (see [`crate::cancel::reserve`]).
fn check_shape(op: &'static str, shape: &[i64], kind: Kind) -> Result<()> {
    if shape.len() > MAX_DIMS {
        return Err(Error::invalid(
            op,
            format!(
                "a tensor has at most {MAX_DIMS} dimensions, got {}",
                shape.len()
            ),
        ));
    }
    crate::cancel::reserve_tensor(op, shape, kind)
}

fn binary(op: &'static str, a: &Tensor, b: &Tensor) -> RhaiResult<Tensor> {
    guard(op, || {
        let (x, y) = (&a.0, &b.0);
        let r = match op {
            "+" => x.f_add(y),
            "-" => x.f_sub(y),
            "*" => x.f_mul(y),
            "/" => {
                // Integer ÷ integer would truncate in torch; scientists expect a float.
                let x = if ts::is_floating(x.kind()) {
                    x.shallow_clone()
                } else {
                    tc(op, x.f_to_kind(Kind::Float))?
                };
                x.f_div(y)
            }
            ">" => x.f_gt_tensor(y),
            "<" => x.f_lt_tensor(y),
            ">=" => x.f_ge_tensor(y),
            "==" => x.f_eq_tensor(y),
            "!=" => x.f_ne_tensor(y),
            "<=" => x.f_le_tensor(y),
            _ => unreachable!("binary op {op}"),
        };
        r.map(Tensor).map_err(|e| {
            let err = Error::torch(op, e);
            match err {
                Error::Torch { msg, .. } => Error::invalid(
                    "tensor arithmetic",
                    format!(
                        "cannot apply '{op}' to shapes {} and {}: {msg}",
                        shape_text(&a.shape()),
                        shape_text(&b.shape())
                    ),
                ),
                other => other,
            }
        })
    })
}

/// A 0-dim tensor that broadcasts and keeps `like`'s dtype for floats; an
/// integer with an integer tensor stays an integer (i64 + 1 is i64).
fn scalar_tensor(x: f64, like: &Tensor, is_int: bool) -> Result<Tensor> {
    let t = if is_int && int_range(like.kind()).is_some() && like.kind() != Kind::Bool {
        TchTensor::from(x as i64)
    } else {
        let kind = if ts::is_floating(like.kind()) {
            like.kind()
        } else {
            Kind::Float
        };
        tc("tensor arithmetic", TchTensor::from(x).f_to_kind(kind))?
    };
    Ok(Tensor(tc(
        "tensor arithmetic",
        t.f_to_device(like.device()),
    )?))
}

/// `tensor op number` and `number op tensor`.
fn with_scalar(op: &'static str, t: &Tensor, x: f64, scalar_first: bool) -> RhaiResult<Tensor> {
    with_scalar_of(op, t, x, false, scalar_first)
}

fn with_scalar_of(
    op: &'static str,
    t: &Tensor,
    x: f64,
    is_int: bool,
    scalar_first: bool,
) -> RhaiResult<Tensor> {
    let s = guard(op, || scalar_tensor(x, t, is_int))?;
    if scalar_first {
        binary(op, &s, t)
    } else {
        binary(op, t, &s)
    }
}

fn register_operators(engine: &mut Engine) {
    for op in ["+", "-", "*", "/", ">", "<", ">=", "<=", "==", "!="] {
        engine.register_fn(op, move |a: Tensor, b: Tensor| binary(op, &a, &b));
        engine.register_fn(op, move |a: Tensor, b: FLOAT| with_scalar(op, &a, b, false));
        engine.register_fn(op, move |a: Tensor, b: INT| {
            with_scalar_of(op, &a, b as f64, true, false)
        });
        engine.register_fn(op, move |a: FLOAT, b: Tensor| with_scalar(op, &b, a, true));
        engine.register_fn(op, move |a: INT, b: Tensor| {
            with_scalar_of(op, &b, a as f64, true, true)
        });
    }
    engine.register_fn("-", |a: Tensor| {
        guard("-", || Ok(Tensor(tc("-", a.0.f_neg())?)))
    });
    // Boolean tensors combine as masks: union, intersection, complement.
    for (op, is_or) in [("|", true), ("&", false)] {
        engine.register_fn(op, move |a: Tensor, b: Tensor| -> RhaiResult<Tensor> {
            guard(op, || {
                if a.kind() != Kind::Bool || b.kind() != Kind::Bool {
                    return Err(Error::invalid(
                        op,
                        format!(
                            "'{op}' combines bool tensors (masks), got {} and {}",
                            kind_name(a.kind()),
                            kind_name(b.kind())
                        ),
                    ));
                }
                let r = if is_or {
                    a.0.f_logical_or(&b.0)
                } else {
                    a.0.f_logical_and(&b.0)
                };
                Ok(Tensor(tc(op, r)?))
            })
        });
    }
    engine.register_fn("!", |a: Tensor| -> RhaiResult<Tensor> {
        guard("!", || {
            if a.kind() != Kind::Bool {
                return Err(Error::invalid(
                    "!",
                    format!(
                        "'!' negates a bool tensor (mask), got {}",
                        kind_name(a.kind())
                    ),
                ));
            }
            Ok(Tensor(tc("!", a.0.f_logical_not())?))
        })
    });
}

type Reduce = fn(&TchTensor, Option<i64>) -> std::result::Result<TchTensor, tch::TchError>;

fn reduction(engine: &mut Engine, op: &'static str, f: Reduce) {
    engine.register_fn(op, move |t: &mut Tensor| {
        guard(op, || {
            let x = if op == "sum" || op == "min" || op == "max" {
                t.0.shallow_clone()
            } else {
                t.as_floating(op)?
            };
            if t.numel() == 0 {
                return Err(Error::invalid(op, "the tensor is empty"));
            }
            Ok(Tensor(tc(op, f(&x, None))?))
        })
    });
    engine.register_fn(op, move |t: &mut Tensor, axis: INT| {
        guard(op, || {
            let a = ts::axis(op, t, axis)?;
            let x = if op == "sum" || op == "min" || op == "max" {
                t.0.shallow_clone()
            } else {
                t.as_floating(op)?
            };
            Ok(Tensor(tc(op, f(&x, Some(a)))?))
        })
    });
}

fn unary(
    engine: &mut Engine,
    op: &'static str,
    f: fn(&TchTensor) -> std::result::Result<TchTensor, tch::TchError>,
) {
    engine.register_fn(op, move |t: &mut Tensor| {
        guard(op, || {
            let x = t.as_floating(op)?;
            Ok(Tensor(tc(op, f(&x))?))
        })
    });
}

fn tensors_from(op: &'static str, arr: &Array) -> Result<Vec<Tensor>> {
    arr.iter()
        .enumerate()
        .map(|(i, v)| to_tensor(op, &format!("tensors[{i}]"), v))
        .collect()
}

pub fn register(engine: &mut Engine, help: &mut HelpRegistry) {
    for doc in ALL_DOCS {
        help.add(doc);
    }
    engine.register_type_with_name::<Tensor>("Tensor");
    engine.register_fn("to_string", |t: &mut Tensor| t.to_string());
    engine.register_fn("to_debug", |t: &mut Tensor| t.to_string());
    engine.register_get("shape", |t: &mut Tensor| -> Array {
        t.shape().into_iter().map(Dynamic::from_int).collect()
    });
    engine.register_get("dtype", |t: &mut Tensor| kind_name(t.kind()).to_string());
    engine.register_get("device", |t: &mut Tensor| device::name(t.device()));
    engine.register_get("ndim", |t: &mut Tensor| t.ndim() as INT);
    engine.register_get("numel", |t: &mut Tensor| t.numel() as INT);
    engine.register_indexer_get(|t: &mut Tensor, i: INT| -> RhaiResult<Dynamic> {
        guard("index", || {
            let shape = t.shape();
            let Some(&len) = shape.first() else {
                return Err(Error::invalid(
                    "index",
                    "cannot index a 0-dimensional tensor; use .item()",
                ));
            };
            let j = if i < 0 { i + len } else { i };
            if j < 0 || j >= len {
                return Err(Error::invalid(
                    "index",
                    format!("index {i} is out of range for axis 0 of length {len}"),
                ));
            }
            let row = Tensor(tc("index", t.0.f_select(0, j))?);
            if shape.len() == 1 {
                let x = row.item("index")?;
                Ok(if ts::is_floating(t.kind()) {
                    Dynamic::from_float(x)
                } else if t.kind() == Kind::Bool {
                    Dynamic::from_bool(x != 0.0)
                } else {
                    Dynamic::from_int(x as INT)
                })
            } else {
                Ok(Dynamic::from(row))
            }
        })
    });

    // Creation.
    let tensor_fn = |v: Dynamic, opts: Map| -> RhaiResult<Tensor> {
        guard("tensor", || {
            let opts = Opts::parse(&TENSOR, opts)?;
            let kind = dtype_opt(&opts, "tensor")?;
            // Built in the requested dtype from the script's numbers (f64 or
            // i64), never through float32.
            let (values, shape) = if let Some(arr) = v.read_lock::<Array>() {
                array_to_values("tensor", &arr)?
            } else if let Some(t) = v.read_lock::<Tensor>() {
                return Ok(Tensor(tc("tensor", t.0.f_to_kind(kind))?));
            } else if let Ok(x) = v.as_float() {
                (vec![x], vec![])
            } else if let Ok(i) = v.as_int() {
                (vec![i as f64], vec![])
            } else {
                return Err(Error::invalid(
                    "tensor",
                    format!("expected an array of numbers, got {}", v.type_name()),
                ));
            };
            if int_range(kind).is_some() {
                let mut ints = Vec::with_capacity(values.len());
                if array_ints(&v, &mut ints) {
                    for &i in &ints {
                        check_fits("tensor", kind, i as f64)?;
                    }
                    let t = tc("tensor", TchTensor::f_from_slice(&ints))?;
                    let t = tc("tensor", t.f_reshape(&shape))?;
                    return on_device("tensor", tc("tensor", t.f_to_kind(kind))?);
                }
                for &x in &values {
                    check_fits("tensor", kind, x)?;
                }
            }
            Tensor::from_f64("tensor", &values, &shape, kind)
        })
    };
    engine.register_fn("tensor", move |v: Dynamic| tensor_fn(v, Map::new()));
    engine.register_fn("tensor", tensor_fn);
    creator(engine, &ZEROS, |s, k| {
        TchTensor::f_zeros(s, (k, tch::Device::Cpu))
    });
    creator(engine, &ONES, |s, k| {
        TchTensor::f_ones(s, (k, tch::Device::Cpu))
    });
    creator(engine, &RANDN, |s, k| {
        TchTensor::f_randn(s, (k, tch::Device::Cpu))
    });
    creator(engine, &RAND, |s, k| {
        TchTensor::f_rand(s, (k, tch::Device::Cpu))
    });
    let full = |shape: Array, value: Dynamic, opts: Map| -> RhaiResult<Tensor> {
        guard("full", || {
            let opts = Opts::parse(&FULL, opts)?;
            let kind = dtype_opt(&opts, "full")?;
            let shape = to_shape("full", &shape)?;
            let x = value
                .as_float()
                .ok()
                .or_else(|| value.as_int().ok().map(|i| i as f64))
                .ok_or_else(|| {
                    Error::invalid(
                        "full",
                        format!("value must be a number, got {}", value.type_name()),
                    )
                })?;
            check_fits("full", kind, x)?;
            check_shape("full", &shape, kind)?;
            on_device(
                "full",
                tc(
                    "full",
                    TchTensor::f_full(&shape, x, (kind, tch::Device::Cpu)),
                )?,
            )
        })
    };
    engine.register_fn("full", move |s: Array, v: Dynamic| full(s, v, Map::new()));
    engine.register_fn("full", full);
    let eye = |n: INT, opts: Map| -> RhaiResult<Tensor> {
        guard("eye", || {
            let opts = Opts::parse(&EYE, opts)?;
            if n < 0 {
                return Err(Error::invalid("eye", format!("n must be ≥ 0, got {n}")));
            }
            let kind = dtype_opt(&opts, "eye")?;
            check_shape("eye", &[n, n], kind)?;
            on_device(
                "eye",
                tc(
                    "eye",
                    TchTensor::f_eye(n, (dtype_opt(&opts, "eye")?, tch::Device::Cpu)),
                )?,
            )
        })
    };
    engine.register_fn("eye", move |n: INT| eye(n, Map::new()));
    engine.register_fn("eye", eye);
    engine.register_fn("randperm", |n: INT| -> RhaiResult<Array> {
        guard("randperm", || {
            if n < 0 {
                return Err(Error::invalid(
                    "randperm",
                    format!("n must be ≥ 0, got {n}"),
                ));
            }
            check_shape("randperm", &[n], Kind::Int64)?;
            let p = tc(
                "randperm",
                TchTensor::f_randperm(n, (Kind::Int64, tch::Device::Cpu)),
            )?;
            let v = tc("randperm", Vec::<i64>::try_from(&p))?;
            Ok(v.into_iter().map(Dynamic::from_int).collect())
        })
    });
    fn arange(start: Dynamic, end: Dynamic, step: Dynamic) -> RhaiResult<Tensor> {
        guard("arange", || {
            let num = |v: &Dynamic, what: &str| -> Result<f64> {
                v.as_float()
                    .ok()
                    .or_else(|| v.as_int().ok().map(|i| i as f64))
                    .ok_or_else(|| {
                        Error::invalid(
                            "arange",
                            format!("{what} must be a number, got {}", v.type_name()),
                        )
                    })
            };
            let all_int = start.is_int() && end.is_int() && step.is_int();
            let (s, e, st) = (
                num(&start, "start")?,
                num(&end, "end")?,
                num(&step, "step")?,
            );
            if st == 0.0 || !st.is_finite() {
                return Err(Error::invalid(
                    "arange",
                    format!("step must be a non-zero number, got {st}"),
                ));
            }
            if !s.is_finite() || !e.is_finite() {
                return Err(Error::invalid(
                    "arange",
                    format!("start and end must be finite numbers, got {s} and {e}"),
                ));
            }
            if (e - s) * st < 0.0 {
                return Err(Error::invalid(
                    "arange",
                    format!(
                        "step must be {} to go from {s} to {e}, got {st}",
                        if e > s { "positive" } else { "negative" }
                    ),
                ));
            }
            let kind = if all_int { Kind::Int64 } else { Kind::Float };
            check_shape("arange", &[((e - s) / st).ceil().min(9e18) as i64], kind)?;
            on_device(
                "arange",
                tc(
                    "arange",
                    TchTensor::f_arange_start_step(s, e, st, (kind, tch::Device::Cpu)),
                )?,
            )
        })
    }
    engine.register_fn("arange", |e: Dynamic| {
        arange(Dynamic::from_int(0), e, Dynamic::from_int(1))
    });
    engine.register_fn("arange", |s: Dynamic, e: Dynamic| {
        arange(s, e, Dynamic::from_int(1))
    });
    engine.register_fn("arange", arange);
    engine.register_fn(
        "linspace",
        |s: Dynamic, e: Dynamic, n: INT| -> RhaiResult<Tensor> {
            guard("linspace", || {
                let num = |v: &Dynamic| {
                    v.as_float()
                        .ok()
                        .or_else(|| v.as_int().ok().map(|i| i as f64))
                        .ok_or_else(|| {
                            Error::invalid(
                                "linspace",
                                format!("start and end must be numbers, got {}", v.type_name()),
                            )
                        })
                };
                if n < 0 {
                    return Err(Error::invalid(
                        "linspace",
                        format!("n must be ≥ 0, got {n}"),
                    ));
                }
                let (a, b) = (num(&s)?, num(&e)?);
                if !a.is_finite() || !b.is_finite() {
                    return Err(Error::invalid(
                        "linspace",
                        format!("start and end must be finite numbers, got {a} and {b}"),
                    ));
                }
                check_shape("linspace", &[n], Kind::Float)?;
                on_device(
                    "linspace",
                    tc(
                        "linspace",
                        TchTensor::f_linspace(
                            num(&s)?,
                            num(&e)?,
                            n,
                            (Kind::Float, tch::Device::Cpu),
                        ),
                    )?,
                )
            })
        },
    );

    // Conversion.
    engine.register_fn("to_array", |t: &mut Tensor| {
        guard("to_array", || to_nested_array("to_array", t))
    });
    engine.register_fn("item", |t: &mut Tensor| guard("item", || t.item("item")));
    engine.register_fn("astype", |t: &mut Tensor, dtype: &str| {
        guard("astype", || {
            Ok(Tensor(tc(
                "astype",
                t.0.f_to_kind(ts::parse_kind("astype", dtype)?),
            )?))
        })
    });
    engine.register_fn("to_device", |t: &mut Tensor, d: &str| {
        guard("to_device", || {
            Ok(Tensor(tc(
                "to_device",
                t.0.f_to_device(device::parse("to_device", d)?),
            )?))
        })
    });

    // Shape.
    engine.register_fn("reshape", |t: &mut Tensor, shape: Array| {
        guard("reshape", || {
            let s: Vec<i64> = shape
                .iter()
                .map(|x| {
                    x.as_int()
                        .map_err(|_| Error::invalid("reshape", "a shape is an array of integers"))
                })
                .collect::<Result<_>>()?;
            let known: i64 = s.iter().filter(|&&d| d != -1).product();
            let fits = if s.contains(&-1) {
                known > 0 && t.numel() as i64 % known == 0
            } else {
                known == t.numel() as i64
            };
            if !fits || s.iter().filter(|&&d| d == -1).count() > 1 {
                return Err(Error::shape(
                    "reshape",
                    "new shape",
                    format!("sizes whose product is {}", t.numel()),
                    format!("{s:?}"),
                ));
            }
            Ok(Tensor(tc("reshape", t.0.f_reshape(&s))?))
        })
    });
    engine.register_fn("flatten", |t: &mut Tensor| {
        guard("flatten", || {
            Ok(Tensor(tc("flatten", t.0.f_reshape([-1]))?))
        })
    });
    engine.register_fn("transpose", |t: &mut Tensor| {
        guard("transpose", || {
            if t.ndim() != 2 {
                return Err(Error::invalid(
                    "transpose",
                    format!(
                        "transpose(t) needs a matrix, got shape {}; give two axes for more",
                        shape_text(&t.shape())
                    ),
                ));
            }
            Ok(Tensor(tc("transpose", t.0.f_transpose(0, 1))?))
        })
    });
    engine.register_fn("transpose", |t: &mut Tensor, a: INT, b: INT| {
        guard("transpose", || {
            let (a, b) = (ts::axis("transpose", t, a)?, ts::axis("transpose", t, b)?);
            Ok(Tensor(tc("transpose", t.0.f_transpose(a, b))?))
        })
    });
    engine.register_fn("matmul", |a: &mut Tensor, b: Tensor| {
        guard("matmul", || ts::matmul(a, &b))
    });

    // Reductions.
    // As numpy: bool and integer sums count in int64 (a u8 sum does not wrap).
    reduction(engine, "sum", |x, a| {
        let kind = if ts::is_floating(x.kind()) {
            x.kind()
        } else {
            Kind::Int64
        };
        match a {
            None => x.f_sum(kind),
            Some(a) => x.f_sum_dim_intlist(Some([a].as_slice()), false, kind),
        }
    });
    reduction(engine, "mean", |x, a| match a {
        None => x.f_mean(x.kind()),
        Some(a) => x.f_mean_dim(Some([a].as_slice()), false, x.kind()),
    });
    reduction(engine, "std", |x, a| match a {
        None => x.f_std(false),
        Some(a) => x.f_std_correction(Some([a].as_slice()), tch::Scalar::int(0), false),
    });
    reduction(engine, "min", |x, a| match a {
        None => x.f_min(),
        Some(a) => x.f_amin([a].as_slice(), false),
    });
    reduction(engine, "max", |x, a| match a {
        None => x.f_max(),
        Some(a) => x.f_amax([a].as_slice(), false),
    });
    engine.register_fn("std", |t: &mut Tensor, axis: INT, ddof: INT| {
        guard("std", || {
            let a = ts::axis("std", t, axis)?;
            let x = t.as_floating("std")?;
            let len = t.shape()[a as usize];
            if ddof < 0 {
                return Err(Error::invalid("std", format!("ddof must be ≥ 0, got {ddof}")));
            }
            if len - ddof <= 0 {
                // NaN as numpy gives, with voxlab's warning instead of libtorch's raw one.
                eprintln!(
                    "warning: std: axis {a} has {len} values and ddof {ddof} leaves no degrees of freedom; the result is NaN"
                );
                let mut shape = t.shape();
                shape.remove(a as usize);
                return Ok(Tensor(tc(
                    "std",
                    TchTensor::f_full(&shape, f64::NAN, (x.kind(), x.device())),
                )?));
            }
            Ok(Tensor(tc(
                "std",
                x.f_std_correction(Some([a].as_slice()), tch::Scalar::int(ddof), false),
            )?))
        })
    });
    for (op, is_max) in [("argmax", true), ("argmin", false)] {
        engine.register_fn(op, move |t: &mut Tensor| {
            guard(op, || {
                if t.numel() == 0 {
                    return Err(Error::invalid(op, "the tensor is empty"));
                }
                let r = if is_max {
                    t.0.f_argmax(None, false)
                } else {
                    t.0.f_argmin(None, false)
                };
                Ok(tc(op, tc(op, r)?.f_int64_value(&[]))?)
            })
        });
        engine.register_fn(op, move |t: &mut Tensor, axis: INT| {
            guard(op, || {
                let a = ts::axis(op, t, axis)?;
                let r = if is_max {
                    t.0.f_argmax(Some(a), false)
                } else {
                    t.0.f_argmin(Some(a), false)
                };
                Ok(Tensor(tc(op, r)?))
            })
        });
    }

    // Selection.
    engine.register_fn("rows", |t: &mut Tensor, idx: Dynamic| {
        guard("rows", || {
            let len = t.shape().first().copied().unwrap_or(0);
            ts::take("rows", t, 0, &to_indices_along("rows", &idx, len)?)
        })
    });
    engine.register_fn("cols", |t: &mut Tensor, idx: Dynamic| {
        guard("cols", || {
            if t.ndim() < 2 {
                return Err(Error::invalid(
                    "cols",
                    format!(
                        "needs at least 2 axes, got shape {}",
                        shape_text(&t.shape())
                    ),
                ));
            }
            let len = t.shape()[1];
            ts::take("cols", t, 1, &to_indices_along("cols", &idx, len)?)
        })
    });
    engine.register_fn("take", |t: &mut Tensor, idx: Dynamic, axis: INT| {
        guard("take", || {
            let a = ts::axis("take", t, axis)?;
            let len = t.shape()[a as usize];
            ts::take("take", t, axis, &to_indices_along("take", &idx, len)?)
        })
    });
    engine.register_fn(
        "slice",
        |t: &mut Tensor, axis: INT, start: INT, end: INT| {
            guard("slice", || {
                let a = ts::axis("slice", t, axis)?;
                let len = t.shape()[a as usize];
                let norm = |i: i64| if i < 0 { (i + len).max(0) } else { i.min(len) };
                let (s, e) = (norm(start), norm(end));
                Ok(Tensor(tc("slice", t.0.f_narrow(a, s, (e - s).max(0)))?))
            })
        },
    );
    engine.register_fn("cat", |arr: Array| {
        guard("cat", || ts::cat(&tensors_from("cat", &arr)?, 0))
    });
    engine.register_fn("cat", |arr: Array, axis: INT| {
        guard("cat", || ts::cat(&tensors_from("cat", &arr)?, axis))
    });
    engine.register_fn("stack", |arr: Array| {
        guard("stack", || ts::stack(&tensors_from("stack", &arr)?, 0))
    });
    engine.register_fn("stack", |arr: Array, axis: INT| {
        guard("stack", || ts::stack(&tensors_from("stack", &arr)?, axis))
    });

    // Element-wise and standardisation.
    let zscore = |t: &mut Tensor, opts: Map| -> RhaiResult<Tensor> {
        guard("zscore", || {
            let opts = Opts::parse(&ZSCORE, opts)?;
            ts::zscore(t, opts.i64("axis")?, opts.i64("ddof")?)
        })
    };
    engine.register_fn("zscore", move |t: &mut Tensor| zscore(t, Map::new()));
    engine.register_fn("zscore", zscore);
    engine.register_fn("softmax", |t: &mut Tensor, axis: INT| {
        guard("softmax", || {
            let a = ts::axis("softmax", t, axis)?;
            let x = t.as_floating("softmax")?;
            Ok(Tensor(tc("softmax", x.f_softmax(a, x.kind()))?))
        })
    });
    unary(engine, "sqrt", |x| x.f_sqrt());
    unary(engine, "exp", |x| x.f_exp());
    unary(engine, "log", |x| x.f_log());
    engine.register_fn("abs", |t: &mut Tensor| {
        guard("abs", || Ok(Tensor(tc("abs", t.0.f_abs())?)))
    });
    engine.register_fn("pow", |t: &mut Tensor, p: Dynamic| {
        guard("pow", || {
            let x = t.as_floating("pow")?;
            let p = p
                .as_float()
                .ok()
                .or_else(|| p.as_int().ok().map(|i| i as f64))
                .ok_or_else(|| Error::invalid("pow", "the exponent must be a number"))?;
            Ok(Tensor(tc("pow", x.f_pow_tensor_scalar(p))?))
        })
    });
    engine.register_fn("clamp", |t: &mut Tensor, lo: Dynamic, hi: Dynamic| {
        guard("clamp", || {
            let num = |v: &Dynamic, what: &str| {
                v.as_float()
                    .ok()
                    .or_else(|| v.as_int().ok().map(|i| i as f64))
                    .ok_or_else(|| {
                        Error::invalid(
                            "clamp",
                            format!("{what} must be a number, got {}", v.type_name()),
                        )
                    })
            };
            let (lo, hi) = (num(&lo, "lo")?, num(&hi, "hi")?);
            if lo > hi {
                return Err(Error::invalid(
                    "clamp",
                    format!("lo ({lo}) must not exceed hi ({hi})"),
                ));
            }
            let x = t.as_floating("clamp")?;
            Ok(Tensor(tc("clamp", x.f_clamp(lo, hi))?))
        })
    });
    engine.register_fn("nan_to_num", |t: &mut Tensor, v: Dynamic| {
        guard("nan_to_num", || {
            let v = v
                .as_float()
                .ok()
                .or_else(|| v.as_int().ok().map(|i| i as f64))
                .ok_or_else(|| Error::invalid("nan_to_num", "the replacement must be a number"))?;
            let x = t.as_floating("nan_to_num")?;
            Ok(Tensor(tc(
                "nan_to_num",
                x.f_nan_to_num(Some(v), Some(v), Some(v)),
            )?))
        })
    });
    register_operators(engine);
    register_rounding_and_linear_algebra(engine);
}

// ---------------------------------------------------------------------------
// Rounding, remainder, linear algebra, and mean/std with an options map.

pub static ROUNDING: FnDoc = FnDoc {
    name: "round",
    domain: "tensor",
    signature: "round(t: Tensor) -> Tensor\nfloor(t: Tensor) -> Tensor\nceil(t: Tensor) -> Tensor",
    summary: "Element-wise rounding as numpy: round to the nearest integer (halves to even), floor, ceil; integer tensors stay as they are.",
    options: &[],
    example: "let r = tensor([0.5, 1.5, -1.2]).round();   // 0 2 -1\nlet f = floor(tensor([1.7, -1.2]));           // 1 -2",
};
pub static INVERSE: FnDoc = FnDoc {
    name: "inverse",
    domain: "tensor",
    signature: "inverse(a: Tensor) -> Tensor",
    summary: "Inverse of a square matrix (or of each in a batch …×n×n), as numpy.linalg.inv; a singular matrix is an error.",
    options: &[],
    example: "let a = tensor([[2.0, 1.0], [1.0, 3.0]], #{dtype: \"f64\"});\nlet ai = a.inverse();\nprint(matmul(a, ai));   // the identity",
};
pub static SOLVE: FnDoc = FnDoc {
    name: "solve",
    domain: "tensor",
    signature: "solve(a: Tensor, b: Tensor) -> Tensor",
    summary: "x with a·x = b for square a (b a vector or a matrix of right-hand sides), as numpy.linalg.solve.",
    options: &[],
    example: "let a = tensor([[3.0, 1.0], [1.0, 2.0]]);\nlet x = solve(a, tensor([9.0, 8.0]));   // 2 3",
};
pub static DET: FnDoc = FnDoc {
    name: "det",
    domain: "tensor",
    signature: "det(a: Tensor) -> Tensor",
    summary: "Determinant of a square matrix (or of each in a batch), as numpy.linalg.det.",
    options: &[],
    example: "let d = det(tensor([[1.0, 2.0], [3.0, 4.0]]));   // -2",
};

/// The matrix argument of a linear-algebra function: floating, at least
/// 2-D, square in its last two axes.
fn square_matrix(op: &'static str, name: &str, t: &Tensor) -> Result<TchTensor> {
    let shape = t.shape();
    let n = shape.len();
    if n < 2 || shape[n - 1] != shape[n - 2] {
        return Err(Error::invalid(
            op,
            format!(
                "{name}: expected a square matrix (n×n, or …×n×n), got shape {}",
                shape_text(&shape)
            ),
        ));
    }
    t.as_floating(op)
}

/// A linear-algebra failure (a singular matrix) in words.
fn linalg_error(op: &'static str, e: tch::TchError) -> Error {
    match Error::torch(op, e) {
        Error::Torch { msg, .. } if msg.contains("singular") => Error::invalid(
            op,
            "the matrix is singular (its determinant is 0), so it has no inverse",
        ),
        other => other,
    }
}

fn remainder(a: &Tensor, b: &Tensor) -> RhaiResult<Tensor> {
    guard("%", || {
        a.0.f_remainder_tensor(&b.0).map(Tensor).map_err(|e| {
            Error::invalid(
                "%",
                format!(
                    "cannot apply '%' to shapes {} and {}: {}",
                    shape_text(&a.shape()),
                    shape_text(&b.shape()),
                    Error::torch("%", e)
                ),
            )
        })
    })
}

/// A number as a 0-dim tensor for `%`: integers stay integers with an
/// integer tensor, so arange(7) % 3 is an i64 tensor as in numpy.
fn remainder_operand(x: Dynamic, like: &Tensor) -> RhaiResult<Tensor> {
    guard("%", || {
        if let (Ok(i), false) = (x.as_int(), ts::is_floating(like.kind())) {
            let t = tc("%", TchTensor::from(i).f_to_device(like.device()))?;
            return Ok(Tensor(tc("%", t.f_to_kind(like.kind()))?));
        }
        let v = x
            .as_float()
            .or_else(|_| x.as_int().map(|i| i as f64))
            .map_err(|_| Error::invalid("%", "expected a number or a Tensor"))?;
        scalar_tensor(v, like, false)
    })
}

fn register_rounding_and_linear_algebra(engine: &mut Engine) {
    type Round = fn(&TchTensor) -> std::result::Result<TchTensor, tch::TchError>;
    let rounding: [(&'static str, Round); 3] = [
        ("round", |x| x.f_round()),
        ("floor", |x| x.f_floor()),
        ("ceil", |x| x.f_ceil()),
    ];
    for (op, f) in rounding {
        engine.register_fn(op, move |t: &mut Tensor| {
            guard(op, || {
                if !ts::is_floating(t.kind()) {
                    return Ok(t.clone());
                }
                Ok(Tensor(tc(op, f(&t.0))?))
            })
        });
    }

    engine.register_fn("%", |a: Tensor, b: Tensor| remainder(&a, &b));
    engine.register_fn("%", |a: Tensor, b: FLOAT| {
        remainder(&a, &remainder_operand(Dynamic::from_float(b), &a)?)
    });
    engine.register_fn("%", |a: Tensor, b: INT| {
        remainder(&a, &remainder_operand(Dynamic::from_int(b), &a)?)
    });
    engine.register_fn("%", |a: FLOAT, b: Tensor| {
        remainder(&remainder_operand(Dynamic::from_float(a), &b)?, &b)
    });
    engine.register_fn("%", |a: INT, b: Tensor| {
        remainder(&remainder_operand(Dynamic::from_int(a), &b)?, &b)
    });

    engine.register_fn("inverse", |a: &mut Tensor| {
        guard("inverse", || {
            let x = square_matrix("inverse", "a", a)?;
            TchTensor::f_linalg_inv(&x)
                .map(Tensor)
                .map_err(|e| linalg_error("inverse", e))
        })
    });
    engine.register_fn("det", |a: &mut Tensor| {
        guard("det", || {
            let x = square_matrix("det", "a", a)?;
            TchTensor::f_linalg_det(&x)
                .map(Tensor)
                .map_err(|e| linalg_error("det", e))
        })
    });
    engine.register_fn("solve", |a: &mut Tensor, b: Tensor| {
        guard("solve", || {
            let x = square_matrix("solve", "a", a)?;
            let n = a.shape()[a.ndim() - 1];
            let bs = b.shape();
            let rows = match bs.len() {
                1 => bs[0],
                2 => bs[0],
                _ => -1,
            };
            if a.ndim() != 2 || rows != n {
                return Err(Error::invalid(
                    "solve",
                    format!(
                        "b: expected {n} values or {n} rows for a {} matrix a, got shape {}",
                        shape_text(&a.shape()),
                        shape_text(&bs)
                    ),
                ));
            }
            let y = tc("solve", b.as_floating("solve")?.f_to_kind(x.kind()))?;
            TchTensor::f_linalg_solve(&x, &y, true)
                .map(Tensor)
                .map_err(|e| linalg_error("solve", e))
        })
    });

    // mean/std with the trailing options map zscore takes.
    engine.register_fn("mean", |t: &mut Tensor, opts: Map| -> RhaiResult<Tensor> {
        guard("mean", || {
            let opts = Opts::parse(&MEAN, opts)?;
            let x = t.as_floating("mean")?;
            if t.numel() == 0 {
                return Err(Error::invalid("mean", "the tensor is empty"));
            }
            let r = match opts.opt_i64("axis")? {
                None => x.f_mean(x.kind()),
                Some(axis) => {
                    let a = ts::axis("mean", t, axis)?;
                    x.f_mean_dim(Some([a].as_slice()), false, x.kind())
                }
            };
            Ok(Tensor(tc("mean", r)?))
        })
    });
    engine.register_fn("std", |t: &mut Tensor, opts: Map| -> RhaiResult<Tensor> {
        guard("std", || {
            let opts = Opts::parse(&STD, opts)?;
            let x = t.as_floating("std")?;
            if t.numel() == 0 {
                return Err(Error::invalid("std", "the tensor is empty"));
            }
            let ddof = tch::Scalar::int(opts.i64("ddof")?);
            let r = match opts.opt_i64("axis")? {
                None => x.f_std_correction(None::<&[i64]>, ddof, false),
                Some(axis) => {
                    let a = ts::axis("std", t, axis)?;
                    x.f_std_correction(Some([a].as_slice()), ddof, false)
                }
            };
            Ok(Tensor(tc("std", r)?))
        })
    });
}
