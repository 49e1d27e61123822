//! The module map of `docs/architecture.md`, enforced: each module of the server may import only
//! modules below it, so a request travels one way and no slice depends on the assembler.

use std::collections::BTreeMap;
use std::path::Path;

/// Every top-level module of `crates/server/src` with its layer. A module may import modules of
/// a lower layer only; a new module must be placed here (the test fails on an unknown one).
const LAYERS: &[(&str, u8)] = &[
    // Foundations: no LeadGen imports but these.
    ("secrets", 0),
    ("clock", 0),
    ("classification", 0),
    ("telemetry", 0),
    ("cli", 0),
    ("server", 0),
    ("mail", 0),
    ("pci", 0),
    ("config", 1),
    // Shared plumbing.
    ("db", 2),
    ("http", 2),
    ("state", 2),
    ("tls", 2),
    ("web", 3),
    ("audit", 3),
    ("demo", 3),
    // Slices, each on the ones before it.
    ("perimeter", 4),
    ("ops", 4),
    ("auth", 5),
    ("orgs", 6),
    ("leads", 7),
    ("companies", 8),
    ("campaigns", 8),
    ("public", 8),
    ("forms", 8),
    ("privacy", 8),
    ("backups", 8),
    ("incidents", 8),
    ("operators", 8),
    // The assembler, then the command line.
    ("startup", 9),
    ("lib", 10),
    ("main", 10),
];

/// `crate::…` paths the macro of `state` expands to, which name no module.
const MACROS: &[(&str, &str)] = &[("slice_state", "state")];

fn layer(module: &str) -> u8 {
    let module = MACROS
        .iter()
        .find(|(m, _)| *m == module)
        .map_or(module, |(_, owner)| owner);
    LAYERS
        .iter()
        .find(|(m, _)| *m == module)
        .map(|(_, l)| *l)
        .unwrap_or_else(|| {
            panic!("module {module} is not in the module map (tests/it/structure.rs)")
        })
}

/// The top-level modules a source file names through `crate::`.
fn imports(source: &str) -> Vec<String> {
    let code: String = source
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        // `$crate::` is a macro's own path.
        let dollar = at > 0 && rest.as_bytes()[at - 1] == b'$';
        rest = &rest[at + "crate::".len()..];
        if dollar {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name = item.trim().split("::").next().unwrap_or("").trim();
                if !name.is_empty() && name != "self" {
                    out.push(name.to_string());
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn every_module_imports_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut wrong: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let module = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let own = layer(&module);
        for target in imports(&std::fs::read_to_string(file).unwrap()) {
            if target == module || MACROS.iter().any(|(m, o)| *m == target && *o == module) {
                continue;
            }
            if layer(&target) >= own {
                wrong
                    .entry(rel.display().to_string())
                    .or_default()
                    .push(target);
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the module map (a module may import only lower layers): {wrong:#?}"
    );
}

#[test]
fn the_import_reader_sees_paths_and_groups() {
    let found = imports(
        "use crate::http::AppError;\nuse crate::{db, web::Shell};\n// crate::startup\nlet x = $crate::state::Core;",
    );
    assert_eq!(found, ["http", "db", "web"]);
}
