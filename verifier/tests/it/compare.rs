//! `compare_frames`: honest re-renders match, altered ones do not.

use image::{DynamicImage, ImageBuffer, Rgb, Rgb32FImage, RgbImage};
use lumen_verifier::{CompareError, Side, Tolerance, compare_frames};

use crate::support::{Noise, default_scene, exr, gradient_rgba8, png, png_recompressed, scene, to_rgb8};

const W: u32 = 320;
const H: u32 = 180;

fn base() -> Rgb32FImage {
    default_scene(W, H)
}

/// Adds -1, 0 or +1 to every 8-bit sample: a rounding flip anywhere.
fn lsb_noise(image: &RgbImage, seed: u64) -> RgbImage {
    let mut noise = Noise::new(seed);
    let mut out = image.clone();
    for v in out.iter_mut() {
        *v = (i16::from(*v) + noise.step()).clamp(0, 255) as u8;
    }
    out
}

#[test]
fn identical_pixels_match_even_when_bytes_differ() {
    let image = to_rgb8(&base());
    let a = png(image.clone());
    let b = png_recompressed(&image);
    assert_ne!(a, b, "the encodings should differ, like Blender's timestamps");
    let c = compare_frames(&a, &b, &Tolerance::default()).unwrap();
    assert!(c.matches && c.psnr_db.is_infinite(), "{c:?}");
    assert_eq!((c.max_abs_diff, c.mean_abs_diff, c.differing_pixels_fraction), (0.0, 0.0, 0.0));
    assert!(compare_frames(&a, &b, &Tolerance::EXACT).unwrap().matches);
}

#[test]
fn one_lsb_noise_matches() {
    let image = to_rgb8(&base()).to_rgb8();
    let noisy = lsb_noise(&image, 1);
    let c = compare_frames(&png(image), &png(noisy), &Tolerance::default()).unwrap();
    assert!(c.matches, "{c:?}");
    assert!((c.max_abs_diff - 1.0 / 255.0).abs() < 1e-12, "{c:?}");
    // ±1 step on two thirds of the samples: RMS 0.8/255, PSNR ≈ 50 dB.
    assert!(c.psnr_db > 45.0, "{c:?}");
    assert!(
        !compare_frames(
            &png(to_rgb8(&base())),
            &png(lsb_noise(&to_rgb8(&base()).to_rgb8(), 2)),
            &Tolerance::EXACT
        )
        .unwrap()
        .matches
    );
}

#[test]
fn cross_cpu_float_noise_matches() {
    let image = base();
    let mut noise = Noise::new(3);
    let mut other = image.clone();
    for v in other.iter_mut() {
        *v += noise.signed() * 4e-5;
    }
    let c = compare_frames(&exr(image), &exr(other), &Tolerance::default()).unwrap();
    assert!(c.matches, "{c:?}");
    assert!(c.max_abs_diff < 5e-5 && c.psnr_db > 80.0, "{c:?}");
}

#[test]
fn moved_object_does_not_match() {
    let here = scene(W, H, 160.0, 90.0, [0.9, 0.3, 0.1]);
    let there = scene(W, H, 163.0, 90.0, [0.9, 0.3, 0.1]);
    for (a, b) in [(png(to_rgb8(&here)), png(to_rgb8(&there))), (exr(here), exr(there))] {
        let c = compare_frames(&a, &b, &Tolerance::default()).unwrap();
        assert!(!c.matches, "{c:?}");
    }
}

#[test]
fn changed_colour_does_not_match() {
    let red = scene(W, H, 160.0, 90.0, [0.9, 0.3, 0.1]);
    let redder = scene(W, H, 160.0, 90.0, [0.95, 0.3, 0.1]);
    let c = compare_frames(&png(to_rgb8(&red)), &png(to_rgb8(&redder)), &Tolerance::default()).unwrap();
    assert!(!c.matches, "{c:?}");
    assert!(c.differing_pixels_fraction > 0.05, "{c:?}");
}

#[test]
fn other_frame_or_cheap_render_does_not_match() {
    let frame = base();
    // The next frame of a slow camera pan: the whole gradient moves a little.
    let next = Rgb32FImage::from_fn(W, H, |x, y| {
        let p = frame.get_pixel((x + 1).min(W - 1), y);
        Rgb(p.0)
    });
    let c = compare_frames(&exr(frame.clone()), &exr(next), &Tolerance::default()).unwrap();
    assert!(!c.matches, "{c:?}");

    // A low-sample render: heavy noise everywhere.
    let mut noise = Noise::new(9);
    let cheap = ImageBuffer::from_fn(W, H, |x, y| {
        let p = frame.get_pixel(x, y).0;
        Rgb(p.map(|v| (v + noise.signed() * 0.05).max(0.0)))
    });
    let c = compare_frames(&png(to_rgb8(&frame)), &png(to_rgb8(&cheap)), &Tolerance::default()).unwrap();
    assert!(!c.matches && c.psnr_db < 40.0, "{c:?}");
}

#[test]
fn mixed_bit_depths_compare_by_value() {
    let image = to_rgb8(&base());
    let wide: DynamicImage = image.to_rgb16().into();
    let c = compare_frames(&png(image), &png(wide), &Tolerance::default()).unwrap();
    assert!(c.matches && c.psnr_db.is_infinite(), "{c:?}");
}

#[test]
fn size_mismatch_and_bad_frames_are_errors() {
    let a = png(gradient_rgba8(64, 48));
    let b = png(gradient_rgba8(64, 49));
    let err = compare_frames(&a, &b, &Tolerance::default()).unwrap_err();
    assert_eq!(err, CompareError::SizeMismatch { a: (64, 48), b: (64, 49) });
    assert_eq!(err.side(), None);

    let err = compare_frames(&a, b"definitely not an image", &Tolerance::default()).unwrap_err();
    assert!(matches!(err, CompareError::Undecodable { side: Side::B, .. }), "{err}");
    let err = compare_frames(&a[..a.len() / 2], &a, &Tolerance::default()).unwrap_err();
    assert_eq!(err.side(), Some(Side::A), "{err}");

    let huge = crate::support::forged_png(100_000, 100_000);
    let err = compare_frames(&a, &huge, &Tolerance::default()).unwrap_err();
    assert_eq!(err, CompareError::TooLarge { side: Side::B, width: 100_000, height: 100_000 });
}

#[test]
fn one_pixel_move_in_hd_does_not_match() {
    // A disc of radius 144 px moved by one pixel changes ≈0.04% of a 720p
    // frame at ≈44 dB: only the differing-pixel fraction catches it.
    let (w, h) = (1280, 720);
    let a = scene(w, h, 640.0, 360.0, [0.9, 0.3, 0.1]);
    let b = scene(w, h, 641.0, 360.0, [0.9, 0.3, 0.1]);
    let c = compare_frames(&png(to_rgb8(&a)), &png(to_rgb8(&b)), &Tolerance::default()).unwrap();
    assert!(!c.matches, "{c:?}");
    assert!(c.psnr_db > 40.0, "{c:?}");
}
