//! How commands print: one JSON document (`--json`, for scripts) or aligned text tables.

use chrono::{DateTime, SecondsFormat, Utc};

/// Prints `value` as one line of JSON.
pub fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// Prints a token shown once: its plaintext alone on stdout (for `$(…)`) and a note on stderr
/// that starts with `what`; or, with `--json`, `document` as one JSON object.
pub fn issued_token(
    json: bool,
    document: &impl serde::Serialize,
    plaintext: &str,
    what: &str,
) -> anyhow::Result<()> {
    if json {
        return self::json(document);
    }
    println!("{plaintext}");
    eprintln!("{what}: shown once, store it now (only its hash is kept)");
    Ok(())
}

/// Prints one page of a listing: with `--json`, `{"items": [...], "next_cursor": ...}` (the
/// admin API's page); else a table of `row(item)` under `header`, and on stderr how to get the
/// next page of `what`.
pub fn page<T: serde::Serialize, const N: usize>(
    json: bool,
    items: &[T],
    next_cursor: Option<String>,
    what: &str,
    header: [&str; N],
    row: impl Fn(&T) -> [String; N],
) -> anyhow::Result<()> {
    #[derive(serde::Serialize)]
    struct Page<'a, T> {
        items: &'a [T],
        next_cursor: Option<String>,
    }
    if json {
        return self::json(&Page { items, next_cursor });
    }
    let rows: Vec<[String; N]> = items.iter().map(row).collect();
    table(header, &rows);
    if let Some(cursor) = next_cursor {
        eprintln!("more {what} follow: pass --cursor {cursor}");
    }
    Ok(())
}

/// Prints one object: with `--json`, `value` as JSON; else a `name value` line per field, the
/// names padded to `width`.
pub fn object<const N: usize>(
    json: bool,
    value: &impl serde::Serialize,
    width: usize,
    fields: impl FnOnce() -> [(&'static str, String); N],
) -> anyhow::Result<()> {
    if json {
        return self::json(value);
    }
    for (name, text) in fields() {
        println!("{name:<width$} {text}");
    }
    Ok(())
}

/// A value for a text field; `-` when absent.
pub fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".into())
}

/// Prints rows under a header, each column as wide as its widest cell.
pub fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(|title| title.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header);
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
}

/// A timestamp for a table cell; `-` when absent.
pub fn time(at: Option<DateTime<Utc>>) -> String {
    or_dash(at.map(|at| at.to_rfc3339_opts(SecondsFormat::Secs, true)))
}
