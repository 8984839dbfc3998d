//! The crate's layers only point down (docs/architecture.md §2): every `crate::` path in
//! a module names itself or a module on a lower layer, never one above it or beside it,
//! so there is no cycle either. A new upward import fails here with the file and line.

use std::path::{Path, PathBuf};

/// Each top-level module and its layer, bottom first.
const LAYERS: [(&str, u8); 9] = [
    ("sys", 0),
    ("wire", 1),
    ("config", 2),
    ("lb", 3),
    ("pipeline", 4),
    ("xsk", 5),
    ("runtime", 6),
    ("control", 7),
    ("pktgen", 7),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, layer)| *layer)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every module named right after `crate::` in `code` (comments already removed).
fn referenced_modules(code: &str) -> impl Iterator<Item = &str> {
    code.match_indices("crate::").filter_map(move |(at, _)| {
        let rest = &code[at + "crate::".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let preceded_by_ident = code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        (!preceded_by_ident).then_some(&rest[..end])
    })
}

#[test]
fn imports_only_point_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let Some(module) = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .filter(|first| relative.components().count() > 1 || !first.ends_with(".rs"))
        else {
            continue; // lib.rs and main.rs sit above every layer
        };
        let own = layer(module).unwrap_or_else(|| {
            panic!("src/{module}/ is not in LAYERS; give it a layer in docs/architecture.md §2 and here")
        });
        let text = std::fs::read_to_string(file).expect("read source");
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for target in referenced_modules(code) {
                let Some(theirs) = layer(target) else {
                    continue;
                };
                if target != module && theirs >= own {
                    upward.push(format!(
                        "src/{}:{}: {module} (layer {own}) uses {target} (layer {theirs})",
                        relative.display(),
                        number + 1
                    ));
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that point up or sideways:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_checker_sees_an_upward_import() {
    let code = "use crate::lb::verdict::DropReason; let x = other_crate::pktgen::y; // crate::xsk";
    let code = code.split("//").next().unwrap();
    let seen: Vec<&str> = referenced_modules(code).collect();
    assert_eq!(seen, ["lb"]);
    assert!(layer("lb") > layer("wire"));
}
