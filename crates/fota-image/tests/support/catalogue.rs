//! The check both bad-input test files run against `docs/BAD_INPUTS.md` (fota-image's
//! bad_files.rs, fota-host's bad_inputs.rs, which includes this file by path).

/// The `#[test]` functions of `source`, a test file called `file` (like `bad_files.rs`),
/// less the `checks` (the catalogue checks themselves, not rows). Asserts that each of
/// them is named in the catalogue `doc` as `` `file::name` `` and that every
/// `file::name` the catalogue gives is one of them.
pub fn catalogue_names_tests<'a>(
    file: &str,
    source: &'a str,
    doc: &str,
    checks: &[&str],
) -> Vec<&'a str> {
    let tests: Vec<&str> = source
        .split("#[test]\nfn ")
        .skip(1)
        .filter_map(|s| s.split('(').next())
        .filter(|name| !checks.contains(name))
        .collect();
    for name in &tests {
        assert!(
            doc.contains(&format!("`{file}::{name}`")),
            "the catalogue lacks {name}"
        );
    }
    let prefix = format!("{file}::");
    for line in doc.lines().filter(|l| l.contains(&prefix)) {
        let name = line
            .split(&prefix)
            .nth(1)
            .and_then(|s| s.split('`').next())
            .unwrap_or_default();
        assert!(
            tests.contains(&name),
            "the catalogue names {name}, which is no test"
        );
    }
    tests
}
