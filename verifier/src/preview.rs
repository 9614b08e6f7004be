//! Previews: what the artist sees of a verified frame until its payment is
//! final on-chain. A preview is a quarter of the frame's size at most (and
//! no more than [`MAX_SIDE`] pixels on its long side), with diagonal
//! stripes across it: enough to judge framing, light and progress, not
//! worth keeping instead of the paid frame.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgba, RgbaImage, imageops::FilterType};

use crate::check::{DecodeError, decode};

/// Longest side of a preview, pixels.
pub const MAX_SIDE: u32 = 480;

/// Every how many pixels a watermark stripe starts (diagonally).
const STRIPE_PERIOD: u32 = 12;

/// Width of a stripe, pixels.
const STRIPE_WIDTH: u32 = 4;

/// The preview's size for a `width` × `height` frame: at most a quarter
/// of each side and [`MAX_SIDE`] on the long one, at least one pixel.
pub fn preview_size(width: u32, height: u32) -> (u32, u32) {
    let long = width.max(height).max(1);
    let target = (long / 4).clamp(1, MAX_SIDE);
    let scale = |side: u32| ((u64::from(side) * u64::from(target)).div_ceil(u64::from(long))).max(1) as u32;
    (scale(width), scale(height))
}

/// Makes the PNG preview of a frame (PNG, OpenEXR or JPEG) of the expected
/// `width` × `height`; an error names why it cannot.
pub fn make_preview(bytes: &[u8], width: u32, height: u32) -> Result<Vec<u8>, String> {
    let decoded = decode(bytes, |w, h| w == width && h == height).map_err(|e| match e {
        DecodeError::Undecodable(reason) => reason,
        DecodeError::Refused { width: w, height: h } => format!("the frame is {w}x{h}, not {width}x{height}"),
    })?;
    let (pw, ph) = preview_size(width, height);
    let image = match decoded.image {
        // Linear light from OpenEXR: to sRGB, or the preview looks dark.
        DynamicImage::ImageRgb32F(_) | DynamicImage::ImageRgba32F(_) => {
            let mut linear = decoded.image.to_rgba32f();
            for p in linear.pixels_mut() {
                for c in &mut p.0[..3] {
                    *c = linear_to_srgb(*c);
                }
            }
            DynamicImage::ImageRgba32F(linear)
        }
        other => other,
    };
    let mut small: RgbaImage = image.resize_exact(pw, ph, FilterType::Triangle).to_rgba8();
    watermark(&mut small);
    let mut out = Cursor::new(Vec::new());
    small.write_to(&mut out, ImageFormat::Png).map_err(|e| e.to_string())?;
    Ok(out.into_inner())
}

fn linear_to_srgb(c: f32) -> f32 {
    if !c.is_finite() || c <= 0.0 {
        0.0
    } else if c <= 0.003_130_8 {
        c * 12.92
    } else {
        (1.055 * c.powf(1.0 / 2.4) - 0.055).min(1.0)
    }
}

/// Lightens diagonal stripes across the image, half-way to white, and
/// makes them opaque.
fn watermark(image: &mut RgbaImage) {
    for (x, y, p) in image.enumerate_pixels_mut() {
        if (x + y) % STRIPE_PERIOD < STRIPE_WIDTH {
            let Rgba([r, g, b, _]) = *p;
            let lighten = |c: u8| c / 2 + 128;
            *p = Rgba([lighten(r), lighten(g), lighten(b), 255]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_a_quarter_at_most_and_never_larger_than_the_cap() {
        assert_eq!(preview_size(1920, 1080), (480, 270));
        assert_eq!(preview_size(640, 360), (160, 90));
        assert_eq!(preview_size(8000, 2000), (480, 120));
        assert_eq!(preview_size(32, 18), (8, 5));
        assert_eq!(preview_size(3, 1), (1, 1));
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = RgbaImage::from_fn(width, height, |x, y| Rgba([(x * 3) as u8, (y * 5) as u8, 90, 255]));
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_preview_is_reduced_and_striped() {
        let preview = make_preview(&png(64, 40), 64, 40).unwrap();
        let decoded = image::load_from_memory(&preview).unwrap().to_rgba8();
        assert_eq!(decoded.dimensions(), (16, 10));
        // Pixel (0, 0) lies on a stripe: lightened at least half-way to white.
        assert!(decoded.get_pixel(0, 0).0[..3].iter().all(|c| *c >= 128), "{:?}", decoded.get_pixel(0, 0));
        // Pixel (6, 0) does not: the frame's own colours.
        assert!(decoded.get_pixel(6, 0).0[2] < 128, "{:?}", decoded.get_pixel(6, 0));
    }

    #[test]
    fn a_frame_of_the_wrong_size_or_no_image_gets_no_preview() {
        assert!(make_preview(&png(64, 40), 64, 41).unwrap_err().contains("64x40"));
        assert!(make_preview(b"not an image", 64, 40).is_err());
    }
}
