//! Comparison of two renders of the same frame by different nodes:
//! [`compare_frames`].
//!
//! Frames are compared by decoded pixels, never by file hash: Blender writes
//! the render time into PNG and EXR metadata, so two honest renders never
//! hash alike. Renders by one Blender version are pixel-identical on one
//! machine and differ by about 4e-5 in float EXR across CPU instruction
//! sets; different Blender versions differ visibly, so the matchmaker must
//! pair nodes running the same version.

use image::DynamicImage;
use serde::{Deserialize, Serialize};

use crate::{
    check::{DecodeError, MAX_DIMENSION, Sample, decode},
    error::{CompareError, CompareResult, Side},
};

/// How far two renders may differ and still count as the same frame.
///
/// A pixel *differs* when any of its channels differs by more than
/// [`pixel_tolerance`](Self::pixel_tolerance); the frames match when few
/// enough pixels differ **and** the PSNR over all samples is high enough.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tolerance {
    /// Largest per-channel difference, in 0..1 units (1 = full scale, white
    /// in sRGB PNG, 1.0 linear in EXR), for a pixel to count as equal.
    /// Default 2/255: two 8-bit steps, absorbing one rounding flip of an
    /// sRGB encode on either side; in float EXR it is 200× the measured
    /// cross-CPU noise.
    pub pixel_tolerance: f64,
    /// Lowest acceptable peak signal-to-noise ratio in dB (peak 1.0, all
    /// channels). Default 40 dB: an RMS difference of 1% of full scale.
    pub psnr_min_db: f64,
    /// Largest acceptable fraction of differing pixels. Default 1e-4
    /// (0.01%: 207 pixels of a 1080p frame, 5 of 320×180). Honest renders
    /// by one Blender version have no differing pixel at all, so this is
    /// slack, not noise budget; at 0.1% a large object moved by one pixel
    /// in a 1080p frame (≈0.04% of pixels, ≈43 dB) would still match.
    pub max_differing_fraction: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Self { pixel_tolerance: 2.0 / 255.0, psnr_min_db: 40.0, max_differing_fraction: 1e-4 }
    }
}

impl Tolerance {
    /// Bit-exact: no differing pixel, any PSNR (for tests and for
    /// same-machine reproducibility checks).
    pub const EXACT: Self =
        Self { pixel_tolerance: 0.0, psnr_min_db: f64::NEG_INFINITY, max_differing_fraction: 0.0 };
}

/// How two decoded frames differ. All differences are in 0..1 units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Peak signal-to-noise ratio over all samples with peak 1.0;
    /// `f64::INFINITY` when the frames are identical (serialized as `null`,
    /// since JSON has no infinity).
    #[serde(with = "psnr_serde")]
    pub psnr_db: f64,
    /// Largest difference of any single sample.
    pub max_abs_diff: f64,
    /// Mean absolute difference over all samples.
    pub mean_abs_diff: f64,
    /// Fraction of pixels with a channel differing by more than the
    /// tolerance's [`pixel_tolerance`](Tolerance::pixel_tolerance).
    pub differing_pixels_fraction: f64,
    /// Whether the frames count as the same render under the tolerance.
    pub matches: bool,
}

/// Compares two renders of the same frame by their decoded pixels.
///
/// Both must decode and have the same dimensions. Identical colour types
/// are compared in their native sample type; mixed ones (an 8-bit and a
/// 16-bit PNG, say) are both widened to RGBA float. Samples that are NaN or
/// infinite in one frame only count as a full-scale difference. The result
/// is symmetric: swapping `a` and `b` gives the same [`Comparison`].
pub fn compare_frames(a: &[u8], b: &[u8], tol: &Tolerance) -> CompareResult<Comparison> {
    let a = decode_side(a, Side::A)?;
    let b = decode_side(b, Side::B)?;
    let (dims_a, dims_b) = ((a.width(), a.height()), (b.width(), b.height()));
    if dims_a != dims_b {
        return Err(CompareError::SizeMismatch { a: dims_a, b: dims_b });
    }
    let totals = diff_images(&a, &b, tol.pixel_tolerance);
    let comparison = totals.finish(tol);
    tracing::debug!(
        target: "verifier::compare",
        psnr_db = comparison.psnr_db,
        max_abs_diff = comparison.max_abs_diff,
        differing = comparison.differing_pixels_fraction,
        matches = comparison.matches,
        "frames compared"
    );
    Ok(comparison)
}

fn decode_side(bytes: &[u8], side: Side) -> CompareResult<DynamicImage> {
    match decode(bytes, |w, h| w <= MAX_DIMENSION && h <= MAX_DIMENSION) {
        Ok(decoded) => Ok(decoded.image),
        Err(DecodeError::Undecodable(reason)) => Err(CompareError::Undecodable { side, reason }),
        Err(DecodeError::Refused { width, height }) => Err(CompareError::TooLarge { side, width, height }),
    }
}

/// Running sums of a comparison.
#[derive(Debug, Default)]
struct Totals {
    pixels: u64,
    samples: u64,
    differing: u64,
    sum_abs: f64,
    sum_sq: f64,
    max: f64,
}

impl Totals {
    fn finish(&self, tol: &Tolerance) -> Comparison {
        let samples = self.samples.max(1) as f64;
        let mse = self.sum_sq / samples;
        let psnr_db = if mse == 0.0 { f64::INFINITY } else { -10.0 * mse.log10() };
        let differing_pixels_fraction = self.differing as f64 / self.pixels.max(1) as f64;
        Comparison {
            psnr_db,
            max_abs_diff: self.max,
            mean_abs_diff: self.sum_abs / samples,
            differing_pixels_fraction,
            matches: differing_pixels_fraction <= tol.max_differing_fraction && psnr_db >= tol.psnr_min_db,
        }
    }
}

fn diff_images(a: &DynamicImage, b: &DynamicImage, pixel_tolerance: f64) -> Totals {
    use DynamicImage as D;
    let t = pixel_tolerance;
    match (a, b) {
        (D::ImageLuma8(a), D::ImageLuma8(b)) => diff::<u8, 1>(a, b, t),
        (D::ImageLumaA8(a), D::ImageLumaA8(b)) => diff::<u8, 2>(a, b, t),
        (D::ImageRgb8(a), D::ImageRgb8(b)) => diff::<u8, 3>(a, b, t),
        (D::ImageRgba8(a), D::ImageRgba8(b)) => diff::<u8, 4>(a, b, t),
        (D::ImageLuma16(a), D::ImageLuma16(b)) => diff::<u16, 1>(a, b, t),
        (D::ImageLumaA16(a), D::ImageLumaA16(b)) => diff::<u16, 2>(a, b, t),
        (D::ImageRgb16(a), D::ImageRgb16(b)) => diff::<u16, 3>(a, b, t),
        (D::ImageRgba16(a), D::ImageRgba16(b)) => diff::<u16, 4>(a, b, t),
        (D::ImageRgb32F(a), D::ImageRgb32F(b)) => diff::<f32, 3>(a, b, t),
        (D::ImageRgba32F(a), D::ImageRgba32F(b)) => diff::<f32, 4>(a, b, t),
        (a, b) => diff::<f32, 4>(&a.to_rgba32f(), &b.to_rgba32f(), t),
    }
}

/// Compares two equally sized buffers of `C` interleaved channels.
fn diff<T: Sample, const C: usize>(a: &[T], b: &[T], pixel_tolerance: f64) -> Totals {
    let mut totals = Totals::default();
    let (pa, _) = a.as_chunks::<C>();
    let (pb, _) = b.as_chunks::<C>();
    for (pa, pb) in pa.iter().zip(pb) {
        let mut worst = 0.0f64;
        for (&x, &y) in pa.iter().zip(pb) {
            let d = x.distance(y);
            totals.sum_abs += d;
            totals.sum_sq += d * d;
            worst = worst.max(d);
        }
        totals.max = totals.max.max(worst);
        if worst > pixel_tolerance {
            totals.differing += 1;
        }
        totals.pixels += 1;
    }
    totals.samples = totals.pixels * C as u64;
    totals
}

/// Serializes an infinite PSNR as `null` and reads `null` back as infinity.
mod psnr_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if value.is_finite() { serializer.serialize_some(value) } else { serializer.serialize_none() }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::INFINITY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_buffers_have_infinite_psnr() {
        let a = [10u8, 20, 30, 40, 50, 60];
        let c = diff::<u8, 3>(&a, &a, 0.0).finish(&Tolerance::EXACT);
        assert!(c.psnr_db.is_infinite());
        assert!(c.matches);
        assert_eq!(c.max_abs_diff, 0.0);
    }

    #[test]
    fn one_step_difference() {
        let a = [10u8, 20, 30, 40, 50, 60];
        let b = [11u8, 20, 30, 40, 50, 60];
        let c = diff::<u8, 3>(&a, &b, 0.0).finish(&Tolerance::default());
        assert!((c.max_abs_diff - 1.0 / 255.0).abs() < 1e-12);
        assert_eq!(c.differing_pixels_fraction, 0.5);
        assert!(!c.matches);
    }

    #[test]
    fn psnr_round_trips_through_json() {
        let c = Comparison {
            psnr_db: f64::INFINITY,
            max_abs_diff: 0.0,
            mean_abs_diff: 0.0,
            differing_pixels_fraction: 0.0,
            matches: true,
        };
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"psnr_db\":null"), "{json}");
        let back: Comparison = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }
}
