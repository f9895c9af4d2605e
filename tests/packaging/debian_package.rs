//! The agent's Debian package (`cargo deb -p nexus-agent`) in a bootstrapped Debian 13 root: what
//! it installs, with which owners and modes, its user and unit; an upgrade keeps the operator's
//! settings; a purge leaves nothing of it behind.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{TempDir, output, repo_root, run};

/// Builds the package from the release binary, at `version`, into `dir`; returns its path.
fn build_package(version: &str, dir: &Path) -> PathBuf {
    let cargo_deb = std::env::var("CARGO_DEB").expect("CARGO_DEB (scripts/packaging-tools)");
    let built = run(Command::new(cargo_deb)
        .current_dir(repo_root())
        .args([
            "-p",
            "nexus-agent",
            "--no-build",
            "--no-strip",
            "--deb-version",
            version,
            "-o",
        ])
        .arg(dir));
    PathBuf::from(built.trim())
}

/// A writable copy-on-write view of the Debian 13 root of scripts/timescaledb.
fn debian_root(dir: &Path) -> PathBuf {
    let lower =
        std::env::var("NEXUS_DEBIAN_ROOT").expect("NEXUS_DEBIAN_ROOT (scripts/packaging-tools)");
    let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("root"));
    for path in [&upper, &work, &merged] {
        std::fs::create_dir_all(path).unwrap();
    }
    run(Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!(
            "lowerdir={lower},upperdir={},workdir={}",
            upper.display(),
            work.display()
        ))
        .arg(&merged));
    merged
}

/// Runs a command inside the root; returns its standard output.
fn chroot(root: &Path, args: &[&str]) -> String {
    run(Command::new("chroot")
        .arg(root)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("LANG", "C.UTF-8"))
}

fn install(root: &Path, package: &Path) {
    let name = package.file_name().unwrap().to_str().unwrap();
    std::fs::copy(package, root.join("tmp").join(name)).unwrap();
    chroot(root, &["dpkg", "-i", &format!("/tmp/{name}")]);
}

fn mode_and_owner(root: &Path, path: &str) -> String {
    chroot(root, &["stat", "-c", "%a %U:%G", path])
        .trim()
        .to_owned()
}

#[test]
#[ignore = "needs root, cargo-deb and the release binary: scripts/test-packaging"]
fn the_agent_package_installs_upgrades_and_purges_in_a_debian_root() {
    let dir = TempDir::new("deb");
    let first = build_package("0.1.0-1", dir.path());
    let second = build_package("0.1.0-2", dir.path());
    let root = debian_root(dir.path());

    install(&root, &first);
    assert_eq!(
        mode_and_owner(&root, "/usr/bin/nexus-agent"),
        "755 root:root"
    );
    assert_eq!(
        mode_and_owner(&root, "/etc/nexus-agent.env"),
        "600 root:root",
        "the token's file"
    );
    assert_eq!(
        mode_and_owner(&root, "/var/lib/nexus-agent/spool"),
        "750 nexus-agent:nexus-agent"
    );
    chroot(&root, &["/usr/bin/nexus-agent", "--help"]);

    let account = chroot(&root, &["getent", "passwd", "nexus-agent"]);
    let fields: Vec<&str> = account.trim().split(':').collect();
    let uid: u32 = fields[2].parse().unwrap();
    assert!(uid < 1000, "a system user: {account}");
    assert_eq!(fields[6], "/usr/sbin/nologin");
    let groups = chroot(&root, &["id", "-nG", "nexus-agent"]);
    assert!(
        groups.split_whitespace().any(|group| group == "docker"),
        "nexus-agent is in the docker group: {groups}"
    );

    let files = chroot(&root, &["dpkg", "-L", "nexus-agent"]);
    let unit_path = files
        .lines()
        .find(|line| line.ends_with("/systemd/system/nexus-agent.service"))
        .unwrap_or_else(|| panic!("no systemd unit in the package:\n{files}"));
    let unit = std::fs::read_to_string(root.join(unit_path.trim_start_matches('/'))).unwrap();
    for line in [
        "ExecStart=/usr/bin/nexus-agent",
        "User=nexus-agent",
        "EnvironmentFile=/etc/nexus-agent.env",
        "Environment=NEXUS_AGENT_SPOOL_DIR=/var/lib/nexus-agent/spool",
        "WantedBy=multi-user.target",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "the unit has `{line}`:\n{unit}"
        );
    }
    assert!(
        !root
            .join("etc/systemd/system/multi-user.target.wants/nexus-agent.service")
            .exists(),
        "not enabled before the operator has set the token"
    );

    // The operator's settings survive an upgrade, and so does the file's mode.
    let settings = "NEXUS_URL=https://nexus.example.com\nNEXUS_AGENT_TOKEN=nxa_kept_on_upgrade\n";
    std::fs::write(root.join("etc/nexus-agent.env"), settings).unwrap();
    std::fs::write(root.join("var/lib/nexus-agent/spool/1.json.gz"), b"unsent").unwrap();
    install(&root, &second);
    assert_eq!(
        chroot(
            &root,
            &["dpkg-query", "-W", "-f", "${Version}", "nexus-agent"]
        ),
        "0.1.0-2"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/nexus-agent.env")).unwrap(),
        settings
    );
    assert_eq!(
        mode_and_owner(&root, "/etc/nexus-agent.env"),
        "600 root:root"
    );
    assert!(
        root.join("var/lib/nexus-agent/spool/1.json.gz").exists(),
        "an upgrade keeps unsent snapshots"
    );

    chroot(&root, &["dpkg", "--purge", "nexus-agent"]);
    for path in [
        "usr/bin/nexus-agent",
        "etc/nexus-agent.env",
        "var/lib/nexus-agent",
        unit_path.trim_start_matches('/'),
    ] {
        assert!(!root.join(path).exists(), "{path} is left after a purge");
    }
    let status = output(Command::new("chroot").arg(&root).args([
        "dpkg-query",
        "-W",
        "-f",
        "${Status}",
        "nexus-agent",
    ]));
    assert_ne!(
        String::from_utf8_lossy(&status.stdout),
        "install ok installed",
        "the package is gone after a purge"
    );
}
