//! The layers of docs/ARCHITECTURE.md's module table, checked against the code: each module may
//! name only the modules its row allows. The table is the one list of rules; this test reads it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The table's rules: a module of `src/` (a folder or a file) and the modules it may name.
fn rules() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("docs/ARCHITECTURE.md")).unwrap();
    let table = doc
        .split("## The modules")
        .nth(1)
        .expect("docs/ARCHITECTURE.md has a section `## The modules`");
    table
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .filter_map(|row| {
            let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
            let module = backticked(cells.first()?).into_iter().next()?;
            let module = module.strip_prefix("src/")?;
            let module = module
                .trim_end_matches('/')
                .trim_end_matches(".rs")
                .to_owned();
            Some((module, backticked(cells.last()?).into_iter().collect()))
        })
        .collect()
}

fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The crate's top-level modules: the files and folders of `src/` (the binary's `main.rs` and
/// the `lib.rs` that lists them aside).
fn modules() -> BTreeSet<String> {
    std::fs::read_dir(Path::new(ROOT).join("src"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| {
            let name = path.file_stem()?.to_str()?.to_owned();
            (path.is_dir() || path.extension()? == "rs").then_some(name)
        })
        .filter(|name| name != "main" && name != "lib")
        .collect()
}

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The top-level modules that `source` names through `crate::`, outside comments.
fn named_modules(source: &str) -> BTreeSet<String> {
    source
        .lines()
        .map(|line| line.split(" // ").next().unwrap_or(""))
        .filter(|line| !line.trim_start().starts_with("//"))
        .flat_map(|line| line.split("crate::").skip(1))
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

#[test]
fn every_module_names_only_the_modules_its_row_of_the_architecture_table_allows() {
    let rules = rules();
    let modules = modules();
    let unlisted: Vec<&String> = modules.iter().filter(|m| !rules.contains_key(*m)).collect();
    assert!(
        unlisted.is_empty(),
        "modules without a row in docs/ARCHITECTURE.md's table: {unlisted:?}"
    );
    let mut violations = Vec::new();
    for (module, allowed) in &rules {
        let folder = Path::new(ROOT).join("src").join(module);
        let path = if folder.is_dir() {
            folder
        } else {
            folder.with_extension("rs")
        };
        assert!(path.exists(), "the table names src/{module}, which is gone");
        for file in rust_files(&path) {
            let source = std::fs::read_to_string(&file).unwrap();
            for named in named_modules(&source) {
                if named != *module && !allowed.contains(&named) {
                    let file = file.strip_prefix(ROOT).unwrap().display().to_string();
                    violations.push(format!("{file} names crate::{named}"));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports the architecture table does not allow:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_architecture_check_finds_crate_paths_in_code_and_not_in_comments() {
    let source = "use crate::store::Store;\n\
                  //! see [`crate::api`]\n\
                  let x = crate::domain::host::Slug::new(); // crate::cli\n\
                  use std::sync::Arc;";
    let named: Vec<String> = named_modules(source).into_iter().collect();
    assert_eq!(named, ["domain", "store"]);
}
