//! Text for bitmap figures, drawn glyph by glyph with correct spacing.
//!
//! plotters 0.3.7's ab_glyph renderer places each glyph's pixels at the pen
//! position but ignores the glyph's left bearing (`px_bounds().min.x`), so
//! narrow letters drift and words get stray gaps ("Kendal l tau"). This
//! wrapper delegates everything to the inner backend except `draw_text`,
//! which lays glyphs out with their bearings and kerning; the vertical
//! placement and the anchor/rotation handling are plotters' own.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, ScaleFont};
use plotters::prelude::*;
use plotters_backend::{
    text_anchor::{HPos, VPos},
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind,
};

fn font() -> Option<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(super::FONT).ok())
        .as_ref()
}

/// A bitmap backend with correct glyph spacing. When `drawn` is set, every
/// label is added to it with its pixel box and whether part of it fell
/// outside the canvas (tests read what a figure says and that no text is
/// cut off).
/// Advance width in pixels of `text` at `size` in the embedded font (for
/// layouts computed before any drawing area exists).
pub fn text_width(text: &str, size: f32) -> u32 {
    let Some(font) = font() else {
        return (text.chars().count() as f32 * size * 0.6) as u32;
    };
    let scaled = font.as_scaled(size);
    let glyphs = laid_out(&scaled, text);
    let end = glyphs
        .last()
        .map_or(0.0, |&(id, pen)| pen + scaled.h_advance(id));
    end.ceil() as u32
}

/// Each glyph of `text` with its pen position: advances plus kerning.
fn laid_out<F: Font>(
    scaled: &ab_glyph::PxScaleFont<&F>,
    text: &str,
) -> Vec<(ab_glyph::GlyphId, f32)> {
    let mut out = Vec::new();
    let mut pen = 0f32;
    let mut prev = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            pen += scaled.kern(p, id);
        }
        prev = Some(id);
        out.push((id, pen));
        pen += scaled.h_advance(id);
    }
    out
}

pub struct GlyphFix<B> {
    pub inner: B,
    pub drawn: Option<std::rc::Rc<std::cell::RefCell<Vec<super::DrawnText>>>>,
}

impl<B> GlyphFix<B> {
    pub fn new(inner: B) -> Self {
        GlyphFix { inner, drawn: None }
    }
}

impl<B: DrawingBackend> DrawingBackend for GlyphFix<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.present()
    }
    fn draw_pixel(
        &mut self,
        p: BackendCoord,
        c: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_pixel(p, c)
    }
    fn draw_line<S: BackendStyle>(
        &mut self,
        a: BackendCoord,
        b: BackendCoord,
        s: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_line(a, b, s)
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        a: BackendCoord,
        b: BackendCoord,
        s: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_rect(a, b, s, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        s: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_path(path, s)
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        c: BackendCoord,
        r: u32,
        s: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_circle(c, r, s, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        s: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.fill_polygon(vert, s)
    }
    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        (w, h): (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.blit_bitmap(pos, (w, h), src)
    }
    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        self.inner.estimate_text_size(text, style)
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let Some(font) = font() else {
            return self.inner.draw_text(text, style, pos);
        };
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let ((min_x, min_y), (max_x, max_y)) = style
            .layout_box(text)
            .map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
        let (width, height) = (max_x - min_x, max_y - min_y);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let trans = style.transform();
        let size = style.size() as f32;
        let scaled = font.as_scaled(size);
        let (w, h) = self.get_size();
        let mut outside = false;
        let (mut lo, mut hi) = ((i32::MAX, i32::MAX), (i32::MIN, i32::MIN));
        for (id, pen) in laid_out(&scaled, text) {
            let glyph = id.with_scale_and_position(size, ab_glyph::point(pen, 0.0));
            if let Some(outline) = scaled.outline_glyph(glyph) {
                let rect = outline.px_bounds();
                let (gx, gy) = (rect.min.x as i32, (size / 2.0 + rect.min.y) as i32);
                let mut pixels = Vec::new();
                outline
                    .draw(|x, y, coverage| pixels.push((x as i32 + gx, y as i32 + gy, coverage)));
                for (x, y, coverage) in pixels {
                    let (x, y) = trans.transform(x + dx - min_x, y + dy - min_y);
                    let (x, y) = (pos.0 + x, pos.1 + y);
                    let inside = x >= 0 && x < w as i32 && y >= 0 && y < h as i32;
                    if coverage > 0.25 {
                        outside |= !inside;
                        lo = (lo.0.min(x), lo.1.min(y));
                        hi = (hi.0.max(x), hi.1.max(y));
                    }
                    if inside {
                        let c = BackendColor {
                            alpha: color.alpha * coverage as f64,
                            rgb: color.rgb,
                        };
                        self.inner.draw_pixel((x, y), c)?;
                    }
                }
            }
        }
        if let Some(list) = &self.drawn {
            list.borrow_mut().push(super::DrawnText {
                text: text.to_string(),
                min: lo,
                max: hi,
                clipped: outside,
            });
        }
        Ok(())
    }
}
