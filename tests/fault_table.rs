//! `docs/faults.md` cannot drift from the suite: every test its fault table
//! names must exist, and every test of `tests/faults.rs` must be in it. Each
//! name links to its file in the repository, so that the table's links work
//! on docs.rs too, where it is the guide's Faults chapter.

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
                let linked = format!("[`{name}`][tests/{file}.rs]");
                assert!(
                    cells[3].contains(&linked),
                    "write {name} as {linked} (a link to the file, which works on docs.rs) in: {row}"
                );
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

/// The link definition `[tests/FILE.rs]: URL` that the table's links use.
fn file_link(file: &str) -> String {
    format!(
        "[tests/{file}.rs]: https://github.com/redis-mutex/redis-mutex/blob/main/tests/{file}.rs"
    )
}

#[test]
fn every_tested_file_the_table_links_to_is_defined() {
    let doc = read("docs/faults.md");
    let files: BTreeSet<String> = tabled_tests(&doc).into_iter().map(|(f, _)| f).collect();
    for file in files {
        let definition = file_link(&file);
        assert!(
            doc.lines().any(|line| line == definition),
            "docs/faults.md links to tests/{file}.rs without the line: {definition}"
        );
    }
}

#[test]
fn the_guide_includes_the_table_and_the_readme_points_to_it() {
    assert!(read("src/guide.rs").contains(r#""../docs/faults.md""#));
    assert!(read("README.md").contains("redis_mutex/guide/faults/index.html"));
}

#[test]
fn the_parser_finds_names_and_rejects_malformed_rows() {
    let doc = "| a | b | c | d |\n|---|---|---|---|\n".to_owned()
        + &"| f | i | g | [`x::y`][tests/x.rs], [`z::w`][tests/z.rs] |\n".repeat(20);
    let names = tabled_tests(&doc);
    assert_eq!(names.len(), 40);
    assert_eq!(names[1], ("z".to_owned(), "w".to_owned()));
    let unlinked = doc.replace("[`x::y`][tests/x.rs]", "`x::y`");
    assert!(
        std::panic::catch_unwind(|| tabled_tests(&unlinked)).is_err(),
        "a test name without its link is refused"
    );
    let source =
        "#[tokio::test]\nasync fn one() {}\n#[test]\n#[ignore]\nfn two() {}\nfn helper() {}\n";
    assert_eq!(
        test_functions(source),
        BTreeSet::from(["one".to_owned(), "two".to_owned()])
    );
}
