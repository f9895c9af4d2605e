//! A fake Docker Engine API on a unix socket: answers GET requests from recorded JSON bodies,
//! one connection at a time per thread, and records every request target.
//!
//! Shared by the Docker tests and the benchmark (`#[path]`-included), so it uses only std.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bodies served for one path; each request takes the next, the last one repeats.
type Bodies = Vec<String>;

#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, (Bodies, usize)>>,
    requests: Mutex<Vec<String>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

pub struct FakeDocker {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    state: Arc<State>,
}

impl FakeDocker {
    /// Serves `routes` (path without the `/v1.NN` prefix and without query → bodies), each
    /// answer delayed by `delay`. Unknown paths get Docker's 404 body.
    pub fn start(routes: HashMap<String, Vec<String>>, delay: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        Self::start_at(dir, socket, routes, delay)
    }

    /// Serves at `socket` (inside `dir`, which it keeps alive), e.g. a path an agent was
    /// already told to use.
    pub fn start_at(
        dir: tempfile::TempDir,
        socket: PathBuf,
        routes: HashMap<String, Vec<String>>,
        delay: Duration,
    ) -> Self {
        let state = Arc::new(State::default());
        *state.routes.lock().unwrap() = routes
            .into_iter()
            .map(|(path, bodies)| (path, (bodies, 0)))
            .collect();
        let listener = UnixListener::bind(&socket).unwrap();
        let served = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let state = served.clone();
                std::thread::spawn(move || serve(stream, &state, delay));
            }
        });
        Self {
            _dir: dir,
            socket,
            state,
        }
    }

    /// `unix:///…/docker.sock`, as `DOCKER_HOST` would say.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Every request target so far, version prefix included.
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Most requests that were being answered at the same moment.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}

fn serve(stream: std::os::unix::net::UnixStream, state: &State, delay: Duration) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
    }
    let target = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    state.requests.lock().unwrap().push(target.clone());
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    std::thread::sleep(delay);
    let path = unversioned_path(&target);
    let body = {
        let mut routes = state.routes.lock().unwrap();
        routes.get_mut(&path).map(|(bodies, next)| {
            let body = bodies[(*next).min(bodies.len() - 1)].clone();
            *next += 1;
            body
        })
    };
    // Docker's JSON encoder ends every document with a newline; bollard's stream decoder
    // relies on it.
    let (status, body) = match body {
        Some(body) => ("200 OK", format!("{}\n", body.trim_end())),
        None => (
            "404 Not Found",
            format!(r#"{{"message":"No such container: {path}"}}"#),
        ),
    };
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nApi-Version: 1.45\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

/// `/v1.45/containers/json?all=true` → `/containers/json`.
fn unversioned_path(target: &str) -> String {
    let path = target.split('?').next().unwrap_or(target);
    match path.strip_prefix("/v1.") {
        Some(rest) => rest
            .find('/')
            .map_or_else(|| path.to_owned(), |slash| rest[slash..].to_owned()),
        None => path.to_owned(),
    }
}

/// The recorded bodies under `tests/fixtures/docker/`: `<path with / as _>.json`, and for
/// paths answered differently over time `….1.json`, `….2.json`.
pub fn recorded_routes() -> HashMap<String, Vec<String>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/docker");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let mut routes: HashMap<String, Vec<String>> = HashMap::new();
    for file in files {
        let name = file.file_name().unwrap().to_str().unwrap();
        let stem = name.strip_suffix(".json").unwrap();
        let stem = stem.split('.').next().unwrap();
        let path = stem.replace("__", "/");
        // Docker answers with one JSON document per line; the fixtures are wrapped for reading.
        let body: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        routes.entry(path).or_default().push(body.to_string());
    }
    routes
}

/// An engine with `count` running containers, each with realistic inspect and stats bodies.
pub fn generated_routes(count: usize) -> HashMap<String, Vec<String>> {
    let mut routes = HashMap::new();
    routes.insert(
        "/version".to_owned(),
        vec![r#"{"Version":"27.3.1","ApiVersion":"1.47","MinAPIVersion":"1.24","Os":"linux","Arch":"amd64","KernelVersion":"6.1.0-26-amd64","GoVersion":"go1.22.7","GitCommit":"41ca978"}"#.to_owned()],
    );
    let mut summaries = Vec::new();
    for index in 0..count {
        let id = format!("{index:0>64x}");
        summaries.push(format!(
            r#"{{"Id":"{id}","Names":["/service-{index}"],"Image":"registry.example.com:5000/team/service-{index}:1.{index}","ImageID":"sha256:{id}","Command":"/entrypoint.sh serve","Created":1714550000,"Ports":[{{"IP":"0.0.0.0","PrivatePort":8080,"PublicPort":{port},"Type":"tcp"}},{{"PrivatePort":9090,"Type":"tcp"}}],"Labels":{{"com.docker.compose.project":"shop","com.docker.compose.service":"service-{index}","org.opencontainers.image.version":"1.{index}"}},"State":"running","Status":"Up 3 hours (healthy)","HostConfig":{{"NetworkMode":"shop_default"}},"NetworkSettings":{{"Networks":{{}}}},"Mounts":[]}}"#,
            port = 20000 + index
        ));
        routes.insert(
            format!("/containers/{id}/json"),
            vec![format!(
                r#"{{"Id":"{id}","Created":"2024-05-01T08:00:00.000000000Z","Path":"/entrypoint.sh","Args":["serve"],"State":{{"Status":"running","Running":true,"Paused":false,"Restarting":false,"OOMKilled":false,"Dead":false,"Pid":{pid},"ExitCode":0,"Error":"","StartedAt":"2024-05-01T10:00:00.123456789Z","FinishedAt":"0001-01-01T00:00:00Z","Health":{{"Status":"healthy","FailingStreak":0,"Log":[]}}}},"Image":"sha256:{id}","Name":"/service-{index}","RestartCount":0,"Config":{{"Hostname":"{short}","Image":"registry.example.com:5000/team/service-{index}:1.{index}","Labels":{{"com.docker.compose.project":"shop"}}}}}}"#,
                pid = 1000 + index,
                short = &id[..12]
            )],
        );
        let stats = |tick: u64| {
            format!(
                r#"{{"read":"2024-05-01T13:00:0{tick}.000000000Z","preread":"0001-01-01T00:00:00Z","pids_stats":{{"current":12,"limit":4915}},"num_procs":0,"blkio_stats":{{"io_service_bytes_recursive":[{{"major":8,"minor":0,"op":"read","value":{read}}},{{"major":8,"minor":0,"op":"write","value":{write}}}]}},"cpu_stats":{{"cpu_usage":{{"total_usage":{usage},"usage_in_kernelmode":1000000,"usage_in_usermode":2000000}},"system_cpu_usage":{system},"online_cpus":4,"throttling_data":{{"periods":0,"throttled_periods":0,"throttled_time":0}}}},"precpu_stats":{{"cpu_usage":{{"total_usage":0,"usage_in_kernelmode":0,"usage_in_usermode":0}},"throttling_data":{{"periods":0,"throttled_periods":0,"throttled_time":0}}}},"memory_stats":{{"usage":{mem},"stats":{{"active_anon":40960000,"active_file":8192000,"anon":52428800,"file":20971520,"inactive_anon":0,"inactive_file":10485760,"pgfault":123456,"pgmajfault":12}},"limit":8589934592}},"name":"/service-{index}","id":"{id}","networks":{{"eth0":{{"rx_bytes":{rx},"rx_packets":100,"rx_errors":0,"rx_dropped":0,"tx_bytes":{tx},"tx_packets":80,"tx_errors":0,"tx_dropped":0}}}}}}"#,
                read = 4096 * (index as u64 + 1),
                write = 8192 * (index as u64 + 1),
                usage = 1_000_000_000 + tick * 10_000_000 * (index as u64 % 7 + 1),
                system = 10_000_000_000_000 + tick * 4_000_000_000,
                mem = 73_400_320 + index as u64 * 1_048_576,
                rx = 1_000_000 + index,
                tx = 2_000_000 + index,
            )
        };
        routes.insert(
            format!("/containers/{id}/stats"),
            (0..10).map(stats).collect(),
        );
    }
    routes.insert(
        "/containers/json".to_owned(),
        vec![format!("[{}]", summaries.join(","))],
    );
    routes
}
