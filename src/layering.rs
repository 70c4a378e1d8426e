//! The layering rule of `src/lib.rs`'s module map, checked against the source: every module
//! is on a floor of the map, imports (`crate::…` and `super::…` paths outside comments) only
//! reach its own floor or the ones above it in the map, and no modules import each other in
//! a circle. A failure names the file, the line and the import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module of the map (`calls`, `hw::board`) and the floor it is on (0 = top of the table).
#[derive(Debug)]
struct Map {
    units: BTreeMap<String, usize>,
    floor_names: Vec<String>,
}

impl Map {
    /// The floors table of the doc comment at the top of `lib.rs`.
    fn parse(lib: &str) -> Map {
        let mut units = BTreeMap::new();
        let mut floor_names = Vec::new();
        for line in lib.lines().filter_map(|l| l.strip_prefix("//! |")) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() < 2 || cells[0] == "floor" || cells[0].starts_with("---") {
                continue;
            }
            let floor = floor_names.len();
            floor_names.push(cells[0].to_owned());
            for link in cells[1].split(',') {
                let module = link.trim().trim_start_matches("[`").trim_end_matches("`]");
                assert!(
                    !module.is_empty()
                        && module
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c == '_' || c == ':'),
                    "lib.rs map, floor {:?}: {link:?} is not a [`module`] link",
                    cells[0]
                );
                let before = units.insert(module.to_owned(), floor);
                assert!(before.is_none(), "lib.rs map: {module} is listed twice");
            }
        }
        assert!(!units.is_empty(), "lib.rs has no module map");
        Map { units, floor_names }
    }

    /// The unit a module path belongs to: the longest prefix the map lists.
    fn unit_of(&self, path: &str) -> Option<&str> {
        let segments: Vec<&str> = path.split("::").collect();
        (1..=segments.len())
            .rev()
            .map(|n| segments[..n].join("::"))
            .find_map(|prefix| self.units.get_key_value(&prefix).map(|(k, _)| k.as_str()))
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` → `a::b`.
fn module_path(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("under src");
    let mut segments: Vec<String> = relative
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let last = segments.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" {
        segments.push(stem.to_owned());
    }
    segments.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module paths a line of module `here` imports: `crate::a::b…` as written, and
/// `super::…` (repeated as often as written) resolved against `here`.
fn imports(line: &str, here: &str) -> Vec<String> {
    let mut found = Vec::new();
    for prefix in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = line[from..].find(prefix).map(|at| from + at) {
            let before = line[..at].chars().last();
            from = at + prefix.len();
            let rest = &line[from..];
            // `my_super::`, `a::super::`: not where a path starts.
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            // `crate::{a, b}` could hide any module on the next lines: one path per `use`.
            assert!(
                !(prefix == "crate::" && rest.starts_with('{')),
                "grouped crate imports (`crate::{{…}}`) are not understood by the layering \
                 check; write one path per `use`: {line}"
            );
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let mut path = path.trim_end_matches(':');
            let mut base = if prefix == "crate::" {
                ""
            } else {
                here.rsplit_once("::").map_or("", |(parent, _)| parent)
            };
            while let Some(up) = path.strip_prefix("super") {
                path = up.trim_start_matches(':');
                base = base.rsplit_once("::").map_or("", |(parent, _)| parent);
            }
            let full = match (base.is_empty(), path.is_empty()) {
                (true, _) => path.to_owned(),
                (false, true) => base.to_owned(),
                (false, false) => format!("{base}::{path}"),
            };
            if full.is_empty() {
                continue;
            }
            // `super::{a, b::c}`: each item on this line, else the group's base.
            let group = rest[path.len()..].trim_start_matches(':');
            match group.strip_prefix('{').and_then(|g| g.split_once('}')) {
                Some((items, _)) => found.extend(
                    items
                        .split(',')
                        .map(|item| item.trim().split("::").next().unwrap_or("").trim())
                        .filter(|first| !first.is_empty() && *first != "self")
                        .map(|first| format!("{full}::{first}")),
                ),
                None => found.push(full),
            }
        }
    }
    found
}

#[derive(Debug)]
struct Edge {
    from: String,
    to: String,
    at: String,
}

fn edges(root: &Path, map: &Map) -> Vec<Edge> {
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges = Vec::new();
    for file in files {
        let module = module_path(&src, &file);
        if module == "lib" || module == "main" || module == "layering" {
            continue;
        }
        let from = map
            .unit_of(&module)
            .unwrap_or_else(|| {
                panic!(
                    "{}: module {module} is on no floor of lib.rs's map",
                    file.display()
                )
            })
            .to_owned();
        // Code sits in the file's module, except in its unit-test module (`mod tests {`, by
        // convention the file's last item), one level deeper.
        let mut here = module.clone();
        let text = std::fs::read_to_string(&file).expect("read source");
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if let Some(name) = code.strip_prefix("mod ").and_then(|l| l.strip_suffix(" {")) {
                here = format!("{module}::{name}");
            }
            for path in imports(line, &here) {
                let Some(to) = map.unit_of(&path) else {
                    continue; // `super::*` inside a file's own test module, a sibling item
                };
                if to != from {
                    edges.push(Edge {
                        from: from.clone(),
                        to: to.to_owned(),
                        at: format!(
                            "{}:{}: {}",
                            file.strip_prefix(root).unwrap().display(),
                            n + 1,
                            line.trim()
                        ),
                    });
                }
            }
        }
    }
    edges
}

/// A circle among `graph`'s nodes, if there is one, as the list of nodes along it.
fn find_cycle(graph: &BTreeMap<&str, BTreeSet<&str>>) -> Option<Vec<String>> {
    fn visit<'a>(
        node: &'a str,
        graph: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        state: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        state.insert(node, 1);
        stack.push(node);
        for &next in graph.get(node).into_iter().flatten() {
            match state.get(next) {
                Some(1) => {
                    let start = stack.iter().position(|n| *n == next).expect("on the stack");
                    let mut cycle: Vec<String> =
                        stack[start..].iter().map(|s| s.to_string()).collect();
                    cycle.push(next.to_owned());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(cycle) = visit(next, graph, state, stack) {
                        return Some(cycle);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node, 2);
        None
    }
    let mut state = BTreeMap::new();
    for &node in graph.keys() {
        if !state.contains_key(node) {
            if let Some(cycle) = visit(node, graph, &mut state, &mut Vec::new()) {
                return Some(cycle);
            }
        }
    }
    None
}

#[test]
fn every_import_goes_to_the_same_floor_or_one_above_and_none_in_a_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).expect("read lib.rs");
    let map = Map::parse(&lib);

    // Every top-level module of lib.rs is on the map.
    for line in lib.lines() {
        if let Some(name) = line
            .strip_prefix("pub mod ")
            .and_then(|l| l.strip_suffix(';'))
        {
            assert!(
                map.units.contains_key(name),
                "lib.rs: `pub mod {name}` is on no floor of the map"
            );
        }
    }

    let edges = edges(root, &map);
    let upward: Vec<String> = edges
        .iter()
        .filter(|e| map.units[e.to.as_str()] > map.units[e.from.as_str()])
        .map(|e| {
            format!(
                "{} ({}, floor {:?}) imports {} (floor {:?})",
                e.at,
                e.from,
                map.floor_names[map.units[e.from.as_str()]],
                e.to,
                map.floor_names[map.units[e.to.as_str()]]
            )
        })
        .collect();
    assert!(upward.is_empty(), "upward imports:\n{}", upward.join("\n"));

    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in &edges {
        graph
            .entry(e.from.as_str())
            .or_default()
            .insert(e.to.as_str());
    }
    if let Some(cycle) = find_cycle(&graph) {
        let witnesses: Vec<&str> = cycle
            .windows(2)
            .filter_map(|w| edges.iter().find(|e| e.from == w[0] && e.to == w[1]))
            .map(|e| e.at.as_str())
            .collect();
        panic!(
            "modules import each other in a circle: {}\n{}",
            cycle.join(" → "),
            witnesses.join("\n")
        );
    }
}

#[test]
fn the_check_sees_upward_imports_and_circles() {
    let map = Map::parse(
        "//! | floor | modules | what |\n//! |---|---|---|\n//! | low | [`a`], [`b::c`] | x |\n//! | high | [`b`] | y |\n",
    );
    assert_eq!(map.unit_of("b::c::d"), Some("b::c"));
    assert_eq!(map.unit_of("b::e"), Some("b"));
    assert_eq!(map.unit_of("z"), None);
    assert_eq!(
        imports("use crate::b::e::F; let x = super::c::G;", "b::x"),
        ["b::e::F", "b::c::G"]
    );
    assert_eq!(imports("use super::super::a;", "b::c::tests"), ["b::a"]);
    assert_eq!(imports("use super::{x, y::Z};", "b::c"), ["b::x", "b::y"]);
    assert!(imports("// see mycrate::b", "").is_empty());
    let graph: BTreeMap<&str, BTreeSet<&str>> =
        [("a", BTreeSet::from(["b"])), ("b", BTreeSet::from(["a"]))].into();
    assert_eq!(find_cycle(&graph).unwrap(), ["a", "b", "a"]);
}
