//! `check_frame`: accepted formats, every rejection, hostile inputs.

use std::time::{Duration, Instant};

use image::{DynamicImage, GrayImage, ImageBuffer, ImageFormat, Luma, LumaA, Rgb, Rgba, Rgba32FImage};
use lumen_verifier::{CheckResult, FrameExpectation, FrameFormat, Rejection, check_frame};

use crate::support::{
    Noise, default_scene, encode, expect, exr, forged_png, gradient_l16, gradient_rgba8, gradient_rgba32f,
    patch_exr_data_window, png, to_rgb8,
};

fn rejection(verdict: CheckResult) -> Rejection {
    match verdict {
        Err(rejection) => rejection,
        Ok(stats) => panic!("expected a rejection, got {stats:?}"),
    }
}

#[test]
fn accepts_png_variants_with_stats() {
    let (w, h) = (64, 36);
    let cases: Vec<(DynamicImage, u8, u8)> = vec![
        (to_rgb8(&default_scene(w, h)), 3, 8),
        (gradient_rgba8(w, h).into(), 4, 8),
        (DynamicImage::ImageRgb32F(default_scene(w, h)).to_luma8().into(), 1, 8),
        (DynamicImage::ImageRgba8(gradient_rgba8(w, h)).to_luma_alpha8().into(), 2, 8),
        (gradient_l16(w, h).into(), 1, 16),
        (DynamicImage::ImageRgb32F(default_scene(w, h)).to_rgb16().into(), 3, 16),
        (DynamicImage::ImageRgba8(gradient_rgba8(w, h)).to_rgba16().into(), 4, 16),
    ];
    for (image, channels, bits) in cases {
        let verdict = check_frame(&png(image.clone()), &expect(w, h));
        let stats = verdict.as_ref().ok().unwrap_or_else(|| panic!("{:?}: {verdict:?}", image.color()));
        assert_eq!((stats.width, stats.height), (w, h));
        assert_eq!(stats.format, FrameFormat::Png);
        assert_eq!((stats.channels, stats.bits_per_channel, stats.float), (channels, bits, false));
        assert!(stats.mean_luma > 0.05 && stats.mean_luma < 1.0, "{stats:?}");
        assert!(stats.visible_fraction > 0.9, "{stats:?}");
    }
}

#[test]
fn accepts_float_exr() {
    let (w, h) = (48, 27);
    let rgb = check_frame(&exr(default_scene(w, h)), &expect(w, h));
    let stats = rgb.as_ref().ok().unwrap_or_else(|| panic!("{rgb:?}"));
    assert_eq!(stats.format, FrameFormat::Exr);
    assert_eq!((stats.channels, stats.bits_per_channel, stats.float), (3, 32, true));

    let rgba = check_frame(&exr(gradient_rgba32f(w, h)), &expect(w, h));
    let stats = rgba.as_ref().ok().unwrap_or_else(|| panic!("{rgba:?}"));
    assert_eq!((stats.channels, stats.float), (4, true));
    // Linear values above 1 are legal in EXR and count towards the luma.
    assert!(stats.mean_luma > 0.3, "{stats:?}");
}

#[test]
fn accepts_jpeg() {
    let bytes = encode(&to_rgb8(&default_scene(64, 64)), ImageFormat::Jpeg);
    let verdict = check_frame(&bytes, &expect(64, 64));
    assert_eq!(verdict.as_ref().ok().map(|s| s.format), Some(FrameFormat::Jpeg), "{verdict:?}");
}

#[test]
fn format_comes_from_magic_bytes_not_names() {
    // A GIF signature and a BMP signature: not formats we accept.
    for bytes in [b"GIF89a\x01\x00\x01\x00".to_vec(), b"BM\x00\x00\x00\x00".to_vec(), Vec::new()] {
        let rejection = rejection(check_frame(&bytes, &expect(1, 1)));
        assert_eq!(rejection.code(), "undecodable", "{rejection}");
    }
}

#[test]
fn rejects_black_png_and_exr() {
    let black = GrayImage::new(32, 32);
    assert_eq!(rejection(check_frame(&png(black), &expect(32, 32))), Rejection::AllBlack);

    // 1/255 is still black (dithering), and 16-bit ≤ 257 too.
    let near = ImageBuffer::from_fn(32, 32, |x, _| Rgb([(x % 2) as u8, 0u8, 1]));
    assert_eq!(rejection(check_frame(&png(near), &expect(32, 32))), Rejection::AllBlack);
    let near16 = ImageBuffer::from_fn(32, 32, |x, _| Luma([(x * 8) as u16]));
    assert_eq!(rejection(check_frame(&png(near16), &expect(32, 32))), Rejection::AllBlack);

    let black_exr = Rgba32FImage::from_fn(32, 32, |x, _| Rgba([x as f32 * 1e-6, 0.0, 0.0, 1.0]));
    assert_eq!(rejection(check_frame(&exr(black_exr), &expect(32, 32))), Rejection::AllBlack);
}

#[test]
fn one_visible_pixel_is_enough() {
    let mut image = GrayImage::new(32, 32);
    image.put_pixel(31, 31, Luma([2]));
    assert!(check_frame(&png(image), &expect(32, 32)).is_ok());

    let mut float = Rgba32FImage::from_pixel(32, 32, Rgba([0.0, 0.0, 0.0, 1.0]));
    float.put_pixel(3, 3, Rgba([0.001, 0.0, 0.0, 1.0])); // ≈ 8/255 once sRGB-encoded
    assert!(check_frame(&exr(float), &expect(32, 32)).is_ok());
}

#[test]
fn rejects_transparent_frames() {
    // Fully transparent, whatever the colour under the alpha.
    let clear = ImageBuffer::from_fn(32, 32, |x, y| Rgba([x as u8 * 8, y as u8 * 8, 200, 0]));
    assert_eq!(rejection(check_frame(&png(clear), &expect(32, 32))), Rejection::AllTransparent);
    let clear_exr = Rgba32FImage::from_fn(32, 32, |x, _| Rgba([x as f32, 1.0, 1.0, 0.0]));
    assert_eq!(rejection(check_frame(&exr(clear_exr), &expect(32, 32))), Rejection::AllTransparent);
    let clear_la = ImageBuffer::from_fn(32, 32, |x, _| LumaA([x as u8 * 8, 1u8]));
    assert_eq!(rejection(check_frame(&png(clear_la), &expect(32, 32))), Rejection::AllTransparent);

    // Transparent around an opaque black object: black.
    let mixed =
        ImageBuffer::from_fn(32, 32, |x, _| if x < 16 { Rgba([0u8, 0, 0, 255]) } else { Rgba([0, 0, 0, 0]) });
    assert_eq!(rejection(check_frame(&png(mixed), &expect(32, 32))), Rejection::AllBlack);

    // An opaque object on a transparent background is a frame.
    let object = ImageBuffer::from_fn(32, 32, |x, y| {
        if (8..24).contains(&x) && (8..24).contains(&y) {
            Rgba([200u8, 100, 50, 255])
        } else {
            Rgba([0, 0, 0, 0])
        }
    });
    let verdict = check_frame(&png(object), &expect(32, 32));
    let stats = verdict.as_ref().ok().unwrap_or_else(|| panic!("{verdict:?}"));
    assert!((stats.visible_fraction - 0.25).abs() < 1e-9, "{stats:?}");
}

#[test]
fn rejects_uniform_frames() {
    let grey = GrayImage::from_pixel(40, 30, Luma([128]));
    match rejection(check_frame(&png(grey), &expect(40, 30))) {
        Rejection::Uniform { rgba } => {
            let v = 128.0 / 255.0;
            assert_eq!(rgba, [v, v, v, 1.0]);
        }
        other => panic!("{other:?}"),
    }

    let white = ImageBuffer::from_pixel(40, 30, Rgba([255u8, 255, 255, 255]));
    assert_eq!(rejection(check_frame(&png(white), &expect(40, 30))), Rejection::Uniform { rgba: [1.0; 4] });

    // Float: equal within 1e-6 is uniform, a visible step is not.
    let mut noise = Noise::new(7);
    let flat = Rgba32FImage::from_fn(40, 30, |_, _| Rgba([0.5 + noise.signed() * 4e-7, 0.25, 0.125, 1.0]));
    assert_eq!(rejection(check_frame(&exr(flat), &expect(40, 30))).code(), "uniform");
    let mut step = Rgba32FImage::from_pixel(40, 30, Rgba([0.5, 0.25, 0.125, 1.0]));
    step.put_pixel(39, 29, Rgba([0.5, 0.25, 0.126, 1.0]));
    assert!(check_frame(&exr(step), &expect(40, 30)).is_ok());

    // One differing pixel at the very end of an 8-bit frame.
    let mut last = GrayImage::from_pixel(40, 30, Luma([90]));
    last.put_pixel(39, 29, Luma([91]));
    assert!(check_frame(&png(last), &expect(40, 30)).is_ok());
}

#[test]
fn rejects_nan_and_inf_in_exr() {
    let mut image = gradient_rgba32f(32, 32);
    image.put_pixel(1, 1, Rgba([f32::NAN, 0.5, 0.5, 1.0]));
    image.put_pixel(2, 1, Rgba([0.5, f32::INFINITY, 0.5, 1.0]));
    image.put_pixel(3, 1, Rgba([0.5, 0.5, f32::NEG_INFINITY, f32::NAN]));
    assert_eq!(rejection(check_frame(&exr(image), &expect(32, 32))), Rejection::NonFinite { count: 3 });

    // All NaN: non-finite wins over black/uniform.
    let nan = Rgba32FImage::from_pixel(8, 8, Rgba([f32::NAN; 4]));
    assert_eq!(rejection(check_frame(&exr(nan), &expect(8, 8))), Rejection::NonFinite { count: 64 });
}

#[test]
fn rejects_too_large_before_parsing() {
    let bytes = png(gradient_rgba8(64, 64));
    let limit = bytes.len() as u64 - 1;
    let expectation = FrameExpectation { width: 64, height: 64, max_bytes: limit };
    assert_eq!(rejection(check_frame(&bytes, &expectation)), Rejection::TooLarge { bytes: limit + 1, limit });
    // Garbage over the limit is "too large", not "undecodable": size is checked first.
    let garbage = vec![0u8; 2048];
    let small = FrameExpectation { width: 1, height: 1, max_bytes: 1024 };
    assert_eq!(rejection(check_frame(&garbage, &small)).code(), "too_large");
}

#[test]
fn rejects_wrong_size() {
    let bytes = png(gradient_rgba8(64, 48));
    assert_eq!(
        rejection(check_frame(&bytes, &expect(48, 64))),
        Rejection::WrongSize { expected: (48, 64), actual: (64, 48) }
    );
    let bytes = exr(gradient_rgba32f(20, 10));
    assert_eq!(
        rejection(check_frame(&bytes, &expect(20, 11))),
        Rejection::WrongSize { expected: (20, 11), actual: (20, 10) }
    );
}

#[test]
fn rejects_truncated_and_corrupt_files() {
    let bytes = png(to_rgb8(&default_scene(64, 64)));
    // Anything cut before the end of the pixel data (the last 12 bytes are IEND).
    for cut in [8, 20, 33, 50, bytes.len() / 2, bytes.len() - 13] {
        let rejection = rejection(check_frame(&bytes[..cut], &expect(64, 64)));
        assert_eq!(rejection.code(), "undecodable", "cut at {cut}: {rejection}");
    }
    // Pixels are what we check, not the container: complete, CRC-checked
    // pixel data with a damaged IEND trailer is still the frame.
    assert!(check_frame(&bytes[..bytes.len() - 1], &expect(64, 64)).is_ok());
    let bytes = exr(default_scene(64, 64));
    for cut in [4, 30, bytes.len() / 2, bytes.len() - 1] {
        let rejection = rejection(check_frame(&bytes[..cut], &expect(64, 64)));
        assert_eq!(rejection.code(), "undecodable", "cut at {cut}: {rejection}");
    }
    // A flipped byte in the pixel data breaks the CRC/zlib stream.
    let mut bytes = png(to_rgb8(&default_scene(64, 64)));
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    assert_eq!(rejection(check_frame(&bytes, &expect(64, 64))).code(), "undecodable");
}

#[test]
fn forged_huge_png_header_is_refused_without_decoding() {
    let bytes = forged_png(100_000, 100_000);
    let started = Instant::now();
    let verdict = check_frame(&bytes, &expect(1920, 1080));
    assert_eq!(
        rejection(verdict),
        Rejection::WrongSize { expected: (1920, 1080), actual: (100_000, 100_000) }
    );
    // Even when the job "expects" that size, the 40 GB buffer is never
    // allocated (the process would die if it were): the memory limit refuses.
    let verdict = check_frame(&bytes, &expect(100_000, 100_000));
    let rejection = rejection(verdict);
    assert_eq!(rejection.code(), "undecodable", "{rejection}");
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());

    // The largest header PNG allows.
    let max = i32::MAX as u32;
    let verdict = check_frame(&forged_png(max, max), &expect(max, max));
    assert_eq!(verdict.as_ref().err().map(Rejection::code), Some("undecodable"), "{verdict:?}");
}

#[test]
fn exr_data_window_larger_than_display_is_refused() {
    let mut bytes = exr(gradient_rgba32f(32, 32));
    patch_exr_data_window(&mut bytes, 1_000_000, 1_000_000);
    let started = Instant::now();
    let rejection = rejection(check_frame(&bytes, &expect(32, 32)));
    assert_eq!(rejection.code(), "undecodable", "{rejection}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn rejections_explain_themselves() {
    let cases = [
        (
            Rejection::TooLarge { bytes: 10, limit: 5 },
            "too_large",
            "frame is 10 bytes, over the 5-byte limit",
        ),
        (
            Rejection::WrongSize { expected: (1920, 1080), actual: (64, 48) },
            "wrong_size",
            "frame is 64x48, expected 1920x1080",
        ),
        (Rejection::AllBlack, "all_black", "frame is entirely black"),
        (Rejection::NonFinite { count: 3 }, "non_finite", "3 pixels contain NaN or infinite samples"),
    ];
    for (rejection, code, message) in cases {
        assert_eq!(rejection.code(), code);
        assert_eq!(rejection.to_string(), message);
    }
    let json = serde_json::to_string(&Rejection::AllTransparent).unwrap();
    assert_eq!(json, r#"{"code":"all_transparent"}"#);
}
