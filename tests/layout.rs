//! The rooms of the crate keep to their doors (see the tour in `src/lib.rs`): only the
//! store speaks SQL, and the command line and the operators' commands render the store's
//! types through `views`, never borrowing from the HTTP API. These read the sources, so a
//! change that crosses a line fails here, not in a review.

use std::fs;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Lines of `file` outside its unit tests (`mod tests` files and `#[cfg(test)]` blocks
/// may inspect the database directly).
fn code_lines(file: &Path) -> Vec<(usize, String)> {
    if file.file_name().is_some_and(|n| n == "tests.rs") {
        return Vec::new();
    }
    let text = fs::read_to_string(file).unwrap();
    text.lines()
        .take_while(|line| !line.starts_with("#[cfg(test)]"))
        .enumerate()
        .map(|(i, line)| (i + 1, line.to_owned()))
        .collect()
}

/// The places in `files` where a line holds one of `needles`.
fn offenders(files: &[PathBuf], needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in files {
        for (number, line) in code_lines(file) {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if needles.iter().any(|n| code.contains(n)) {
                found.push(format!("{}:{number}: {}", file.display(), code));
            }
        }
    }
    found
}

#[test]
fn only_the_store_speaks_sql() {
    let outside: Vec<PathBuf> = sources(&src())
        .into_iter()
        .filter(|f| !f.starts_with(src().join("store")))
        .collect();
    let sql = [
        "\"SELECT ",
        "\"INSERT INTO",
        "\"DELETE FROM",
        "\"UPDATE ",
        "PRAGMA",
        "execute_batch(",
        "prepare_cached(",
        "query_row(",
    ];
    let found = offenders(&outside, &sql);
    assert!(
        found.is_empty(),
        "SQL outside src/store:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_command_line_and_the_operators_commands_do_not_borrow_from_the_http_api() {
    let mut files = sources(&src().join("ops"));
    files.push(src().join("cli.rs"));
    let found = offenders(&files, &["crate::api", "super::api", "hookd::api"]);
    assert!(
        found.is_empty(),
        "ops/cli use the HTTP API's types (render the store's through `views`):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_operators_commands_do_not_reach_back_into_the_command_line() {
    let found = offenders(&sources(&src().join("ops")), &["crate::cli", "super::cli"]);
    assert!(
        found.is_empty(),
        "ops depends on cli (cli parses and dispatches; ops must not need it):\n{}",
        found.join("\n")
    );
}

#[test]
fn views_know_nothing_of_http_or_the_command_line() {
    let found = offenders(
        &sources(&src().join("views")),
        &[
            "axum",
            "crate::api",
            "crate::cli",
            "crate::ops",
            "StatusCode",
        ],
    );
    assert!(
        found.is_empty(),
        "views depend on a front end:\n{}",
        found.join("\n")
    );
}
