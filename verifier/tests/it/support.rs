//! Builders for test frames.

use std::io::Cursor;

use image::{
    DynamicImage, ImageBuffer, ImageEncoder, ImageFormat, Luma, Rgb, Rgb32FImage, Rgba, Rgba32FImage,
    codecs::png::{CompressionType, FilterType, PngEncoder},
};
use lumen_verifier::FrameExpectation;

/// A generous expectation for a `width`×`height` frame.
pub(crate) fn expect(width: u32, height: u32) -> FrameExpectation {
    FrameExpectation { width, height, max_bytes: 64 << 20 }
}

/// Encodes `image` in `format`.
pub(crate) fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("in-memory encoding succeeds");
    out.into_inner()
}

pub(crate) fn png(image: impl Into<DynamicImage>) -> Vec<u8> {
    encode(&image.into(), ImageFormat::Png)
}

pub(crate) fn exr(image: impl Into<DynamicImage>) -> Vec<u8> {
    encode(&image.into(), ImageFormat::OpenExr)
}

/// The same pixels as `png`, encoded with other settings: different bytes.
pub(crate) fn png_recompressed(image: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    let rgb = image.to_rgb8();
    PngEncoder::new_with_quality(&mut out, CompressionType::Best, FilterType::Paeth)
        .write_image(rgb.as_raw(), rgb.width(), rgb.height(), image::ExtendedColorType::Rgb8)
        .expect("in-memory encoding succeeds");
    out
}

/// Deterministic pseudo-random numbers (xorshift), so tests need no `rand`.
pub(crate) struct Noise(u64);

impl Noise {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// -1, 0 or +1.
    pub(crate) fn step(&mut self) -> i16 {
        (self.next_u64() % 3) as i16 - 1
    }

    /// Uniform in -1..1.
    pub(crate) fn signed(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// A stand-in for a render: a gradient background with a disc of
/// `colour` (0..1 RGB) centred at (`cx`, `cy`), radius a fifth of the height.
pub(crate) fn scene(width: u32, height: u32, cx: f32, cy: f32, colour: [f32; 3]) -> Rgb32FImage {
    let r = height as f32 / 5.0;
    ImageBuffer::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        if (fx - cx).powi(2) + (fy - cy).powi(2) <= r * r {
            Rgb(colour)
        } else {
            let u = fx / width as f32;
            let v = fy / height as f32;
            Rgb([0.1 + 0.6 * u, 0.2 + 0.5 * v, 0.4 + 0.2 * (u - v).abs()])
        }
    })
}

/// The default scene, centred.
pub(crate) fn default_scene(width: u32, height: u32) -> Rgb32FImage {
    scene(width, height, width as f32 / 2.0, height as f32 / 2.0, [0.9, 0.3, 0.1])
}

/// Float RGB to 8-bit RGB (plain rounding; good enough for tests).
pub(crate) fn to_rgb8(image: &Rgb32FImage) -> DynamicImage {
    DynamicImage::ImageRgb32F(image.clone()).to_rgb8().into()
}

/// A gradient as 8-bit RGBA with full alpha.
pub(crate) fn gradient_rgba8(width: u32, height: u32) -> ImageBuffer<Rgba<u8>, Vec<u8>> {
    ImageBuffer::from_fn(width, height, |x, y| {
        Rgba([(x * 255 / width.max(1)) as u8, (y * 255 / height.max(1)) as u8, 128, 255])
    })
}

/// A gradient as 16-bit grey.
pub(crate) fn gradient_l16(width: u32, height: u32) -> ImageBuffer<Luma<u16>, Vec<u16>> {
    ImageBuffer::from_fn(width, height, |x, _| Luma([(x * 65535 / width.max(1)) as u16]))
}

/// A gradient as float RGBA.
pub(crate) fn gradient_rgba32f(width: u32, height: u32) -> Rgba32FImage {
    ImageBuffer::from_fn(width, height, |x, y| {
        Rgba([x as f32 / width as f32 * 2.0, y as f32 / height as f32, 0.25, 1.0])
    })
}

/// A PNG consisting of a signature, an IHDR claiming `width`×`height` RGBA8
/// (with a correct CRC), a tiny IDAT and IEND: what a decompression bomb's
/// header looks like.
pub(crate) fn forged_png(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA, deflate, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    // A zlib stream of zeros: a real bomb would be megabytes of these.
    chunk(&mut out, b"IDAT", &[0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01]);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// Rewrites the `dataWindow` attribute of an OpenEXR file to
/// (0, 0)–(`x_max`, `y_max`), keeping the display window.
pub(crate) fn patch_exr_data_window(bytes: &mut [u8], x_max: i32, y_max: i32) {
    let needle = b"dataWindow\0box2i\0";
    let at =
        bytes.windows(needle.len()).position(|w| w == needle).expect("EXR has a dataWindow") + needle.len();
    // 4-byte attribute size (16), then xMin, yMin, xMax, yMax.
    let values = at + 4;
    bytes[values + 8..values + 12].copy_from_slice(&x_max.to_le_bytes());
    bytes[values + 12..values + 16].copy_from_slice(&y_max.to_le_bytes());
}
