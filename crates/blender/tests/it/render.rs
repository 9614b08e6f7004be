//! Rendering frames in the sandbox, and how renders fail.

use std::time::Duration;

use lumen_blender::{
    RenderError,
    sample::{SampleScene, Variant},
};

use crate::{blender, processes_mentioning, request, scene, unique_name};

#[tokio::test]
async fn renders_a_frame_of_the_right_size() {
    let dir = tempfile::tempdir().unwrap();
    let blend = scene(dir.path(), "s.blend", SampleScene::tiny()).await;
    let out = blender().render_frame(&request(blend, dir.path(), 3)).await.unwrap();
    let image = image::load_from_memory(&out.bytes).unwrap();
    assert_eq!((image.width(), image.height()), (64, 36));
    let rgb = image.to_rgb8();
    assert!(rgb.pixels().any(|p| p != &rgb[(0, 0)]), "the frame is uniform");
    assert!(out.wall_time > Duration::ZERO);
    assert!(out.render_time.is_some());
    assert!(out.peak_rss.is_some_and(|rss| rss > 10 << 20), "{:?}", out.peak_rss);
    // The private output folder is cleaned up.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only s.blend is left");
}

#[tokio::test]
async fn a_scene_needing_the_denoiser_fails_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let blend =
        scene(dir.path(), "d.blend", SampleScene { variant: Variant::Denoise, ..SampleScene::tiny() }).await;
    assert!(blender().inspect(&blend).await.unwrap().cycles_denoising);
    let err = blender().render_frame(&request(blend, dir.path(), 1)).await.unwrap_err();
    assert_eq!(err.kind(), "missing_feature", "{err}");
    assert!(err.to_string().contains("OpenImageDenoise"), "{err}");
    assert!(err.is_deterministic());
}

#[tokio::test]
async fn a_scene_without_camera_fails_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SampleScene { variant: Variant::NoCamera, ..SampleScene::tiny() };
    let blend = scene(dir.path(), "n.blend", spec).await;
    let err = blender().render_frame(&request(blend, dir.path(), 1)).await.unwrap_err();
    assert!(matches!(err, RenderError::NoCamera), "{err}");
    assert!(err.is_deterministic());
}

#[tokio::test]
async fn a_non_blend_file_fails_as_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.blend");
    std::fs::write(&junk, b"<html>not a scene</html>").unwrap();
    let err = blender().render_frame(&request(junk, dir.path(), 1)).await.unwrap_err();
    assert_eq!(err.kind(), "unreadable_file", "{err}");
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
    assert!(err.is_deterministic());
}

/// A scene that renders for far longer than any limit in these tests.
fn slow() -> SampleScene {
    SampleScene { width: 640, height: 360, samples: 4096, ..SampleScene::tiny() }
}

#[tokio::test]
async fn a_timeout_kills_blender_and_leaves_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    let name = unique_name("slow");
    let blend = scene(dir.path(), &name, slow()).await;
    let mut req = request(blend, dir.path(), 1);
    req.limits.timeout = Duration::from_millis(1_500);
    let started = std::time::Instant::now();
    let err = blender().render_frame(&req).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, RenderError::Timeout(_)), "{err}");
    assert_eq!(err.kind(), "timeout");
    assert!(!err.is_deterministic());
    let survivors = processes_mentioning(&name);
    assert!(survivors.is_empty(), "blender survived its timeout: {survivors:?}");
}

#[tokio::test]
async fn a_cancelled_render_leaves_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    let name = unique_name("slow");
    let blend = scene(dir.path(), &name, slow()).await;
    let req = request(blend, dir.path(), 1);
    let b = blender();
    let render = b.render_frame(&req);
    assert!(tokio::time::timeout(Duration::from_millis(1_500), render).await.is_err());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let survivors = processes_mentioning(&name);
    assert!(survivors.is_empty(), "blender survived a dropped render: {survivors:?}");
}

#[tokio::test]
async fn the_cpu_time_limit_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let blend = scene(dir.path(), "slow.blend", slow()).await;
    let mut req = request(blend, dir.path(), 1);
    req.limits.cpu_seconds = 2;
    let err = blender().render_frame(&req).await.unwrap_err();
    assert_eq!(err.kind(), "cpu_limit", "{err}");
    assert!(!err.is_deterministic());
}

#[tokio::test]
async fn the_memory_limit_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let blend = scene(dir.path(), "s.blend", SampleScene::tiny()).await;
    let mut req = request(blend, dir.path(), 1);
    // Blender 3.4 maps ≈0.9 GB of address space for a tiny Cycles frame.
    req.limits.memory_bytes = 750 << 20;
    let err = blender().render_frame(&req).await.unwrap_err();
    assert_eq!(err.kind(), "out_of_memory", "{err}");
    assert!(!err.is_deterministic());
}

#[tokio::test]
async fn a_probe_renders_tiny_and_fails_like_the_full_render() {
    let dir = tempfile::tempdir().unwrap();
    let ok = crate::scene(dir.path(), "ok.blend", SampleScene::tiny()).await;
    let mut req = crate::request(ok, dir.path(), 1);
    req.probe = true;
    let out = crate::blender().render_frame(&req).await.unwrap();
    let image = image::load_from_memory(&out.bytes).unwrap();
    assert_eq!((image.width(), image.height()), (28, 16), "45 % of 64×36, about 16 px tall");

    let denoise = crate::scene(
        dir.path(),
        "denoise.blend",
        SampleScene { variant: Variant::Denoise, ..SampleScene::tiny() },
    )
    .await;
    let mut req = crate::request(denoise, dir.path(), 1);
    req.probe = true;
    let err = crate::blender().render_frame(&req).await.unwrap_err();
    assert_eq!(err.kind(), "missing_feature", "{err}");
    assert!(err.is_deterministic());
}

#[tokio::test]
async fn a_samples_override_changes_the_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let blend = crate::scene(dir.path(), "scene.blend", SampleScene::tiny()).await;
    let pixels = |samples: Option<u32>| {
        let mut req = crate::request(blend.clone(), dir.path(), 2);
        req.samples_override = samples;
        async move {
            let out = crate::blender().render_frame(&req).await.unwrap();
            image::load_from_memory(&out.bytes).unwrap().to_rgba8().into_raw()
        }
    };
    let (scene_samples, again, one) = (pixels(None).await, pixels(None).await, pixels(Some(1)).await);
    assert_eq!(scene_samples, again, "the same settings render the same pixels");
    assert_ne!(scene_samples, one, "one sample is not the scene's four");
}

#[tokio::test]
async fn blender_names_the_opengl_implementation_it_draws_with() {
    // Mesa's software rasteriser here; a GPU driver on a node with one.
    let opengl = blender().opengl().await.expect("Blender draws Workbench frames on this machine");
    let (renderer, version) = opengl.split_once("; ").unwrap();
    assert!(!renderer.is_empty() && !version.is_empty(), "{opengl}");
    assert_eq!(blender().opengl().await.as_deref(), Some(opengl.as_str()), "the same answer every time");
}
