//! A real container engine: podman (made ready by `scripts/podman-setup`), serving the Docker
//! Engine API on a socket of the test's own, and containers the test starts and removes.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a container may take to reach the state a test waits for.
const SETTLE: Duration = Duration::from_secs(60);

/// podman with the project's configuration and base image.
#[derive(Clone)]
pub struct Podman {
    containers_conf: String,
    pub image: String,
}

impl Podman {
    /// From `CONTAINERS_CONF` and `NEXUS_PODMAN_IMAGE` when both are set (scripts/test sets
    /// them), otherwise from what `scripts/podman-setup` prints (it installs and imports once).
    pub fn ready() -> Self {
        if let (Ok(containers_conf), Ok(image)) = (
            std::env::var("CONTAINERS_CONF"),
            std::env::var("NEXUS_PODMAN_IMAGE"),
        ) {
            return Self {
                containers_conf,
                image,
            };
        }
        let script = workspace_root().join("scripts/podman-setup");
        let output = Command::new(&script)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("{script:?} failed: {error}"));
        assert!(
            output.status.success(),
            "{script:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let exports = String::from_utf8(output.stdout).unwrap();
        let value = |name: &str| -> String {
            let start = exports
                .find(&format!("{name}='"))
                .unwrap_or_else(|| panic!("{name} missing from {exports:?}"))
                + name.len()
                + 2;
            let length = exports[start..].find('\'').unwrap();
            exports[start..start + length].to_owned()
        };
        Self {
            containers_conf: value("CONTAINERS_CONF"),
            image: value("NEXUS_PODMAN_IMAGE"),
        }
    }

    /// A `podman` command with the project's configuration.
    pub fn command(&self) -> Command {
        let mut command = Command::new("podman");
        command
            .env("CONTAINERS_CONF", &self.containers_conf)
            .stdin(Stdio::null());
        command
    }

    fn run_ok(&self, args: &[&str]) -> String {
        let output = self.command().args(args).output().expect("run podman");
        assert_success(&output, args);
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// Starts a container of the base image (no network) running `script` with `sh -c`, after
    /// `options` (e.g. `--restart on-failure:3`); removed when dropped.
    ///
    /// Started from its own bundle directory: Debian 12's conmon (2.1.6) writes its OOM marker
    /// (`oom`) into its working directory, and podman 4.3 looks for it in the bundle directory,
    /// so started elsewhere an OOM-killed container reads `OOMKilled: false` (and the marker is
    /// left in the caller's directory).
    pub fn start(&self, options: &[&str], script: &str) -> Container {
        let name = unique_name();
        let mut args = vec!["create", "--network", "none", "--name", &name];
        args.extend_from_slice(options);
        args.extend_from_slice(&[&self.image, "sh", "-c", script]);
        let id = self.run_ok(&args);
        let container = Container {
            podman: self.clone(),
            id,
            name,
        };
        let bundle = container.inspect("{{.StaticDir}}");
        let output = self
            .command()
            .args(["start", &container.id])
            .current_dir(&bundle)
            .output()
            .expect("run podman start");
        assert_success(&output, &["start", &container.id]);
        container
    }

    /// `podman system service` on a socket in a fresh directory, answering `/_ping`.
    pub fn serve_api(&self) -> ApiService {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("podman.sock");
        let child = self
            .command()
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start podman system service");
        let service = ApiService {
            _dir: dir,
            socket,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while service.get("/_ping").is_err() {
            assert!(Instant::now() < deadline, "podman's API did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        service
    }
}

/// A container the test started; `podman rm --force` when dropped.
pub struct Container {
    podman: Podman,
    pub id: String,
    pub name: String,
}

impl Container {
    /// One field of `podman inspect`, by Go template (`{{.State.Status}}`).
    pub fn inspect(&self, template: &str) -> String {
        self.podman
            .run_ok(&["inspect", "--format", template, &self.id])
    }

    /// Waits until `template` reads `expected` (e.g. the state `exited` after the last
    /// restart), failing after a minute with what it read last.
    pub fn wait_for(&self, template: &str, expected: &str) {
        let deadline = Instant::now() + SETTLE;
        loop {
            let now = self.inspect(template);
            if now == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} never had {template} = {expected:?} (last {now:?})",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self
            .podman
            .command()
            .args(["rm", "--force", "--time", "0", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// podman's Docker-compatible API on a unix socket; stopped when dropped.
pub struct ApiService {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    child: Child,
}

impl ApiService {
    /// `unix:///…/podman.sock`, as `DOCKER_HOST` would say.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The JSON body of a GET on the engine's API, as any Docker client reads it.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let body = self
            .get(path)
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        serde_json::from_str(&body).unwrap_or_else(|error| panic!("GET {path}: {error}: {body}"))
    }

    fn get(&self, path: &str) -> std::io::Result<String> {
        let mut stream = UnixStream::connect(&self.socket)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        // HTTP/1.0: the answer is the body up to the end of the stream, never chunked.
        write!(stream, "GET {path} HTTP/1.0\r\nHost: podman\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        match response.split_once("\r\n\r\n") {
            Some((head, body)) if head.split_whitespace().nth(1) == Some("200") => {
                Ok(body.to_owned())
            }
            _ => Err(std::io::Error::other(format!(
                "unexpected answer: {response}"
            ))),
        }
    }
}

impl Drop for ApiService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_success(output: &Output, args: &[&str]) {
    assert!(
        output.status.success(),
        "podman {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A container name no other test (or test run) uses at the same time.
fn unique_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "nexus-agent-test-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}
