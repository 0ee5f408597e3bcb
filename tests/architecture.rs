//! The house rules of `src/lib.rs`, held by something that fails: every module lives on a
//! floor and imports only from its own floor or below; no cycle among top-level modules; the
//! signing core imports nothing of policy, config or the shell; `api` never imports `proxy`;
//! nothing in the library imports `server`; only `respond` renders an error. A failure names
//! the file and the rule it breaks.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The floors, lowest first, with the top-level modules on each (as `src/lib.rs` lists them).
const FLOORS: [(&str, &[&str]); 8] = [
    (
        "ground",
        &["error", "clock", "secret", "respond", "metrics", "notes"],
    ),
    ("core", &["sign"]),
    ("policy", &["auth", "route", "origins"]),
    ("config", &["config"]),
    (
        "shell leaves",
        &[
            "cache", "origin", "local", "limit", "tls", "creds", "keyset", "fleet", "audit",
        ],
    ),
    ("state", &["minter", "app"]),
    ("handlers", &["proxy", "api"]),
    ("serving", &["ops", "server"]),
];

fn floor_of(module: &str) -> Option<usize> {
    FLOORS.iter().position(|(_, mods)| mods.contains(&module))
}

/// Code without comments (doc links name modules without importing them).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a file names through `crate::…` (plain paths and `use crate::{…}`).
fn imports(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Items at the group's own depth, each named by its first identifier.
            let (mut depth, mut item) = (1, String::new());
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => {
                        out.insert(first_ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                item.push(c);
            }
            out.insert(first_ident(&item));
        } else {
            out.insert(first_ident(rest));
        }
    }
    // `crate::Error` is the `error` module's type, re-exported at the root.
    if out.remove("Error") {
        out.insert("error".into());
    }
    out.retain(|m| !m.is_empty() && m.chars().next().is_some_and(|c| c.is_ascii_lowercase()));
    out
}

fn first_ident(text: &str) -> String {
    text.trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Every library source file with the top-level module it belongs to.
fn sources() -> Vec<(String, String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if !rel.ends_with(".rs") || rel == "main.rs" || rel == "lib.rs" {
                continue;
            }
            let module = rel.split(['/', '.']).next().unwrap().to_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((format!("src/{rel}"), module, text));
        }
    }
    out.sort();
    out
}

#[test]
fn every_module_is_on_a_floor_and_imports_only_from_its_floor_or_below() {
    let mut broken = Vec::new();
    for (file, module, text) in sources() {
        let Some(floor) = floor_of(&module) else {
            broken.push(format!(
                "{file}: module {module} is on no floor; add it to src/lib.rs's map and to FLOORS"
            ));
            continue;
        };
        for dep in imports(&code_of(&text)) {
            if dep == module {
                continue;
            }
            match floor_of(&dep) {
                None => broken.push(format!("{file}: imports {dep}, which is on no floor")),
                Some(f) if f > floor => broken.push(format!(
                    "{file}: {module} ({}) imports {dep} ({}), a floor above it",
                    FLOORS[floor].0, FLOORS[f].0
                )),
                Some(_) => {}
            }
        }
    }
    assert!(broken.is_empty(), "\n{}", broken.join("\n"));
}

#[test]
fn top_level_modules_import_each_other_without_a_cycle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, module, text) in sources() {
        let deps = imports(&code_of(&text));
        edges
            .entry(module.clone())
            .or_default()
            .extend(deps.into_iter().filter(|d| *d != module));
    }
    // Depth-first search; a back edge is a cycle.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_owned());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_owned());
        for d in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(d, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        if let Some(cycle) = visit(m, &edges, &mut Vec::new(), &mut done) {
            panic!(
                "modules import each other in a circle: {}",
                cycle.join(" → ")
            );
        }
    }
}

#[test]
fn the_named_rules_hold() {
    let mut broken = Vec::new();
    for (file, module, text) in sources() {
        let deps = imports(&code_of(&text));
        let mut rule = |ok: bool, why: &str| {
            if !ok {
                broken.push(format!("{file}: {why}"));
            }
        };
        if module == "sign" {
            rule(
                deps.iter()
                    .all(|d| ["sign", "secret"].contains(&d.as_str())),
                "the signing core imports only itself and secret (its errors are its own; no policy, config, shell or clock)",
            );
        }
        if ["auth", "route", "origins"].contains(&module.as_str()) {
            rule(
                !deps.contains("config"),
                "policy never imports config (config builds policy values)",
            );
        }
        if module == "api" {
            rule(!deps.contains("proxy"), "api never imports proxy");
        }
        if module != "server" {
            rule(
                !deps.contains("server"),
                "nothing in the library imports server (only main does)",
            );
        }
        if module != "respond" && module != "error" {
            let code = code_of(&text);
            rule(
                !code.contains(".json_body(") && !code.contains(".s3_xml_body("),
                "only respond renders an error (use respond::error)",
            );
        }
    }
    assert!(broken.is_empty(), "\n{}", broken.join("\n"));
}

#[test]
fn the_map_lists_every_module_with_its_floor() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for (floor, modules) in FLOORS {
        assert!(
            lib.contains(&format!("## {floor}")),
            "src/lib.rs has no section for the {floor} floor"
        );
        for m in modules {
            assert!(
                lib.contains(&format!("[`{m}`]")),
                "src/lib.rs's map does not list {m}"
            );
            assert!(
                lib.contains(&format!("pub mod {m};")),
                "{m} is not a module of the crate"
            );
        }
    }
}

#[test]
fn the_import_reader_reads_every_spelling() {
    let code = "use crate::{Error, auth::{self, x}, route};\nlet a = crate::cache::get();\n// crate::server\n";
    let got = imports(&code_of(code));
    assert_eq!(
        got,
        ["auth", "cache", "error", "route"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
}
