//! Escapes tried from inside the sandbox with real Blender, each next to a
//! control run without the sandbox that shows the attempt is real (it
//! escapes there). Blender runs here without the render's own checks
//! (no File Output refusal), so only the sandbox stands in the way.

use std::{
    ffi::OsStr,
    io::Read,
    net::TcpListener,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    Blender,
    process::{self, Finished},
    sample::{Hostile, SampleScene, make_hostile_scene, make_scene},
    sandbox::{RunDir, Sandbox},
};

fn blender() -> Blender {
    Blender::locate().expect("blender and bubblewrap are installed by scripts/setup.sh")
}

fn bubblewrap() -> Sandbox {
    Sandbox::bubblewrap().expect("bubblewrap works here")
}

/// A node's data folder as the node lays it out: its key, the `.blend`
/// cache and the work folder renders happen in.
struct DataDir {
    _root: tempfile::TempDir,
    data: PathBuf,
    key: PathBuf,
}

impl DataDir {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir_all(data.join("cache")).unwrap();
        std::fs::create_dir_all(data.join("work")).unwrap();
        let key = data.join("private_key");
        std::fs::write(&key, "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d").unwrap();
        Self { _root: root, data, key }
    }

    fn cache(&self, name: &str) -> PathBuf {
        self.data.join("cache").join(name)
    }

    fn work(&self) -> PathBuf {
        self.data.join("work")
    }
}

/// A folder outside everything the node gives Blender, watched for files.
fn watched() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("lumen-escape-").tempdir().unwrap()
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

/// A TCP listener on 127.0.0.1 of the host that records what connects.
struct Listener(TcpListener);

impl Listener {
    fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Self(listener)
    }

    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }

    /// What every connection so far sent.
    fn received(&self) -> Vec<String> {
        let mut got = Vec::new();
        while let Ok((mut stream, _)) = self.0.accept() {
            stream.set_nonblocking(false).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut text = String::new();
            let _ = stream.read_to_string(&mut text);
            got.push(text);
        }
        got
    }
}

/// Runs Blender in `sandbox` with a run folder in `work`, `blend` as its
/// input (loaded first when given), then `args` (`{out}` standing for the
/// run's output folder); the run folder is returned so its output can be
/// looked at.
async fn blender_in(
    sandbox: &Sandbox,
    work: &Path,
    blend: Option<&Path>,
    args: &[&str],
) -> (Finished, RunDir) {
    let mut dir = RunDir::new(sandbox, work, "render-").unwrap();
    let mut line: Vec<std::ffi::OsString> = vec!["-b".into(), "--factory-startup".into()];
    if let Some(blend) = blend {
        line.push(dir.input(blend).unwrap().into());
    }
    let out = dir.output().display().to_string();
    line.extend(args.iter().map(|a| a.replace("{out}", &out).into()));
    let refs: Vec<&OsStr> = line.iter().map(|a| a.as_os_str()).collect();
    let out = process::run(blender().exe(), &refs, None, Duration::from_secs(120), &dir).await.unwrap();
    (out, dir)
}

/// Runs a Python expression in Blender in `sandbox`, with the data folder's
/// cached `.blend` loaded as a render would; its `LUMEN-RESULT` line as JSON.
async fn python_in(sandbox: &Sandbox, data: &DataDir, expr: &str) -> serde_json::Value {
    let blend = data.cache("scene.blend");
    if !blend.exists() {
        make_scene(&blender(), &SampleScene::tiny(), &blend).await.unwrap();
    }
    let (out, _dir) =
        blender_in(sandbox, &data.work(), Some(&blend), &["--disable-autoexec", "--python-expr", expr]).await;
    let line = out.stdout.lines().find_map(|l| l.strip_prefix("LUMEN-RESULT ")).unwrap_or_else(|| {
        panic!("no result line ({}):\n{}\n{}", out.exit, out.stdout, out.stderr);
    });
    serde_json::from_str(line).unwrap()
}

/// Python that tries each `(name, statement)` and reports `ok` or the
/// exception's type, as `LUMEN-RESULT {name: outcome}`.
fn attempts(setup: &str, tries: &[(&str, String)]) -> String {
    let mut py = format!("import bpy, json, os, socket\n{setup}\nresult = {{}}\n");
    for (name, statement) in tries {
        py.push_str(&format!(
            "try:\n    r = {statement}\n    result[{name:?}] = 'ok' if r is None or r is True or r == 0 else repr(r)\n\
             except Exception as e:\n    result[{name:?}] = type(e).__name__\n"
        ));
    }
    py.push_str("print('LUMEN-RESULT ' + json.dumps(result), flush=True)\n");
    py
}

#[tokio::test]
async fn the_sandbox_has_no_network() {
    let listener = Listener::new();
    let port = listener.port();
    let expr = attempts(
        "",
        &[
            (
                "host_listener",
                format!("socket.create_connection(('127.0.0.1', {port}), timeout=3).sendall(b'escaped')"),
            ),
            ("internet", "socket.create_connection(('1.1.1.1', 53), timeout=3).close()".into()),
            ("dns", "socket.getaddrinfo('example.com', 80) and None".into()),
        ],
    );
    let data = DataDir::new();
    // Control: without the sandbox, Blender's Python reaches the listener.
    let open = python_in(&Sandbox::Off, &data, &expr).await;
    assert_eq!(open["host_listener"], "ok", "{open}");
    assert_eq!(listener.received(), ["escaped"]);

    let sandboxed = python_in(&bubblewrap(), &data, &expr).await;
    assert_eq!(sandboxed["host_listener"], "ConnectionRefusedError", "{sandboxed}");
    assert_ne!(sandboxed["internet"], "ok", "{sandboxed}");
    assert_ne!(sandboxed["dns"], "ok", "{sandboxed}");
    assert!(listener.received().is_empty(), "the sandbox reached the host's listener");
}

#[tokio::test]
async fn the_sandbox_cannot_see_the_node_key_or_data_folder() {
    let data = DataDir::new();
    let key = data.key.display().to_string();
    let data_dir = data.data.display().to_string();
    // Every file named private_key anywhere Blender can look.
    let setup = "def find_keys():\n    found = []\n    for root, dirs, files in os.walk('/'):\n        \
                 if root == '/':\n            dirs[:] = [d for d in dirs if d not in ('proc', 'sys', 'dev')]\n        \
                 found += [os.path.join(root, f) for f in files if f == 'private_key']\n    return found";
    let reads = [
        ("read_key", format!("open({key:?}).read()")),
        ("read_key_beside_the_cache", "open(bpy.path.abspath('//../private_key')).read()".into()),
        ("list_data_dir", format!("os.listdir({data_dir:?}) and None")),
    ];
    // Control: without the sandbox, the key is there to read.
    let open = python_in(&Sandbox::Off, &data, &attempts("", &reads)).await;
    assert!(open["read_key"].as_str().unwrap().contains("0x59c6"), "{open}");
    assert!(open["read_key_beside_the_cache"].as_str().unwrap().contains("0x59c6"), "{open}");
    assert_eq!(open["list_data_dir"], "ok", "{open}");

    let more = [
        ("keys_found", "find_keys() or None".into()),
        ("home", "os.listdir('/root') or os.listdir('/home') or None".into()),
    ];
    let expr = attempts(setup, &reads.into_iter().chain(more).collect::<Vec<_>>());

    let sandboxed = python_in(&bubblewrap(), &data, &expr).await;
    for attempt in ["read_key", "read_key_beside_the_cache", "list_data_dir", "home"] {
        assert_eq!(sandboxed[attempt], "FileNotFoundError", "{attempt}: {sandboxed}");
    }
    assert_eq!(sandboxed["keys_found"], "ok", "no file named private_key is visible: {sandboxed}");
}

#[tokio::test]
async fn the_sandbox_writes_only_its_own_output_and_scratch_folders() {
    let data = DataDir::new();
    let outside = watched();
    let target = outside.path().join("escaped");
    let write = |path: &str| format!("open({path}, 'w').write('escaped') and None");
    let escapes = [
        ("outside", write(&format!("{:?}", target.display().to_string()))),
        ("beside_the_blend", write("bpy.path.abspath('//../escaped')")),
        ("into_the_input", write("bpy.path.abspath('//escaped')")),
        ("over_the_input", write("bpy.data.filepath")),
    ];
    // Control: without the sandbox, the scene writes wherever it likes
    // (over its own .blend too, which is made again below).
    let open = python_in(&Sandbox::Off, &data, &attempts("", &escapes)).await;
    for attempt in ["outside", "beside_the_blend", "into_the_input", "over_the_input"] {
        assert_eq!(open[attempt], "ok", "{attempt}: {open}");
    }
    assert_eq!(files_under(outside.path()), std::slice::from_ref(&target));
    for file in [target.clone(), data.cache("escaped"), data.data.join("escaped"), data.cache("scene.blend")]
    {
        std::fs::remove_file(file).unwrap();
    }
    make_scene(&blender(), &SampleScene::tiny(), &data.cache("scene.blend")).await.unwrap();

    // The system, the sandbox's own root, and its two writable folders
    // (tried only in the sandbox: the node may run as root).
    let more = [
        ("usr", write("'/usr/escaped'")),
        ("etc", write("'/etc/escaped'")),
        ("root", write("'/escaped'")),
        ("dev_shm", write("'/dev/shm/escaped'")),
        ("output", write("'/lumen/out/frame'")),
        ("scratch", write("os.environ['HOME'] + '/scratch'")),
    ];
    let expr = attempts("", &escapes.into_iter().chain(more).collect::<Vec<_>>());
    let blend = std::fs::read(data.cache("scene.blend")).unwrap();
    let sandboxed = python_in(&bubblewrap(), &data, &expr).await;
    for attempt in ["outside", "beside_the_blend", "usr", "etc", "root", "dev_shm"] {
        assert!(
            ["FileNotFoundError", "PermissionError", "OSError"]
                .contains(&sandboxed[attempt].as_str().unwrap()),
            "{attempt}: {sandboxed}"
        );
    }
    for attempt in ["into_the_input", "over_the_input"] {
        assert_ne!(sandboxed[attempt], "ok", "{attempt}: {sandboxed}");
    }
    for attempt in ["output", "scratch"] {
        assert_eq!(sandboxed[attempt], "ok", "{attempt}: {sandboxed}");
    }
    assert!(files_under(outside.path()).is_empty());
    assert_eq!(std::fs::read(data.cache("scene.blend")).unwrap(), blend, "the input is untouched");
    let mut left: Vec<PathBuf> = files_under(&data.data);
    left.sort();
    assert_eq!(
        left,
        [data.cache("scene.blend"), data.key.clone()],
        "the run folder is gone, nothing else was written"
    );
}

#[tokio::test]
async fn file_output_nodes_write_only_inside_the_sandbox() {
    let data = DataDir::new();
    let outside = watched();
    let render = ["--disable-autoexec", "-o", "{out}/frame_#", "-F", "PNG", "-f", "1"];
    for (name, hostile) in [
        (
            "absolute.blend",
            Hostile::FileOutput { path: outside.path().join("abs").display().to_string(), in_group: false },
        ),
        ("relative.blend", Hostile::FileOutput { path: "//../escaped/".into(), in_group: false }),
        (
            "group.blend",
            Hostile::FileOutput { path: outside.path().join("group").display().to_string(), in_group: true },
        ),
    ] {
        let blend = data.cache(name);
        make_hostile_scene(&blender(), &SampleScene::tiny(), &hostile, &blend).await.unwrap();
        // Control: without the sandbox, the node writes where it is aimed.
        let (out, _dir) = blender_in(&Sandbox::Off, &data.work(), Some(&blend), &render).await;
        assert!(out.stdout.contains("Saved: "), "{name}: {}", out.stdout);
        let escaped: Vec<PathBuf> =
            files_under(outside.path()).into_iter().chain(files_under(&data.data.join("escaped"))).collect();
        assert_eq!(escaped.len(), 1, "{name} escapes without the sandbox: {escaped:?}");
        for file in escaped {
            std::fs::remove_file(file).unwrap();
        }

        let (out, _dir) = blender_in(&bubblewrap(), &data.work(), Some(&blend), &render).await;
        let written: Vec<PathBuf> =
            files_under(outside.path()).into_iter().chain(files_under(&data.data.join("escaped"))).collect();
        assert!(written.is_empty(), "{name} escaped the sandbox: {written:?}\n{}", out.stdout);
    }
}

#[tokio::test]
async fn scene_python_does_not_run_and_cannot_reach_out_when_forced_to() {
    let data = DataDir::new();
    let listener = Listener::new();
    let outside = watched();
    let render = |autoexec: &'static str| [autoexec, "-o", "{out}/frame_#", "-F", "PNG", "-f", "1"];
    for (name, attack) in [
        ("driver.blend", Hostile::PythonDriver { path: "/lumen/out/marker".into(), port: listener.port() }),
        ("autorun.blend", Hostile::AutorunScript { path: "/lumen/out/marker".into(), port: listener.port() }),
    ] {
        let blend = data.cache(name);
        make_hostile_scene(&blender(), &SampleScene::tiny(), &attack, &blend).await.unwrap();

        // Auto-run disabled, as every Lumen run: the Python never starts.
        let (out, dir) =
            blender_in(&bubblewrap(), &data.work(), Some(&blend), &render("--disable-autoexec")).await;
        assert!(!out.stdout.contains("LUMEN-PAYLOAD"), "{name} ran:\n{}", out.stdout);
        assert_eq!(files_under(&dir.host_output()), [dir.host_output().join("frame_1.png")]);

        // Forced on: it runs (its marker lands in the output folder), and
        // the sandbox alone keeps it off the network.
        let (out, dir) =
            blender_in(&bubblewrap(), &data.work(), Some(&blend), &render("--enable-autoexec")).await;
        assert!(out.stdout.contains("LUMEN-PAYLOAD wrote /lumen/out/marker"), "{name}:\n{}", out.stdout);
        assert!(dir.host_output().join("marker").is_file());
        assert!(out.stdout.contains("LUMEN-PAYLOAD cannot connect"), "{name}:\n{}", out.stdout);
        assert!(listener.received().is_empty(), "{name} reached the host from the sandbox");
    }
    // Control: forced on without the sandbox, the same Python reaches the host.
    let blend = data.cache("control.blend");
    let marker = outside.path().join("marker");
    let attack = Hostile::AutorunScript { path: marker.display().to_string(), port: listener.port() };
    make_hostile_scene(&blender(), &SampleScene::tiny(), &attack, &blend).await.unwrap();
    let (out, _dir) =
        blender_in(&Sandbox::Off, &data.work(), Some(&blend), &render("--enable-autoexec")).await;
    assert!(out.stdout.contains("LUMEN-PAYLOAD connected"), "{}", out.stdout);
    assert_eq!(listener.received(), ["escaped"]);
    assert!(marker.is_file());
}
