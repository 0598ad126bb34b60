//! NIfTI-1 / NIfTI-2 reader and writer.
//!
//! Reading (`read_nifti`) follows nibabel (5.x) so that a script sees the same
//! numbers it would see in Python:
//!
//! * files: `.nii`, `.nii.gz`, `.hdr`/`.img` pairs (also `.hdr.gz`/`.img.gz`,
//!   given either file of the pair). Gzip is detected from the bytes, not the
//!   name; multi-member gzip files are read whole.
//! * both byte orders (detected from `sizeof_hdr`), NIfTI-1 (348-byte header)
//!   and NIfTI-2 (540-byte header).
//! * datatypes u8, i8, i16, u16, i32, u32, i64, u64, f32, f64. RGB24 (code 128)
//!   and RGBA32 (code 2304) get an extra **last** axis of length 3 / 4
//!   (`dims = [nx, ny, nz, 3]`), so channel `c` of voxel `v` is at
//!   `data[c * n_voxels + v]` (file order of the array with that extra axis).
//!   Colour data is never scaled. Complex, float128 and binary data are a
//!   [`Error::Format`].
//! * data is returned in **file order** (x fastest: Fortran order over
//!   `dims`); `dims` is nibabel's `img.shape` (`dim[1..=dim[0]]`, trailing 1s
//!   kept, `dim[0] == 0` gives `[0]`, plus nibabel's two FreeSurfer shape hacks
//!   for NIfTI-1).
//! * values are nibabel's `get_fdata()`: `scl_slope` 0 or non-finite means no
//!   scaling; otherwise `raw * slope + inter` computed in f64 (the multiply is
//!   skipped when slope is 1, the add when inter is 0, as nibabel does) and then
//!   rounded once to f32 (nibabel's `get_fdata(dtype=np.float32)` computes in
//!   float64 too). Unscaled 64-bit integers go through f64 before f32, like
//!   nibabel. One deliberate difference: a non-finite `scl_inter` with a valid
//!   slope is taken as 0 (nibabel raises `HeaderDataError`); and a single
//!   file with `vox_offset` 0 is read from byte 352 (NIfTI-2: 544), where the
//!   standard puts the data (nibabel would read from byte 0).
//! * `affine` is nibabel's `get_best_affine()`: sform if `sform_code > 0`, else
//!   qform if `qform_code > 0`, else the "base affine" built from `pixdim`
//!   (x flipped, origin at the centre of the volume). Header fixes nibabel
//!   applies on load are applied too: `pixdim[1..=3]` made positive, zeros
//!   there become 1, `pixdim[0]` (qfac) other than ±1 becomes 1, and unknown
//!   xform codes become 0.
//!
//! Writing (`write_nifti`) produces NIfTI-1 (NIfTI-2 when a dimension does not
//! fit in an i16) `.nii` / `.nii.gz`, little-endian, float32 (or float64). As
//! nibabel does for a new image with an affine, the affine goes into the sform
//! with `sform_code = 2` (aligned) and into the qform parameters (quaternion,
//! pixdim from column norms, qfac = -1 for a left-handed affine, shears
//! stripped by polar decomposition) with `qform_code = 0`; both codes are
//! options. `xyzt_units` is mm + s.
//!
//! The raw header map (`NiftiImage::header`) has, in this order: `version`,
//! `endian`, `sizeof_hdr`, `magic`, `dim_info`, `dim`, `intent_p1..3`,
//! `intent_code`, `intent_name`, `datatype`, `bitpix`, `slice_start`,
//! `pixdim`, `vox_offset`, `scl_slope`, `scl_inter`, `slice_end`,
//! `slice_code`, `xyzt_units`, `cal_max`, `cal_min`, `slice_duration`,
//! `toffset`, `glmax` and `glmin` (NIfTI-1 only), `descrip`, `aux_file`,
//! `qform_code`, `sform_code`, `quatern_b/c/d`, `qoffset_x/y/z`,
//! `srow_x/y/z`, `extension_codes`.
//!
//! Large files are streamed: raw bytes are read (or inflated) in chunks of
//! 64 Ki voxels and converted into the output vector, which is allocated
//! once, so peak memory is the output plus one chunk. Sizes are checked
//! against the file (or against what the gzip file can possibly inflate to)
//! before anything large is allocated; no file content can cause a panic.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;
use flate2::write::GzEncoder;

use crate::error::{Error, Result};

const OP_LOAD: &str = "load_nifti";
const OP_SAVE: &str = "save_nifti";

/// Voxels converted per chunk while streaming data from disk.
const CHUNK_VOXELS: usize = 1 << 16;
/// Uncompressed data of at least this many voxels is read by parallel
/// workers, each taking slices of this many voxels.
const PAR_MIN_VOXELS: usize = 1 << 21;
const PAR_CHUNK_VOXELS: usize = 1 << 20;
/// Buffer size of the gzip readers and of the writers.
const IO_BUF: usize = 1 << 20;
/// Buffer size of the plain-file reader; every data chunk (`CHUNK_VOXELS`
/// voxels of at least one byte) is at least this large, so `BufReader`
/// reads chunks straight into our buffer.
const PLAIN_BUF: usize = 1 << 16;
/// Deflate cannot expand data by more than this factor (RFC 1951 worst case
/// is about 1032:1); used to reject absurd sizes in `.gz` files before
/// allocating.
const MAX_DEFLATE_RATIO: u64 = 1032;

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

/// Voxel values of an image, in file order (x fastest).
#[derive(Debug, Clone, PartialEq)]
pub enum NiftiData {
    /// `read_nifti(path, false)`: nibabel's `get_fdata(dtype=np.float32)`.
    F32(Vec<f32>),
    /// `read_nifti(path, true)`: nibabel's `get_fdata()`.
    F64(Vec<f64>),
}

impl NiftiData {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            NiftiData::F32(v) => v.len(),
            NiftiData::F64(v) => v.len(),
        }
    }

    /// True when there are no values (`dim[0] == 0` or a zero dimension).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as f32 (a copy, rounded, when the data is f64).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self {
            NiftiData::F32(v) => v.clone(),
            NiftiData::F64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The values as f64 (a copy).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            NiftiData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            NiftiData::F64(v) => v.clone(),
        }
    }
}

/// One raw header field, for scripts to inspect.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderValue {
    /// An integer field (codes, `bitpix`, `slice_start`...).
    Int(i64),
    /// A float field, widened to f64 (NIfTI-1 stores f32).
    Float(f64),
    /// A text field, up to its first NUL.
    Text(String),
    /// `dim` (all 8 entries) and `extension_codes`.
    Ints(Vec<i64>),
    /// `pixdim` (all 8 entries) and `srow_x` / `srow_y` / `srow_z`.
    Floats(Vec<f64>),
}

/// A NIfTI image as read by [`read_nifti`].
#[derive(Debug, Clone)]
pub struct NiftiImage {
    /// nibabel's `img.shape`: `[nx, ny, nz, (nt, ...)]`, plus a last axis of
    /// 3 (RGB24) or 4 (RGBA32) for colour data.
    pub dims: Vec<usize>,
    /// Scaled voxel values in file order (Fortran order over `dims`).
    pub data: NiftiData,
    /// nibabel's `get_best_affine()`, row-major: `affine[row][col]`.
    pub affine: [[f64; 4]; 4],
    /// nibabel's `header.get_zooms()`: `pixdim[1..=ndim]` (after nibabel's
    /// load-time fixes of `pixdim[1..=3]`), raw units, `[1.0]` when ndim is 0.
    pub zooms: Vec<f64>,
    /// The spatial part of `zooms` (at most 3 values), raw spatial units
    /// (normally mm).
    pub voxel_size: Vec<f64>,
    /// Repetition time in seconds: `pixdim[4]` converted from the time unit
    /// in `xyzt_units` (ms and us converted, unknown taken as seconds).
    /// `None` for images with fewer than 4 dims, a non-positive or
    /// non-finite `pixdim[4]`, or a non-time unit (Hz, ppm, rad/s).
    pub tr: Option<f64>,
    /// NIfTI datatype code (e.g. 4 = int16, 16 = float32, 128 = RGB24).
    pub datatype: i32,
    /// Name of the datatype ("int16", "float32", "rgb24", ...).
    pub datatype_name: &'static str,
    /// 1 or 2.
    pub version: u8,
    /// Raw header fields (values as stored, before nibabel's fixes) plus
    /// `endian` ("little"/"big"), `version` and `extension_codes`.
    pub header: Vec<(String, HeaderValue)>,
}

impl NiftiImage {
    /// A raw header field by name.
    pub fn header_value(&self, name: &str) -> Option<&HeaderValue> {
        self.header.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// Number of values (product of `dims`).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the image has no values.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Options of [`write_nifti`].
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOptions {
    /// Store float64 instead of float32.
    pub f64: bool,
    /// Repetition time in seconds, stored in `pixdim[4]` (units: s).
    pub tr: Option<f64>,
    /// `sform_code`; nibabel uses 2 (aligned) for a new image.
    pub sform_code: i16,
    /// `qform_code`; nibabel uses 0 (unknown) for a new image, but still
    /// fills the quaternion fields.
    pub qform_code: i16,
    /// `descrip` field (at most 79 bytes are kept).
    pub descrip: String,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            f64: false,
            tr: None,
            sform_code: 2,
            qform_code: 0,
            descrip: String::from("voxlab"),
        }
    }
}

// ---------------------------------------------------------------------------
// Datatypes
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
    Rgb24,
    Rgba32,
}

impl Dtype {
    fn from_code(code: i32) -> std::result::Result<Dtype, String> {
        Ok(match code {
            2 => Dtype::U8,
            4 => Dtype::I16,
            8 => Dtype::I32,
            16 => Dtype::F32,
            64 => Dtype::F64,
            128 => Dtype::Rgb24,
            256 => Dtype::I8,
            512 => Dtype::U16,
            768 => Dtype::U32,
            1024 => Dtype::I64,
            1280 => Dtype::U64,
            2304 => Dtype::Rgba32,
            32 => return Err("complex datatype (code 32, complex64) is not supported".into()),
            1792 => return Err("complex datatype (code 1792, complex128) is not supported".into()),
            2048 => return Err("complex datatype (code 2048, complex256) is not supported".into()),
            1536 => return Err("datatype code 1536 (float128) is not supported".into()),
            1 => return Err("datatype code 1 (binary, 1 bit per voxel) is not supported".into()),
            0 => return Err("datatype code 0 (unknown) in header".into()),
            c => return Err(format!("unknown datatype code {c}")),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Dtype::U8 => "uint8",
            Dtype::I8 => "int8",
            Dtype::I16 => "int16",
            Dtype::U16 => "uint16",
            Dtype::I32 => "int32",
            Dtype::U32 => "uint32",
            Dtype::I64 => "int64",
            Dtype::U64 => "uint64",
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
            Dtype::Rgb24 => "rgb24",
            Dtype::Rgba32 => "rgba32",
        }
    }

    /// Bytes per voxel in the file.
    fn size(self) -> usize {
        match self {
            Dtype::U8 | Dtype::I8 => 1,
            Dtype::I16 | Dtype::U16 => 2,
            Dtype::Rgb24 => 3,
            Dtype::I32 | Dtype::U32 | Dtype::F32 | Dtype::Rgba32 => 4,
            Dtype::I64 | Dtype::U64 | Dtype::F64 => 8,
        }
    }

    /// Channels of a colour type (1 for scalar types).
    fn channels(self) -> usize {
        match self {
            Dtype::Rgb24 => 3,
            Dtype::Rgba32 => 4,
            _ => 1,
        }
    }
}

// ---------------------------------------------------------------------------
// Header
// ---------------------------------------------------------------------------

/// A parsed header, version-independent (NIfTI-1 fields widened).
#[derive(Debug, Clone)]
struct Header {
    version: u8,
    big_endian: bool,
    sizeof_hdr: i32,
    magic: String,
    pair: bool,
    datatype: i32,
    bitpix: i32,
    dim: [i64; 8],
    intent_p: [f64; 3],
    intent_code: i32,
    intent_name: String,
    pixdim: [f64; 8],
    vox_offset: f64,
    scl_slope: f64,
    scl_inter: f64,
    cal_max: f64,
    cal_min: f64,
    slice_duration: f64,
    toffset: f64,
    slice_start: i64,
    slice_end: i64,
    slice_code: i32,
    xyzt_units: i32,
    dim_info: i32,
    glmax: i32,
    glmin: i32,
    descrip: String,
    aux_file: String,
    qform_code: i32,
    sform_code: i32,
    quatern: [f64; 3],
    qoffset: [f64; 3],
    srow: [[f64; 4]; 3],
}

/// Bounds-checked field access on a header block of known size.
struct Fields<'a> {
    b: &'a [u8],
    be: bool,
}

impl Fields<'_> {
    fn arr<const N: usize>(&self, off: usize) -> [u8; N] {
        let mut a = [0u8; N];
        if let Some(s) = self.b.get(off..off + N) {
            a.copy_from_slice(s);
        }
        a
    }
    fn u8(&self, off: usize) -> u8 {
        self.b.get(off).copied().unwrap_or(0)
    }
    fn i16(&self, off: usize) -> i16 {
        let a = self.arr::<2>(off);
        if self.be {
            i16::from_be_bytes(a)
        } else {
            i16::from_le_bytes(a)
        }
    }
    fn i32(&self, off: usize) -> i32 {
        let a = self.arr::<4>(off);
        if self.be {
            i32::from_be_bytes(a)
        } else {
            i32::from_le_bytes(a)
        }
    }
    fn i64(&self, off: usize) -> i64 {
        let a = self.arr::<8>(off);
        if self.be {
            i64::from_be_bytes(a)
        } else {
            i64::from_le_bytes(a)
        }
    }
    fn f32(&self, off: usize) -> f64 {
        let a = self.arr::<4>(off);
        (if self.be {
            f32::from_be_bytes(a)
        } else {
            f32::from_le_bytes(a)
        }) as f64
    }
    fn f64(&self, off: usize) -> f64 {
        let a = self.arr::<8>(off);
        if self.be {
            f64::from_be_bytes(a)
        } else {
            f64::from_le_bytes(a)
        }
    }
    fn text(&self, off: usize, len: usize) -> String {
        let s = self.b.get(off..off + len).unwrap_or(&[]);
        let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
        String::from_utf8_lossy(&s[..end]).into_owned()
    }
}

impl Header {
    /// Parses a complete header block (`block.len()` is 348 or 540).
    fn parse(block: &[u8], version: u8, big_endian: bool) -> std::result::Result<Header, String> {
        let f = Fields {
            b: block,
            be: big_endian,
        };
        if version == 1 {
            let magic_raw: [u8; 4] = f.arr(344);
            let pair = match &magic_raw {
                b"n+1\0" => false,
                b"ni1\0" => true,
                _ => {
                    return Err(format!(
                        "bad magic {:?} (expected \"n+1\" or \"ni1\"); Analyze 7.5 files \
                         without the NIfTI magic are not supported",
                        String::from_utf8_lossy(&magic_raw).trim_end_matches('\0')
                    ))
                }
            };
            let mut dim = [0i64; 8];
            for (i, d) in dim.iter_mut().enumerate() {
                *d = f.i16(40 + 2 * i) as i64;
            }
            let mut pixdim = [0f64; 8];
            for (i, p) in pixdim.iter_mut().enumerate() {
                *p = f.f32(76 + 4 * i);
            }
            let mut srow = [[0f64; 4]; 3];
            for (r, row) in srow.iter_mut().enumerate() {
                for (c, v) in row.iter_mut().enumerate() {
                    *v = f.f32(280 + 16 * r + 4 * c);
                }
            }
            Ok(Header {
                version,
                big_endian,
                sizeof_hdr: f.i32(0),
                magic: String::from_utf8_lossy(&magic_raw[..3]).into_owned(),
                pair,
                datatype: f.i16(70) as i32,
                bitpix: f.i16(72) as i32,
                dim,
                intent_p: [f.f32(56), f.f32(60), f.f32(64)],
                intent_code: f.i16(68) as i32,
                intent_name: f.text(328, 16),
                pixdim,
                vox_offset: f.f32(108),
                scl_slope: f.f32(112),
                scl_inter: f.f32(116),
                cal_max: f.f32(124),
                cal_min: f.f32(128),
                slice_duration: f.f32(132),
                toffset: f.f32(136),
                slice_start: f.i16(74) as i64,
                slice_end: f.i16(120) as i64,
                slice_code: f.u8(122) as i32,
                xyzt_units: f.u8(123) as i32,
                dim_info: f.u8(39) as i32,
                glmax: f.i32(140),
                glmin: f.i32(144),
                descrip: f.text(148, 80),
                aux_file: f.text(228, 24),
                qform_code: f.i16(252) as i32,
                sform_code: f.i16(254) as i32,
                quatern: [f.f32(256), f.f32(260), f.f32(264)],
                qoffset: [f.f32(268), f.f32(272), f.f32(276)],
                srow,
            })
        } else {
            let magic_raw: [u8; 4] = f.arr(4);
            let pair = match &magic_raw {
                b"n+2\0" => false,
                b"ni2\0" => true,
                _ => {
                    return Err(format!(
                        "bad magic {:?} (expected \"n+2\" or \"ni2\")",
                        String::from_utf8_lossy(&magic_raw).trim_end_matches('\0')
                    ))
                }
            };
            let mut dim = [0i64; 8];
            for (i, d) in dim.iter_mut().enumerate() {
                *d = f.i64(16 + 8 * i);
            }
            let mut pixdim = [0f64; 8];
            for (i, p) in pixdim.iter_mut().enumerate() {
                *p = f.f64(104 + 8 * i);
            }
            let mut srow = [[0f64; 4]; 3];
            for (r, row) in srow.iter_mut().enumerate() {
                for (c, v) in row.iter_mut().enumerate() {
                    *v = f.f64(400 + 32 * r + 8 * c);
                }
            }
            Ok(Header {
                version,
                big_endian,
                sizeof_hdr: f.i32(0),
                magic: String::from_utf8_lossy(&magic_raw[..3]).into_owned(),
                pair,
                datatype: f.i16(12) as i32,
                bitpix: f.i16(14) as i32,
                dim,
                intent_p: [f.f64(80), f.f64(88), f.f64(96)],
                intent_code: f.i32(504),
                intent_name: f.text(508, 16),
                pixdim,
                vox_offset: f.i64(168) as f64,
                scl_slope: f.f64(176),
                scl_inter: f.f64(184),
                cal_max: f.f64(192),
                cal_min: f.f64(200),
                slice_duration: f.f64(208),
                toffset: f.f64(216),
                slice_start: f.i64(224),
                slice_end: f.i64(232),
                slice_code: f.i32(496),
                xyzt_units: f.i32(500),
                dim_info: f.u8(524) as i32,
                glmax: 0,
                glmin: 0,
                descrip: f.text(240, 80),
                aux_file: f.text(320, 24),
                qform_code: f.i32(344),
                sform_code: f.i32(348),
                quatern: [f.f64(352), f.f64(360), f.f64(368)],
                qoffset: [f.f64(376), f.f64(384), f.f64(392)],
                srow,
            })
        }
    }

    fn header_size(&self) -> u64 {
        if self.version == 1 {
            348
        } else {
            540
        }
    }

    /// Default data offset of a single file (header + 4-byte extender).
    fn single_offset(&self) -> u64 {
        if self.version == 1 {
            352
        } else {
            544
        }
    }

    /// nibabel's `get_data_shape()`.
    fn shape(&self) -> std::result::Result<Vec<usize>, String> {
        let ndim = self.dim[0];
        if !(0..=7).contains(&ndim) {
            return Err(format!("dim[0] = {ndim} is outside 0..=7"));
        }
        if ndim == 0 {
            return Ok(vec![0]);
        }
        let mut raw: Vec<i64> = self.dim[1..=ndim as usize].to_vec();
        if self.version == 1 && raw.len() >= 3 {
            // nibabel's FreeSurfer hacks (NIfTI-1 only)
            if raw[..3] == [-1, 1, 1] {
                if self.glmin <= 0 {
                    return Err(format!(
                        "-1 in dim[1] (FreeSurfer large-vector convention) but glmin = {}",
                        self.glmin
                    ));
                }
                raw[0] = self.glmin as i64;
            } else if raw[..3] == [27307, 1, 6] {
                raw[0] = 163842;
                raw[2] = 1;
            }
        }
        raw.iter()
            .enumerate()
            .map(|(i, &d)| {
                usize::try_from(d).map_err(|_| format!("dim[{}] = {d} is negative", i + 1))
            })
            .collect()
    }

    /// `pixdim` after nibabel's load-time fixes (`_chk_pixdims`, `_chk_qfac`).
    fn fixed_pixdim(&self) -> [f64; 8] {
        let mut p = self.pixdim;
        for v in &mut p[1..4] {
            *v = v.abs();
            if *v == 0.0 {
                *v = 1.0;
            }
        }
        if p[0] != 1.0 && p[0] != -1.0 {
            p[0] = 1.0;
        }
        p
    }

    fn zooms(&self) -> Vec<f64> {
        let p = self.fixed_pixdim();
        let ndim = self.dim[0].clamp(0, 7) as usize;
        if ndim == 0 {
            return vec![1.0];
        }
        p[1..=ndim].to_vec()
    }

    fn tr(&self) -> Option<f64> {
        if self.dim[0] < 4 {
            return None;
        }
        let t = self.pixdim[4];
        if !(t.is_finite() && t > 0.0) {
            return None;
        }
        match self.xyzt_units & 0x38 {
            0 | 8 => Some(t),
            16 => Some(t / 1000.0),
            24 => Some(t / 1_000_000.0),
            _ => None,
        }
    }

    /// (slope, inter) to apply, or `None` for no scaling.
    fn scaling(&self) -> Option<(f64, f64)> {
        let slope = self.scl_slope;
        if slope == 0.0 || !slope.is_finite() {
            return None;
        }
        let inter = if self.scl_inter.is_finite() {
            self.scl_inter
        } else {
            0.0
        };
        if slope == 1.0 && inter == 0.0 {
            None
        } else {
            Some((slope, inter))
        }
    }

    fn xform_code(code: i32) -> i32 {
        if (0..=5).contains(&code) {
            code
        } else {
            0
        }
    }

    /// nibabel's `get_best_affine()`.
    fn best_affine(&self) -> std::result::Result<[[f64; 4]; 4], String> {
        if Self::xform_code(self.sform_code) != 0 {
            let mut a = IDENTITY;
            a[..3].copy_from_slice(&self.srow);
            return Ok(a);
        }
        if Self::xform_code(self.qform_code) != 0 {
            return self.qform_affine();
        }
        Ok(self.base_affine())
    }

    /// nibabel's `get_qform()`.
    fn qform_affine(&self) -> std::result::Result<[[f64; 4]; 4], String> {
        let [b, c, d] = self.quatern;
        let thresh = if self.version == 1 {
            3.0 * f32::EPSILON as f64
        } else {
            3.0 * f64::EPSILON
        };
        let w2 = 1.0 - (b * b + c * c + d * d);
        let w = if w2.abs() < thresh {
            0.0
        } else if w2 < 0.0 {
            return Err(format!(
                "qform quaternion (b, c, d) = ({b}, {c}, {d}) has b^2 + c^2 + d^2 > 1"
            ));
        } else {
            w2.sqrt()
        };
        if !w.is_finite() {
            return Err(format!(
                "qform quaternion (b, c, d) = ({b}, {c}, {d}) is not finite"
            ));
        }
        let r = quat2mat([w, b, c, d]);
        let p = self.fixed_pixdim();
        let vox = [p[1], p[2], p[3] * p[0]];
        let mut a = IDENTITY;
        for i in 0..3 {
            for j in 0..3 {
                a[i][j] = r[i][j] * vox[j];
            }
            a[i][3] = self.qoffset[i];
        }
        Ok(a)
    }

    /// nibabel's `get_base_affine()` (`shape_zoom_affine` with x flipped).
    fn base_affine(&self) -> [[f64; 4]; 4] {
        let ndim = self.dim[0].clamp(0, 7) as usize;
        let p = self.fixed_pixdim();
        let mut shape = [1f64; 3];
        let mut zooms = [1f64; 3];
        for i in 0..ndim.min(3) {
            shape[i] = self.dim[i + 1] as f64;
            zooms[i] = p[i + 1];
        }
        zooms[0] = -zooms[0];
        let mut a = IDENTITY;
        for i in 0..3 {
            a[i][i] = zooms[i];
            let origin = (shape[i] - 1.0) / 2.0;
            a[i][3] = -origin * zooms[i];
        }
        a
    }

    fn to_map(&self, extension_codes: &[i64]) -> Vec<(String, HeaderValue)> {
        use HeaderValue::*;
        let mut m: Vec<(String, HeaderValue)> = Vec::with_capacity(48);
        let mut put = |k: &str, v: HeaderValue| m.push((k.to_string(), v));
        put("version", Int(self.version as i64));
        put(
            "endian",
            Text(if self.big_endian { "big" } else { "little" }.into()),
        );
        put("sizeof_hdr", Int(self.sizeof_hdr as i64));
        put("magic", Text(self.magic.clone()));
        put("dim_info", Int(self.dim_info as i64));
        put("dim", Ints(self.dim.to_vec()));
        put("intent_p1", Float(self.intent_p[0]));
        put("intent_p2", Float(self.intent_p[1]));
        put("intent_p3", Float(self.intent_p[2]));
        put("intent_code", Int(self.intent_code as i64));
        put("intent_name", Text(self.intent_name.clone()));
        put("datatype", Int(self.datatype as i64));
        put("bitpix", Int(self.bitpix as i64));
        put("slice_start", Int(self.slice_start));
        put("pixdim", Floats(self.pixdim.to_vec()));
        put("vox_offset", Float(self.vox_offset));
        put("scl_slope", Float(self.scl_slope));
        put("scl_inter", Float(self.scl_inter));
        put("slice_end", Int(self.slice_end));
        put("slice_code", Int(self.slice_code as i64));
        put("xyzt_units", Int(self.xyzt_units as i64));
        put("cal_max", Float(self.cal_max));
        put("cal_min", Float(self.cal_min));
        put("slice_duration", Float(self.slice_duration));
        put("toffset", Float(self.toffset));
        if self.version == 1 {
            put("glmax", Int(self.glmax as i64));
            put("glmin", Int(self.glmin as i64));
        }
        put("descrip", Text(self.descrip.clone()));
        put("aux_file", Text(self.aux_file.clone()));
        put("qform_code", Int(self.qform_code as i64));
        put("sform_code", Int(self.sform_code as i64));
        put("quatern_b", Float(self.quatern[0]));
        put("quatern_c", Float(self.quatern[1]));
        put("quatern_d", Float(self.quatern[2]));
        put("qoffset_x", Float(self.qoffset[0]));
        put("qoffset_y", Float(self.qoffset[1]));
        put("qoffset_z", Float(self.qoffset[2]));
        put("srow_x", Floats(self.srow[0].to_vec()));
        put("srow_y", Floats(self.srow[1].to_vec()));
        put("srow_z", Floats(self.srow[2].to_vec()));
        put("extension_codes", Ints(extension_codes.to_vec()));
        m
    }
}

const IDENTITY: [[f64; 4]; 4] = [
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
];

/// nibabel's `quaternions.quat2mat` (non-unit quaternions allowed).
fn quat2mat(q: [f64; 4]) -> [[f64; 3]; 3] {
    let [w, x, y, z] = q;
    let nq = w * w + x * x + y * y + z * z;
    if nq < f64::EPSILON {
        return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    }
    let s = 2.0 / nq;
    let (xs, ys, zs) = (x * s, y * s, z * s);
    let (wx, wy, wz) = (w * xs, w * ys, w * zs);
    let (xx, xy, xz) = (x * xs, x * ys, x * zs);
    let (yy, yz, zz) = (y * ys, y * zs, z * zs);
    [
        [1.0 - (yy + zz), xy - wz, xz + wy],
        [xy + wz, 1.0 - (xx + zz), yz - wx],
        [xz - wy, yz + wx, 1.0 - (xx + yy)],
    ]
}

/// Parses NIfTI-1/2 header extensions from the bytes between the header and
/// the data (starting with the 4-byte extender). Returns their codes; stops
/// quietly at anything malformed.
fn extension_codes(gap: &[u8], big_endian: bool) -> Vec<i64> {
    let mut codes = Vec::new();
    if gap.len() < 4 || gap[0] == 0 {
        return codes;
    }
    let f = Fields {
        b: gap,
        be: big_endian,
    };
    let mut off = 4usize;
    while off + 8 <= gap.len() {
        let esize = f.i32(off);
        let ecode = f.i32(off + 4);
        if esize < 8 || off + esize as usize > gap.len() {
            break;
        }
        codes.push(ecode as i64);
        off += esize as usize;
    }
    codes
}

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

/// Reads a NIfTI-1 or NIfTI-2 image (see the module documentation for what
/// is supported and how values match nibabel). `want_f64` returns f64 data
/// (nibabel's `get_fdata()`), otherwise f32 (`get_fdata(dtype=np.float32)`).
pub fn read_nifti(path: &Path, want_f64: bool) -> Result<NiftiImage> {
    read_nifti_impl(path, want_f64, false, None).map(|(img, _)| img)
}

/// Streams a 4-D image one 3-D volume at a time: `each(t, volume)` gets the
/// scaled f32 values (nibabel's `get_fdata(dtype=np.float32)`) of volume t
/// in file order (x fastest), in a buffer reused for the next volume, so
/// memory stays one volume however long the series. The returned image has
/// the header, shape and affine, and no data.
pub fn read_nifti_volumes(
    path: &Path,
    each: &mut dyn FnMut(usize, &[f32]) -> Result<()>,
) -> Result<NiftiImage> {
    read_nifti_impl(path, false, false, Some(each)).map(|(img, _)| img)
}

/// As [`read_nifti`], but the voxel values (file order, x fastest) are
/// decoded straight into a new CPU tensor's storage — float32, or float64
/// with `want_f64` — so a large image is held once, not twice; the
/// returned image's `data` is empty.
pub fn read_nifti_tensor(path: &Path, want_f64: bool) -> Result<(NiftiImage, tch::Tensor)> {
    let (img, t) = read_nifti_impl(path, want_f64, true, None)?;
    match t {
        Some(t) => Ok((img, t)),
        None => Err(Error::format(OP_LOAD, path, "internal: no tensor was read")),
    }
}

/// A CPU tensor of `n` values and its storage as a slice.
fn tensor_buffer<O: Out + tch::kind::Element>(n: usize, path: &Path) -> Result<tch::Tensor> {
    tch::Tensor::f_empty([n as i64], (O::KIND, tch::Device::Cpu)).map_err(|_| {
        Error::format(
            OP_LOAD,
            path,
            format!("cannot allocate memory for {n} values announced by the header"),
        )
    })
}

fn read_into_tensor<O: Out + tch::kind::Element>(
    src: &mut Source,
    dtype: Dtype,
    be: bool,
    n_vox: usize,
    scaling: Option<(f64, f64)>,
    path: &Path,
) -> Result<tch::Tensor> {
    let total = n_vox * dtype.channels();
    let t = tensor_buffer::<O>(total, path)?;
    if total > 0 {
        // SAFETY: `t` is a fresh, contiguous CPU tensor of `total` elements
        // of type O that nothing else references while the slice lives.
        let out = unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut O, total) };
        read_values_into(src, dtype, be, n_vox, scaling, path, out)?;
    }
    Ok(t)
}

fn read_nifti_impl(
    path: &Path,
    want_f64: bool,
    into_tensor: bool,
    volumes: Option<&mut dyn FnMut(usize, &[f32]) -> Result<()>>,
) -> Result<(NiftiImage, Option<tch::Tensor>)> {
    let fmt = |p: &Path, m: String| Error::format(OP_LOAD, p, m);

    // The file given must exist; its partner (pair) is looked for below.
    let (hdr_path, img_candidates) = pair_paths(path);
    let mut src = Source::open(&hdr_path)?;

    // --- header -----------------------------------------------------------
    let mut first = [0u8; 4];
    src.read_exact_or(&mut first, |got| {
        format!("file is too short for a NIfTI header ({got} bytes)")
    })?;
    let le = i32::from_le_bytes(first);
    let be = i32::from_be_bytes(first);
    let (version, big_endian) = match (le, be) {
        (348, _) => (1u8, false),
        (_, 348) => (1, true),
        (540, _) => (2, false),
        (_, 540) => (2, true),
        _ => {
            return Err(fmt(
                &hdr_path,
                format!(
                    "not a NIfTI file: sizeof_hdr is {le} (little-endian) / {be} (big-endian), \
                     expected 348 (NIfTI-1) or 540 (NIfTI-2)"
                ),
            ))
        }
    };
    let hsize = if version == 1 { 348usize } else { 540 };
    let mut block = vec![0u8; hsize];
    block[..4].copy_from_slice(&first);
    src.read_exact_or(&mut block[4..], |got| {
        format!(
            "file is truncated inside the NIfTI-{version} header ({} of {hsize} bytes)",
            got + 4
        )
    })?;
    let hdr = Header::parse(&block, version, big_endian).map_err(|m| fmt(&hdr_path, m))?;

    let dtype = Dtype::from_code(hdr.datatype).map_err(|m| fmt(&hdr_path, m))?;
    let shape = hdr.shape().map_err(|m| fmt(&hdr_path, m))?;
    let n_vox = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n.checked_mul(dtype.size()).is_some())
        .ok_or_else(|| fmt(&hdr_path, format!("dims {shape:?} are too large")))?;
    let n_bytes = (n_vox as u64) * dtype.size() as u64;

    let vox_offset = hdr.vox_offset;
    if !(0.0..=9.0e15).contains(&vox_offset) {
        return Err(fmt(&hdr_path, format!("invalid vox_offset {vox_offset}")));
    }
    let mut offset = vox_offset as u64; // nibabel: int(vox_offset)

    // Is the data in this file (single) or in a partner .img?
    let data_in_header_file = !hdr.pair || img_candidates.is_none();
    let ext_codes;
    if data_in_header_file {
        if offset == 0 {
            offset = hdr.single_offset();
        } else if offset < hdr.header_size() {
            return Err(fmt(
                &hdr_path,
                format!(
                    "vox_offset {offset} is inside the {}-byte header of a single-file NIfTI",
                    hdr.header_size()
                ),
            ));
        }
        let gap = offset - hdr.header_size();
        if let Some(len) = src.plain_len {
            if offset > len {
                return Err(fmt(
                    &hdr_path,
                    format!("vox_offset {offset} is past the end of the file ({len} bytes)"),
                ));
            }
        }
        ext_codes = src.skip(gap, big_endian, hdr.version)?;
    } else {
        // extensions of a pair live in the .hdr after the header
        ext_codes = src.skip_hdr_tail(big_endian);
    }

    let mut data_src;
    let data_path;
    let data_src_ref: &mut Source = if data_in_header_file {
        data_path = hdr_path.clone();
        &mut src
    } else {
        let cands = img_candidates.unwrap_or_default();
        let found = cands.iter().find(|p| p.is_file()).cloned();
        let Some(img) = found else {
            let tried: Vec<String> = cands.iter().map(|p| p.display().to_string()).collect();
            return Err(Error::io(
                OP_LOAD,
                cands.first().cloned().unwrap_or_else(|| hdr_path.clone()),
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "image file of the .hdr/.img pair not found (tried {})",
                        tried.join(", ")
                    ),
                ),
            ));
        };
        data_path = img;
        data_src = Source::open(&data_path)?;
        if let Some(len) = data_src.plain_len {
            if offset > len {
                return Err(fmt(
                    &data_path,
                    format!("vox_offset {offset} is past the end of the image file ({len} bytes)"),
                ));
            }
        }
        data_src.skip(offset, big_endian, 0)?;
        &mut data_src
    };

    // --- size checks before allocating ------------------------------------
    match data_src_ref.plain_len {
        Some(len) => {
            let avail = len.saturating_sub(offset);
            if avail < n_bytes {
                return Err(fmt(
                    &data_path,
                    format!(
                        "file is truncated: the header announces {n_vox} voxels of {} \
                         (dims {shape:?}) = {n_bytes} bytes at offset {offset}, but only \
                         {avail} bytes follow",
                        dtype.name()
                    ),
                ));
            }
        }
        None => {
            let limit = data_src_ref
                .file_len
                .saturating_mul(MAX_DEFLATE_RATIO)
                .saturating_add(1 << 20);
            if n_bytes.saturating_add(offset) > limit {
                return Err(fmt(
                    &data_path,
                    format!(
                        "the header announces {n_bytes} bytes of {} data (dims {shape:?}), more \
                         than this {}-byte gzip file can hold",
                        dtype.name(),
                        data_src_ref.file_len
                    ),
                ));
            }
        }
    }

    let affine = hdr.best_affine().map_err(|m| fmt(&hdr_path, m))?;

    // --- data --------------------------------------------------------------
    let scaling = if dtype.channels() > 1 {
        None
    } else {
        hdr.scaling()
    };
    let mut tensor = None;
    let data = if let Some(each) = volumes {
        if dtype.channels() > 1 || shape.len() < 3 {
            return Err(fmt(
                &data_path,
                format!(
                    "expected a series of 3-D volumes, got dims {shape:?} of {}",
                    dtype.name()
                ),
            ));
        }
        let n_xyz = shape[0] * shape[1] * shape[2];
        let n_vol = if n_xyz == 0 { 0 } else { n_vox / n_xyz };
        let mut buf = vec![0f32; n_xyz];
        for t in 0..n_vol {
            read_values_into(
                data_src_ref,
                dtype,
                big_endian,
                n_xyz,
                scaling,
                &data_path,
                &mut buf,
            )?;
            each(t, &buf)?;
        }
        NiftiData::F32(Vec::new())
    } else if into_tensor {
        tensor = Some(if want_f64 {
            read_into_tensor::<f64>(data_src_ref, dtype, big_endian, n_vox, scaling, &data_path)?
        } else {
            read_into_tensor::<f32>(data_src_ref, dtype, big_endian, n_vox, scaling, &data_path)?
        });
        if want_f64 {
            NiftiData::F64(Vec::new())
        } else {
            NiftiData::F32(Vec::new())
        }
    } else if want_f64 {
        NiftiData::F64(read_values::<f64>(
            data_src_ref,
            dtype,
            big_endian,
            n_vox,
            scaling,
            &data_path,
        )?)
    } else {
        NiftiData::F32(read_values::<f32>(
            data_src_ref,
            dtype,
            big_endian,
            n_vox,
            scaling,
            &data_path,
        )?)
    };

    let mut dims = shape;
    if dtype.channels() > 1 {
        dims.push(dtype.channels());
    }
    let zooms = hdr.zooms();
    let ndim = hdr.dim[0].clamp(0, 7) as usize;
    let voxel_size = zooms[..ndim.min(3).min(zooms.len())].to_vec();
    Ok((
        NiftiImage {
            dims,
            data,
            affine,
            voxel_size,
            zooms,
            tr: hdr.tr(),
            datatype: hdr.datatype,
            datatype_name: dtype.name(),
            version: hdr.version,
            header: hdr.to_map(&ext_codes),
        },
        tensor,
    ))
}

/// For a pair file name, (header path, image candidates); otherwise
/// (path, None). Matching is case-insensitive and keeps the case of the
/// extension given.
fn pair_paths(path: &Path) -> (PathBuf, Option<Vec<PathBuf>>) {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return (path.to_path_buf(), None);
    };
    let lower = name.to_ascii_lowercase();
    let (stem_len, is_hdr, gz) = if lower.ends_with(".hdr.gz") {
        (name.len() - 7, true, true)
    } else if lower.ends_with(".img.gz") {
        (name.len() - 7, false, true)
    } else if lower.ends_with(".hdr") {
        (name.len() - 4, true, false)
    } else if lower.ends_with(".img") {
        (name.len() - 4, false, false)
    } else {
        return (path.to_path_buf(), None);
    };
    let stem = &name[..stem_len];
    let upper = name[stem_len + 1..stem_len + 2]
        .chars()
        .all(|c| c.is_ascii_uppercase());
    let ext = |e: &str, z: bool| {
        let e = if upper {
            e.to_ascii_uppercase()
        } else {
            e.to_string()
        };
        let z = if z {
            if upper {
                ".GZ"
            } else {
                ".gz"
            }
        } else {
            ""
        };
        path.with_file_name(format!("{stem}.{e}{z}"))
    };
    if is_hdr {
        (
            path.to_path_buf(),
            Some(vec![ext("img", gz), ext("img", !gz)]),
        )
    } else {
        // given the image: find its header
        let hdrs = [ext("hdr", gz), ext("hdr", !gz)];
        let hdr = hdrs
            .iter()
            .find(|p| p.is_file())
            .cloned()
            .unwrap_or_else(|| hdrs[0].clone());
        (hdr, Some(vec![path.to_path_buf()]))
    }
}

/// An open input file, plain or gzip, read sequentially.
struct Source {
    reader: Box<dyn Read>,
    path: PathBuf,
    /// Length of the file on disk.
    file_len: u64,
    /// `Some(file_len)` for an uncompressed file.
    plain_len: Option<u64>,
    /// Bytes consumed so far (decompressed).
    pos: u64,
}

impl Source {
    fn open(path: &Path) -> Result<Source> {
        let file = crate::io::open_read(OP_LOAD, path)?;
        let meta = file.metadata().map_err(|e| Error::io(OP_LOAD, path, e))?;
        let file_len = meta.len();
        let mut file = file;
        let mut magic = [0u8; 2];
        let is_gz = match file.read_exact(&mut magic) {
            Ok(()) => magic == [0x1f, 0x8b],
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => false,
            Err(e) => return Err(Error::io(OP_LOAD, path, e)),
        };
        file.seek(io::SeekFrom::Start(0))
            .map_err(|e| Error::io(OP_LOAD, path, e))?;
        let (reader, plain_len): (Box<dyn Read>, Option<u64>) = if is_gz {
            let buf = BufReader::with_capacity(IO_BUF, file);
            (Box::new(MultiGzDecoder::new(buf)), None)
        } else {
            // small buffer: data chunks are larger and bypass it (no extra copy)
            (
                Box::new(BufReader::with_capacity(PLAIN_BUF, file)),
                Some(file_len),
            )
        };
        Ok(Source {
            reader,
            path: path.to_path_buf(),
            file_len,
            plain_len,
            pos: 0,
        })
    }

    fn map_err(&self, e: io::Error, what: impl FnOnce() -> String) -> Error {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => Error::format(OP_LOAD, &self.path, what()),
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => {
                Error::format(OP_LOAD, &self.path, format!("corrupt gzip data: {e}"))
            }
            _ => Error::io(OP_LOAD, &self.path, e),
        }
    }

    /// Fills `buf` completely; on a short read, the Format error built from
    /// the number of bytes obtained.
    fn read_exact_or(&mut self, buf: &mut [u8], msg: impl FnOnce(usize) -> String) -> Result<()> {
        let mut got = 0;
        while got < buf.len() {
            match self.reader.read(&mut buf[got..]) {
                Ok(0) => return Err(Error::format(OP_LOAD, &self.path, msg(got))),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.map_err(e, || msg(got))),
            }
        }
        self.pos += got as u64;
        Ok(())
    }

    /// Skips `n` bytes (the extension area of a single file, or the offset in
    /// an .img); returns the extension codes found when `version` is 1 or 2.
    fn skip(&mut self, n: u64, big_endian: bool, version: u8) -> Result<Vec<i64>> {
        const KEEP: u64 = 16 << 20;
        let start = self.pos;
        if version != 0 && n <= KEEP {
            let mut gap = vec![0u8; n as usize];
            self.read_exact_or(&mut gap, |got| {
                format!(
                    "vox_offset {} is past the end of the data ({} bytes)",
                    start + n,
                    start + got as u64
                )
            })?;
            return Ok(extension_codes(&gap, big_endian));
        }
        let copied = io::copy(&mut (&mut self.reader).take(n), &mut io::sink())
            .map_err(|e| self.map_err(e, || "file is truncated".to_string()))?;
        self.pos += copied;
        if copied < n {
            return Err(Error::format(
                OP_LOAD,
                &self.path,
                format!(
                    "vox_offset {} is past the end of the data ({} bytes)",
                    start + n,
                    start + copied
                ),
            ));
        }
        Ok(Vec::new())
    }

    /// Extension codes stored after the header in a .hdr of a pair.
    fn skip_hdr_tail(&mut self, big_endian: bool) -> Vec<i64> {
        let mut tail = Vec::new();
        let _ = (&mut self.reader).take(16 << 20).read_to_end(&mut tail);
        extension_codes(&tail, big_endian)
    }
}

/// Output element type (f32 or f64; all-zero bytes must be a valid value,
/// which `zeroed_vec` relies on).
trait Out: Copy + Send + 'static {
    /// The file dtype whose little-endian bytes are this type's bytes on a
    /// little-endian machine (read without conversion).
    const SAME: Dtype;
    fn from_f64(x: f64) -> Self;
    fn from_f32(x: f32) -> Self;
    /// Unscaled conversion of integers that fit f32 exactly, or of any value
    /// where direct rounding equals nibabel's (via f64) rounding.
    fn from_i32(x: i32) -> Self;
    fn from_u32(x: u32) -> Self;
}

impl Out for f32 {
    const SAME: Dtype = Dtype::F32;
    #[inline(always)]
    fn from_f64(x: f64) -> f32 {
        x as f32
    }
    #[inline(always)]
    fn from_f32(x: f32) -> f32 {
        x
    }
    #[inline(always)]
    fn from_i32(x: i32) -> f32 {
        // i32 -> f64 is exact, so one rounding either way
        x as f32
    }
    #[inline(always)]
    fn from_u32(x: u32) -> f32 {
        x as f32
    }
}

impl Out for f64 {
    const SAME: Dtype = Dtype::F64;
    #[inline(always)]
    fn from_f64(x: f64) -> f64 {
        x
    }
    #[inline(always)]
    fn from_f32(x: f32) -> f64 {
        x as f64
    }
    #[inline(always)]
    fn from_i32(x: i32) -> f64 {
        x as f64
    }
    #[inline(always)]
    fn from_u32(x: u32) -> f64 {
        x as f64
    }
}

/// Writes the elements of `N` bytes each in `src` into `dst`, converted.
#[inline(always)]
fn convert<const N: usize, O: Out>(src: &[u8], dst: &mut [O], f: impl Fn([u8; N]) -> O) {
    for (o, b) in dst.iter_mut().zip(src.chunks_exact(N)) {
        // `chunks_exact(N)` yields slices of exactly N bytes
        let a: [u8; N] = b.try_into().unwrap_or([0u8; N]);
        *o = f(a);
    }
}

/// Decodes one chunk of scalar voxels into `dst`.
fn decode_chunk<O: Out>(
    src: &[u8],
    dst: &mut [O],
    dtype: Dtype,
    be: bool,
    scaling: Option<(f64, f64)>,
) {
    macro_rules! run {
        ($t:ty, $n:literal, $unscaled:expr) => {{
            let unscaled = $unscaled;
            match (be, scaling) {
                (false, None) => convert::<$n, O>(src, dst, |a| unscaled(<$t>::from_le_bytes(a))),
                (true, None) => convert::<$n, O>(src, dst, |a| unscaled(<$t>::from_be_bytes(a))),
                (false, Some((s, i))) if i == 0.0 => {
                    convert::<$n, O>(src, dst, |a| O::from_f64(<$t>::from_le_bytes(a) as f64 * s))
                }
                (true, Some((s, i))) if i == 0.0 => {
                    convert::<$n, O>(src, dst, |a| O::from_f64(<$t>::from_be_bytes(a) as f64 * s))
                }
                (false, Some((s, i))) if s == 1.0 => {
                    convert::<$n, O>(src, dst, |a| O::from_f64(<$t>::from_le_bytes(a) as f64 + i))
                }
                (true, Some((s, i))) if s == 1.0 => {
                    convert::<$n, O>(src, dst, |a| O::from_f64(<$t>::from_be_bytes(a) as f64 + i))
                }
                (false, Some((s, i))) => convert::<$n, O>(src, dst, |a| {
                    O::from_f64(<$t>::from_le_bytes(a) as f64 * s + i)
                }),
                (true, Some((s, i))) => convert::<$n, O>(src, dst, |a| {
                    O::from_f64(<$t>::from_be_bytes(a) as f64 * s + i)
                }),
            }
        }};
    }
    match dtype {
        Dtype::U8 => run!(u8, 1, |x: u8| O::from_i32(x as i32)),
        Dtype::I8 => run!(i8, 1, |x: i8| O::from_i32(x as i32)),
        Dtype::I16 => run!(i16, 2, |x: i16| O::from_i32(x as i32)),
        Dtype::U16 => run!(u16, 2, |x: u16| O::from_i32(x as i32)),
        Dtype::I32 => run!(i32, 4, |x: i32| O::from_i32(x)),
        Dtype::U32 => run!(u32, 4, |x: u32| O::from_u32(x)),
        // nibabel goes through float64: keep its double rounding
        Dtype::I64 => run!(i64, 8, |x: i64| O::from_f64(x as f64)),
        Dtype::U64 => run!(u64, 8, |x: u64| O::from_f64(x as f64)),
        Dtype::F32 => run!(f32, 4, |x: f32| O::from_f32(x)),
        Dtype::F64 => run!(f64, 8, |x: f64| O::from_f64(x)),
        Dtype::Rgb24 | Dtype::Rgba32 => {} // handled by the caller
    }
}

/// Streams `n_vox` voxels from `src` into a new vector, in bounded chunks.
fn read_values<O: Out>(
    src: &mut Source,
    dtype: Dtype,
    be: bool,
    n_vox: usize,
    scaling: Option<(f64, f64)>,
    path: &Path,
) -> Result<Vec<O>> {
    let total = n_vox * dtype.channels(); // cannot overflow: n_vox * esize was checked
    let mut out: Vec<O> = zeroed_vec(total).ok_or_else(|| {
        Error::format(
            OP_LOAD,
            path,
            format!("cannot allocate memory for {total} values announced by the header"),
        )
    })?;
    read_values_into(src, dtype, be, n_vox, scaling, path, &mut out)?;
    Ok(out)
}

/// `n` zeros, or `None` when the allocation fails. The memory comes from
/// `alloc_zeroed` (fresh zero pages for large sizes), so only the pages the
/// data is actually written to are touched: a small truncated `.nii.gz`
/// whose header announces up to `MAX_DEFLATE_RATIO` times its size no
/// longer costs that much resident memory before the truncation is found
/// (with `try_reserve_exact` + `resize`, a 64 KiB file made the reader touch
/// 256 MiB of f32 zeros; found while fuzzing, see fuzz/README.md).
fn zeroed_vec<O: Out>(n: usize) -> Option<Vec<O>> {
    if n == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<O>(n).ok()?;
    // SAFETY: the layout has a non-zero size (n > 0, O is f32 or f64);
    // all-zero bytes are a valid O (0.0); the pointer comes from the global
    // allocator with exactly `Layout::array::<O>(n)`, which is what
    // `Vec::from_raw_parts` with capacity n requires; length n <= capacity.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout) as *mut O;
        if p.is_null() {
            None
        } else {
            Some(Vec::from_raw_parts(p, n, n))
        }
    }
}

/// Streams `n_vox` voxels (× channels) from `src` into `out`, in bounded
/// chunks: the only full-size buffer is the caller's.
fn read_values_into<O: Out>(
    src: &mut Source,
    dtype: Dtype,
    be: bool,
    n_vox: usize,
    scaling: Option<(f64, f64)>,
    _path: &Path,
    out: &mut [O],
) -> Result<()> {
    let esize = dtype.size();
    let chans = dtype.channels();
    let total_bytes = n_vox as u64 * esize as u64;
    let mut buf = vec![0u8; CHUNK_VOXELS.min(n_vox.max(1)) * esize];
    let mut done = 0usize;
    let offset0 = src.pos;
    if chans > 1 {
        // colour: de-interleave into planes (channel is the last, slowest axis)
        while done < n_vox {
            let k = CHUNK_VOXELS.min(n_vox - done);
            let bytes = &mut buf[..k * esize];
            src.read_exact_or(bytes, |got| {
                truncated_msg(offset0, total_bytes, done, esize, got)
            })?;
            for c in 0..chans {
                let plane = &mut out[c * n_vox + done..c * n_vox + done + k];
                for (o, px) in plane.iter_mut().zip(bytes.chunks_exact(chans)) {
                    *o = O::from_i32(px[c] as i32);
                }
            }
            done += k;
        }
        return Ok(());
    }
    let same = dtype == O::SAME && !be && scaling.is_none() && cfg!(target_endian = "little");
    if src.plain_len.is_some() && n_vox >= PAR_MIN_VOXELS {
        // An uncompressed file: workers read (pread) and decode their own
        // slices of the output in parallel; sizes were checked against the
        // file before, so a short read here means the file changed.
        use rayon::prelude::*;
        use std::os::unix::fs::FileExt;
        let file = File::open(&src.path).map_err(|e| Error::io(OP_LOAD, &src.path, e))?;
        let path = src.path.clone();
        out.par_chunks_mut(PAR_CHUNK_VOXELS)
            .enumerate()
            .try_for_each(|(i, dst)| -> Result<()> {
                let off = offset0 + (i * PAR_CHUNK_VOXELS * esize) as u64;
                if same {
                    // SAFETY: as below — O is f32/f64, the view covers `dst`.
                    let bytes = unsafe {
                        std::slice::from_raw_parts_mut(
                            dst.as_mut_ptr() as *mut u8,
                            std::mem::size_of_val(dst),
                        )
                    };
                    file.read_exact_at(bytes, off)
                        .map_err(|e| Error::io(OP_LOAD, &path, e))
                } else {
                    let mut buf = vec![0u8; dst.len() * esize];
                    file.read_exact_at(&mut buf, off)
                        .map_err(|e| Error::io(OP_LOAD, &path, e))?;
                    decode_chunk::<O>(&buf, dst, dtype, be, scaling);
                    Ok(())
                }
            })?;
        src.pos += total_bytes;
        return Ok(());
    }
    if same {
        // Same type and byte order: read straight into the output, one pass.
        // SAFETY: O is f32 or f64 (plain old data, any bit pattern valid);
        // the byte view covers exactly `out` and is dropped before `out` is
        // used again.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut u8, std::mem::size_of_val(out))
        };
        return src.read_exact_or(bytes, |got| {
            truncated_msg(offset0, total_bytes, 0, esize, got)
        });
    }
    while done < n_vox {
        let k = CHUNK_VOXELS.min(n_vox - done);
        let bytes = &mut buf[..k * esize];
        src.read_exact_or(bytes, |got| {
            truncated_msg(offset0, total_bytes, done, esize, got)
        })?;
        decode_chunk::<O>(bytes, &mut out[done..done + k], dtype, be, scaling);
        done += k;
    }
    Ok(())
}

fn truncated_msg(offset0: u64, total: u64, done_vox: usize, esize: usize, got: usize) -> String {
    format!(
        "file is truncated: the header announces {total} bytes of voxel data from offset \
         {offset0}, but the data ends after {} bytes",
        done_vox as u64 * esize as u64 + got as u64
    )
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

/// Writes `data` (file order: x fastest) with shape `dims` and `affine`
/// (row-major) to a `.nii` or `.nii.gz` file (see the module documentation).
pub fn write_nifti(
    path: &Path,
    dims: &[usize],
    data: &[f32],
    affine: [[f64; 4]; 4],
    opts: &WriteOptions,
) -> Result<()> {
    write_any(path, dims, DataRef::F32(data), affine, opts)
}

/// Like [`write_nifti`] for f64 values; they are stored as float64 whatever
/// `opts.f64` says.
pub fn write_nifti_f64(
    path: &Path,
    dims: &[usize],
    data: &[f64],
    affine: [[f64; 4]; 4],
    opts: &WriteOptions,
) -> Result<()> {
    write_any(path, dims, DataRef::F64(data), affine, opts)
}

#[derive(Clone, Copy)]
enum DataRef<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
}

/// The qform parameters of an affine, as nibabel's `set_qform` computes them:
/// (quatern b, c, d, qfac, zooms).
fn affine_to_qform(
    affine: &[[f64; 4]; 4],
) -> std::result::Result<([f64; 3], f64, [f64; 3]), String> {
    let mut zooms = [0f64; 3];
    for (j, z) in zooms.iter_mut().enumerate() {
        *z = (0..3)
            .map(|i| affine[i][j] * affine[i][j])
            .sum::<f64>()
            .sqrt();
        if z.is_nan() || *z <= 0.0 || !z.is_finite() {
            return Err(format!(
                "column {j} of the affine's 3x3 part is zero or not finite; cannot store it"
            ));
        }
    }
    let mut r = [[0f64; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            r[i][j] = affine[i][j] / zooms[j];
        }
    }
    let qfac = if det3(&r) > 0.0 { 1.0 } else { -1.0 };
    if qfac < 0.0 {
        for row in &mut r {
            row[2] = -row[2];
        }
    }
    let pr = polar_orthogonal(r).ok_or_else(|| "the affine's 3x3 part is singular".to_string())?;
    let q = mat2quat(&pr);
    Ok(([q[1], q[2], q[3]], qfac, zooms))
}

fn det3(m: &[[f64; 3]; 3]) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

/// The orthogonal factor of the polar decomposition (the closest orthogonal
/// matrix, nibabel's `P @ Qs` from an SVD), by Newton iteration.
fn polar_orthogonal(mut x: [[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    for _ in 0..100 {
        let d = det3(&x);
        if d.is_nan() || d.abs() <= 1e-12 || !d.is_finite() {
            return None;
        }
        // inverse transpose = cofactor matrix / det
        let mut cof = [[0f64; 3]; 3];
        for (i, row) in cof.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                let (i1, i2) = ((i + 1) % 3, (i + 2) % 3);
                let (j1, j2) = ((j + 1) % 3, (j + 2) % 3);
                *v = x[i1][j1] * x[i2][j2] - x[i1][j2] * x[i2][j1];
            }
        }
        let mut next = [[0f64; 3]; 3];
        let mut delta = 0f64;
        for i in 0..3 {
            for j in 0..3 {
                next[i][j] = 0.5 * (x[i][j] + cof[i][j] / d);
                delta = delta.max((next[i][j] - x[i][j]).abs());
            }
        }
        x = next;
        if delta < 1e-15 {
            break;
        }
    }
    Some(x)
}

/// Quaternion (w, x, y, z) with w >= 0 of a rotation matrix (Shepperd's
/// method; same rotation as nibabel's eigenvector `mat2quat`).
fn mat2quat(m: &[[f64; 3]; 3]) -> [f64; 4] {
    let tr = m[0][0] + m[1][1] + m[2][2];
    let q = if tr > 0.0 {
        let s = 0.5 / (tr + 1.0).sqrt();
        [
            0.25 / s,
            (m[2][1] - m[1][2]) * s,
            (m[0][2] - m[2][0]) * s,
            (m[1][0] - m[0][1]) * s,
        ]
    } else if m[0][0] > m[1][1] && m[0][0] > m[2][2] {
        let s = 2.0 * (1.0 + m[0][0] - m[1][1] - m[2][2]).sqrt();
        [
            (m[2][1] - m[1][2]) / s,
            0.25 * s,
            (m[0][1] + m[1][0]) / s,
            (m[0][2] + m[2][0]) / s,
        ]
    } else if m[1][1] > m[2][2] {
        let s = 2.0 * (1.0 + m[1][1] - m[0][0] - m[2][2]).sqrt();
        [
            (m[0][2] - m[2][0]) / s,
            (m[0][1] + m[1][0]) / s,
            0.25 * s,
            (m[1][2] + m[2][1]) / s,
        ]
    } else {
        let s = 2.0 * (1.0 + m[2][2] - m[0][0] - m[1][1]).sqrt();
        [
            (m[1][0] - m[0][1]) / s,
            (m[0][2] + m[2][0]) / s,
            (m[1][2] + m[2][1]) / s,
            0.25 * s,
        ]
    };
    let n = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]).sqrt();
    let sign = if q[0] < 0.0 { -1.0 } else { 1.0 };
    [
        sign * q[0] / n,
        sign * q[1] / n,
        sign * q[2] / n,
        sign * q[3] / n,
    ]
}

/// Little-endian header builder.
struct HeaderWriter {
    b: Vec<u8>,
}

impl HeaderWriter {
    fn put(&mut self, off: usize, bytes: &[u8]) {
        self.b[off..off + bytes.len()].copy_from_slice(bytes);
    }
    fn i16(&mut self, off: usize, v: i16) {
        self.put(off, &v.to_le_bytes());
    }
    fn i32(&mut self, off: usize, v: i32) {
        self.put(off, &v.to_le_bytes());
    }
    fn i64(&mut self, off: usize, v: i64) {
        self.put(off, &v.to_le_bytes());
    }
    fn f32(&mut self, off: usize, v: f64) {
        self.put(off, &(v as f32).to_le_bytes());
    }
    fn f64(&mut self, off: usize, v: f64) {
        self.put(off, &v.to_le_bytes());
    }
    fn text(&mut self, off: usize, max: usize, s: &str) {
        let mut n = s.len().min(max - 1);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.put(off, &s.as_bytes()[..n]);
    }
}

fn write_any(
    path: &Path,
    dims: &[usize],
    data: DataRef<'_>,
    affine: [[f64; 4]; 4],
    opts: &WriteOptions,
) -> Result<()> {
    // --- validate -----------------------------------------------------------
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let gz = if name.ends_with(".nii.gz") {
        true
    } else if name.ends_with(".nii") {
        false
    } else {
        return Err(Error::invalid(
            OP_SAVE,
            format!("{}: file name must end in .nii or .nii.gz", path.display()),
        ));
    };
    if dims.is_empty() || dims.len() > 7 {
        return Err(Error::invalid(
            OP_SAVE,
            format!(
                "NIfTI images have 1 to 7 dimensions, got {} ({dims:?})",
                dims.len()
            ),
        ));
    }
    let n: usize = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::invalid(OP_SAVE, format!("dims {dims:?} are too large")))?;
    let len = match data {
        DataRef::F32(d) => d.len(),
        DataRef::F64(d) => d.len(),
    };
    if len != n {
        return Err(Error::shape(
            OP_SAVE,
            "number of values",
            format!("{n} (product of dims {dims:?})"),
            len.to_string(),
        ));
    }
    if affine.iter().flatten().any(|v| !v.is_finite()) {
        return Err(Error::invalid(OP_SAVE, "affine has non-finite values"));
    }
    if let Some(tr) = opts.tr {
        if !(tr.is_finite() && tr >= 0.0) {
            return Err(Error::invalid(
                OP_SAVE,
                format!("tr must be a non-negative number, got {tr}"),
            ));
        }
    }
    for (key, code) in [
        ("sform_code", opts.sform_code),
        ("qform_code", opts.qform_code),
    ] {
        if !(0..=5).contains(&code) {
            return Err(Error::invalid(
                OP_SAVE,
                format!("{key} must be 0..=5, got {code}"),
            ));
        }
    }
    let (quat, qfac, zooms) = affine_to_qform(&affine).map_err(|m| Error::invalid(OP_SAVE, m))?;
    let version = if dims.iter().all(|&d| d <= i16::MAX as usize) {
        1
    } else {
        2
    };
    if dims.iter().any(|&d| d > i64::MAX as usize) {
        return Err(Error::invalid(
            OP_SAVE,
            format!("dims {dims:?} are too large"),
        ));
    }
    let store_f64 = opts.f64 || matches!(data, DataRef::F64(_));
    let (datatype, bitpix) = if store_f64 { (64i16, 64i16) } else { (16, 32) };

    let mut pixdim = [1f64; 8];
    pixdim[0] = qfac;
    pixdim[1..4].copy_from_slice(&zooms);
    if let Some(tr) = opts.tr {
        pixdim[4] = tr;
    }
    let mut dim = [1i64; 8];
    dim[0] = dims.len() as i64;
    for (i, &d) in dims.iter().enumerate() {
        dim[i + 1] = d as i64;
    }
    let xyzt_units = 2 | 8; // mm, s

    // --- header ---------------------------------------------------------------
    let (hsize, offset) = if version == 1 {
        (348usize, 352usize)
    } else {
        (540, 544)
    };
    let mut h = HeaderWriter {
        b: vec![0u8; offset],
    };
    if version == 1 {
        h.i32(0, 348);
        h.b[38] = b'r';
        for (i, &d) in dim.iter().enumerate() {
            h.i16(40 + 2 * i, d as i16);
        }
        h.i16(70, datatype);
        h.i16(72, bitpix);
        for (i, &p) in pixdim.iter().enumerate() {
            h.f32(76 + 4 * i, p);
        }
        h.f32(108, offset as f64);
        h.f32(112, 1.0);
        h.f32(116, 0.0);
        h.b[123] = xyzt_units as u8;
        h.text(148, 80, &opts.descrip);
        h.i16(252, opts.qform_code);
        h.i16(254, opts.sform_code);
        for i in 0..3 {
            h.f32(256 + 4 * i, quat[i]);
            h.f32(268 + 4 * i, affine[i][3]);
        }
        for (r, row) in affine.iter().take(3).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                h.f32(280 + 16 * r + 4 * c, v);
            }
        }
        h.put(344, b"n+1\0");
    } else {
        h.i32(0, 540);
        h.put(4, b"n+2\0\r\n\x1a\n");
        h.i16(12, datatype);
        h.i16(14, bitpix);
        for (i, &d) in dim.iter().enumerate() {
            h.i64(16 + 8 * i, d);
        }
        for (i, &p) in pixdim.iter().enumerate() {
            h.f64(104 + 8 * i, p);
        }
        h.i64(168, offset as i64);
        h.f64(176, 1.0);
        h.f64(184, 0.0);
        h.text(240, 80, &opts.descrip);
        h.i32(344, opts.qform_code as i32);
        h.i32(348, opts.sform_code as i32);
        for i in 0..3 {
            h.f64(352 + 8 * i, quat[i]);
            h.f64(376 + 8 * i, affine[i][3]);
        }
        for (r, row) in affine.iter().take(3).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                h.f64(400 + 32 * r + 8 * c, v);
            }
        }
        h.i32(500, xyzt_units);
    }
    debug_assert!(h.b.len() == hsize + 4);

    // --- body -------------------------------------------------------------------
    let io_err = |e: io::Error| Error::io(OP_SAVE, path, e);
    let file = File::create(path).map_err(io_err)?;
    let buffered = BufWriter::with_capacity(IO_BUF, file);
    if gz {
        let mut enc = GzEncoder::new(buffered, flate2::Compression::new(1));
        write_body(&mut enc, &h.b, data, store_f64).map_err(io_err)?;
        let mut inner = enc.finish().map_err(io_err)?;
        inner.flush().map_err(io_err)?;
    } else {
        let mut w = buffered;
        write_body(&mut w, &h.b, data, store_f64).map_err(io_err)?;
        w.flush().map_err(io_err)?;
    }
    Ok(())
}

fn write_body<W: Write>(
    w: &mut W,
    header: &[u8],
    data: DataRef<'_>,
    store_f64: bool,
) -> io::Result<()> {
    w.write_all(header)?;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK_VOXELS * 8);
    macro_rules! emit {
        ($slice:expr, $conv:expr, $n:literal) => {
            for chunk in $slice.chunks(CHUNK_VOXELS) {
                buf.clear();
                buf.resize(chunk.len() * $n, 0);
                for (o, &v) in buf.chunks_exact_mut($n).zip(chunk) {
                    o.copy_from_slice(&($conv)(v).to_le_bytes());
                }
                w.write_all(&buf)?;
            }
        };
    }
    match (data, store_f64) {
        (DataRef::F32(d), false) => emit!(d, |v: f32| v, 4),
        (DataRef::F32(d), true) => emit!(d, |v: f32| v as f64, 8),
        (DataRef::F64(d), _) => emit!(d, |v: f64| v, 8),
    }
    Ok(())
}
