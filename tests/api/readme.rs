//! The README's example runs as written.

use crate::helpers::TestApp;

#[tokio::test]
async fn the_readme_curl_example_stores_a_snapshot() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    let readme = include_str!("../../README.md");
    let script = readme
        .split("<!-- example:curl -->")
        .nth(1)
        .and_then(|rest| rest.split("```sh").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("README has a ```sh block after <!-- example:curl -->");

    let output = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .env("NEXUS_URL", &app.address)
        .env("TOKEN", &token)
        .output()
        .await
        .unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("204"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(app.written().await, (1, 1, 1));
}
