//! Property tests: no input makes the verifier panic, and comparison is
//! symmetric.

use image::{ImageBuffer, Rgb, Rgba32FImage};
use lumen_verifier::{Tolerance, check_frame, compare_frames};
use proptest::prelude::*;

use crate::support::{default_scene, expect, exr, png, to_rgb8};

fn valid_png() -> Vec<u8> {
    png(to_rgb8(&default_scene(48, 32)))
}

fn valid_exr() -> Vec<u8> {
    exr(default_scene(24, 16))
}

/// A valid file with some bytes overwritten, some inserted and a random tail cut.
fn mutated(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len();
    (
        prop::collection::vec((0..len, any::<u8>()), 1..8),
        prop::option::of((0..len, prop::collection::vec(any::<u8>(), 1..16))),
        prop::option::of(0..len),
    )
        .prop_map(move |(writes, insert, cut)| {
            let mut bytes = base.clone();
            for (at, value) in writes {
                bytes[at] = value;
            }
            if let Some((at, extra)) = insert {
                bytes.splice(at..at, extra);
            }
            if let Some(cut) = cut {
                bytes.truncate(cut);
            }
            bytes
        })
}

proptest! {
    #[test]
    fn check_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = check_frame(&bytes, &expect(48, 32));
    }

    #[test]
    fn check_never_panics_behind_a_valid_signature(
        magic in prop::sample::select(vec![&b"\x89PNG\r\n\x1a\n"[..], &[0x76, 0x2f, 0x31, 0x01], &[0xff, 0xd8, 0xff]]),
        tail in prop::collection::vec(any::<u8>(), 0..1024),
    ) {
        let bytes = [magic, &tail].concat();
        let _ = check_frame(&bytes, &expect(48, 32));
    }

    #[test]
    fn check_never_panics_on_mutated_png(bytes in mutated(valid_png())) {
        let _ = check_frame(&bytes, &expect(48, 32));
    }

    #[test]
    fn check_never_panics_on_mutated_exr(bytes in mutated(valid_exr())) {
        let _ = check_frame(&bytes, &expect(24, 16));
    }

    #[test]
    fn compare_is_symmetric_and_reflexive(
        a in prop::collection::vec(any::<u8>(), 8 * 6 * 3),
        b in prop::collection::vec(any::<u8>(), 8 * 6 * 3),
    ) {
        let a = png(ImageBuffer::<Rgb<u8>, _>::from_raw(8, 6, a).unwrap());
        let b = png(ImageBuffer::<Rgb<u8>, _>::from_raw(8, 6, b).unwrap());
        let tol = Tolerance::default();
        let ab = compare_frames(&a, &b, &tol).unwrap();
        let ba = compare_frames(&b, &a, &tol).unwrap();
        prop_assert_eq!(ab, ba);
        let aa = compare_frames(&a, &a, &tol).unwrap();
        prop_assert!(aa.matches && aa.psnr_db.is_infinite());
    }

    #[test]
    fn compare_is_symmetric_for_float_with_nan(
        a in prop::collection::vec(prop::num::f32::ANY, 4 * 3 * 4),
        b in prop::collection::vec(prop::num::f32::ANY, 4 * 3 * 4),
    ) {
        let a = exr(Rgba32FImage::from_raw(4, 3, a).unwrap());
        let b = exr(Rgba32FImage::from_raw(4, 3, b).unwrap());
        let tol = Tolerance::default();
        let ab = compare_frames(&a, &b, &tol).unwrap();
        let ba = compare_frames(&b, &a, &tol).unwrap();
        prop_assert_eq!(ab, ba);
        prop_assert!(ab.max_abs_diff.is_finite() || ab.max_abs_diff.is_infinite());
    }
}
