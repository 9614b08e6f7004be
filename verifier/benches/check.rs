//! Timing of `check_frame` and `compare_frames` on render-sized PNG and EXR
//! frames. Run with `cargo bench -p lumen-verifier`; prints one table (median
//! of several runs per cell).
//!
//! The frames are a gradient with a disc and per-sample noise, so PNG
//! compresses them about as badly as a real Cycles render; the compared
//! frame differs from the first by ±1 step (8-bit) or ±4e-5 (float).

use std::{
    hint::black_box,
    io::Cursor,
    time::{Duration, Instant},
};

use image::{DynamicImage, ImageBuffer, ImageFormat, Rgba, Rgba32FImage};
use lumen_verifier::{FrameExpectation, Tolerance, check_frame, compare_frames};

const SIZES: [(u32, u32, usize); 3] = [(320, 180, 41), (1280, 720, 11), (1920, 1080, 7)];

/// xorshift: deterministic noise without a `rand` dependency.
struct Noise(u64);

impl Noise {
    fn unit(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn frame(width: u32, height: u32, seed: u64, amplitude: f32) -> Rgba32FImage {
    let mut noise = Noise(seed | 1);
    let (cx, cy, r) = (width as f32 / 2.0, height as f32 / 2.0, height as f32 / 4.0);
    ImageBuffer::from_fn(width, height, |x, y| {
        let (u, v) = (x as f32 / width as f32, y as f32 / height as f32);
        let base = if (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) < r * r {
            [0.8, 0.3, 0.1]
        } else {
            [0.1 + 0.6 * u, 0.2 + 0.5 * v, 0.4]
        };
        let n = |c: f32, noise: &mut Noise| (c + (noise.unit() - 0.5) * 2.0 * amplitude).clamp(0.0, 1.0);
        Rgba([n(base[0], &mut noise), n(base[1], &mut noise), n(base[2], &mut noise), 1.0])
    })
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("in-memory encoding succeeds");
    out.into_inner()
}

fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    f(); // warm-up
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[allow(clippy::disallowed_macros)] // a bench binary reporting to its operator
fn main() {
    println!("{:<6} {:>10} {:>10} {:>12} {:>14}", "format", "size", "file KiB", "check ms", "compare ms");
    for (width, height, runs) in SIZES {
        // 8-bit PNG: noise of ±3 steps, and a twin with ±1 step more.
        let a = frame(width, height, 1, 3.0 / 255.0);
        let b = frame(width, height, 1, 3.0 / 255.0);
        let mut twin = Noise(7);
        let b8 = ImageBuffer::from_fn(width, height, |x, y| {
            let p = b.get_pixel(x, y).0;
            let step = |c: f32, n: &mut Noise| {
                ((c * 255.0).round() + (n.unit() * 3.0).floor() - 1.0).clamp(0.0, 255.0) as u8
            };
            image::Rgb([step(p[0], &mut twin), step(p[1], &mut twin), step(p[2], &mut twin)])
        });
        let png_a = encode(&DynamicImage::ImageRgba32F(a.clone()).to_rgb8().into(), ImageFormat::Png);
        let png_b = encode(&b8.into(), ImageFormat::Png);

        // Float EXR (RGBA, as Blender writes with film_transparent).
        let mut exr_twin = a.clone();
        let mut n = Noise(11);
        for v in exr_twin.iter_mut() {
            *v += (n.unit() - 0.5) * 8e-5;
        }
        let exr_a = encode(&a.into(), ImageFormat::OpenExr);
        let exr_b = encode(&exr_twin.into(), ImageFormat::OpenExr);

        let expect = FrameExpectation { width, height, max_bytes: 1 << 30 };
        let tol = Tolerance::default();
        for (name, first, second) in [("png", &png_a, &png_b), ("exr", &exr_a, &exr_b)] {
            let verdict = check_frame(first, &expect);
            assert!(verdict.is_ok(), "{name} {width}x{height}: {verdict:?}");
            let comparison = compare_frames(first, second, &tol).expect("the twins decode");
            assert!(comparison.matches, "{name} {width}x{height}: {comparison:?}");

            let check = median(runs, || {
                let _ = black_box(check_frame(black_box(first), &expect));
            });
            let compare = median(runs, || {
                let _ = black_box(compare_frames(black_box(first), black_box(second), &tol));
            });
            println!(
                "{:<6} {:>10} {:>10.0} {:>12.2} {:>14.2}",
                name,
                format!("{width}x{height}"),
                first.len() as f64 / 1024.0,
                ms(check),
                ms(compare)
            );
        }
    }
}
