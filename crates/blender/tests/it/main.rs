//! `lumen-blender` against the real Blender (no mocks): scenes are
//! generated with [`lumen_blender::sample`] at tiny sizes so the whole
//! binary stays well under a minute on two cores.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod hostile;
mod inspect;
mod render;

use std::path::{Path, PathBuf};

use lumen_blender::{
    Blender, RenderRequest, ResourceLimits,
    sample::{SampleScene, make_scene},
};

fn blender() -> Blender {
    Blender::locate().expect("blender is installed by scripts/setup.sh")
}

/// Generates a scene into `dir/name`: 64×36, 4 samples, frames 1..=6 unless `scene` says otherwise.
async fn scene(dir: &Path, name: &str, scene: SampleScene) -> PathBuf {
    let out = dir.join(name);
    make_scene(&blender(), &scene, &out).await.unwrap();
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
        probe: false,
        samples_override: None,
    }
}

/// A file name no other test process uses (tests run in processes of their own).
fn unique_name(stem: &str) -> String {
    format!("{stem}-{}.blend", std::process::id())
}

/// Command lines of live processes that mention `needle` (a unique file
/// name: in the sandbox Blender sees its `.blend` under another folder,
/// bubblewrap's own command line names the host's).
fn processes_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(needle))
        .collect()
}
