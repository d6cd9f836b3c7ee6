//! The README is both the GitHub / crates.io page and the crate docs
//! (src/lib.rs includes it after `docs/guide/links.md`). Its links to items
//! and guide chapters are reference links defined twice: at the README's end
//! as docs.rs addresses (for GitHub), and in `docs/guide/links.md` as
//! intra-doc paths, which come first and so win in rustdoc, where
//! `cargo doc -D warnings` checks them. These tests keep the two in step:
//! a label missing from links.md would leave rustdoc an unchecked docs.rs
//! address, and one missing from the README would show as `[text]` on GitHub.

use std::collections::BTreeMap;
use std::path::Path;

const DOCS_RS: &str = "https://docs.rs/redis-mutex/latest/redis_mutex/";

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The link reference definitions of a markdown text: label -> target.
fn definitions(doc: &str) -> BTreeMap<String, String> {
    doc.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix('[')?;
            let (label, target) = rest.split_once("]: ")?;
            Some((label.to_owned(), target.trim().to_owned()))
        })
        .collect()
}

/// The text outside fenced code blocks, without the definitions.
fn prose(doc: &str) -> String {
    let mut fenced = false;
    let mut out = String::new();
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let definition = line.starts_with('[') && line.contains("]: ");
        if !fenced && !definition {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The reference labels the prose uses: `[text][label]`, and `[label]`
/// alone (a shortcut reference) when no `(` or `[` follows.
fn used_labels(prose: &str) -> Vec<String> {
    let mut labels = Vec::new();
    let mut rest = prose;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else { break };
        let text = &after[..close];
        let next = &after[close + 1..];
        if let Some(full) = next.strip_prefix('[') {
            let end = full.find(']').expect("a closed reference label");
            labels.push(full[..end].to_owned());
            rest = &full[end + 1..];
            continue;
        }
        // `[text](url)` is an inline link; `[...]` inside code (`#[tokio::main]`)
        // is not a link: skip both.
        let in_code = rest[..open].matches('`').count() % 2 == 1 && !text.starts_with('`');
        if !next.starts_with('(') && !in_code {
            labels.push(text.to_owned());
        }
        rest = next;
    }
    labels
}

/// The docs.rs address rustdoc gives an intra-doc path of this crate, as far
/// as the path alone tells: the item's kind is matched loosely.
fn matches_docs_rs(path: &str, url: &str) -> bool {
    let Some(page) = url.strip_prefix(DOCS_RS) else {
        return false;
    };
    let segments: Vec<&str> = path.trim_start_matches("crate::").split("::").collect();
    if path == "crate::guide" || path.starts_with("crate::guide::") {
        let module = path.trim_start_matches("crate::").replace("::", "/");
        return page == format!("{module}/index.html");
    }
    let (file, anchor) = page.split_once('#').unwrap_or((page, ""));
    let kinds = ["struct", "enum", "trait", "fn", "constant", "type"];
    let item_ok = kinds
        .iter()
        .any(|kind| file == format!("{kind}.{}.html", segments[0]));
    let member_ok = match segments.get(1) {
        None => anchor.is_empty(),
        Some(member) => ["method", "variant", "structfield"]
            .iter()
            .any(|kind| anchor == format!("{kind}.{member}")),
    };
    segments.len() <= 2 && item_ok && member_ok
}

#[test]
fn every_readme_link_to_the_docs_is_a_checked_intra_doc_link_in_rustdoc() {
    let readme = definitions(&read("README.md"));
    let intra = definitions(&read("docs/guide/links.md"));
    let mut checked = 0;
    for (label, url) in &readme {
        if !url.starts_with("https://docs.rs/") {
            continue;
        }
        let path = intra.get(label).unwrap_or_else(|| {
            panic!(
                "README links {label} to {url}: add `{label}: crate::...` to docs/guide/links.md"
            )
        });
        assert!(
            matches_docs_rs(path, url),
            "README's {label} goes to {url}, but rustdoc's to {path}"
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} README links to docs.rs");
}

#[test]
fn every_reference_the_readme_uses_is_defined_in_it() {
    let doc = read("README.md");
    let defined = definitions(&doc);
    for label in used_labels(&prose(&doc)) {
        assert!(
            defined.contains_key(&label),
            "README uses [{label}] without defining it at its end (GitHub would show the brackets)"
        );
    }
}

#[test]
fn the_readme_has_no_relative_links() {
    // A relative link works on GitHub but not on docs.rs, where the README
    // is the crate's front page.
    let doc = read("README.md");
    for (label, target) in definitions(&doc) {
        assert!(
            target.starts_with("https://"),
            "[{label}]: {target} is relative"
        );
    }
    for inline in prose(&doc).split("](").skip(1) {
        assert!(
            inline.starts_with("https://"),
            "an inline link to a relative address: ]({}",
            &inline[..inline.len().min(40)]
        );
    }
}

#[test]
fn the_checks_tell_good_links_from_bad() {
    let lock = format!("{DOCS_RS}struct.Lock.html#method.acquire");
    assert!(matches_docs_rs("crate::Lock::acquire", &lock));
    assert!(!matches_docs_rs("crate::Lock::release", &lock));
    assert!(!matches_docs_rs("crate::Locks::acquire", &lock));
    let waiting = format!("{DOCS_RS}guide/waiting/index.html");
    assert!(matches_docs_rs("crate::guide::waiting", &waiting));
    assert!(!matches_docs_rs("crate::guide::redlock", &waiting));
    let prose = prose(
        "See [`Lock`], [the guide][guide] and [a page](https://x).\n```\n#[tokio::main]\n```\nand `#[derive(Debug)]`.\n[`Lock`]: x\n",
    );
    assert_eq!(used_labels(&prose), ["`Lock`", "guide"]);
}
