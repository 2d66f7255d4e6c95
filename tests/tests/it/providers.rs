//! A source is registered everywhere or the suite says where not (issue 23, item 6;
//! ARCHITECTURE §2, "Adding a provider"). From the one registry of sources (`Source::ALL`) each
//! source must have: its route in `http::ROUTES`; its binary (`Binary::of_source`) as a
//! `functions/<binary>` package, a workspace member whose main serves that source; one
//! template.yaml function built from that binary with the route as its POST event and the
//! source's own variables (`config::vars`, credentials among them) in its environment and in
//! the README; fixtures under `shared/fixtures/<source>/` with a README saying where they come
//! from (and, for `documented/`, a README naming each file); an `events/<binary>/` sample for
//! every fixture; a handler suite `it/<source>.rs`; its row in ARCHITECTURE §2's route table
//! and its webhook URL output in the README.
//!
//! What the compiler already enforces (exhaustive `match`es on `Source` and `Binary`) is not
//! repeated here; the checklist in ARCHITECTURE names those places too.

use std::path::Path;

use webhook_core::config::vars::{self, Binaries, Binary, InTemplate};
use webhook_core::http::ROUTES;
use webhook_core::Source;
use webhook_tests::events::repo_root;

use crate::template::load::Template;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn json_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// The route, the binary's package and main, and the workspace membership.
fn code_places(source: Source, binary: Binary, missing: &mut Vec<String>) {
    let routes: Vec<_> = ROUTES.iter().filter(|(_, s)| *s == source).collect();
    if routes.len() != 1 {
        missing.push(format!(
            "{} routes in http::ROUTES (one wanted)",
            routes.len()
        ));
    }
    if binary.source() != Some(source) {
        missing.push(format!("Binary::{binary:?}.source() is not {source:?}"));
    }
    let root = repo_root();
    let package = format!("functions/{}", binary.name());
    let main = read(&root.join(&package).join("src/main.rs"));
    if !main.contains(&format!("Source::{source:?}")) {
        missing.push(format!("{package}/src/main.rs serving Source::{source:?}"));
    }
    if !read(&root.join("Cargo.toml")).contains(&format!("\"{package}\"")) {
        missing.push(format!("{package} in the workspace members"));
    }
}

/// The source's own variables: those only its binary and webhooks-local read.
fn own_vars(source: Source) -> Vec<&'static vars::Var> {
    vars::ALL
        .iter()
        .copied()
        .filter(|v| v.binaries == Binaries::serving(source))
        .collect()
}

/// The template function: built from the binary, POST on the route, the source's variables
/// set; and the README names those variables.
fn template_places(source: Source, binary: Binary, t: &Template, missing: &mut Vec<String>) {
    let functions = t.function_of_binary(binary.name());
    let [name] = functions.as_slice() else {
        missing.push(format!(
            "one template.yaml function built from `{}`",
            binary.name()
        ));
        return;
    };
    let f = &t.resources()[name.as_str()];
    let route = webhook_core::http::route_for(source);
    let routed = f["Properties"]["Events"]
        .as_object()
        .into_iter()
        .flatten()
        .any(|(_, e)| {
            e["Type"] == "HttpApi"
                && e["Properties"]["Path"] == route
                && e["Properties"]["Method"] == "POST"
        });
    if !routed {
        missing.push(format!("{name}: a POST HttpApi event on {route}"));
    }
    let own = own_vars(source);
    if !own.iter().any(|v| v.secret) {
        missing.push("a credential variable (secret) of its own in config::vars".into());
    }
    let env = t.env(f);
    let readme = read(&repo_root().join("README.md"));
    for var in own {
        if matches!(var.template, InTemplate::Set) && !env.contains_key(var.name) {
            missing.push(format!("{name}: {} in its environment", var.name));
        }
        if !readme.contains(&format!("`{}`", var.name)) {
            missing.push(format!("README: {}", var.name));
        }
    }
    let output = name.strip_suffix("Function").unwrap_or(name).to_string() + "WebhookUrl";
    if !readme.contains(&output) {
        missing.push(format!("README: the {output} output the provider is given"));
    }
    let row = format!(
        "| `POST {route}` | `{}` | `{}` | `{name}` |",
        source.as_str(),
        binary.name()
    );
    if !read(&repo_root().join("docs/ARCHITECTURE.md")).contains(&row) {
        missing.push(format!("ARCHITECTURE §2 row {row}"));
    }
}

/// Fixtures with their provenance, one events/ sample per fixture, the handler suite.
fn sample_places(source: Source, binary: Binary, missing: &mut Vec<String>) {
    let root = repo_root();
    let fixtures_rel = format!("shared/fixtures/{}", source.as_str());
    let fixtures = root.join(&fixtures_rel);
    let mut expected: Vec<String> = json_files(&fixtures);
    if expected.is_empty() {
        missing.push(format!("{fixtures_rel}/*.json fixtures"));
    }
    if !fixtures.join("README.md").exists() {
        missing.push(format!("{fixtures_rel}/README.md (where they come from)"));
    }
    let documented = fixtures.join("documented");
    if documented.exists() {
        let index = read(&documented.join("README.md"));
        for file in json_files(&documented) {
            if !index.contains(&format!("`{file}`")) {
                missing.push(format!("{fixtures_rel}/documented/README.md citing {file}"));
            }
            expected.push(format!("documented_{file}"));
        }
    }
    let events = json_files(&root.join("events").join(binary.name()));
    for sample in expected.iter().filter(|f| !events.contains(f)) {
        missing.push(format!(
            "events/{}/{sample} (events/generate.py)",
            binary.name()
        ));
    }
    let suite = format!("{}.rs", source.as_str());
    let main = read(&root.join("tests/tests/it/main.rs"));
    if !root.join("tests/tests/it").join(&suite).exists()
        || !main.contains(&format!("mod {};", source.as_str()))
    {
        missing.push(format!("tests/tests/it/{suite}, a module of main.rs"));
    }
}

fn unregistered(source: Source, t: &Template) -> Vec<String> {
    let binary = Binary::of_source(source);
    let mut missing = Vec::new();
    code_places(source, binary, &mut missing);
    template_places(source, binary, t, &mut missing);
    sample_places(source, binary, &mut missing);
    missing
}

#[test]
fn every_source_is_registered_in_every_place() {
    let (_, t) = Template::load();
    let problems: Vec<String> = Source::ALL
        .iter()
        .flat_map(|s| {
            unregistered(*s, &t)
                .into_iter()
                .map(move |m| format!("{s}: {m}"))
        })
        .collect();
    assert!(
        problems.is_empty(),
        "sources registered incompletely (ARCHITECTURE §2, \"Adding a provider\"):\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn an_incomplete_registration_is_named() {
    // The real template without the fulfilment function: the source is named, with the place.
    let (_, mut t) = Template::load();
    let resources = t.doc["Resources"].as_object_mut().expect("Resources");
    resources.retain(|_, r| r["Metadata"]["BuildProperties"]["Binary"] != "fulfilment");
    let missing = unregistered(Source::Fulfilment, &t);
    assert!(
        missing
            .iter()
            .any(|m| m.contains("function built from `fulfilment`")),
        "{missing:?}"
    );
    // An event route moved: the function is there, its route is not.
    let (_, mut t) = Template::load();
    let name = t.function_of_binary("invoice")[0].clone();
    t.doc["Resources"][&name]["Properties"]["Events"]["Webhook"]["Properties"]["Path"] =
        "/elsewhere".into();
    let missing = unregistered(Source::Invoice, &t);
    assert!(
        missing
            .iter()
            .any(|m| m.contains("POST HttpApi event on /callback/update-invoice")),
        "{missing:?}"
    );
    let (_, t) = Template::load();
    assert!(unregistered(Source::Abaha, &t).is_empty());
}
