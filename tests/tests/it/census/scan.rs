//! What each file of a crate imports from its own crate: the module tree is walked from
//! `lib.rs` as rustc walks it (`mod x;`, `#[path]`), `#[cfg(test)]` items and files are
//! skipped (§10 exempts unit tests), and every `crate::` path is collected: `use` trees
//! (groups expanded), paths written inline, `super::` paths that climb to the root, and
//! `crate::` inside macro calls.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};

/// One import: the file (relative to the crate's `src/`) and the path after the crate root,
/// e.g. `http::RawRequest`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Import {
    pub file: String,
    pub path: Vec<String>,
}

impl Import {
    /// The top-level module the file belongs to (`sources/credential.rs` → `sources`).
    pub fn importer(&self) -> &str {
        let first = self.file.split('/').next().unwrap_or_default();
        first.strip_suffix(".rs").unwrap_or(first)
    }

    pub fn imported(&self) -> &str {
        &self.path[0]
    }

    pub fn path_text(&self) -> String {
        self.path.join("::")
    }
}

/// Every import of `webhook_core` by the crate rooted at `src/lib.rs`. `root_name` is how
/// its files spell that crate (`crate` inside it, `webhook_core` from the console); the
/// re-exports of `core_src/lib.rs` (`crate::Source`) are resolved to the module they come from.
pub fn crate_imports(src: &Path, root_name: &str, core_src: &Path) -> Vec<Import> {
    let lib = parse(&src.join("lib.rs"));
    let reexports = root_reexports(&parse(&core_src.join("lib.rs")));
    let mut found = Vec::new();
    let mut files = Vec::new();
    child_files(&lib.items, &src.join("lib.rs"), &[], &mut files);
    while let Some((file, module)) = files.pop() {
        let ast = parse(&file);
        let mut visitor = Collector {
            root_name,
            module: module.clone(),
            paths: Vec::new(),
        };
        visitor.visit_file(&ast);
        child_files(&ast.items, &file, &module, &mut files);
        let rel = file
            .strip_prefix(src)
            .expect("under src")
            .display()
            .to_string();
        for path in visitor.paths {
            found.push(Import {
                file: rel.clone(),
                path: resolve_reexport(path, &reexports),
            });
        }
    }
    found.sort();
    found.dedup();
    found
}

fn parse(file: &Path) -> syn::File {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// The folder where a file's `mod x;` children live.
fn module_dir(file: &Path) -> PathBuf {
    let parent = file.parent().expect("a file has a folder");
    match file.file_name().and_then(|n| n.to_str()) {
        Some("lib.rs" | "mod.rs" | "main.rs") => parent.to_path_buf(),
        _ => parent.join(file.file_stem().expect("a file has a stem")),
    }
}

/// The non-test `mod x;` declarations of a file, as (file, module path) pairs.
fn child_files(
    items: &[syn::Item],
    file: &Path,
    module: &[String],
    out: &mut Vec<(PathBuf, Vec<String>)>,
) {
    let dir = module_dir(file);
    for item in items {
        let syn::Item::Mod(m) = item else { continue };
        if m.content.is_some() || is_test(&m.attrs) {
            continue;
        }
        let name = m.ident.to_string();
        let child = match path_attribute(&m.attrs) {
            Some(p) => file.parent().expect("a file has a folder").join(p),
            None if dir.join(format!("{name}.rs")).exists() => dir.join(format!("{name}.rs")),
            None => dir.join(&name).join("mod.rs"),
        };
        let mut path = module.to_vec();
        path.push(name);
        out.push((child, path));
    }
}

fn path_attribute(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| match &a.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

/// `#[cfg(test)]`, and any `cfg` naming `test` (e.g. `cfg(all(test, feature = "x"))`).
fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && match &a.meta {
                syn::Meta::List(list) => names_test(list.tokens.clone()),
                _ => false,
            }
    })
}

fn names_test(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|t| match t {
        TokenTree::Ident(i) => i == "test",
        TokenTree::Group(g) => names_test(g.stream()),
        _ => false,
    })
}

/// `pub use model::{Source, ..}` in `lib.rs`: name → path.
fn root_reexports(lib: &syn::File) -> BTreeMap<String, Vec<String>> {
    let mut map = BTreeMap::new();
    for item in &lib.items {
        if let syn::Item::Use(u) = item {
            let mut paths = Vec::new();
            expand_use(&u.tree, Vec::new(), &mut paths);
            for path in paths {
                map.insert(path.last().cloned().unwrap_or_default(), path);
            }
        }
    }
    map
}

fn resolve_reexport(path: Vec<String>, reexports: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    match reexports.get(&path[0]) {
        Some(full) => full.iter().chain(&path[1..]).cloned().collect(),
        None => path,
    }
}

fn expand_use(tree: &syn::UseTree, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let with = |name: String| {
        let mut p = prefix.clone();
        p.push(name);
        p
    };
    match tree {
        syn::UseTree::Path(p) => expand_use(&p.tree, with(p.ident.to_string()), out),
        syn::UseTree::Name(n) if n.ident == "self" => out.push(prefix.clone()),
        syn::UseTree::Name(n) => out.push(with(n.ident.to_string())),
        syn::UseTree::Rename(r) => out.push(with(r.ident.to_string())),
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(g) => g
            .items
            .iter()
            .for_each(|t| expand_use(t, prefix.clone(), out)),
    }
}

struct Collector<'a> {
    root_name: &'a str,
    /// The module path of the item being visited, for `super::` and inline modules.
    module: Vec<String>,
    paths: Vec<Vec<String>>,
}

impl Collector<'_> {
    /// Records `segments` if it names the crate root: `crate::x`, or `super::` climbing
    /// out of the top-level module.
    fn record(&mut self, segments: Vec<String>) {
        let Some(first) = segments.first() else {
            return;
        };
        if first == self.root_name {
            if segments.len() > 1 {
                self.paths.push(segments[1..].to_vec());
            }
            return;
        }
        let supers = segments.iter().take_while(|s| *s == "super").count();
        if supers > 0 && supers >= self.module.len() && segments.len() > supers {
            self.paths.push(segments[supers..].to_vec());
        }
    }

    fn scan_tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            if let TokenTree::Group(g) = &tokens[i] {
                self.scan_tokens(g.stream());
            }
            let starts = matches!(&tokens[i], TokenTree::Ident(id) if *id == self.root_name);
            if starts {
                let mut path = vec![self.root_name.to_string()];
                let mut j = i + 1;
                while let (
                    Some(TokenTree::Punct(a)),
                    Some(TokenTree::Punct(b)),
                    Some(TokenTree::Ident(id)),
                ) = (tokens.get(j), tokens.get(j + 1), tokens.get(j + 2))
                {
                    if a.as_char() != ':' || b.as_char() != ':' {
                        break;
                    }
                    path.push(id.to_string());
                    j += 3;
                }
                self.record(path);
                i = j;
                continue;
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Const(i) => &i.attrs,
            syn::Item::Fn(i) => &i.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Mod(i) => &i.attrs,
            syn::Item::Static(i) => &i.attrs,
            syn::Item::Struct(i) => &i.attrs,
            syn::Item::Use(i) => &i.attrs,
            syn::Item::Macro(i) => &i.attrs,
            syn::Item::Enum(i) => &i.attrs,
            syn::Item::Trait(i) => &i.attrs,
            syn::Item::Type(i) => &i.attrs,
            _ => return visit::visit_item(self, item),
        };
        if !is_test(attrs) {
            visit::visit_item(self, item);
        }
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.module.push(m.ident.to_string());
        visit::visit_item_mod(self, m);
        self.module.pop();
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut paths = Vec::new();
        expand_use(&u.tree, Vec::new(), &mut paths);
        paths.into_iter().for_each(|p| self.record(p));
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.record(path.segments.iter().map(|s| s.ident.to_string()).collect());
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.scan_tokens(mac.tokens.clone());
        visit::visit_macro(self, mac);
    }
}
