//! `docs/faults.md` cannot drift from the suite: every test its fault table
//! names must exist, and every test of `tests/faults.rs` must be in it.

use std::collections::BTreeSet;
use std::path::Path;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `file::function` names in the last column of the table's rows.
fn tabled_tests(doc: &str) -> Vec<(String, String)> {
    let rows: Vec<&str> = doc
        .lines()
        .filter(|line| line.starts_with('|'))
        .skip(2) // the header and its rule
        .collect();
    assert!(rows.len() >= 20, "the fault table has {} rows", rows.len());
    let mut names = Vec::new();
    for row in rows {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").collect();
        assert_eq!(cells.len(), 4, "a row of 4 cells: {row}");
        let in_row: Vec<(String, String)> = cells[3]
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|name| {
                let (file, function) = name
                    .split_once("::")
                    .unwrap_or_else(|| panic!("{name:?} is not file::function in: {row}"));
                (file.to_owned(), function.to_owned())
            })
            .collect();
        assert!(!in_row.is_empty(), "a row without a test: {row}");
        names.extend(in_row);
    }
    names
}

/// The test functions (`#[test]`, `#[tokio::test]`) of a test file.
fn test_functions(source: &str) -> BTreeSet<String> {
    let lines: Vec<&str> = source.lines().collect();
    let mut found = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("#[test]")
            || line.trim_start().starts_with("#[tokio::test")
        {
            let signature = lines[i + 1..]
                .iter()
                .find(|l| l.contains("fn "))
                .expect("a function after the attribute");
            let name = signature
                .split("fn ")
                .nth(1)
                .and_then(|rest| rest.split('(').next())
                .expect("a name");
            found.insert(name.trim().to_owned());
        }
    }
    found
}

#[test]
fn every_test_the_fault_table_names_exists() {
    let doc = read("docs/faults.md");
    for (file, function) in tabled_tests(&doc) {
        let functions = test_functions(&read(&format!("tests/{file}.rs")));
        assert!(
            functions.contains(&function),
            "docs/faults.md names {file}::{function}, which is not a test in tests/{file}.rs"
        );
    }
}

#[test]
fn every_fault_test_is_in_the_table() {
    let doc = read("docs/faults.md");
    let tabled: BTreeSet<String> = tabled_tests(&doc)
        .into_iter()
        .filter(|(file, _)| file == "faults")
        .map(|(_, function)| function)
        .collect();
    let tests = test_functions(&read("tests/faults.rs"));
    let missing: Vec<_> = tests.difference(&tabled).collect();
    assert!(
        missing.is_empty(),
        "tests/faults.rs tests missing from docs/faults.md: {missing:?}"
    );
}

#[test]
fn the_readme_points_to_the_table() {
    assert!(read("README.md").contains("docs/faults.md"));
}

#[test]
fn the_parser_finds_names_and_rejects_malformed_rows() {
    let doc = "| a | b | c | d |\n|---|---|---|---|\n".to_owned()
        + &"| f | i | g | `x::y`, `z::w` |\n".repeat(20);
    let names = tabled_tests(&doc);
    assert_eq!(names.len(), 40);
    assert_eq!(names[1], ("z".to_owned(), "w".to_owned()));
    let source =
        "#[tokio::test]\nasync fn one() {}\n#[test]\n#[ignore]\nfn two() {}\nfn helper() {}\n";
    assert_eq!(
        test_functions(source),
        BTreeSet::from(["one".to_owned(), "two".to_owned()])
    );
}
