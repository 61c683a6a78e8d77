//! The layering in `docs/architecture.md`, checked: a module may import only modules of its own layer or
//! below, and `axum` (the HTTP framework) stays in the HTTP edge and the composition root. Today's
//! exceptions are listed in `ALLOWED_UPWARD` and `ALLOWED_AXUM`; each list may only shrink. A new upward
//! import fails this test, and so does an entry that no longer occurs (delete it from the list).

use std::collections::BTreeSet;
use std::path::Path;

/// Layers, top to bottom; a module imports only from its own row or rows below it.
const LAYERS: &[(&str, &[&str])] = &[
    ("composition root", &["main", "server", "service"]),
    ("edge", &["http", "cli"]),
    (
        "features",
        &[
            "accounts",
            "apps",
            "audit",
            "email",
            "keys",
            "mfa",
            "oauth",
            "orgs",
            "ratelimit",
            "sessions",
            "users",
        ],
    ),
    ("tenant context", &["error"]),
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
            "error",
            "telemetry",
            "time_now",
            "uri",
        ],
    ),
];

/// Upward imports that exist today, as "importing file -> imported module". Most are the `Services` bag
/// (to be dissolved into the composition root) and storage naming the features' record types. The latter
/// all go through `storage/mod.rs` (its `prelude`, which the per-aggregate query files use): moving the
/// records to a `model/` layer below storage removes those entries; see `docs/architecture.md`.
const ALLOWED_UPWARD: &[&str] = &[
    "accounts/mod.rs -> service",
    "accounts/password.rs -> service",
    "accounts/reset.rs -> service",
    "accounts/signup.rs -> service",
    "accounts/verification.rs -> service",
    "apps/mod.rs -> service",
    "audit/service.rs -> service",
    "cli/mod.rs -> server",
    "cli/mod.rs -> service",
    "email/delivery.rs -> service",
    "email/mod.rs -> service",
    "http/mod.rs -> service",
    "keys/mod.rs -> service",
    "mfa/challenge.rs -> service",
    "mfa/email_code.rs -> service",
    "mfa/mod.rs -> service",
    "mfa/passkey.rs -> service",
    "mfa/recovery.rs -> service",
    "mfa/totp.rs -> service",
    "oauth/keyring.rs -> service",
    "oauth/provider.rs -> service",
    "orgs/mod.rs -> service",
    "ratelimit/mod.rs -> service",
    "sessions/service.rs -> service",
    "storage/mod.rs -> audit",
    "users/mod.rs -> service",
];

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
        let edge = matches!(module.as_str(), "http" | "main" | "server");
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
