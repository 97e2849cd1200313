//! The layering check: every module of `src/` may use only the layers below its own (the table
//! [`LAYERS`]), only the settings and the commands know the CLI, and no subcommand uses another.
//! It reads the sources, so it fails on a `crate::…` path as written, before any review.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers, lowest first: a module may use its own layer's module and any lower rank. Equal
/// ranks are peers that must not use each other.
const LAYERS: &[(&str, u8)] = &[
    // Shared vocabulary: names, units, labels, policy, VolumeSnapshot types.
    ("model", 0),
    // The config file; and the raw arguments (see CLI_USERS for who may read them).
    ("config", 1),
    ("cli", 1),
    // Engine argv, env and output parsing (borg, restic).
    ("engines", 2),
    // The controller↔mover-pod contract: job, events, pod spec.
    ("mover", 3),
    // Pure plans: selection, hooks, snapshot, backup, prune, retention, lock.
    ("plan", 4),
    // The command error and exit codes (lock errors live with the lock plan).
    ("error", 5),
    // Reports: what a run did, its one exit-code rule, text and JSON rendering (plain data).
    ("report", 6),
    // Signals, stdout results, terminal progress, logging.
    ("runtime", 7),
    // Adapters over kube-rs, and the S3 client.
    ("kube", 8),
    ("s3", 8),
    ("push", 8),
    // Validated settings: the CLI turned into the types above.
    ("settings", 9),
    // The in-pod subcommand, and execution that always cleans up.
    ("inpod", 10),
    ("flows", 10),
    // One file per subcommand.
    ("commands", 11),
];

/// The only modules that may use `crate::cli` (besides `lib.rs` and `main.rs`).
const CLI_USERS: &[&str] = &["cli", "settings", "commands"];

fn rank(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a source text names through `crate::` (comments left out).
fn references(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a::b, c};`: every first segment of the group.
                let group = group.split('}').next().unwrap_or("");
                for part in group.split(',') {
                    let first = part.trim().split("::").next().unwrap_or("").trim();
                    if !first.is_empty() {
                        found.insert(first.to_owned());
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        }
    }
    found
}

/// The `super::x` / `crate::commands::x` names a subcommand file uses.
fn command_references(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for prefix in ["super::", "crate::commands::"] {
            let mut rest = code;
            while let Some(i) = rest.find(prefix) {
                rest = &rest[i + prefix.len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn no_module_uses_a_layer_above_its_own() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    files.sort();
    let mut problems = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&root).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        if ["lib", "main", "layers"].contains(&module.as_str()) {
            continue;
        }
        let Some(own) = rank(&module) else {
            problems.push(format!(
                "{}: module {module} is not in LAYERS",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for used in references(&text) {
            if used == module {
                continue;
            }
            match rank(&used) {
                None => problems.push(format!(
                    "{}: uses crate::{used}, which is not in LAYERS",
                    rel.display()
                )),
                Some(r) if r >= own => problems.push(format!(
                    "{}: {module} (layer {own}) uses crate::{used} (layer {r})",
                    rel.display()
                )),
                Some(_) => {}
            }
            if used == "cli" && !CLI_USERS.contains(&module.as_str()) {
                problems.push(format!(
                    "{}: only {CLI_USERS:?} may use crate::cli",
                    rel.display()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering problems:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn no_command_uses_another_command() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/commands");
    let mut files = Vec::new();
    sources(&dir, &mut files);
    let subcommands: BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|s| s != "mod")
        .collect();
    let mut problems = Vec::new();
    for file in &files {
        let me = file.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(file).unwrap();
        for used in command_references(&text) {
            if used != me && subcommands.contains(&used) {
                problems.push(format!("commands/{me}.rs uses commands::{used}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn references_are_read_from_paths_and_groups() {
    let text = "use crate::plan::lock::Lock;\nuse crate::{error::Error, model};\n// crate::commands\nlet x = crate::kube::events::record;";
    let found: Vec<String> = references(text).into_iter().collect();
    assert_eq!(found, ["error", "kube", "model", "plan"]);
}
