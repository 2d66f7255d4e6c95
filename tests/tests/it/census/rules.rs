//! ARCHITECTURE §10's import rules, read from the document itself: the table is the rule,
//! and this test holds no copy of it.
//!
//! Two tables are read. The layout table (`| module | role |`) names the domain/leaf modules
//! in the row whose role begins "the domain". The rules table (`| module | may import | must
//! not import |`) gives each row's modules and what they may import: backticked names (a
//! module, `store`, or one item of it, `http::RawRequest`), "domain" or "each other" for every
//! domain/leaf module, "anything" for no limit.

use std::collections::{BTreeMap, BTreeSet};

/// What one module may import.
#[derive(Debug, Default)]
pub struct Allowed {
    pub anything: bool,
    /// Whole modules.
    pub modules: BTreeSet<String>,
    /// Single items, as paths (`["http", "RawRequest"]`).
    pub items: Vec<Vec<String>>,
    /// The "must not import" column's modules (checked against `modules` for contradictions).
    pub forbidden: BTreeSet<String>,
}

impl Allowed {
    pub fn permits(&self, from: &str, path: &[String]) -> bool {
        self.anything
            || path[0] == from
            || self.modules.contains(&path[0])
            || self.items.iter().any(|item| path.starts_with(item))
    }
}

pub struct Rules {
    pub domain: BTreeSet<String>,
    /// Module (`sources`, `console`, each domain module) → its row.
    pub rows: BTreeMap<String, Allowed>,
}

pub fn read(architecture: &str) -> Rules {
    let start = architecture.find("## 10.").expect("ARCHITECTURE has a §10");
    let end = architecture[start..]
        .find("\n## 11.")
        .map_or(architecture.len(), |e| start + e);
    let section = &architecture[start..end];
    let domain = domain_modules(section);
    let mut rows = BTreeMap::new();
    for cells in table(section, "| module | may import | must not import |") {
        let [module, may, must_not] = &cells[..] else {
            panic!("§10 rules row with {} cells: {cells:?}", cells.len())
        };
        let modules = if module.starts_with("domain") {
            domain.iter().cloned().collect()
        } else {
            backticked(module)
                .into_iter()
                .map(|m| m[0].clone())
                .collect::<Vec<_>>()
        };
        for name in modules {
            rows.insert(name, allowed(may, must_not, &domain));
        }
    }
    assert!(
        !rows.is_empty(),
        "§10 has no `| module | may import | must not import |` table"
    );
    Rules { domain, rows }
}

fn allowed(may: &str, must_not: &str, domain: &BTreeSet<String>) -> Allowed {
    let mut out = Allowed {
        anything: may.contains("anything"),
        ..Allowed::default()
    };
    if may.contains("domain") || may.contains("each other") {
        out.modules.extend(domain.iter().cloned());
    }
    for path in backticked(may) {
        if path.len() == 1 {
            out.modules.insert(path[0].clone());
        } else {
            out.items.push(path);
        }
    }
    out.forbidden = backticked(&without_asides(must_not))
        .into_iter()
        .map(|p| p[0].clone())
        .collect();
    out
}

/// A cell without its parenthesised asides ("`pipeline` (the `Accepted` outcome lives in
/// `model`)" names `pipeline` only).
fn without_asides(cell: &str) -> String {
    let mut depth = 0;
    cell.chars()
        .filter(|c| {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => return depth == 0,
            }
            false
        })
        .collect()
}

fn domain_modules(section: &str) -> BTreeSet<String> {
    let row = table(section, "| module | role |")
        .into_iter()
        .find(|cells| {
            cells
                .get(1)
                .is_some_and(|role| role.starts_with("the domain"))
        })
        .expect("§10's layout table has a row whose role begins \"the domain\"");
    backticked(&row[0])
        .into_iter()
        .map(|p| p[0].clone())
        .collect()
}

/// The body rows of the markdown table whose header line is `header`, as trimmed cells.
fn table(section: &str, header: &str) -> Vec<Vec<String>> {
    let mut lines = section.lines().skip_while(|l| l.trim() != header);
    lines.next();
    lines.next(); // the `| --- |` line
    lines
        .take_while(|l| l.trim_start().starts_with('|'))
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// The backticked names of a cell as module paths: `model.rs` → `model`, `config/` →
/// `config`, `backends::*` → `backends`, `http::RawRequest` → `http::RawRequest`. Names that
/// are not paths (`Arc<dyn PullQueue>`, `functions/*`) are left out.
fn backticked(cell: &str) -> Vec<Vec<String>> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|name| {
            let name = name.trim_end_matches(".rs").trim_end_matches('/');
            let name = name.trim_end_matches("::*");
            let path: Vec<String> = name.split("::").map(str::to_string).collect();
            let plain = path
                .iter()
                .all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            plain.then_some(path)
        })
        .collect()
}
