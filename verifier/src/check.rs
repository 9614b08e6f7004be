//! Integrity check of one rendered frame: [`check_frame`].
//!
//! The order of the checks is the order of their cost, so a hostile upload
//! is refused as early and as cheaply as possible:
//!
//! 1. file size against [`FrameExpectation::max_bytes`] (no parsing at all);
//! 2. format from the magic bytes (never from a file name);
//! 3. dimensions from the header, compared to the expectation *before* any
//!    pixel memory is allocated, so a header claiming 100000×100000 costs
//!    microseconds; OpenEXR data windows are bounded too;
//! 4. decoding, under a memory limit ([`MAX_DECODE_ALLOC`]);
//! 5. one pass over the decoded pixels, row by row, that finds NaN/±Inf
//!    samples, invisible frames (black or fully transparent), uniform frames,
//!    and the mean luma for [`FrameStats`].
//!
//! A panic inside a third-party decoder is caught and becomes
//! [`Rejection::Undecodable`]: a crafted file must not take the service down.

use std::{
    fmt,
    io::Cursor,
    panic::{AssertUnwindSafe, catch_unwind},
};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use serde::{Deserialize, Serialize};

/// Largest width or height the verifier decodes at all (Blender's own
/// resolution limit is 65536). Applies to [`compare_frames`](crate::compare::compare_frames),
/// which has no expectation to compare the header against.
pub const MAX_DIMENSION: u32 = 16_384;

/// Most memory one decode may allocate: 1 GiB, enough for an 8K RGBA float
/// frame (7680×4320×16 B ≈ 530 MB), far below what a forged header asks.
pub const MAX_DECODE_ALLOC: u64 = 1 << 30;

/// Largest decompressed OpenEXR block (a group of scan lines or a tile)
/// accepted. A real 16K-wide, 32-line PIZ block of RGBA float is 8 MiB.
const MAX_EXR_BLOCK_BYTES: usize = 64 << 20;

/// A colour channel at or below 1/255 of full scale counts as black (0 or 1
/// in 8 bits, ≤ 257 in 16 bits: dithering and rounding stay below it). For
/// linear float (OpenEXR) samples the threshold is the linear value whose
/// sRGB encoding is 1/255, i.e. what would still be 0 or 1 in a PNG.
const DARK_LINEAR: f32 = (1.0 / 255.0) / 12.92;

/// An alpha at or below this counts as fully transparent (0 or 1 in 8 bits).
const CLEAR_UNIT: f32 = 1.0 / 255.0;

/// Two float samples closer than this count as the same colour.
const FLOAT_SAME: f32 = 1e-6;

/// What the job says a frame must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FrameExpectation {
    /// Width in pixels, from the job's render settings.
    pub width: u32,
    /// Height in pixels, from the job's render settings.
    pub height: u32,
    /// Largest accepted file size in bytes.
    pub max_bytes: u64,
}

/// Image formats the verifier decodes, detected from magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrameFormat {
    /// PNG, 8 or 16 bits, grey or RGB, with or without alpha.
    Png,
    /// Single-part OpenEXR with R, G, B (and optionally A) channels, half or
    /// float. Blender's *multilayer* EXR is not supported.
    Exr,
    /// JPEG (lossy: redundant comparisons need a looser tolerance).
    Jpeg,
}

impl FrameFormat {
    /// Detects the format from the first bytes of a file.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(&[0x76, 0x2f, 0x31, 0x01]) {
            Some(Self::Exr)
        } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(Self::Jpeg)
        } else {
            None
        }
    }

    /// Short lowercase name: `"png"`, `"exr"` or `"jpeg"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Exr => "exr",
            Self::Jpeg => "jpeg",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Self::Png => ImageFormat::Png,
            Self::Exr => ImageFormat::OpenExr,
            Self::Jpeg => ImageFormat::Jpeg,
        }
    }
}

impl fmt::Display for FrameFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A short summary of an accepted frame, for logs and dashboards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameStats {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Detected file format.
    pub format: FrameFormat,
    /// Channels as decoded: 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA).
    pub channels: u8,
    /// Bits per channel as decoded: 8 or 16 for PNG/JPEG, 32 (float) for
    /// OpenEXR, which the decoder widens from half to float.
    pub bits_per_channel: u8,
    /// Whether samples are floating point (OpenEXR).
    pub float: bool,
    /// Mean Rec. 709 luma of the pixels weighted by alpha, in decoded units
    /// (sRGB-encoded 0..1 for PNG/JPEG, linear and unbounded for OpenEXR, so
    /// the two are not comparable with each other).
    pub mean_luma: f64,
    /// Fraction of pixels that are neither black nor fully transparent.
    pub visible_fraction: f64,
}

/// Why a frame was rejected. Each variant has a stable [`code`](Self::code),
/// which is also its serde tag; [`Display`](fmt::Display) gives a message
/// for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Rejection {
    /// The file is larger than [`FrameExpectation::max_bytes`] (SheepIt 306).
    #[error("frame is {bytes} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Size of the upload.
        bytes: u64,
        /// The limit it exceeded.
        limit: u64,
    },
    /// Not an image we can decode: unknown magic bytes, truncated or corrupt
    /// data, an unsupported variant, or more memory than the limit (SheepIt
    /// 302).
    #[error("frame cannot be decoded: {reason}")]
    Undecodable {
        /// What the decoder said.
        reason: String,
    },
    /// The header's dimensions are not the job's (SheepIt 308).
    #[error("frame is {}x{}, expected {}x{}", actual.0, actual.1, expected.0, expected.1)]
    WrongSize {
        /// `(width, height)` the job asked for.
        expected: (u32, u32),
        /// `(width, height)` in the file's header.
        actual: (u32, u32),
    },
    /// No pixel is visible and at least one is opaque: every pixel is black
    /// (colour ≤ 1/255, or its linear equivalent for float) or transparent
    /// (SheepIt 301).
    #[error("frame is entirely black")]
    AllBlack,
    /// Every pixel is fully transparent (alpha ≤ 1/255): an empty
    /// `film_transparent` render. Kept apart from [`Self::AllBlack`] so the
    /// service can decide per job whether empty frames are legitimate.
    #[error("frame is entirely transparent")]
    AllTransparent,
    /// Every pixel has the same colour (exactly for integer samples, within
    /// 1e-6 for float): a flat fill, not a render.
    #[error("every pixel has the same colour {rgba:?}")]
    Uniform {
        /// That colour as RGBA in 0..1 units (grey expanded to RGB, alpha 1
        /// when the image has none).
        rgba: [f32; 4],
    },
    /// Float samples that are NaN or ±Inf (a broken shader or a bad node).
    #[error("{count} pixels contain NaN or infinite samples")]
    NonFinite {
        /// Number of pixels with at least one such sample.
        count: u64,
    },
}

impl Rejection {
    /// Stable short code for logs, metrics and the wire, e.g. `"all_black"`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::Undecodable { .. } => "undecodable",
            Self::WrongSize { .. } => "wrong_size",
            Self::AllBlack => "all_black",
            Self::AllTransparent => "all_transparent",
            Self::Uniform { .. } => "uniform",
            Self::NonFinite { .. } => "non_finite",
        }
    }
}

/// The outcome of [`check_frame`]: the accepted frame's statistics, or why
/// it was rejected. (The verdict that is stored and shown is
/// [`lumen_protocol::Verdict`], built from this.)
pub type CheckResult = Result<FrameStats, Rejection>;

/// Checks one rendered frame against what its job expects.
///
/// Pure and synchronous; never panics. Decoding a 1080p PNG takes
/// milliseconds, so async callers should use `spawn_blocking`.
pub fn check_frame(bytes: &[u8], expect: &FrameExpectation) -> CheckResult {
    let verdict = check(bytes, expect);
    if let Err(rejection) = &verdict {
        tracing::debug!(target: "verifier::check", code = rejection.code(), %rejection, "frame rejected");
    }
    verdict
}

fn check(bytes: &[u8], expect: &FrameExpectation) -> CheckResult {
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if len > expect.max_bytes {
        return Err(Rejection::TooLarge { bytes: len, limit: expect.max_bytes });
    }
    let expected = (expect.width, expect.height);
    let decoded = match decode(bytes, |w, h| (w, h) == expected) {
        Ok(decoded) => decoded,
        Err(DecodeError::Undecodable(reason)) => {
            return Err(Rejection::Undecodable { reason });
        }
        Err(DecodeError::Refused { width, height }) => {
            return Err(Rejection::WrongSize { expected, actual: (width, height) });
        }
    };

    let image = &decoded.image;
    let scan = scan_image(image);
    if scan.non_finite > 0 {
        return Err(Rejection::NonFinite { count: scan.non_finite });
    }
    if scan.visible == 0 {
        let rejection = if scan.any_opaque { Rejection::AllBlack } else { Rejection::AllTransparent };
        return Err(rejection);
    }
    if let Some(rgba) = scan.uniform {
        return Err(Rejection::Uniform { rgba });
    }

    let color = image.color();
    let channels = color.channel_count();
    let pixels = scan.pixels.max(1) as f64;
    Ok(FrameStats {
        width: image.width(),
        height: image.height(),
        format: decoded.format,
        channels,
        bits_per_channel: color.bytes_per_pixel() / channels.max(1) * 8,
        float: matches!(image, DynamicImage::ImageRgb32F(_) | DynamicImage::ImageRgba32F(_)),
        mean_luma: scan.luma_sum / pixels,
        visible_fraction: scan.visible as f64 / pixels,
    })
}

// ---------------------------------------------------------------------------
// Decoding, shared with `compare`.

/// A decoded frame.
pub(crate) struct Decoded {
    pub(crate) format: FrameFormat,
    pub(crate) image: DynamicImage,
}

/// Why [`decode`] gave up.
pub(crate) enum DecodeError {
    /// Not decodable; the reason is for people.
    Undecodable(String),
    /// The header's dimensions failed the caller's gate; nothing was decoded.
    Refused { width: u32, height: u32 },
}

/// Decodes a frame whose header dimensions pass `accept`.
///
/// The header is read first (the decoders allocate only small row buffers
/// for it, bounded by [`MAX_DECODE_ALLOC`]); `accept` sees its dimensions
/// before the pixel buffer exists.
pub(crate) fn decode(bytes: &[u8], accept: impl FnOnce(u32, u32) -> bool) -> Result<Decoded, DecodeError> {
    let format = FrameFormat::sniff(bytes).ok_or_else(|| {
        DecodeError::Undecodable("not a PNG, OpenEXR or JPEG file (unknown magic bytes)".to_owned())
    })?;
    // A decoder bug must not take down the service: treat a panic as a bad
    // file. The closure only touches its own locals and `bytes`.
    catch_unwind(AssertUnwindSafe(|| decode_format(bytes, format, accept))).unwrap_or_else(|_| {
        Err(DecodeError::Undecodable(format!("the {format} decoder panicked on this file")))
    })
}

fn decode_format(
    bytes: &[u8],
    format: FrameFormat,
    accept: impl FnOnce(u32, u32) -> bool,
) -> Result<Decoded, DecodeError> {
    let undecodable = |err: image::ImageError| DecodeError::Undecodable(err.to_string());

    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    reader.limits(limits.clone());
    let mut decoder = reader.into_decoder().map_err(undecodable)?;

    let (width, height) = decoder.dimensions();
    if !accept(width, height) {
        return Err(DecodeError::Refused { width, height });
    }
    if width == 0 || height == 0 {
        return Err(DecodeError::Undecodable(format!("image has no pixels ({width}x{height})")));
    }
    if format == FrameFormat::Exr {
        check_exr_blocks(bytes, width, height)?;
    }

    let needed = decoder.total_bytes();
    limits.reserve(needed).map_err(|_| {
        DecodeError::Undecodable(format!(
            "decoding needs {needed} bytes, over the {MAX_DECODE_ALLOC}-byte limit"
        ))
    })?;
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    decoder.set_limits(limits).map_err(undecodable)?;
    let image = DynamicImage::from_decoder(decoder).map_err(undecodable)?;
    Ok(Decoded { format, image })
}

/// The display window (what `image` reports as the dimensions) says nothing
/// about the *data* window, which sizes the blocks the EXR decoder inflates:
/// a tiny file could claim a 320×180 display and a 2-billion-pixel data
/// window. Refuse data windows larger than the display and oversized blocks.
fn check_exr_blocks(bytes: &[u8], width: u32, height: u32) -> Result<(), DecodeError> {
    let meta = exr::meta::MetaData::read_from_buffered(Cursor::new(bytes), false)
        .map_err(|err| DecodeError::Undecodable(format!("OpenEXR header: {err}")))?;
    for header in &meta.headers {
        let size = header.layer_size;
        if header.deep {
            return Err(DecodeError::Undecodable("deep OpenEXR data is not supported".to_owned()));
        }
        if size.width() > width as usize || size.height() > height as usize {
            return Err(DecodeError::Undecodable(format!(
                "OpenEXR data window {}x{} is larger than the {width}x{height} display window",
                size.width(),
                size.height()
            )));
        }
        let block = header.max_block_byte_size();
        if block > MAX_EXR_BLOCK_BYTES {
            return Err(DecodeError::Undecodable(format!(
                "OpenEXR block of {block} bytes exceeds the {MAX_EXR_BLOCK_BYTES}-byte limit"
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Samples, shared with `compare`.

/// One channel value of a decoded image.
pub(crate) trait Sample: Copy + PartialOrd {
    /// Largest colour value that counts as black.
    const DARK: Self;
    /// Largest alpha that counts as fully transparent.
    const CLEAR: Self;
    /// Full scale (opaque alpha).
    const ONE: Self;

    /// The value in 0..1 units (float samples are passed through).
    fn unit(self) -> f32;

    /// Whether the value is a real number (always, for integers).
    fn is_finite(self) -> bool {
        true
    }

    /// Whether two samples count as the same colour.
    fn same(self, other: Self) -> bool;

    /// Absolute difference in 0..1 units, symmetric in its arguments.
    fn distance(self, other: Self) -> f64 {
        (f64::from(self.unit()) - f64::from(other.unit())).abs()
    }
}

impl Sample for u8 {
    const DARK: Self = 1;
    const CLEAR: Self = 1;
    const ONE: Self = u8::MAX;

    fn unit(self) -> f32 {
        f32::from(self) / 255.0
    }

    fn same(self, other: Self) -> bool {
        self == other
    }

    fn distance(self, other: Self) -> f64 {
        f64::from(self.abs_diff(other)) / 255.0
    }
}

impl Sample for u16 {
    /// 1/255 of full scale, as for 8 bits.
    const DARK: Self = 257;
    const CLEAR: Self = 257;
    const ONE: Self = u16::MAX;

    fn unit(self) -> f32 {
        f32::from(self) / 65535.0
    }

    fn same(self, other: Self) -> bool {
        self == other
    }

    fn distance(self, other: Self) -> f64 {
        f64::from(self.abs_diff(other)) / 65535.0
    }
}

impl Sample for f32 {
    const DARK: Self = DARK_LINEAR;
    const CLEAR: Self = CLEAR_UNIT;
    const ONE: Self = 1.0;

    fn unit(self) -> f32 {
        self
    }

    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }

    fn same(self, other: Self) -> bool {
        (self - other).abs() <= FLOAT_SAME
    }

    /// Two NaNs, or two infinities of one sign, are the same; any other pair
    /// involving a non-finite sample differs by 1 (full scale), which keeps
    /// the statistics finite.
    fn distance(self, other: Self) -> f64 {
        if self.is_finite() && other.is_finite() {
            (f64::from(self) - f64::from(other)).abs()
        } else if (self.is_nan() && other.is_nan()) || self == other {
            0.0
        } else {
            1.0
        }
    }
}

/// What one pass over the pixels found.
#[derive(Debug, Default)]
struct Scan {
    pixels: u64,
    non_finite: u64,
    /// Pixels neither black nor transparent.
    visible: u64,
    /// Whether any finite pixel is not fully transparent.
    any_opaque: bool,
    luma_sum: f64,
    /// The colour of every pixel, when they all share one.
    uniform: Option<[f32; 4]>,
}

fn scan_image(image: &DynamicImage) -> Scan {
    let width = image.width() as usize;
    match image {
        DynamicImage::ImageLuma8(b) => scan::<u8, 1>(b.as_raw(), width),
        DynamicImage::ImageLumaA8(b) => scan::<u8, 2>(b.as_raw(), width),
        DynamicImage::ImageRgb8(b) => scan::<u8, 3>(b.as_raw(), width),
        DynamicImage::ImageRgba8(b) => scan::<u8, 4>(b.as_raw(), width),
        DynamicImage::ImageLuma16(b) => scan::<u16, 1>(b.as_raw(), width),
        DynamicImage::ImageLumaA16(b) => scan::<u16, 2>(b.as_raw(), width),
        DynamicImage::ImageRgb16(b) => scan::<u16, 3>(b.as_raw(), width),
        DynamicImage::ImageRgba16(b) => scan::<u16, 4>(b.as_raw(), width),
        DynamicImage::ImageRgb32F(b) => scan::<f32, 3>(b.as_raw(), width),
        DynamicImage::ImageRgba32F(b) => scan::<f32, 4>(b.as_raw(), width),
        other => scan::<f32, 4>(other.to_rgba32f().as_raw(), width),
    }
}

/// One pass over the rows of an image with `C` interleaved channels (1 grey,
/// 2 grey + alpha, 3 RGB, 4 RGBA).
///
/// Per pixel it counts non-finite samples, visibility and luma; the
/// uniformity comparison stops at the first pixel that differs from the
/// first one. It is a full pass because the statistics need every pixel and
/// it costs a fraction of the decode.
fn scan<T: Sample, const C: usize>(data: &[T], width: usize) -> Scan {
    let mut out = Scan::default();
    if width == 0 {
        return out;
    }
    let has_alpha = C == 2 || C == 4;
    let colours = if C >= 3 { 3 } else { 1 };
    let mut first: Option<[T; C]> = None;
    let mut uniform = true;

    for row in data.chunks_exact(width * C) {
        let (pixels, _) = row.as_chunks::<C>();
        for px in pixels {
            out.pixels += 1;
            if !px.iter().all(|v| v.is_finite()) {
                out.non_finite += 1;
                continue;
            }
            let alpha = if has_alpha { px[C - 1] } else { T::ONE };
            let transparent = has_alpha && alpha <= T::CLEAR;
            if !transparent {
                out.any_opaque = true;
                if px[..colours].iter().any(|&v| v > T::DARK) {
                    out.visible += 1;
                }
            }
            let luma = if colours == 3 {
                0.2126 * f64::from(px[0].unit())
                    + 0.7152 * f64::from(px[1].unit())
                    + 0.0722 * f64::from(px[2].unit())
            } else {
                f64::from(px[0].unit())
            };
            out.luma_sum += luma * f64::from(alpha.unit().clamp(0.0, 1.0));

            match &first {
                None => first = Some(*px),
                Some(first) if uniform => {
                    uniform = px.iter().zip(first).all(|(a, b)| a.same(*b));
                }
                Some(_) => {}
            }
        }
    }

    out.uniform = first.filter(|_| uniform).map(|px| {
        let alpha = if has_alpha { px[C - 1].unit() } else { 1.0 };
        if colours == 3 {
            [px[0].unit(), px[1].unit(), px[2].unit(), alpha]
        } else {
            [px[0].unit(), px[0].unit(), px[0].unit(), alpha]
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_serde_tags() {
        let all = [
            Rejection::TooLarge { bytes: 2, limit: 1 },
            Rejection::Undecodable { reason: "x".into() },
            Rejection::WrongSize { expected: (1, 2), actual: (3, 4) },
            Rejection::AllBlack,
            Rejection::AllTransparent,
            Rejection::Uniform { rgba: [0.5, 0.5, 0.5, 1.0] },
            Rejection::NonFinite { count: 3 },
        ];
        for rejection in all {
            let json = serde_json::to_value(&rejection).unwrap();
            assert_eq!(json["code"], rejection.code(), "{json}");
            let back: Rejection = serde_json::from_value(json).unwrap();
            assert_eq!(back, rejection);
        }
    }

    #[test]
    fn scan_finds_first_difference_anywhere() {
        let mut data = vec![7u8; 4 * 3 * 5];
        assert!(scan::<u8, 3>(&data, 4).uniform.is_some());
        let last = data.len() - 1;
        data[last] = 8;
        let s = scan::<u8, 3>(&data, 4);
        assert!(s.uniform.is_none());
        assert_eq!(s.pixels, 20);
        assert_eq!(s.visible, 20);
    }

    #[test]
    fn float_uniform_tolerance() {
        let a = [0.5f32, 0.5, 0.5, 0.5 + 5e-7, 0.5, 0.5];
        assert!(scan::<f32, 3>(&a, 2).uniform.is_some());
        let b = [0.5f32, 0.5, 0.5, 0.5 + 1e-4, 0.5, 0.5];
        assert!(scan::<f32, 3>(&b, 2).uniform.is_none());
    }

    #[test]
    fn float_distance_is_symmetric_and_finite() {
        let values = [0.0f32, 1.0, -2.5, f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        for a in values {
            for b in values {
                let d = a.distance(b);
                assert!(d.is_finite());
                assert_eq!(d.to_bits(), b.distance(a).to_bits());
            }
        }
    }
}
