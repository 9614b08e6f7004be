//! Reading untrusted `.blend` files.

use lumen_blender::{
    BlenderError,
    sample::{SampleScene, Variant},
};

use crate::{blender, scene};

#[tokio::test]
async fn inspects_a_generated_scene() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let info = blender().inspect(&scene(dir.path(), "s.blend", SampleScene::tiny()).await).await.unwrap();
    assert!(started.elapsed().as_secs() < 20);
    assert_eq!((info.frame_start, info.frame_end, info.frame_step), (1, 6, 1));
    assert_eq!((info.width, info.height), (64, 36));
    assert_eq!(info.engine, "CYCLES");
    assert_eq!(info.samples, Some(4));
    assert!((info.fps - 24.0).abs() < 1e-9);
    assert!(info.has_camera);
    assert!(!info.cycles_denoising);
    assert_eq!(info.output_format, "PNG");
    assert!(info.unpacked_external_files.is_empty(), "{info:?}");
    let installed = blender().version().await.unwrap();
    assert!(installed.starts_with(char::is_numeric), "{installed}");
    // Saved by the Blender that runs the generator: the same major.minor
    // (the third number is the file's subversion, not the patch release).
    let saved = info.blender_version_saved.unwrap();
    let major_minor = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
    assert_eq!(major_minor(&saved), major_minor(&installed));
}

#[tokio::test]
async fn inspects_compressed_scenes_and_other_engines() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SampleScene {
        compress: true,
        engine: lumen_blender::sample::Engine::Workbench,
        variant: Variant::NoCamera,
        frames: 12,
        ..SampleScene::tiny()
    };
    let blend = scene(dir.path(), "z.blend", spec).await;
    assert_eq!(std::fs::read(&blend).unwrap()[..4], [0x28, 0xb5, 0x2f, 0xfd], "zstd-compressed");
    let info = blender().inspect(&blend).await.unwrap();
    assert_eq!(info.engine, "BLENDER_WORKBENCH");
    assert_eq!(info.samples, None, "Workbench has no render samples");
    assert_eq!(info.frame_end, 12);
    assert!(!info.has_camera);

    // EEVEE's render samples are its own setting (`taa_render_samples`).
    let eevee =
        SampleScene { engine: lumen_blender::sample::Engine::Eevee, samples: 7, ..SampleScene::tiny() };
    let info = blender().inspect(&scene(dir.path(), "e.blend", eevee).await).await.unwrap();
    assert!(info.engine.starts_with("BLENDER_EEVEE"), "{}", info.engine);
    assert_eq!(info.samples, Some(7));
}

#[tokio::test]
async fn lists_unpacked_external_files() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SampleScene {
        variant: Variant::ExternalTexture("//textures/wood.png".into()),
        ..SampleScene::tiny()
    };
    let info = blender().inspect(&scene(dir.path(), "ext.blend", spec).await).await.unwrap();
    assert_eq!(info.unpacked_external_files.len(), 1, "{info:?}");
    let file = &info.unpacked_external_files[0];
    assert_eq!(file.kind, "image");
    assert_eq!(file.name, "lumen-sample-texture");
    assert_eq!(file.path, "//textures/wood.png");
}

#[tokio::test]
async fn refuses_non_blend_and_truncated_files_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.blend");
    std::fs::write(&junk, b"%PDF-1.7 definitely not a scene").unwrap();
    let err = blender().inspect(&junk).await.unwrap_err();
    assert!(matches!(err, BlenderError::NotABlendFile { .. }), "{err}");
    assert!(err.to_string().contains("%PDF-1.7"), "{err}");

    let empty = dir.path().join("empty.blend");
    std::fs::write(&empty, b"").unwrap();
    let err = blender().inspect(&empty).await.unwrap_err();
    assert!(matches!(err, BlenderError::NotABlendFile { .. }), "{err}");

    let good = scene(dir.path(), "s.blend", SampleScene::tiny()).await;
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.blend");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let err = blender().inspect(&cut).await.unwrap_err();
    assert!(matches!(err, BlenderError::Unreadable { .. }), "{err}");
    assert!(err.to_string().contains("Failed to read blend file"), "{err}");
}

#[tokio::test]
async fn refuses_files_saved_by_a_newer_blender() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(scene(dir.path(), "s.blend", SampleScene::tiny()).await).unwrap();
    // `BLENDER-v304…`: the version is bytes 9..12.
    bytes[9..12].copy_from_slice(b"901");
    let newer = dir.path().join("newer.blend");
    std::fs::write(&newer, bytes).unwrap();
    let err = blender().inspect(&newer).await.unwrap_err();
    assert!(matches!(&err, BlenderError::NewerFile { saved, .. } if saved == "9.1"), "{err}");
}
