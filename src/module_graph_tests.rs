//! The module graph stays layered from the bottom up: leaf helpers know nothing of the crate,
//! `rules` (the policy) is pure, `settings` is plain data that never reaches up into the MDE
//! client or the worker, and the pure decisions know only the domain and the rules. This test
//! reads the source, so an upward `use crate::...` fails the build's tests, not a review.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Modules that import nothing from the crate.
const LEAVES: &[&str] = &["canonical", "duration", "html", "jcs", "lenient", "net", "person"];

/// `(module, what it may import besides the leaves and itself, why)`.
const LAYERS: &[(&str, &[&str], &str)] = &[
    ("rules", &[], "the policy is pure: no I/O, no settings, no audit, no MDE"),
    ("settings", &["rules", "secret"], "settings are plain data; the MDE client and the worker build from them"),
    ("decide", &["domain", "rules", "clock"], "decisions are pure functions of the release, the caller and now"),
    ("domain", &["rules", "clock", "secret"], "the domain sits below everything that stores or sends it"),
    ("tlog", &[], "transparency-log math and signed notes are pure"),
];

fn files_of(module: &str) -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let file = src.join(format!("{module}.rs"));
    if file.exists() {
        files.push(file);
    }
    let mut dirs = vec![src.join(module)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    assert!(!files.is_empty(), "module {module} has no source under src/");
    files
}

/// Every `crate::<module>` named outside comments, with the file and line that names it.
fn imports(module: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for file in files_of(module) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for (i, _) in line.match_indices("crate::") {
                let rest = &line[i + "crate::".len()..];
                let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                let at = format!("{}:{}", file.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap().display(), n + 1);
                found.push((name, at));
            }
        }
    }
    found
}

fn check(module: &str, allowed: &[&str], why: &str) {
    let allowed: BTreeSet<&str> = allowed.iter().chain(LEAVES).copied().chain([module]).collect();
    let upward: Vec<String> = imports(module)
        .into_iter()
        .filter(|(name, _)| !allowed.contains(name.as_str()))
        .map(|(name, at)| format!("{at} uses crate::{name}"))
        .collect();
    assert!(upward.is_empty(), "`{module}` may use only {allowed:?} ({why}):\n{}", upward.join("\n"));
}

#[test]
fn leaf_modules_import_nothing_from_the_crate() {
    for leaf in LEAVES {
        check(leaf, &[], "a leaf is shared by layers that must not know each other");
    }
}

#[test]
fn rules_settings_decisions_and_the_domain_never_import_upward() {
    for (module, allowed, why) in LAYERS {
        check(module, allowed, why);
    }
}

#[test]
fn the_check_sees_an_upward_import() {
    let names: Vec<String> = imports("startup").into_iter().map(|(name, _)| name).collect();
    assert!(names.iter().any(|n| n == "settings"), "the scanner missed startup's `use crate::settings`: {names:?}");
}
