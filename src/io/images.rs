//! Stimulus images: PNG/JPEG decoding to 8-bit RGB, resizing exactly as
//! Pillow's `Image.resize` (so `load_images` agrees with torchvision/PIL
//! pipelines), and PNG/JPEG writing.
//!
//! Resizing follows Pillow's `ImagingResample` (libImaging/Resample.c): a
//! separable filter whose support widens by the downscale factor
//! (antialiasing), coefficients normalised per output pixel and rounded to
//! 22-bit fixed point, a horizontal pass then a vertical pass, each rounded
//! and clipped to 8 bits.

use std::path::Path;

use crate::error::{Error, Result};

/// An 8-bit RGB image, row-major, 3 bytes per pixel.
#[derive(Debug, Clone)]
pub struct Rgb8 {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// Reads a PNG or JPEG (by content) as RGB: greyscale is repeated into the
/// three channels, alpha is dropped, 16-bit channels are scaled to 8 bits.
pub fn read_rgb(op: &'static str, path: &Path) -> Result<Rgb8> {
    let file = crate::io::open_read(op, path)?;
    let reader = image::ImageReader::new(std::io::BufReader::new(file))
        .with_guessed_format()
        .map_err(|e| Error::io(op, path, e))?;
    let img = reader
        .decode()
        .map_err(|e| Error::format(op, path, format!("cannot decode the image: {e}")))?;
    let rgb = img.to_rgb8();
    Ok(Rgb8 {
        width: rgb.width() as usize,
        height: rgb.height() as usize,
        pixels: rgb.into_raw(),
    })
}

/// Writes RGB pixels; the format follows the extension (.png, .jpg/.jpeg).
pub fn write_rgb(op: &'static str, path: &Path, img: &Rgb8) -> Result<()> {
    let fmt = match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => image::ImageFormat::Png,
        Some("jpg") | Some("jpeg") => image::ImageFormat::Jpeg,
        _ => {
            return Err(Error::invalid(
                op,
                format!(
                    "{}: the file name must end in .png, .jpg or .jpeg",
                    path.display()
                ),
            ))
        }
    };
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            crate::sandbox::check_write(op, parent.as_ref())?;
            std::fs::create_dir_all(parent).map_err(|e| Error::io(op, parent, e))?;
        }
    }
    image::save_buffer_with_format(
        path,
        &img.pixels,
        img.width as u32,
        img.height as u32,
        image::ExtendedColorType::Rgb8,
        fmt,
    )
    .map_err(|e| Error::format(op, path, format!("cannot write the image: {e}")))
}

/// Pillow's resampling filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Nearest,
    Box,
    Bilinear,
    Bicubic,
    Lanczos,
}

impl Filter {
    pub const NAMES: &'static [&'static str] =
        &["bicubic", "bilinear", "lanczos", "box", "nearest"];

    pub fn parse(name: &str) -> Option<Filter> {
        Some(match name {
            "nearest" => Filter::Nearest,
            "box" => Filter::Box,
            "bilinear" => Filter::Bilinear,
            "bicubic" => Filter::Bicubic,
            "lanczos" => Filter::Lanczos,
            _ => return None,
        })
    }

    fn support(self) -> f64 {
        match self {
            Filter::Nearest | Filter::Box => 0.5,
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        fn sinc(x: f64) -> f64 {
            if x == 0.0 {
                1.0
            } else {
                let x = x * std::f64::consts::PI;
                x.sin() / x
            }
        }
        match self {
            Filter::Nearest | Filter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                if x > -3.0 && x < 3.0 {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output pixel: first input index, and fixed-point weights.
struct Coeffs {
    bounds: Vec<(usize, usize)>,
    weights: Vec<Vec<i64>>,
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`.
fn coeffs(in_size: usize, out_size: usize, filter: Filter) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ss = 1.0 / filterscale;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C casts truncate toward zero.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin);
        let mut k: Vec<f64> = (0..n)
            .map(|x| filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss))
            .collect();
        let ww: f64 = k.iter().sum();
        if ww != 0.0 {
            k.iter_mut().for_each(|w| *w /= ww);
        }
        let fixed = k
            .iter()
            .map(|&w| {
                let s = w * (1u64 << PRECISION_BITS) as f64;
                if w < 0.0 {
                    (-0.5 + s) as i64
                } else {
                    (0.5 + s) as i64
                }
            })
            .collect();
        bounds.push((xmin, n));
        weights.push(fixed);
    }
    Coeffs { bounds, weights }
}

fn clip8(v: i64) -> u8 {
    if v >= (1i64 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// Pillow's nearest-neighbour resize (`ImagingTransform` affine, NEAREST):
/// source pixel ⌊(x + 0.5) · in/out⌋.
fn resize_nearest(img: &Rgb8, w: usize, h: usize) -> Rgb8 {
    let sx = img.width as f64 / w as f64;
    let sy = img.height as f64 / h as f64;
    let mut out = vec![0u8; w * h * 3];
    for y in 0..h {
        let yi = (((y as f64 + 0.5) * sy) as usize).min(img.height - 1);
        for x in 0..w {
            let xi = (((x as f64 + 0.5) * sx) as usize).min(img.width - 1);
            let s = (yi * img.width + xi) * 3;
            out[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&img.pixels[s..s + 3]);
        }
    }
    Rgb8 {
        width: w,
        height: h,
        pixels: out,
    }
}

/// Resizes to `w`×`h` as Pillow's `Image.resize((w, h), filter)`.
pub fn resize(img: &Rgb8, w: usize, h: usize, filter: Filter) -> Rgb8 {
    if w == img.width && h == img.height {
        return img.clone();
    }
    if filter == Filter::Nearest {
        return resize_nearest(img, w, h);
    }
    let (win, hin) = (img.width, img.height);
    let cv = coeffs(hin, h, filter);
    // Horizontal pass over the rows the vertical pass will read.
    let (ybox_first, ybox_last) = if h != hin {
        let first = cv.bounds[0].0;
        let (lb, ln) = cv.bounds[h - 1];
        (first, lb + ln)
    } else {
        (0, hin)
    };
    let tmp = if w != win {
        let ch = coeffs(win, w, filter);
        let rows = ybox_last - ybox_first;
        let mut out = vec![0u8; w * rows * 3];
        for yy in 0..rows {
            let src = &img.pixels[(yy + ybox_first) * win * 3..(yy + ybox_first + 1) * win * 3];
            for xx in 0..w {
                let (xmin, n) = ch.bounds[xx];
                let k = &ch.weights[xx];
                for c in 0..3 {
                    let mut ss: i64 = 1 << (PRECISION_BITS - 1);
                    for x in 0..n {
                        ss += src[(x + xmin) * 3 + c] as i64 * k[x];
                    }
                    out[(yy * w + xx) * 3 + c] = clip8(ss);
                }
            }
        }
        Rgb8 {
            width: w,
            height: rows,
            pixels: out,
        }
    } else {
        Rgb8 {
            width: win,
            height: ybox_last - ybox_first,
            pixels: img.pixels[ybox_first * win * 3..ybox_last * win * 3].to_vec(),
        }
    };
    if h == hin {
        return tmp;
    }
    let mut out = vec![0u8; w * h * 3];
    for yy in 0..h {
        let (ymin, n) = cv.bounds[yy];
        let ymin = ymin - ybox_first;
        let k = &cv.weights[yy];
        for xx in 0..w {
            for c in 0..3 {
                let mut ss: i64 = 1 << (PRECISION_BITS - 1);
                for y in 0..n {
                    ss += tmp.pixels[((y + ymin) * w + xx) * 3 + c] as i64 * k[y];
                }
                out[(yy * w + xx) * 3 + c] = clip8(ss);
            }
        }
    }
    Rgb8 {
        width: w,
        height: h,
        pixels: out,
    }
}
