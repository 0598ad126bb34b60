//! NumPy `.npy` files (format versions 1, 2 and 3), read into and written
//! from tensors.
//!
//! Reads bool, signed/unsigned integers of 1–8 bytes, float16/32/64, little-
//! or big-endian, C or Fortran order; unsigned types torch lacks (u16, u32,
//! u64) become i64. Writes C order, little-endian, with the tensor's dtype.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use tch::{Kind, Tensor as TchTensor};

use crate::error::{Error, Result};
use crate::tensor::{tc, Tensor};

const MAGIC: &[u8] = b"\x93NUMPY";

struct Header {
    descr: String,
    fortran: bool,
    shape: Vec<i64>,
}

fn header_value<'a>(dict: &'a str, key: &str) -> Option<&'a str> {
    let k = dict.find(&format!("'{key}'"))?;
    let rest = &dict[k + key.len() + 2..];
    let colon = rest.find(':')?;
    Some(rest[colon + 1..].trim_start())
}

fn parse_header(op: &'static str, path: &Path, dict: &str) -> Result<Header> {
    let bad =
        |msg: &str| Error::format(op, path, format!("not a valid .npy header ({msg}): {dict}"));
    let descr_v = header_value(dict, "descr").ok_or_else(|| bad("no descr"))?;
    let quote = descr_v.chars().next().ok_or_else(|| bad("empty descr"))?;
    if quote != '\'' && quote != '"' {
        return Err(Error::format(
            op,
            path,
            "structured arrays (record dtypes) are not supported; save plain numeric arrays",
        ));
    }
    let end = descr_v[1..]
        .find(quote)
        .ok_or_else(|| bad("unterminated descr"))?;
    let descr = descr_v[1..1 + end].to_string();
    let fortran = header_value(dict, "fortran_order")
        .ok_or_else(|| bad("no fortran_order"))?
        .starts_with("True");
    let shape_v = header_value(dict, "shape").ok_or_else(|| bad("no shape"))?;
    let shape_v = shape_v
        .strip_prefix('(')
        .ok_or_else(|| bad("shape is not a tuple"))?;
    let close = shape_v.find(')').ok_or_else(|| bad("unterminated shape"))?;
    let shape = shape_v[..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<i64>()
                .map_err(|_| bad("shape is not integers"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Header {
        descr,
        fortran,
        shape,
    })
}

/// Element type: (torch kind to build, byte width, big-endian, source kind tag).
fn dtype(op: &'static str, path: &Path, descr: &str) -> Result<(char, usize, bool)> {
    let mut chars = descr.chars();
    let (order, rest) = match descr.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => {
            chars.next();
            (c, chars.as_str())
        }
        _ => ('=', descr),
    };
    let code = rest.chars().next().unwrap_or('?');
    let width: usize = rest.get(1..).and_then(|w| w.parse().ok()).unwrap_or(0);
    let big = order == '>' || (order == '=' && cfg!(target_endian = "big"));
    let supported = matches!(
        (code, width),
        ('b', 1) | ('i', 1 | 2 | 4 | 8) | ('u', 1 | 2 | 4 | 8) | ('f', 2 | 4 | 8)
    );
    if !supported {
        return Err(Error::format(
            op,
            path,
            format!(
                "dtype '{descr}' is not supported (bool, int8–64, uint8–64, float16/32/64 are)"
            ),
        ));
    }
    Ok((code, width, big))
}

/// Loads an .npy file into a tensor on the CPU.
pub fn load_npy(path: &Path) -> Result<Tensor> {
    const OP: &str = "load_npy";
    let file = crate::io::open_read(OP, path)?;
    let mut r = BufReader::new(file);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)
        .map_err(|_| Error::format(OP, path, "file too short to be .npy"))?;
    if &magic[..6] != MAGIC {
        return Err(Error::format(
            OP,
            path,
            "not an .npy file (bad magic bytes)",
        ));
    }
    let major = magic[6];
    let header_len = match major {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)
                .map_err(|_| Error::format(OP, path, "truncated header"))?;
            u16::from_le_bytes(b) as usize
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b)
                .map_err(|_| Error::format(OP, path, "truncated header"))?;
            u32::from_le_bytes(b) as usize
        }
        v => {
            return Err(Error::format(
                OP,
                path,
                format!("unsupported .npy format version {v}"),
            ))
        }
    };
    if header_len > 1 << 20 {
        return Err(Error::format(
            OP,
            path,
            "header length is implausibly large",
        ));
    }
    let mut hbytes = vec![0u8; header_len];
    r.read_exact(&mut hbytes)
        .map_err(|_| Error::format(OP, path, "truncated header"))?;
    let dict = String::from_utf8_lossy(&hbytes).to_string();
    let header = parse_header(OP, path, &dict)?;
    let (code, width, big) = dtype(OP, path, &header.descr)?;
    let numel: i64 = header.shape.iter().product();
    if header.shape.iter().any(|&d| d < 0) {
        return Err(Error::format(OP, path, "negative size in shape"));
    }
    let nbytes = (numel as usize)
        .checked_mul(width)
        .ok_or_else(|| Error::format(OP, path, "shape too large"))?;
    let expected_total = 8 + if major == 1 { 2 } else { 4 } + header_len + nbytes;
    let actual = std::fs::metadata(path)
        .map_err(|e| Error::io(OP, path, e))?
        .len() as usize;
    if actual < expected_total {
        return Err(Error::format(
            OP,
            path,
            format!(
                "truncated: shape {:?} of '{}' needs {nbytes} data bytes, the file has {}",
                header.shape,
                header.descr,
                actual.saturating_sub(expected_total - nbytes)
            ),
        ));
    }
    let mut data = vec![0u8; nbytes];
    r.read_exact(&mut data)
        .map_err(|e| Error::io(OP, path, e))?;
    if big != cfg!(target_endian = "big") && width > 1 {
        for chunk in data.chunks_exact_mut(width) {
            chunk.reverse();
        }
    }
    // Torch lacks u16/u32/u64 arithmetic: widen those to i64.
    let (data, kind) = match (code, width) {
        ('b', _) => (data, Kind::Bool),
        ('i', 1) => (data, Kind::Int8),
        ('i', 2) => (data, Kind::Int16),
        ('i', 4) => (data, Kind::Int),
        ('i', 8) => (data, Kind::Int64),
        ('u', 1) => (data, Kind::Uint8),
        ('u', w) => (widen_unsigned(OP, path, &data, w)?, Kind::Int64),
        ('f', 2) => (data, Kind::Half),
        ('f', 4) => (data, Kind::Float),
        _ => (data, Kind::Double),
    };
    let dims: Vec<i64> = if header.fortran {
        header.shape.iter().rev().copied().collect()
    } else {
        header.shape.clone()
    };
    let t = tc(OP, TchTensor::f_from_data_size(&data, &dims, kind))?;
    let t = if header.fortran && dims.len() > 1 {
        let perm: Vec<i64> = (0..dims.len() as i64).rev().collect();
        tc(OP, tc(OP, t.f_permute(&perm))?.f_contiguous())?
    } else {
        t
    };
    Ok(Tensor(t))
}

fn widen_unsigned(op: &'static str, path: &Path, data: &[u8], width: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / width * 8);
    for chunk in data.chunks_exact(width) {
        let mut b = [0u8; 8];
        if cfg!(target_endian = "little") {
            b[..width].copy_from_slice(chunk);
        } else {
            b[8 - width..].copy_from_slice(chunk);
        }
        let v = u64::from_ne_bytes(b);
        if v > i64::MAX as u64 {
            return Err(Error::format(
                op,
                path,
                format!("uint64 value {v} does not fit in int64"),
            ));
        }
        out.extend_from_slice(&(v as i64).to_ne_bytes());
    }
    Ok(out)
}

fn descr(kind: Kind) -> Option<(&'static str, usize)> {
    Some(match kind {
        Kind::Bool => ("|b1", 1),
        Kind::Uint8 => ("|u1", 1),
        Kind::Int8 => ("|i1", 1),
        Kind::Int16 => ("<i2", 2),
        Kind::Int => ("<i4", 4),
        Kind::Int64 => ("<i8", 8),
        Kind::Half => ("<f2", 2),
        Kind::Float => ("<f4", 4),
        Kind::Double => ("<f8", 8),
        _ => return None,
    })
}

/// Writes a tensor as a version-1 .npy file (C order, little-endian).
pub fn save_npy(t: &Tensor, path: &Path) -> Result<()> {
    const OP: &str = "save_npy";
    let (d, width) = descr(t.kind())
        .ok_or_else(|| Error::invalid(OP, format!("cannot save dtype {:?} as .npy", t.kind())))?;
    let x = tc(OP, t.0.f_to_device(tch::Device::Cpu))?;
    let x = tc(OP, x.f_contiguous())?;
    let numel = x.numel();
    let mut data = vec![0u8; numel * width];
    tc(OP, x.f_copy_data_u8(&mut data, numel))?;
    if cfg!(target_endian = "big") && width > 1 {
        for chunk in data.chunks_exact_mut(width) {
            chunk.reverse();
        }
    }
    let shape = t.shape();
    let shape_txt = match shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{d}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // Pad so that the data starts on a 64-byte boundary, ending in '\n'.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let len = u16::try_from(header.len())
        .map_err(|_| Error::invalid(OP, "too many axes for an .npy header"))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::sandbox::check_write(OP, parent.as_ref())?;
        std::fs::create_dir_all(parent).map_err(|e| Error::io(OP, parent, e))?;
    }
    let file = File::create(path).map_err(|e| Error::io(OP, path, e))?;
    let mut w = BufWriter::new(file);
    let io = |e| Error::io(OP, path, e);
    w.write_all(MAGIC).map_err(io)?;
    w.write_all(&[1, 0]).map_err(io)?;
    w.write_all(&len.to_le_bytes()).map_err(io)?;
    w.write_all(header.as_bytes()).map_err(io)?;
    w.write_all(&data).map_err(io)?;
    w.flush().map_err(io)?;
    Ok(())
}
