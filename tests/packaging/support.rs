//! Driving podman and podman-compose from the tests: one compose project per test (its own
//! network, volumes and loopback port), removed when the test ends.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The repository root (the compose file's paths are relative to it).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command to completion; panics with its output when it fails.
pub fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("could not run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// Runs a command and returns its output, whatever its exit status.
pub fn output(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|error| panic!("could not run {command:?}: {error}"))
}

/// A directory removed (with whatever is mounted on it unmounted) when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        let path = std::env::temp_dir().join(format!("nexus-{label}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Whatever a test mounted at or below the directory, deepest first.
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|line| line.split(' ').nth(1))
            .filter(|point| Path::new(point).starts_with(&self.0))
            .collect();
        points.sort_by_key(|point| std::cmp::Reverse(point.len()));
        for point in points {
            let _ = Command::new("umount").arg(point).output();
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `podman-compose` project of `deploy/compose.yaml`, taken down with its volumes on drop.
pub struct Compose {
    project: String,
    env: Vec<(String, String)>,
    pub port: u16,
}

impl Compose {
    /// A project whose server is published on 127.0.0.1 only, at a port of its own.
    pub fn new(label: &str) -> Self {
        let project = format!(
            "nexus-{label}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let port = free_port();
        let password = uuid::Uuid::new_v4().simple().to_string();
        let env = vec![
            ("POSTGRES_PASSWORD".to_owned(), password),
            ("NEXUS_PUBLISH".to_owned(), format!("127.0.0.1:{port}")),
            (
                "NEXUS_AGENT_URL".to_owned(),
                format!("http://127.0.0.1:{port}"),
            ),
        ];
        Self { project, env, port }
    }

    pub fn set_env(&mut self, name: &str, value: impl Into<String>) {
        self.env.push((name.to_owned(), value.into()));
    }

    fn command(&self) -> Command {
        let podman_compose =
            std::env::var("PODMAN_COMPOSE").expect("PODMAN_COMPOSE (scripts/packaging-tools)");
        let mut command = Command::new(podman_compose);
        command
            .current_dir(repo_root())
            .args(["-p", &self.project, "-f", "deploy/compose.yaml"])
            .envs(self.env.iter().map(|(name, value)| (name, value)));
        command
    }

    /// `up -d` with these profiles active (none: the database and the server).
    pub fn up(&self, profiles: &[&str]) {
        let mut command = self.command();
        for profile in profiles {
            command.args(["--profile", profile]);
        }
        run(command.args(["up", "-d"]));
    }

    /// The container podman-compose made for `service`.
    pub fn container(&self, service: &str) -> String {
        format!("{}_{service}_1", self.project)
    }

    /// `docker compose` as the README writes it, for this project: podman-compose with its name.
    pub fn docker_compose_stand_in(&self) -> String {
        format!(
            "{} -p {}",
            std::env::var("PODMAN_COMPOSE").unwrap(),
            self.project
        )
    }

    /// The variables the project's compose commands need (what deploy/.env holds for an operator).
    pub fn env(&self) -> impl Iterator<Item = (&str, &str)> {
        self.env
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `nexus-telemetry <args>` inside the server's container: the README's first-run commands.
    pub fn server_cli(&self, args: &[&str]) -> String {
        run(Command::new("podman")
            .args([
                "exec",
                &self.container("nexus-telemetry"),
                "nexus-telemetry",
            ])
            .args(args))
        .trim()
        .to_owned()
    }

    /// One value from the stack's database, through psql in its container.
    pub fn sql(&self, query: &str) -> String {
        run(Command::new("podman").args([
            "exec",
            &self.container("timescaledb"),
            "psql",
            "-X",
            "-q",
            "-tA",
            "-U",
            "nexus",
            "-d",
            "nexus",
            "-c",
            query,
        ]))
        .trim()
        .to_owned()
    }

    pub fn logs(&self, service: &str) -> String {
        let output = output(Command::new("podman").args(["logs", &self.container(service)]));
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    /// Waits (at most `limit`) until the server's /readyz answers 200.
    pub async fn wait_ready(&self, limit: Duration) {
        let client = http_client();
        let url = format!("{}/readyz", self.base_url());
        let start = Instant::now();
        loop {
            let status = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .map(|response| response.status().as_u16());
            if matches!(status, Ok(200)) {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "/readyz not 200 within {limit:?} (last: {status:?});\nserver log:\n{}\ndatabase log:\n{}",
                self.logs("nexus-telemetry"),
                self.logs("timescaledb")
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// A host and an agent token for it, made with the server's CLI as the README shows.
    pub fn host_with_token(&self, name: &str) -> (i64, String) {
        let created = self.server_cli(&["host", "create", "--name", name, "--json"]);
        let host: serde_json::Value = serde_json::from_str(&created).expect("host JSON");
        let id = host["id"].as_i64().expect("host id");
        let token = self.server_cli(&["token", "issue", "--host", &id.to_string()]);
        (id, token)
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self
            .command()
            .args(["--profile", "agent", "down", "-v"])
            .output();
    }
}

/// A snapshot as the README's example posts it, at `recorded_at` (RFC 3339).
pub fn snapshot(recorded_at: &str) -> serde_json::Value {
    serde_json::json!({
        "recorded_at": recorded_at,
        "host": {
            "metrics": {"cpu_percent": 12.5, "memory_used_mb": 2048, "memory_total_mb": 8192,
                        "disk_used_gb": 40, "disk_total_gb": 100, "load_average": 0.4,
                        "network_rx_bytes": 123456, "network_tx_bytes": 654321},
            "facts": {"cpu_count": 4, "os": "Debian GNU/Linux 12 (bookworm)", "docker_version": "27.1.1"}
        },
        "containers": []
    })
}

/// An HTTP client; the crate's reqwest brings no TLS provider of its own (rustls with ring, as
/// the server installs it), so one is installed first.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
