//! Stimulus image sets: N images as an N×3×H×W float32 tensor in [0, 1]
//! with an id per image (its file name without the extension).

use std::fmt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use tch::{Kind, Tensor as TchTensor};

use crate::error::{Error, Result};
use crate::io::images::{self, Filter, Rgb8};
use crate::tensor::{shape_text, tc, Tensor};

#[derive(Clone)]
pub struct ImageSet {
    /// N×3×H×W, float32, values in [0, 1].
    pub data: Tensor,
    pub ids: Vec<String>,
}

impl fmt::Display for ImageSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.data.shape();
        write!(f, "ImageSet[{} images; 3×{}×{}", self.ids.len(), s[2], s[3])?;
        let shown: Vec<&str> = self.ids.iter().take(3).map(String::as_str).collect();
        if !shown.is_empty() {
            write!(f, "; {}", shown.join(", "))?;
            if self.ids.len() > 3 {
                write!(f, ", …")?;
            }
        }
        write!(f, "]")
    }
}

/// How `load_images` sizes its images.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// (height, width); None keeps the files' size (then all must agree).
    pub size: Option<(usize, usize)>,
    pub filter: Filter,
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("png") | Some("jpg") | Some("jpeg")
    )
}

/// The PNG and JPEG files of a folder, sorted by file name.
pub fn list_dir(op: &'static str, dir: &Path) -> Result<Vec<PathBuf>> {
    crate::sandbox::check_read(op, dir.as_ref())?;
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(op, dir, e))?;
    let mut files = Vec::new();
    for e in entries {
        let p = e.map_err(|e| Error::io(op, dir, e))?.path();
        if p.is_file() && is_image(&p) {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::invalid(
            op,
            format!("{}: no .png, .jpg or .jpeg files", dir.display()),
        ));
    }
    Ok(files)
}

pub fn id_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Checks a resize target and reserves the memory of `n` images resized to
/// it: each in 8 bits and its float copy, then stacked as float32.
fn reserve_resized(op: &'static str, n: usize, (h, w): (usize, usize)) -> Result<()> {
    if h == 0 || w == 0 {
        return Err(Error::invalid(
            op,
            format!("size must be at least 1×1, got {h}×{w}"),
        ));
    }
    crate::cancel::reserve(
        op,
        &format!("{n} images of {h}×{w}"),
        n as f64 * (h as f64 * w as f64 * 3.0) * (4.0 + 1.0 + 8.0),
    )
}

/// Decodes (in parallel), converts to RGB, resizes and stacks the images.
pub fn load(op: &'static str, paths: &[PathBuf], opts: LoadOptions) -> Result<ImageSet> {
    if paths.is_empty() {
        return Err(Error::invalid(op, "no image files given"));
    }
    let ids: Vec<String> = paths.iter().map(|p| id_of(p)).collect();
    for (i, id) in ids.iter().enumerate() {
        if let Some(j) = ids[..i].iter().position(|x| x == id) {
            return Err(Error::invalid(
                op,
                format!(
                    "{} and {} have the same id '{id}'",
                    paths[j].display(),
                    paths[i].display()
                ),
            ));
        }
    }
    if let Some(hw) = opts.size {
        reserve_resized(op, paths.len(), hw)?;
    }
    let decoded: Vec<Rgb8> = paths
        .par_iter()
        .map(|p| {
            let img = images::read_rgb(op, p)?;
            Ok(match opts.size {
                Some((h, w)) => images::resize(&img, w, h, opts.filter),
                None => img,
            })
        })
        .collect::<Result<_>>()?;
    from_rgb(op, ids, &decoded, &|i| paths[i].display().to_string())
}

/// Stacks decoded images of one size into an ImageSet (values / 255);
/// `name(i)` names image i in the message when sizes differ.
pub fn from_rgb(
    op: &'static str,
    ids: Vec<String>,
    decoded: &[Rgb8],
    name: &dyn Fn(usize) -> String,
) -> Result<ImageSet> {
    if decoded.is_empty() {
        return Err(Error::invalid(op, "no images given"));
    }
    let (h, w) = (decoded[0].height, decoded[0].width);
    if let Some(i) = decoded.iter().position(|d| (d.height, d.width) != (h, w)) {
        return Err(Error::invalid(
            op,
            format!(
                "images differ in size: {} is {}×{} but {} is {}×{} (height×width); pass #{{size: ...}} to resize them",
                name(0),
                h,
                w,
                name(i),
                decoded[i].height,
                decoded[i].width
            ),
        ));
    }
    let plane = h * w;
    let mut values = vec![0f32; decoded.len() * 3 * plane];
    values
        .par_chunks_mut(3 * plane)
        .zip(decoded.par_iter())
        .for_each(|(out, img)| {
            for (p, px) in img.pixels.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    out[c * plane + p] = px[c] as f32 / 255.0;
                }
            }
        });
    let t = tc(op, TchTensor::f_from_slice(&values))?;
    let t = tc(
        op,
        t.f_reshape([decoded.len() as i64, 3, h as i64, w as i64]),
    )?;
    Ok(ImageSet {
        data: Tensor(t),
        ids,
    })
}

/// Checks an N×3×H×W tensor (or 3×H×W, taken as one image).
pub fn as_batch(op: &'static str, t: &Tensor) -> Result<TchTensor> {
    let s = t.shape();
    let t4 = match s.len() {
        3 => tc(op, t.0.f_unsqueeze(0))?,
        4 => t.0.shallow_clone(),
        _ => {
            return Err(Error::shape(
                op,
                "images",
                "N×3×H×W or 3×H×W",
                shape_text(&s),
            ))
        }
    };
    if t4.size()[1] != 3 {
        return Err(Error::shape(
            op,
            "images",
            "3 colour channels (N×3×H×W)",
            shape_text(&s),
        ));
    }
    Ok(t4)
}

/// What saving as 8 bits ([`to_rgb8`]) and loading back ([`load`]) does to
/// one value in [0, 1]: ⌊255·x + 0.5⌋ clamped to 0…255, then / 255.
pub fn through_8bit(x: f32) -> f32 {
    ((x * 255.0 + 0.5).clamp(0.0, 255.0) as u8) as f32 / 255.0
}

/// One 3×H×W image in [0, 1] → 8 bits as torchvision's `save_image`:
/// ⌊255·x + 0.5⌋ clamped to 0…255.
pub fn to_rgb8(op: &'static str, img: &TchTensor) -> Result<Rgb8> {
    let s = img.size();
    let (h, w) = (s[1] as usize, s[2] as usize);
    let t = tc(op, img.f_to_device(tch::Device::Cpu))?;
    let t = tc(op, t.f_to_kind(Kind::Float))?;
    let t = tc(op, tc(op, t.f_mul_scalar(255.0))?.f_add_scalar(0.5))?;
    let t = tc(op, tc(op, t.f_clamp(0.0, 255.0))?.f_to_kind(Kind::Uint8))?;
    let t = tc(op, tc(op, t.f_permute([1, 2, 0]))?.f_contiguous())?;
    let pixels = tc(op, Vec::<u8>::try_from(&tc(op, t.f_reshape([-1]))?))?;
    Ok(Rgb8 {
        width: w,
        height: h,
        pixels,
    })
}

/// Every image resized to h×w as Pillow's `Image.resize` resizes it (the
/// filter's antialiased kernel, 8 bits per pass; [`load`]'s resizing): each
/// image is taken to 8 bits as [`to_rgb8`] does, resized, and stacked back
/// as float32 in [0, 1]. The ids are kept.
pub fn resize(
    op: &'static str,
    data: &Tensor,
    ids: Vec<String>,
    (h, w): (usize, usize),
    filter: Filter,
) -> Result<ImageSet> {
    let batch = as_batch(op, data)?;
    let n = batch.size()[0] as usize;
    if n == 0 || ids.len() != n {
        return Err(Error::shape(
            op,
            "images",
            format!("at least one image, one id each ({} ids)", ids.len()),
            shape_text(&batch.size()),
        ));
    }
    reserve_resized(op, n, (h, w))?;
    let mut resized = Vec::with_capacity(n);
    for i in 0..n {
        crate::cancel::check(op)?;
        let img = to_rgb8(op, &tc(op, batch.f_select(0, i as i64))?)?;
        resized.push(images::resize(&img, w, h, filter));
    }
    from_rgb(op, ids, &resized, &|i| format!("image {i}"))
}

/// Writes each image as `<dir>/<id>.<ext>`; returns the paths.
pub fn save(
    op: &'static str,
    data: &Tensor,
    ids: &[String],
    dir: &Path,
    ext: &str,
) -> Result<Vec<PathBuf>> {
    let batch = as_batch(op, data)?;
    let n = batch.size()[0] as usize;
    if ids.len() != n {
        return Err(Error::shape(
            op,
            "ids",
            format!("{n} (one per image)"),
            ids.len().to_string(),
        ));
    }
    check_ids(op, ids)?;
    crate::sandbox::check_write(op, dir.as_ref())?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(op, dir, e))?;
    let mut paths = Vec::with_capacity(n);
    for (i, id) in ids.iter().enumerate() {
        crate::cancel::check(op)?;
        let img = to_rgb8(op, &tc(op, batch.f_select(0, i as i64))?)?;
        let path = dir.join(format!("{id}.{ext}"));
        images::write_rgb(op, &path, &img)?;
        paths.push(path);
    }
    Ok(paths)
}

/// Image ids become file names: each must be unique (two images under one
/// name lose one) and a plain name that stays in its folder.
pub fn check_ids(op: &'static str, ids: &[String]) -> Result<()> {
    for (i, id) in ids.iter().enumerate() {
        if id.is_empty() || id == "." || id == ".." || id.contains(['/', '\\', '\0']) {
            return Err(Error::invalid(
                op,
                format!("image id {id:?} cannot be a file name: ids are plain names (no '/', '\\', '..' or empty)"),
            ));
        }
        if ids[..i].contains(id) {
            return Err(Error::invalid(
                op,
                format!("two images have the id {id:?}; each saved image needs its own id"),
            ));
        }
    }
    Ok(())
}

/// Tiles N×3×H×W images into one 3×H'×W' image, as torchvision's
/// `make_grid`: `cols` per row, `padding` pixels around and between them
/// filled with `pad_value`.
pub fn grid(
    op: &'static str,
    data: &Tensor,
    cols: usize,
    padding: usize,
    pad_value: f64,
) -> Result<Tensor> {
    if cols == 0 {
        return Err(Error::invalid(op, "cols must be at least 1"));
    }
    let batch = as_batch(op, data)?;
    let s = batch.size();
    let n = s[0] as usize;
    if n == 0 {
        return Err(Error::invalid(op, "no images to tile"));
    }
    let xmaps = cols.min(n);
    let ymaps = n.div_ceil(xmaps);
    let (h, w, p) = (s[2], s[3], padding.min(1 << 40) as i64);
    let (hh, ww) = (h + p, w + p);
    crate::cancel::reserve_tensor(
        op,
        &[3, ymaps as i64 * hh + p, xmaps as i64 * ww + p],
        batch.kind(),
    )?;
    let out = tc(
        op,
        TchTensor::f_full(
            [3, ymaps as i64 * hh + p, xmaps as i64 * ww + p],
            pad_value,
            (batch.kind(), batch.device()),
        ),
    )?;
    for k in 0..n {
        let (y, x) = ((k / xmaps) as i64, (k % xmaps) as i64);
        let mut dst = tc(
            op,
            tc(op, out.f_narrow(1, y * hh + p, h))?.f_narrow(2, x * ww + p, w),
        )?;
        tc(op, dst.f_copy_(&tc(op, batch.f_select(0, k as i64))?))?;
    }
    Ok(Tensor(out))
}
