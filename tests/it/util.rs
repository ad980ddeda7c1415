//! Test helpers: locating the built binaries, building fixture plugins once, starting a server
//! on 127.0.0.1 and stopping it by PID.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex, OnceLock},
    time::Duration,
};

/// The workspace root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// `target/<profile>` of this test binary (it runs from `target/<profile>/deps/`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>").to_path_buf()
}

/// The server binary next to this test; built by `cargo build --release --workspace`.
pub fn cloudify_bin() -> PathBuf {
    let bin = profile_dir().join("cloudify");
    assert!(
        bin.is_file(),
        "{} missing: run `cargo build --release --workspace` first (tests/run.sh does)",
        bin.display()
    );
    bin
}

/// Runs `cargo build --release` on `manifest` into the shared fixture target folder.
pub fn cargo_build(manifest: &Path, extra: &[&str], target_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(["build", "--release", "--manifest-path"])
        .arg(manifest)
        .args(extra)
        .env("CARGO_TARGET_DIR", target_dir)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building {} failed", manifest.display());
}

/// Copies the folder `from` to `to`, leaving out `target` folders.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(name));
        } else {
            std::fs::copy(entry.path(), to.join(name)).unwrap();
        }
    }
}

/// A plugin folder holding: the faulty test plugin, the hello example (built outside the
/// workspace), hello rebuilt against an SDK of another version, a shared library that is not a
/// plugin, and a file that is not a library at all.
pub struct Fixtures {
    _dir: tempfile::TempDir,
    pub plugin_dir: PathBuf,
}

pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let plugin_dir = dir.path().join("plugins");
        std::fs::create_dir_all(&plugin_dir).unwrap();
        let fixture_target = profile_dir().parent().unwrap().join("fixtures");
        let so = std::env::consts::DLL_SUFFIX;

        let faulty = profile_dir().join(format!("libfaulty_test_plugin{so}"));
        assert!(faulty.is_file(), "{} missing: run `cargo build --release --workspace` first", faulty.display());
        std::fs::copy(&faulty, plugin_dir.join(format!("libcloudify_plugin_faulty{so}"))).unwrap();

        cargo_build(&repo().join("examples/hello-plugin/Cargo.toml"), &[], &fixture_target);
        std::fs::copy(
            fixture_target.join(format!("release/libcloudify_plugin_hello{so}")),
            plugin_dir.join(format!("libcloudify_plugin_hello{so}")),
        )
        .unwrap();

        // The same plugin against cloudify-sdk 0.1.0: the ABI before the last bump, which the
        // host must refuse.
        let next = dir.path().join("next");
        copy_dir(&repo().join("sdk"), &next.join("sdk"));
        copy_dir(&repo().join("examples/hello-plugin"), &next.join("examples/hello-plugin"));
        let sdk_toml = next.join("sdk/Cargo.toml");
        let text = std::fs::read_to_string(&sdk_toml).unwrap();
        let current = text.lines().find(|line| line.starts_with("version = ")).expect("the SDK's version").to_owned();
        let text = text.replacen(&current, "version = \"0.1.0\"", 1);
        std::fs::write(&sdk_toml, text).unwrap();
        let hello_toml = next.join("examples/hello-plugin/Cargo.toml");
        let text = std::fs::read_to_string(&hello_toml)
            .unwrap()
            .replace("cloudify_plugin_hello\"", "cloudify_plugin_hello_next\"");
        std::fs::write(&hello_toml, text).unwrap();
        let _ = std::fs::remove_file(next.join("examples/hello-plugin/Cargo.lock"));
        cargo_build(&hello_toml, &[], &fixture_target);
        std::fs::copy(
            fixture_target.join(format!("release/libcloudify_plugin_hello_next{so}")),
            plugin_dir.join(format!("libcloudify_plugin_hello_next{so}")),
        )
        .unwrap();

        // A shared library, but not a plugin.
        let source = dir.path().join("answer.c");
        std::fs::write(&source, "int answer(void) { return 42; }\n").unwrap();
        let status = Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(plugin_dir.join(format!("libcloudify_plugin_bogus{so}")))
            .arg(&source)
            .status()
            .expect("cc runs");
        assert!(status.success());
        // Not a library at all.
        std::fs::write(plugin_dir.join(format!("libcloudify_plugin_garbage{so}")), b"this is not an ELF file").unwrap();
        Fixtures { _dir: dir, plugin_dir }
    })
}

/// A plugin folder holding `examples/hello-plugin` built against the SDK as of its last ABI
/// bump (`tests/sdk-0.3.0`, a frozen copy): the current host must load it.
pub fn frozen_sdk_plugin_dir() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_dir, plugins) = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let frozen = dir.path().join("frozen");
        copy_dir(&repo().join("tests/sdk-0.3.0"), &frozen.join("sdk"));
        copy_dir(&repo().join("examples/hello-plugin"), &frozen.join("examples/hello-plugin"));
        let hello_toml = frozen.join("examples/hello-plugin/Cargo.toml");
        let text = std::fs::read_to_string(&hello_toml)
            .unwrap()
            .replace("cloudify_plugin_hello\"", "cloudify_plugin_hello_frozen\"");
        std::fs::write(&hello_toml, text).unwrap();
        let _ = std::fs::remove_file(frozen.join("examples/hello-plugin/Cargo.lock"));
        let fixture_target = profile_dir().parent().unwrap().join("fixtures");
        cargo_build(&hello_toml, &[], &fixture_target);
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        let so = std::env::consts::DLL_SUFFIX;
        std::fs::copy(
            fixture_target.join(format!("release/libcloudify_plugin_hello_frozen{so}")),
            plugins.join(format!("libcloudify_plugin_hello{so}")),
        )
        .unwrap();
        (dir, plugins)
    });
    plugins
}

/// A cache folder shared by the servers of this test run (the demo file is written once).
pub fn cache_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

/// A running server, stopped (by PID) when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    log: Arc<Mutex<String>>,
    agent: ureq::Agent,
}

impl Server {
    /// Starts `bin serve --bind 127.0.0.1:0 args...` with `env`, waiting up to 60 s for it
    /// to listen.
    pub fn start_with(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_bound(bin, "127.0.0.1:0", args, env)
    }

    /// Starts `bin serve --bind bind args...` with `env`, as [`Server::start_with`], and waits
    /// up to 60 s for its datasets to open (`/ready`).
    pub fn start_bound(bin: &Path, bind: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let server = Self::launch(bin, bind, args, env);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while server.get("/ready").status != 200 {
            assert!(std::time::Instant::now() < deadline, "datasets did not open; log:\n{}", server.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// Starts `bin serve --bind bind args...` with `env`, returning once it listens (its
    /// datasets may still be opening).
    pub fn launch(bin: &Path, bind: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--bind", bind]).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd.env_remove("CLOUDIFY_CONFIG");
        if !env.iter().any(|(key, _)| *key == "CLOUDIFY_CACHE__DIR") {
            cmd.env("CLOUDIFY_CACHE__DIR", cache_dir());
        }
        let mut child = cmd.spawn().expect("server starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (log, tx) = (Arc::clone(&log), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(at) = line.find("listening on http://") {
                        let url =
                            line[at + "listening on ".len()..].split_whitespace().next().unwrap_or_default().to_owned();
                        let _ = tx.send(url);
                    }
                    log.lock().unwrap().push_str(&(line + "\n"));
                }
            });
        }
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start; log:\n{}", log.lock().unwrap());
            }
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Self { child, url, log, agent }
    }

    /// The server with the fixture plugins, plus `env`.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let dir = fixtures().plugin_dir.to_str().unwrap().to_owned();
        Self::start_with(&cloudify_bin(), &["--plugin-dir", &dir], env)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn get(&self, path: &str) -> Reply {
        Reply::from(self.agent.get(format!("{}{path}", self.url)).call().expect("request succeeds"))
    }

    pub fn get_with(&self, path: &str, header: (&str, &str)) -> Reply {
        Reply::from(
            self.agent.get(format!("{}{path}", self.url)).header(header.0, header.1).call().expect("request succeeds"),
        )
    }

    pub fn head(&self, path: &str) -> Reply {
        Reply::from(self.agent.head(format!("{}{path}", self.url)).call().expect("request succeeds"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response, read whole.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub content_length: Option<u64>,
    pub body: Vec<u8>,
}

impl From<ureq::http::Response<ureq::Body>> for Reply {
    fn from(mut response: ureq::http::Response<ureq::Body>) -> Self {
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let content_type = header("content-type").unwrap_or_default();
        let content_length = header("content-length").and_then(|v| v.parse().ok());
        let body = response.body_mut().with_config().limit(1 << 30).read_to_vec().expect("body reads");
        Self { status: response.status().as_u16(), content_type, content_length, body }
    }
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Little-endian values of a decoded chunk or region.
pub fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

pub fn i32s(bytes: &[u8]) -> Vec<i32> {
    bytes.chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().unwrap())).collect()
}

impl Server {
    /// The `Access-Control-Allow-Origin` answered to a request from `origin`.
    pub fn agent_get_origin(&self, path: &str, origin: &str) -> Option<String> {
        let response =
            self.agent.get(format!("{}{path}", self.url)).header("origin", origin).call().expect("request succeeds");
        response.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()).map(str::to_owned)
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the log readers drain.
                std::thread::sleep(Duration::from_millis(100));
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// The interop venv's Python (`scripts/setup.sh --python` makes it), or `TEST_PYTHON`.
pub fn python() -> PathBuf {
    let python = std::env::var_os("TEST_PYTHON").map_or_else(|| repo().join(".venv/bin/python"), PathBuf::from);
    assert!(
        python.is_file(),
        "{} missing: run `scripts/setup.sh --python` first (tests/run.sh does)",
        python.display()
    );
    python
}

/// NetCDF files written by netCDF4-python, with what it reads back and kerchunk's references
/// (`tests/data/make_netcdf.py`), made once per test run.
pub fn netcdf_files() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new(python())
            .arg(repo().join("tests/data/make_netcdf.py"))
            .arg(dir.path())
            .status()
            .expect("python runs");
        assert!(status.success(), "make_netcdf.py failed");
        dir
    })
    .path()
}
