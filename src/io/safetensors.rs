//! safetensors files: writing named tensors (with JSON metadata) and reading
//! them back in any of the dtypes hubs publish (float16 and bfloat16
//! weights are converted on load by the caller's `to_kind`).
//!
//! One writer and one reader for the whole program: ridge models, Hugging
//! Face folders and training checkpoints all go through here.

use std::collections::HashMap;
use std::path::Path;

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::tensor::{kind_name, tc};

/// A tensor's bytes in the layout safetensors stores.
struct Bytes {
    data: Vec<u8>,
    shape: Vec<usize>,
    dtype: safetensors::Dtype,
}

fn dtype_of(kind: Kind) -> Option<safetensors::Dtype> {
    use safetensors::Dtype as D;
    Some(match kind {
        Kind::Float => D::F32,
        Kind::Double => D::F64,
        Kind::Half => D::F16,
        Kind::BFloat16 => D::BF16,
        Kind::Int64 => D::I64,
        Kind::Int => D::I32,
        Kind::Int16 => D::I16,
        Kind::Int8 => D::I8,
        Kind::Uint8 => D::U8,
        Kind::Bool => D::BOOL,
        _ => return None,
    })
}

fn kind_of(dtype: safetensors::Dtype) -> Option<Kind> {
    use safetensors::Dtype as D;
    Some(match dtype {
        D::F32 => Kind::Float,
        D::F64 => Kind::Double,
        D::F16 => Kind::Half,
        D::BF16 => Kind::BFloat16,
        D::I64 => Kind::Int64,
        D::I32 => Kind::Int,
        D::I16 => Kind::Int16,
        D::I8 => Kind::Int8,
        D::U8 => Kind::Uint8,
        D::BOOL => Kind::Bool,
        _ => return None,
    })
}

impl Bytes {
    fn from_tensor(op: &'static str, t: &Tensor) -> Result<Bytes> {
        let t = tc(op, t.f_to_device(Device::Cpu))?;
        let t = tc(op, t.f_contiguous())?;
        let dtype = dtype_of(t.kind()).ok_or_else(|| {
            Error::invalid(op, format!("cannot save a {} tensor", kind_name(t.kind())))
        })?;
        let numel = t.numel();
        let mut data = vec![0u8; numel * t.kind().elt_size_in_bytes()];
        tc(op, t.f_copy_data_u8(&mut data, numel))?;
        Ok(Bytes {
            data,
            shape: t.size().iter().map(|&d| d as usize).collect(),
            dtype,
        })
    }
}

impl safetensors::View for Bytes {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Writes `tensors` (name, tensor) to one safetensors file, with optional
/// string metadata in the header; creates the parent folder.
pub fn write(
    op: &'static str,
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let mut views = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        views.push((name.clone(), Bytes::from_tensor(op, t)?));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::sandbox::check_write(op, dir.as_ref())?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(op, dir, e))?;
    }
    safetensors::tensor::serialize_to_file(views, &metadata, path)
        .map_err(|e| Error::format(op, path, e.to_string()))
}

/// A safetensors file read into memory.
pub struct File {
    pub path: std::path::PathBuf,
    bytes: Vec<u8>,
}

impl File {
    pub fn open(op: &'static str, path: &Path) -> Result<File> {
        let bytes = crate::io::read_bytes(op, path)?;
        // Parse once now so a corrupt file fails here, naming itself.
        safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| Error::format(op, path, format!("not a safetensors file: {e}")))?;
        Ok(File {
            path: path.to_path_buf(),
            bytes,
        })
    }

    fn parsed(&self, op: &'static str) -> Result<safetensors::SafeTensors<'_>> {
        safetensors::SafeTensors::deserialize(&self.bytes)
            .map_err(|e| Error::format(op, &self.path, format!("not a safetensors file: {e}")))
    }

    /// The header's string metadata.
    pub fn metadata(&self, op: &'static str) -> Result<HashMap<String, String>> {
        let (_, header) = safetensors::SafeTensors::read_metadata(&self.bytes)
            .map_err(|e| Error::format(op, &self.path, e.to_string()))?;
        Ok(header.metadata().clone().unwrap_or_default())
    }

    /// Names and shapes of every tensor, in the file's order of names.
    pub fn shapes(&self, op: &'static str) -> Result<Vec<(String, Vec<i64>)>> {
        let st = self.parsed(op)?;
        let mut out: Vec<(String, Vec<i64>)> = st
            .tensors()
            .into_iter()
            .map(|(name, view)| (name, view.shape().iter().map(|&d| d as i64).collect()))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Every tensor (name, tensor in its stored dtype, on the CPU), sorted by name.
    pub fn all(&self, op: &'static str) -> Result<Vec<(String, Tensor)>> {
        self.shapes(op)?
            .into_iter()
            .map(|(name, _)| Ok((name.clone(), self.tensor(op, &name)?)))
            .collect()
    }

    /// One tensor in its stored dtype, on the CPU.
    pub fn tensor(&self, op: &'static str, name: &str) -> Result<Tensor> {
        let st = self.parsed(op)?;
        let view = st
            .tensor(name)
            .map_err(|_| Error::format(op, &self.path, format!("tensor '{name}' is missing")))?;
        let kind = kind_of(view.dtype()).ok_or_else(|| {
            Error::format(
                op,
                &self.path,
                format!(
                    "tensor '{name}' has the unsupported dtype {:?}",
                    view.dtype()
                ),
            )
        })?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        tc(op, Tensor::f_from_data_size(view.data(), &shape, kind))
    }
}
