//! The import census (issue 23): every `crate::` import of `webhook_core` (and every
//! `webhook_core::` import of the console) is compared with the rules table of ARCHITECTURE
//! §10, read from the document; and the top-level modules' import graph has no cycle.
//! `#[cfg(test)]` code is exempt, as §10 says.

mod rules;
mod scan;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use scan::Import;

/// Known breaches of §10, each `(file, import prefix)`; an empty prefix stands for any import
/// of that file. Empty since the credential wing was restructured (decision 70): a breach is
/// fixed or the table changed, never excused for long. An entry that no longer matches
/// anything fails the test, so the list cannot outlive the breaches it excuses.
const KNOWN_BREACHES: &[(&str, &str)] = &[];

/// Known cycles between top-level modules: none.
const KNOWN_CYCLES: &[&[&str]] = &[];

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn all_imports() -> Vec<Import> {
    let core = repo().join("shared/src");
    let mut imports = scan::crate_imports(&core, "crate", &core);
    for mut import in scan::crate_imports(&repo().join("console/src"), "webhook_core", &core) {
        import.file = format!("console/{}", import.file);
        imports.push(import);
    }
    imports
}

fn rules() -> rules::Rules {
    let text = std::fs::read_to_string(repo().join("docs/ARCHITECTURE.md")).expect("ARCHITECTURE");
    rules::read(&text)
}

fn excused(import: &Import) -> Option<usize> {
    KNOWN_BREACHES.iter().position(|(file, prefix)| {
        import.file == *file && (prefix.is_empty() || import.path_text().starts_with(prefix))
    })
}

#[test]
fn every_import_is_allowed_by_its_row_in_section_10() {
    let rules = rules();
    let mut breaches = Vec::new();
    let mut used = BTreeSet::new();
    for import in all_imports() {
        let from = import.importer();
        let allowed = match rules.rows.get(from) {
            Some(row) => row.permits(from, &import.path),
            None => false,
        };
        if allowed {
            continue;
        }
        match excused(&import) {
            Some(i) => {
                used.insert(i);
            }
            None if rules.rows.contains_key(from) => breaches.push(format!(
                "{}: imports `{}`, which §10's `{from}` row does not allow",
                import.file,
                import.path_text()
            )),
            None => breaches.push(format!(
                "{}: imports `{}`, and `{from}` has no row in §10",
                import.file,
                import.path_text()
            )),
        }
    }
    assert!(breaches.is_empty(), "§10 broken:\n{}", breaches.join("\n"));
    let stale: Vec<_> = (0..KNOWN_BREACHES.len())
        .filter(|i| !used.contains(i))
        .map(|i| KNOWN_BREACHES[i])
        .collect();
    assert!(
        stale.is_empty(),
        "KNOWN_BREACHES entries that no longer happen, remove them: {stale:?}"
    );
}

#[test]
fn the_rules_table_covers_every_module_and_contradicts_itself_nowhere() {
    let rules = rules();
    for module in [
        "sources", "http", "store", "queue", "pipeline", "notify", "ops",
    ] {
        assert!(rules.rows.contains_key(module), "§10 has no `{module}` row");
    }
    assert!(rules.domain.contains("model") && rules.domain.contains("config"));
    for (module, row) in &rules.rows {
        let both: Vec<_> = row.modules.intersection(&row.forbidden).collect();
        assert!(
            both.is_empty(),
            "§10's `{module}` row both allows and forbids {both:?}"
        );
    }
    let modules: BTreeSet<String> = all_imports()
        .iter()
        .map(|i| i.importer().to_string())
        .collect();
    let unruled: Vec<_> = modules
        .iter()
        .filter(|m| !rules.rows.contains_key(*m))
        .filter(|m| {
            !KNOWN_BREACHES
                .iter()
                .any(|(f, p)| p.is_empty() && f.starts_with(&format!("{m}/")))
        })
        .collect();
    assert!(unruled.is_empty(), "modules without a §10 row: {unruled:?}");
}

#[test]
fn there_is_no_import_cycle_between_top_level_modules() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for import in all_imports()
        .iter()
        .filter(|i| !i.file.starts_with("console/"))
    {
        if import.importer() != import.imported() {
            graph
                .entry(import.importer().to_string())
                .or_default()
                .insert(import.imported().to_string());
        }
    }
    let cycles = cycles(&graph);
    let known: Vec<Vec<String>> = KNOWN_CYCLES
        .iter()
        .map(|c| c.iter().map(|m| m.to_string()).collect())
        .collect();
    assert_eq!(
        cycles, known,
        "cycles between top-level modules (each a strongly connected set) differ from KNOWN_CYCLES"
    );
}

/// The strongly connected sets of more than one module, each sorted: modules that reach each
/// other (two dozen nodes, so a walk from each is enough).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(m) = stack.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reach(m))).collect();
    let mut sets = BTreeSet::new();
    for (m, r) in &reaches {
        let set: Vec<String> = reaches
            .iter()
            .filter(|(n, rn)| r.contains(**n) && rn.contains(*m))
            .map(|(n, _)| n.to_string())
            .collect();
        if set.len() > 1 {
            sets.insert(set);
        }
    }
    sets.into_iter().collect()
}

/// The scanner on a crate written here: every spelling of an import is seen, test code and
/// comments are not, and a breach of a rules table is named with its file.
#[test]
fn the_census_sees_every_spelling_of_an_import_and_names_a_breach() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path();
    let write = |name: &str, text: &str| {
        let path = src.join(name);
        std::fs::create_dir_all(path.parent().expect("folder")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write(
        "lib.rs",
        "pub mod a; pub mod b; pub mod c; pub use b::Thing;\n#[cfg(test)] mod t;",
    );
    write("t.rs", "use crate::c::Hidden;");
    write("b.rs", "pub struct Thing;");
    write("c/mod.rs", "mod inner;");
    write("c/inner.rs", "fn f() { let _ = super::super::a::X; }");
    write(
        "a.rs",
        "//! [`crate::c::Doc`]\nuse crate::{b::{self, Thing as T}, c::*};\n\
         fn f() { crate::b::g(); let _ = format!(\"{}\", crate::c::Y); let _ = crate::Thing; }\n\
         #[cfg(test)] mod tests { use crate::c::InTest; }",
    );
    let found: Vec<(String, String)> = scan::crate_imports(src, "crate", src)
        .into_iter()
        .map(|i| (i.file.clone(), i.path_text()))
        .collect();
    let expect = [
        ("a.rs", "b"),
        ("a.rs", "b::Thing"),
        ("a.rs", "b::g"),
        ("a.rs", "c"),
        ("a.rs", "c::Y"),
        ("c/inner.rs", "a::X"),
    ];
    let expect: Vec<(String, String)> = expect
        .iter()
        .map(|(f, p)| (f.to_string(), p.to_string()))
        .collect();
    assert_eq!(found, expect);

    let rules = rules::read(
        "## 10. Layers\n\n| module | role |\n| --- | --- |\n| `b.rs` | the domain |\n\n\
         | module | may import | must not import |\n| --- | --- | --- |\n\
         | domain/leaf | each other only | anything else |\n| `a` | domain, `c::Y` | `d` |\n\n## 11.",
    );
    let a = &rules.rows["a"];
    let path = |p: &str| p.split("::").map(str::to_string).collect::<Vec<_>>();
    assert!(a.permits("a", &path("b::g")) && a.permits("a", &path("c::Y")));
    assert!(!a.permits("a", &path("c")) && !a.permits("a", &path("c::Z")));
    assert!(!rules.rows["b"].permits("b", &path("a")));
    let graph = BTreeMap::from([
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        (
            "b".to_string(),
            BTreeSet::from(["a".to_string(), "c".to_string()]),
        ),
    ]);
    assert_eq!(cycles(&graph), vec![vec!["a".to_string(), "b".to_string()]]);
}
