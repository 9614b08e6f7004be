//! `lumen-blender` against the real Blender.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use lumen_blender::{Blender, BlenderError, RenderError, RenderRequest, ResourceLimits};

fn blender() -> Blender {
    Blender::locate().expect("blender is installed by scripts/setup.sh")
}

/// Builds a scene with the repository's generator script.
fn scene(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-sample-scene.py");
    let status = Command::new(blender().exe())
        .args(["-b", "--factory-startup", "--python"])
        .arg(script)
        .args(["--python-exit-code", "3", "--", "--out"])
        .arg(&out)
        .args(["--frames", "6", "--width", "64", "--height", "36", "--samples", "4"])
        .args(args)
        .output()
        .unwrap()
        .status;
    assert!(status.success());
    out
}

fn request(blend: PathBuf, work: &Path, frame: i32) -> RenderRequest {
    RenderRequest {
        blend,
        frame,
        work_dir: work.to_owned(),
        limits: ResourceLimits::default(),
        threads: Some(2),
        expected_range: Some((1, 6)),
    }
}

#[tokio::test]
async fn inspects_a_generated_scene() {
    let dir = tempfile::tempdir().unwrap();
    let info = blender().inspect(&scene(dir.path(), "s.blend", &[])).await.unwrap();
    assert_eq!((info.frame_start, info.frame_end, info.frame_step), (1, 6, 1));
    assert_eq!((info.width, info.height), (64, 36));
    assert_eq!(info.engine, "CYCLES");
    assert!(info.has_camera);
    assert!(!info.cycles_denoising);
    assert!(info.unpacked_external_files.is_empty());
    assert!(info.blender_version_saved.is_some());
    assert!(blender().version().await.unwrap().starts_with(char::is_numeric));
}

#[tokio::test]
async fn lists_unpacked_external_files() {
    let dir = tempfile::tempdir().unwrap();
    let blend = scene(
        dir.path(),
        "ext.blend",
        &["--variant", "external-texture", "--texture", "//textures/wood.png"],
    );
    let info = blender().inspect(&blend).await.unwrap();
    assert_eq!(info.unpacked_external_files.len(), 1, "{info:?}");
    let file = &info.unpacked_external_files[0];
    assert_eq!(file.kind, "image");
    assert!(file.path.ends_with("wood.png"), "{file:?}");
}

#[tokio::test]
async fn refuses_non_blend_and_truncated_files_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.blend");
    std::fs::write(&junk, b"%PDF-1.7 definitely not a scene").unwrap();
    let err = blender().inspect(&junk).await.unwrap_err();
    assert!(matches!(err, BlenderError::NotABlendFile { .. }), "{err}");
    assert!(err.to_string().contains("%PDF-1.7"), "{err}");

    let good = scene(dir.path(), "s.blend", &[]);
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.blend");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let err = blender().inspect(&cut).await.unwrap_err();
    assert!(matches!(err, BlenderError::Unreadable { .. }), "{err}");
    assert!(err.to_string().contains("Failed to read blend file"), "{err}");
}

#[tokio::test]
async fn renders_a_frame_of_the_right_size() {
    let dir = tempfile::tempdir().unwrap();
    let blend = scene(dir.path(), "s.blend", &[]);
    let out = blender().render_frame(&request(blend, dir.path(), 3)).await.unwrap();
    let image = image::load_from_memory(&out.bytes).unwrap();
    assert_eq!((image.width(), image.height()), (64, 36));
    assert!(out.wall_time > Duration::ZERO);
    assert!(out.render_time.is_some());
}

#[tokio::test]
async fn a_scene_needing_the_denoiser_fails_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let blend = scene(dir.path(), "d.blend", &["--variant", "denoise"]);
    assert!(blender().inspect(&blend).await.unwrap().cycles_denoising);
    let err = blender().render_frame(&request(blend, dir.path(), 1)).await.unwrap_err();
    assert_eq!(err.kind(), "missing_feature", "{err}");
    assert!(err.is_deterministic());
}

#[tokio::test]
async fn frames_outside_the_range_are_refused_before_rendering() {
    let dir = tempfile::tempdir().unwrap();
    let err = blender()
        .render_frame(&request(dir.path().join("never-read.blend"), dir.path(), 7))
        .await
        .unwrap_err();
    assert!(matches!(err, RenderError::FrameOutOfRange { frame: 7, start: 1, end: 6 }), "{err}");
}

#[tokio::test]
async fn a_timeout_kills_blender_and_leaves_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    let blend = scene(dir.path(), "slow.blend", &["--width", "640", "--height", "360", "--samples", "512"]);
    let mut req = request(blend.clone(), dir.path(), 1);
    req.limits.timeout = Duration::from_millis(1_500);
    let err = blender().render_frame(&req).await.unwrap_err();
    assert_eq!(err.kind(), "timeout", "{err}");
    assert!(!err.is_deterministic());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let needle = blend.to_string_lossy().into_owned();
    let survivors: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&needle) && c.contains("blender"))
        .collect();
    assert!(survivors.is_empty(), "blender survived its timeout: {survivors:?}");
}
