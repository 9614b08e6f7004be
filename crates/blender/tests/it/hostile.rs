//! Hostile scenes rendered as a node renders them: nothing escapes, and
//! each fails with a clear, typed error (or renders where the attack is
//! simply overridden). `src/sandbox_escapes.rs` tries the same escapes,
//! and reading the node's key, network access and writes anywhere, below
//! the render's own checks: against the sandbox alone.

use std::{
    io::Read,
    net::TcpListener,
    path::{Path, PathBuf},
};

use lumen_blender::{
    RenderError,
    sample::{Hostile, SampleScene, make_hostile_scene},
};

use crate::{blender, request};

/// A node's data folder: its key, the `.blend` cache, the work folder.
struct DataDir {
    root: tempfile::TempDir,
}

impl DataDir {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("cache")).unwrap();
        std::fs::create_dir_all(root.path().join("work")).unwrap();
        std::fs::write(root.path().join("private_key"), "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a84")
            .unwrap();
        Self { root }
    }

    fn path(&self) -> &Path {
        self.root.path()
    }

    async fn hostile(&self, name: &str, hostile: Hostile) -> PathBuf {
        let blend = self.path().join("cache").join(name);
        make_hostile_scene(&blender(), &SampleScene::tiny(), &hostile, &blend).await.unwrap();
        blend
    }

    /// Renders frame 1 as the node does, in `work/`.
    async fn render(&self, blend: PathBuf) -> Result<lumen_blender::RenderOutput, RenderError> {
        blender().render_frame(&request(blend, &self.path().join("work"), 1)).await
    }

    /// Every file in the data folder but the key and the cached scenes.
    fn strays(&self) -> Vec<PathBuf> {
        files_under(self.path())
            .into_iter()
            .filter(|p| p.file_name().is_none_or(|n| n != "private_key"))
            .filter(|p| {
                !(p.starts_with(self.path().join("cache")) && p.extension().is_some_and(|e| e == "blend"))
            })
            .collect()
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// A folder outside everything the node gives Blender, watched for files.
fn watched() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("lumen-escape-").tempdir().unwrap()
}

#[tokio::test]
async fn file_output_nodes_aimed_outside_fail_clearly_and_write_nothing() {
    let data = DataDir::new();
    let outside = watched();
    let absolute = outside.path().join("absolute").display().to_string();
    let grouped = outside.path().join("grouped").display().to_string();
    for (name, path, in_group) in [
        ("absolute.blend", absolute.as_str(), false),
        ("relative.blend", "//../escaped/", false),
        ("grouped.blend", grouped.as_str(), true),
    ] {
        let blend = data.hostile(name, Hostile::FileOutput { path: path.into(), in_group }).await;
        let err = data.render(blend).await.unwrap_err();
        assert!(
            matches!(&err, RenderError::ForbiddenOutput { node, path: p } if node == "Escape" && p == path),
            "{name}: {err:?}"
        );
        assert_eq!(err.kind(), "forbidden_output");
        assert!(err.is_deterministic(), "every node refuses it the same way");
        assert!(err.to_string().contains("File Output node \"Escape\""), "{err}");
    }
    assert!(files_under(outside.path()).is_empty());
    assert!(data.strays().is_empty(), "{:?}", data.strays());
}

#[tokio::test]
async fn python_in_a_scene_never_runs_and_fails_clearly() {
    let data = DataDir::new();
    let outside = watched();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let marker = |name: &str| outside.path().join(name).display().to_string();
    for (name, hostile) in [
        ("driver.blend", Hostile::PythonDriver { path: marker("driver"), port }),
        ("autorun.blend", Hostile::AutorunScript { path: marker("autorun"), port }),
    ] {
        let blend = data.hostile(name, hostile).await;
        let err = data.render(blend).await.unwrap_err();
        assert!(matches!(err, RenderError::ScriptBlocked { .. }), "{name}: {err:?}");
        assert_eq!(err.kind(), "script_blocked");
        assert!(err.is_deterministic());
        assert!(err.to_string().contains("Lumen never runs"), "{err}");
    }
    assert!(files_under(outside.path()).is_empty());
    assert!(data.strays().is_empty(), "{:?}", data.strays());
    let connected = listener.accept().map(|(mut s, _)| {
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text
    });
    assert!(connected.is_err(), "a scene's Python reached the host: {connected:?}");
}

#[tokio::test]
async fn an_absolute_output_path_in_the_scene_is_overridden() {
    let data = DataDir::new();
    let outside = watched();
    let path = outside.path().join("frame_####").display().to_string();
    let blend = data.hostile("absolute-output.blend", Hostile::AbsoluteOutput { path }).await;
    // The node's `-o` wins: the frame renders into its own folder…
    let out = data.render(blend).await.unwrap();
    let image = image::load_from_memory(&out.bytes).unwrap();
    assert_eq!((image.width(), image.height()), (64, 36));
    // …and nothing lands where the scene pointed, nor anywhere else.
    assert!(files_under(outside.path()).is_empty());
    assert!(data.strays().is_empty(), "{:?}", data.strays());
}
