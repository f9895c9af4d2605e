//! The README's example runs as written, and its configuration table is `serve --help`'s.

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

/// `(variable, flag, default)` of each row of the README's configuration table, as written
/// (`` `x` `` unwrapped; an empty cell is empty).
fn readme_configuration_rows() -> Vec<(String, String, String)> {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a ## Configuration section");
    let unquote = |cell: &str| cell.trim().trim_matches('`').to_owned();
    section
        .lines()
        .filter(|line| line.starts_with("| ") && !line.starts_with("| variable"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').collect();
            (unquote(cells[1]), unquote(cells[2]), unquote(cells[3]))
        })
        .collect()
}

#[test]
fn the_readme_configuration_table_lists_every_serve_flag_with_its_variable_and_default() {
    use clap::CommandFactory;
    let cli = nexus_telemetry::cli::Cli::command();
    let serve = cli.find_subcommand("serve").expect("a serve command");
    let from_help: Vec<(String, String, String)> = serve
        .get_arguments()
        .filter_map(|arg| {
            let flag = format!("--{}", arg.get_long()?);
            if flag == "--help" {
                return None;
            }
            let variable = arg
                .get_env()
                .map(|env| env.to_string_lossy().into_owned())
                .unwrap_or_default();
            let default = arg
                .get_default_values()
                .iter()
                .map(|value| value.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(",");
            Some((variable, flag, default))
        })
        .collect();
    let table = readme_configuration_rows();

    for (variable, flag, default) in &from_help {
        let row = table
            .iter()
            .find(|(_, row_flag, _)| row_flag == flag)
            .unwrap_or_else(|| panic!("README's configuration table has no row for {flag}"));
        assert_eq!(&row.0, variable, "the variable of {flag}");
        // Without a clap default the README says what happens instead, e.g. `(none)`.
        if default.is_empty() {
            assert!(
                row.2.starts_with('(') || row.2.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{flag} has no default, yet the README gives {:?}",
                row.2
            );
        } else {
            assert_eq!(&row.2, default, "the default of {flag}");
        }
    }
    for (variable, flag, _) in &table {
        assert!(
            from_help.iter().any(|(_, known, _)| known == flag)
                || (flag.is_empty() && variable == "NEXUS_LOG"),
            "README lists {variable} {flag}, which `serve` does not take"
        );
    }
}
