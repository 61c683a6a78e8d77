//! The layering in `docs/architecture.md`, checked: a module may import only modules of its own layer or
//! below, and `axum` (the HTTP framework) stays in the HTTP edge and the composition root. Today's
//! exceptions are listed in `ALLOWED_UPWARD` and `ALLOWED_AXUM`; each list may only shrink. A new upward
//! import fails this test, and so does an entry that no longer occurs (delete it from the list).

use std::collections::BTreeSet;
use std::path::Path;

/// Layers, top to bottom; a module imports only from its own row or rows below it.
const LAYERS: &[(&str, &[&str])] = &[
    ("composition root", &["main", "app"]),
    ("edge", &["http", "cli"]),
    (
        "features",
        &[
            "accounts",
            "admin",
            "apps",
            "audit",
            "email",
            "keys",
            "mfa",
            "oauth",
            "orgs",
            "ratelimit",
            "sessions",
            "signin",
            "staff",
            "users",
        ],
    ),
    ("tenant context", &["deps", "error"]),
    ("store", &["storage", "ephemeral"]),
    ("records", &["model"]),
    (
        "kernel",
        &[
            "lib",
            "kernel",
            "client_addr",
            "config",
            "crypto",
            "telemetry",
            "time_now",
            "uri",
        ],
    ),
];

/// Upward imports that exist today, as "importing file -> imported module".
const ALLOWED_UPWARD: &[&str] = &[];

/// Files outside the edge and the composition root that use axum today.
const ALLOWED_AXUM: &[&str] = &[];

fn rank(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

/// The top-level module a source file belongs to (`src/oauth/token.rs` -> `oauth`, `src/lib.rs` -> `lib`).
fn owner(relative: &Path) -> String {
    let first = relative
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Every top-level module named after `crate::` in `source`, including inside `use crate::{a, b::c}`.
fn crate_references(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in source.match_indices("crate::") {
        let rest = &source[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            let mut at_item_start = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => {
                        at_item_start = true;
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 1 && at_item_start {
                    if c.is_alphanumeric() || c == '_' {
                        item.push(c);
                    } else if !item.is_empty() {
                        found.insert(std::mem::take(&mut item));
                        at_item_start = false;
                    }
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn modules_import_only_their_layer_and_below_and_axum_stays_at_the_edge() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut upward = BTreeSet::new();
    let mut axum = BTreeSet::new();
    let mut unplaced = BTreeSet::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let name = relative.to_string_lossy().to_string();
        let module = owner(relative);
        let source = std::fs::read_to_string(file).unwrap();
        let Some(own) = rank(&module) else {
            unplaced.insert(module);
            continue;
        };
        for imported in crate_references(&source) {
            match rank(&imported) {
                Some(theirs) if theirs < own => {
                    upward.insert(format!("{name} -> {imported}"));
                }
                Some(_) => {}
                None => {
                    unplaced.insert(imported);
                }
            }
        }
        let edge = matches!(module.as_str(), "http" | "main" | "app");
        if !edge && source.contains("axum") {
            axum.insert(name);
        }
    }
    assert!(
        unplaced.is_empty(),
        "modules with no layer (add them to LAYERS): {unplaced:?}"
    );
    let allowed: BTreeSet<String> = ALLOWED_UPWARD.iter().map(|s| s.to_string()).collect();
    let new: Vec<_> = upward.difference(&allowed).collect();
    let gone: Vec<_> = allowed.difference(&upward).collect();
    assert!(
        new.is_empty(),
        "imports from a layer above (move the type down, or pass it in): {new:#?}"
    );
    assert!(
        gone.is_empty(),
        "no longer imported, remove from ALLOWED_UPWARD: {gone:#?}"
    );
    let allowed_axum: BTreeSet<String> = ALLOWED_AXUM.iter().map(|s| s.to_string()).collect();
    let new: Vec<_> = axum.difference(&allowed_axum).collect();
    let gone: Vec<_> = allowed_axum.difference(&axum).collect();
    assert!(new.is_empty(), "axum outside the HTTP edge: {new:#?}");
    assert!(
        gone.is_empty(),
        "no longer uses axum, remove from ALLOWED_AXUM: {gone:#?}"
    );
}

/// Same-layer imports may not loop either: a cycle between two features means neither can be understood,
/// tested or moved without the other. Unit-test modules (`#[cfg(test)] mod tests`) are left out.
#[test]
fn top_level_modules_form_no_import_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for file in &files {
        let module = owner(file.strip_prefix(&src).unwrap());
        let source = std::fs::read_to_string(file).unwrap();
        let code = source
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or_default();
        let imports = graph.entry(module.clone()).or_default();
        imports.extend(crate_references(code).into_iter().filter(|m| *m != module));
    }
    // Depth-first search; a module met again while still on the path closes a cycle.
    fn visit(
        module: &str,
        graph: &std::collections::BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut cycle = path[at..].to_vec();
            cycle.push(module.to_string());
            return Some(cycle);
        }
        if !done.insert(module.to_string()) {
            return None;
        }
        path.push(module.to_string());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        let cycle = visit(module, &graph, &mut Vec::new(), &mut done);
        assert!(
            cycle.is_none(),
            "import cycle: {}",
            cycle.unwrap().join(" -> ")
        );
    }
}

#[test]
fn grouped_imports_are_seen() {
    let found = crate_references(
        "use crate::{orgs::{Organization, Role}, users::User};\nlet x = crate::time_now();",
    );
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        ["orgs", "time_now", "users"]
    );
}
