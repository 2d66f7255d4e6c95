//! template.yaml against the code: what `cfn-lint` and `sam validate --lint` cannot know
//! (issue 6, DESIGN §2, §5, §6, §8).
//!
//! - every route of `webhook_core::http::ROUTES` is a POST `HttpApi` event of exactly one
//!   function, and that function's binary serves the route's source;
//! - every Lambda binary under `functions/` (all but `webhooks-local`) is exactly one
//!   function built by `rust-cargolambda` from that binary, logging (JSON) to a log group
//!   with a retention;
//! - every environment variable the code of a binary reads is set on its function, and
//!   nothing it does not read is (the reads are found by scanning the Rust sources the binary
//!   reaches from its `main`, see [`rust`]); `ALLOW_UNVERIFIED` is never set;
//! - every table and queue a function's environment names is in its policies, every
//!   DynamoDB/SQS operation its code can call is allowed, and nothing uses `*`;
//! - the transitions queue is FIFO, redrives to a FIFO dead-letter queue, and is consumed by
//!   the notifier with `ReportBatchItemFailures` under a long enough visibility timeout;
//! - every metric the alarms watch in the `WebhookIngest` namespace is a name the code
//!   emits, for a `Service` the code emits it for, and the alarms of DESIGN §8 exist.
//!
//! Every check returns its problems as text. The unit tests at the end break a copy of the
//! real template (or feed small Rust snippets to the scanner) and assert each check notices.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use webhook_core::http::ROUTES;
use webhook_core::metrics::NAMESPACE;
use webhook_core::Source;

/// Workspace packages that are binaries but not Lambda functions.
const NOT_DEPLOYED: [(&str, &str); 1] = [(
    "webhooks-local",
    "the local gateway (DESIGN §1, §9): every endpoint over SQLite in one process",
)];

/// Variables the code may read that the template must NOT set.
const FORBIDDEN: [(&str, &str); 1] = [(
    "ALLOW_UNVERIFIED",
    "accepts unsigned requests when no credential is configured: never in AWS (DESIGN §3)",
)];

/// Variables the code may read that the template need not set, each with why that is safe.
/// (`every_excuse_is_still_needed` keeps this list from outliving the code.)
const OPTIONAL: [(&str, &str); 9] = [
    ("RUST_LOG", "log filter; defaults to info"),
    ("AWS_REGION", "reserved: set by the Lambda runtime"),
    ("AWS_DEFAULT_REGION", "reserved: set by the Lambda runtime"),
    (
        "AWS_ACCESS_KEY_ID",
        "reserved: the role's credentials, set by the Lambda runtime",
    ),
    (
        "AWS_SECRET_ACCESS_KEY",
        "reserved: the role's credentials, set by the Lambda runtime",
    ),
    (
        "AWS_SESSION_TOKEN",
        "reserved: the role's credentials, set by the Lambda runtime",
    ),
    (
        "AWS_ENDPOINT_URL",
        "emulator override (moto_server); unset = the real AWS endpoints",
    ),
    (
        "AWS_MAX_ATTEMPTS",
        "SDK attempts per call; the default (3) fits API Gateway's 30 s",
    ),
    (
        "DYNAMODB_TRANSACTION_LIMIT",
        "items per transaction; defaults to DynamoDB's own limit (100), lowered only for moto",
    ),
];

/// Variables read outside the scanned code (by dependencies) that the template may set.
const READ_BY_DEPENDENCIES: [(&str, &str); 1] = [(
    "RUST_LOG",
    "tracing-subscriber's EnvFilter in telemetry::init_json_logs",
)];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

// =========================================================================================
// The Rust scanner: which variables, DynamoDB/SQS operations and metrics the code uses.
// =========================================================================================

/// A small Rust scanner: a lexer, an item splitter and a reachability walk over names.
///
/// Reachability is by name, on purpose an over-approximation (a method call `.x(` reaches
/// every method named `x`), with one refinement: in a binary that serves one source, the
/// arms of a `match` on `Source::Other` are not followed, so the `pancake` binary does not
/// "read" `FULFILMENT_SECRETS` through the provider dispatcher. `#[cfg(test)]` code is
/// dropped. An environment read is `.get/.get_or/.require/.u64_or/.flag/.secrets(ARG)`,
/// `resolve_credentials(.., ARG, ..)` or `env::var(ARG)` with ARG a string literal or a
/// constant, plus every reached constant named `*_VAR`; only UPPER_SNAKE values count.
mod rust {
    use std::collections::{BTreeMap, BTreeSet, VecDeque};

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Tok {
        Ident(String),
        Str(String),
        Punct(char),
        /// Numbers, char literals, lifetimes.
        Lit,
    }

    fn ident_start(c: char) -> bool {
        c == '_' || c.is_alphabetic()
    }

    fn ident_char(c: char) -> bool {
        c == '_' || c.is_alphanumeric()
    }

    /// A `"..."` literal starting at `i`; returns the value and the index after it.
    fn quoted(cs: &[char], mut i: usize) -> (String, usize) {
        let mut s = String::new();
        i += 1;
        while i < cs.len() {
            match cs[i] {
                '"' => return (s, i + 1),
                '\\' => {
                    i += 1;
                    match cs.get(i) {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some('r') => s.push('\r'),
                        Some('0') => s.push('\0'),
                        Some('u') => {
                            while i < cs.len() && cs[i] != '}' {
                                i += 1;
                            }
                        }
                        Some('\n') => {
                            while cs.get(i + 1).is_some_and(|c| c.is_whitespace()) {
                                i += 1;
                            }
                        }
                        Some(c) => s.push(*c),
                        None => {}
                    }
                    i += 1;
                }
                c => {
                    s.push(c);
                    i += 1;
                }
            }
        }
        (s, i)
    }

    pub fn lex(src: &str) -> Vec<Tok> {
        let cs: Vec<char> = src.chars().collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < cs.len() {
            let c = cs[i];
            let next = cs.get(i + 1).copied();
            if c.is_whitespace() {
                i += 1;
            } else if c == '/' && next == Some('/') {
                while i < cs.len() && cs[i] != '\n' {
                    i += 1;
                }
            } else if c == '/' && next == Some('*') {
                let mut depth = 0;
                while i < cs.len() {
                    if cs[i] == '/' && cs.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if cs[i] == '*' && cs.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            } else if c == '"' {
                let (s, n) = quoted(&cs, i);
                out.push(Tok::Str(s));
                i = n;
            } else if c == '\'' {
                if next == Some('\\') {
                    i += 2;
                    while i < cs.len() && cs[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if cs.get(i + 2) == Some(&'\'') {
                    i += 3;
                } else {
                    i += 1;
                    while i < cs.len() && ident_char(cs[i]) {
                        i += 1;
                    }
                }
                out.push(Tok::Lit);
            } else if c.is_ascii_digit() {
                while i < cs.len()
                    && (ident_char(cs[i])
                        || (cs[i] == '.' && cs.get(i + 1).is_some_and(char::is_ascii_digit)))
                {
                    i += 1;
                }
                out.push(Tok::Lit);
            } else if ident_start(c) {
                let start = i;
                while i < cs.len() && ident_char(cs[i]) {
                    i += 1;
                }
                let word: String = cs[start..i].iter().collect();
                let after = cs.get(i).copied();
                if matches!(word.as_str(), "r" | "br" | "cr") && matches!(after, Some('"' | '#')) {
                    let mut j = i;
                    let mut hashes = 0;
                    while cs.get(j) == Some(&'#') {
                        hashes += 1;
                        j += 1;
                    }
                    if cs.get(j) == Some(&'"') {
                        let body = j + 1;
                        let mut k = body;
                        while k < cs.len()
                            && !(cs[k] == '"' && (1..=hashes).all(|h| cs.get(k + h) == Some(&'#')))
                        {
                            k += 1;
                        }
                        out.push(Tok::Str(cs[body..k.min(cs.len())].iter().collect()));
                        i = (k + 1 + hashes).min(cs.len());
                        continue;
                    }
                    if word == "r" && hashes == 1 {
                        // a raw identifier: r#type
                        let s = j;
                        while j < cs.len() && ident_char(cs[j]) {
                            j += 1;
                        }
                        out.push(Tok::Ident(cs[s..j].iter().collect()));
                        i = j;
                        continue;
                    }
                }
                if matches!(word.as_str(), "b" | "c") && after == Some('"') {
                    let (s, n) = quoted(&cs, i);
                    out.push(Tok::Str(s));
                    i = n;
                    continue;
                }
                out.push(Tok::Ident(word));
            } else {
                out.push(Tok::Punct(c));
                i += 1;
            }
        }
        out
    }

    pub fn is_punct(t: Option<&Tok>, c: char) -> bool {
        matches!(t, Some(Tok::Punct(p)) if *p == c)
    }

    fn is_ident(t: Option<&Tok>, w: &str) -> bool {
        matches!(t, Some(Tok::Ident(x)) if x == w)
    }

    fn ident(t: Option<&Tok>) -> Option<&str> {
        match t {
            Some(Tok::Ident(x)) => Some(x),
            _ => None,
        }
    }

    /// Index of the bracket closing the one at `i` (`(`, `[` or `{`); the end if unbalanced.
    pub fn matching(toks: &[Tok], i: usize) -> usize {
        let mut depth = 0i32;
        for (k, t) in toks.iter().enumerate().skip(i) {
            match t {
                Tok::Punct('(' | '[' | '{') => depth += 1,
                Tok::Punct(')' | ']' | '}') => {
                    depth -= 1;
                    if depth == 0 {
                        return k;
                    }
                }
                _ => {}
            }
        }
        toks.len().saturating_sub(1)
    }

    /// The index after the item or statement starting at `i`: a `;` or a `{..}` block at
    /// depth 0, whichever comes first.
    fn item_end(toks: &[Tok], i: usize) -> usize {
        let mut k = i;
        while k < toks.len() {
            match toks[k] {
                Tok::Punct('{') => return matching(toks, k) + 1,
                Tok::Punct(';') => return k + 1,
                Tok::Punct('(' | '[') => k = matching(toks, k) + 1,
                _ => k += 1,
            }
        }
        k
    }

    fn is_cfg_test(toks: &[Tok], i: usize) -> bool {
        is_punct(toks.get(i), '#')
            && is_punct(toks.get(i + 1), '[')
            && is_ident(toks.get(i + 2), "cfg")
            && is_punct(toks.get(i + 3), '(')
            && is_ident(toks.get(i + 4), "test")
            && is_punct(toks.get(i + 5), ')')
            && is_punct(toks.get(i + 6), ']')
    }

    /// Drops every `#[cfg(test)]` item or statement (test modules, test-only helpers).
    pub fn strip_cfg_test(toks: Vec<Tok>) -> Vec<Tok> {
        let mut out = Vec::with_capacity(toks.len());
        let mut i = 0;
        while i < toks.len() {
            if is_cfg_test(&toks, i) {
                let mut j = matching(&toks, i + 1) + 1;
                while is_punct(toks.get(j), '#') && is_punct(toks.get(j + 1), '[') {
                    j = matching(&toks, j + 1) + 1;
                }
                i = item_end(&toks, j);
            } else {
                out.push(toks[i].clone());
                i += 1;
            }
        }
        out
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Kind {
        Fn,
        Const,
    }

    #[derive(Debug, Clone)]
    pub struct Item {
        pub file: usize,
        /// Module path inside its crate, inline modules included (`metrics::names`).
        pub module: String,
        /// The type of the `impl` or `trait` block it sits in.
        pub owner: Option<String>,
        pub name: String,
        pub kind: Kind,
        pub toks: Vec<Tok>,
    }

    impl Item {
        /// A constant's value when it is one string literal.
        pub fn str_value(&self) -> Option<&str> {
            let eq = self.toks.iter().position(|t| is_punct(Some(t), '='))?;
            match &self.toks[eq + 1..] {
                [Tok::Str(s)] | [Tok::Str(s), Tok::Punct(';')] => Some(s),
                _ => None,
            }
        }
    }

    /// The type an `impl` header is for: `impl<T> Trait for path::Type<T> where ..`.
    fn impl_owner(header: &[Tok]) -> Option<String> {
        let mut toks = header;
        if is_punct(toks.first(), '<') {
            let mut depth = 0;
            let mut k = 0;
            while k < toks.len() {
                match &toks[k] {
                    Tok::Punct('<') => depth += 1,
                    Tok::Punct('>') if !(k > 0 && is_punct(toks.get(k - 1), '-')) => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                k += 1;
            }
            toks = &toks[(k + 1).min(toks.len())..];
        }
        if let Some(f) = toks.iter().position(|t| is_ident(Some(t), "for")) {
            toks = &toks[f + 1..];
        }
        if let Some(w) = toks.iter().position(|t| is_ident(Some(t), "where")) {
            toks = &toks[..w];
        }
        let mut depth = 0;
        let mut last = None;
        for t in toks {
            match t {
                Tok::Punct('<') => depth += 1,
                Tok::Punct('>') => depth -= 1,
                Tok::Ident(x) if depth == 0 && x != "dyn" => last = Some(x.clone()),
                _ => {}
            }
        }
        last
    }

    /// Splits a token stream into items: free functions, methods (with their owner type),
    /// constants (free and associated); inline modules are entered.
    pub fn items(
        toks: &[Tok],
        file: usize,
        module: &str,
        owner: Option<&str>,
        out: &mut Vec<Item>,
    ) {
        let mut i = 0;
        while i < toks.len() {
            let word = ident(toks.get(i));
            match word {
                _ if is_punct(toks.get(i), '#') => {
                    let mut j = i + 1;
                    if is_punct(toks.get(j), '!') {
                        j += 1;
                    }
                    i = if is_punct(toks.get(j), '[') {
                        matching(toks, j) + 1
                    } else {
                        j
                    };
                }
                Some("pub") => {
                    i += 1;
                    if is_punct(toks.get(i), '(') {
                        i = matching(toks, i) + 1;
                    }
                }
                Some("async" | "unsafe" | "default" | "extern") => {
                    i += 1;
                    if matches!(toks.get(i), Some(Tok::Str(_))) {
                        i += 1;
                    }
                }
                Some("const")
                    if matches!(
                        ident(toks.get(i + 1)),
                        Some("fn" | "unsafe" | "async" | "extern")
                    ) =>
                {
                    i += 1;
                }
                Some("fn") => {
                    let name = ident(toks.get(i + 1)).unwrap_or_default().to_string();
                    let mut k = i;
                    let end = loop {
                        match toks.get(k) {
                            None => break toks.len(),
                            Some(Tok::Punct('(' | '[')) => k = matching(toks, k) + 1,
                            Some(Tok::Punct('{')) => break matching(toks, k) + 1,
                            Some(Tok::Punct(';')) => break k + 1,
                            _ => k += 1,
                        }
                    };
                    out.push(Item {
                        file,
                        module: module.to_string(),
                        owner: owner.map(str::to_string),
                        name,
                        kind: Kind::Fn,
                        toks: toks[i..end.min(toks.len())].to_vec(),
                    });
                    i = end;
                }
                Some("const" | "static") => {
                    let mut n = i + 1;
                    if is_ident(toks.get(n), "mut") {
                        n += 1;
                    }
                    let name = ident(toks.get(n)).unwrap_or_default().to_string();
                    let end = item_end(toks, i);
                    out.push(Item {
                        file,
                        module: module.to_string(),
                        owner: owner.map(str::to_string),
                        name,
                        kind: Kind::Const,
                        toks: toks[i..end.min(toks.len())].to_vec(),
                    });
                    i = end;
                }
                Some("impl" | "trait") => {
                    let open = (i..toks.len()).find(|&k| is_punct(toks.get(k), '{'));
                    let Some(open) = open else { break };
                    let header = &toks[i + 1..open];
                    let block_owner = if word == Some("impl") {
                        impl_owner(header)
                    } else {
                        ident(header.first()).map(str::to_string)
                    };
                    let close = matching(toks, open);
                    items(
                        &toks[open + 1..close],
                        file,
                        module,
                        block_owner.as_deref(),
                        out,
                    );
                    i = close + 1;
                }
                Some("mod") if is_punct(toks.get(i + 2), '{') => {
                    let inner = ident(toks.get(i + 1)).unwrap_or_default();
                    let path = if module.is_empty() {
                        inner.to_string()
                    } else {
                        format!("{module}::{inner}")
                    };
                    let close = matching(toks, i + 2);
                    items(&toks[i + 3..close], file, &path, None, out);
                    i = close + 1;
                }
                _ => i = item_end(toks, i).max(i + 1),
            }
        }
    }

    /// `use` declarations of a file: local name -> path as written (`crate::notify::batch`).
    pub fn uses(toks: &[Tok]) -> BTreeMap<String, Vec<String>> {
        fn tree(
            toks: &[Tok],
            i: &mut usize,
            prefix: &[String],
            out: &mut BTreeMap<String, Vec<String>>,
        ) {
            let mut path = prefix.to_vec();
            loop {
                match toks.get(*i) {
                    Some(Tok::Punct('{')) => {
                        *i += 1;
                        while *i < toks.len() && !is_punct(toks.get(*i), '}') {
                            tree(toks, i, &path, out);
                            if is_punct(toks.get(*i), ',') {
                                *i += 1;
                            }
                        }
                        *i += 1;
                        return;
                    }
                    Some(Tok::Punct('*')) => {
                        *i += 1;
                        return;
                    }
                    Some(Tok::Ident(w)) => {
                        let w = w.clone();
                        *i += 1;
                        if is_punct(toks.get(*i), ':') && is_punct(toks.get(*i + 1), ':') {
                            *i += 2;
                            path.push(w);
                            continue;
                        }
                        let local = if is_ident(toks.get(*i), "as") {
                            *i += 2;
                            ident(toks.get(*i - 1)).unwrap_or(&w).to_string()
                        } else if w == "self" {
                            path.last().cloned().unwrap_or_default()
                        } else {
                            w.clone()
                        };
                        if w != "self" {
                            path.push(w);
                        }
                        out.insert(local, path);
                        return;
                    }
                    _ => return,
                }
            }
        }
        let mut out = BTreeMap::new();
        let mut i = 0;
        while i < toks.len() {
            if is_ident(toks.get(i), "use") {
                let mut j = i + 1;
                if is_punct(toks.get(j), ':') {
                    j += 2;
                }
                tree(toks, &mut j, &[], &mut out);
                i = j;
            } else {
                i += 1;
            }
        }
        out
    }

    pub struct File {
        pub rel: String,
        /// Module path inside its crate ("" for a crate root).
        pub module: String,
        /// The shared library (`webhook-core`) rather than a binary.
        pub shared: bool,
        pub toks: Vec<Tok>,
        pub uses: BTreeMap<String, Vec<String>>,
        /// Uses the DynamoDB / SQS SDK (its fluent calls are AWS operations).
        dynamodb: bool,
        sqs: bool,
    }

    /// The module of `shared/src/a/b.rs` (`a::b`) or `.../a/mod.rs` (`a`); crate roots are "".
    pub fn module_of(rel_in_src: &str) -> String {
        let p = rel_in_src.trim_end_matches(".rs");
        let p = p.strip_suffix("/mod").unwrap_or(p);
        if matches!(p, "lib" | "main") {
            return String::new();
        }
        p.replace('/', "::")
    }

    /// The files of one binary (its own crate plus the shared library), scanned.
    pub struct Universe {
        pub files: Vec<File>,
        pub items: Vec<Item>,
        modules: BTreeSet<String>,
        /// Methods (items with an owner) by name, for `.name(` calls.
        methods: BTreeMap<String, Vec<usize>>,
    }

    /// What a binary's reachable code does.
    #[derive(Debug, Default, Clone, PartialEq, Eq)]
    pub struct Usage {
        pub env: BTreeSet<String>,
        /// IAM actions of the AWS SDK calls reached (`dynamodb:GetItem`, `sqs:SendMessage`).
        pub aws_actions: BTreeSet<String>,
    }

    const ENV_METHODS: [&str; 6] = ["get", "get_or", "require", "u64_or", "flag", "secrets"];

    /// SDK fluent calls (`client.get_item()`) and transaction parts, by IAM action.
    const DYNAMODB_OPS: [(&str, &str); 13] = [
        ("get_item", "dynamodb:GetItem"),
        ("put_item", "dynamodb:PutItem"),
        ("update_item", "dynamodb:UpdateItem"),
        ("delete_item", "dynamodb:DeleteItem"),
        ("query", "dynamodb:Query"),
        ("scan", "dynamodb:Scan"),
        ("batch_get_item", "dynamodb:BatchGetItem"),
        ("batch_write_item", "dynamodb:BatchWriteItem"),
        ("transact_get_items", "dynamodb:GetItem"),
        ("create_table", "dynamodb:CreateTable"),
        ("describe_table", "dynamodb:DescribeTable"),
        ("update_time_to_live", "dynamodb:UpdateTimeToLive"),
        ("delete_table", "dynamodb:DeleteTable"),
    ];
    const DYNAMODB_TRANSACT_PARTS: [(&str, &str); 4] = [
        ("Put", "dynamodb:PutItem"),
        ("Update", "dynamodb:UpdateItem"),
        ("Delete", "dynamodb:DeleteItem"),
        ("ConditionCheck", "dynamodb:ConditionCheckItem"),
    ];
    const SQS_OPS: [(&str, &str); 10] = [
        ("send_message", "sqs:SendMessage"),
        ("send_message_batch", "sqs:SendMessage"),
        ("receive_message", "sqs:ReceiveMessage"),
        ("delete_message", "sqs:DeleteMessage"),
        ("delete_message_batch", "sqs:DeleteMessage"),
        ("change_message_visibility", "sqs:ChangeMessageVisibility"),
        ("get_queue_attributes", "sqs:GetQueueAttributes"),
        ("get_queue_url", "sqs:GetQueueUrl"),
        ("create_queue", "sqs:CreateQueue"),
        ("purge_queue", "sqs:PurgeQueue"),
    ];

    pub fn env_like(s: &str) -> bool {
        s.len() >= 2
            && s.starts_with(|c: char| c.is_ascii_uppercase())
            && s.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    }

    fn const_like(s: &str) -> bool {
        env_like(s)
    }

    fn type_like(s: &str) -> bool {
        s.starts_with(|c: char| c.is_ascii_uppercase()) && !const_like(s)
    }

    impl Universe {
        /// `sources`: (path relative to the workspace, module, shared?, text).
        pub fn new(sources: Vec<(String, String, bool, String)>) -> Universe {
            let mut files = Vec::new();
            let mut items_out = Vec::new();
            let mut modules = BTreeSet::new();
            for (idx, (rel, module, shared, text)) in sources.into_iter().enumerate() {
                let toks = strip_cfg_test(lex(&text));
                items(&toks, idx, &module, None, &mut items_out);
                if shared {
                    modules.insert(module.clone());
                }
                let uses = uses(&toks);
                let dynamodb = toks.iter().any(|t| is_ident(Some(t), "aws_sdk_dynamodb"));
                let sqs = toks.iter().any(|t| is_ident(Some(t), "aws_sdk_sqs"));
                files.push(File {
                    rel,
                    module,
                    shared,
                    toks,
                    uses,
                    dynamodb,
                    sqs,
                });
            }
            let mut methods: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for (i, it) in items_out.iter().enumerate() {
                if it.kind == Kind::Fn && it.owner.is_some() {
                    methods.entry(it.name.clone()).or_default().push(i);
                }
            }
            Universe {
                files,
                items: items_out,
                modules,
                methods,
            }
        }

        /// A written path made absolute in the shared crate's module tree, when it names
        /// something of the shared crate (`crate::`, `webhook_core::`, `super::`, `self::`,
        /// an import, or a child module); `None` for external crates.
        fn absolute(&self, file: usize, segs: &[String]) -> Option<Vec<String>> {
            let f = &self.files[file];
            let first = segs.first()?;
            let here: Vec<String> = if f.module.is_empty() {
                Vec::new()
            } else {
                f.module.split("::").map(str::to_string).collect()
            };
            let rest = segs[1..].to_vec();
            match first.as_str() {
                "webhook_core" => Some(rest),
                "crate" if f.shared => Some(rest),
                "self" => Some([here, rest].concat()),
                "super" => {
                    let mut up = here;
                    up.pop();
                    let mut tail = rest;
                    while tail.first().is_some_and(|s| s == "super") {
                        up.pop();
                        tail.remove(0);
                    }
                    Some([up, tail].concat())
                }
                _ => {
                    if let Some(path) = f.uses.get(first.as_str()) {
                        let mut full = self.absolute(file, path)?;
                        full.extend(rest);
                        return Some(full);
                    }
                    let child = [here.clone(), vec![first.clone()]].concat().join("::");
                    if f.shared && self.modules.contains(&child) {
                        return Some([here, segs.to_vec()].concat());
                    }
                    if self.modules.contains(first) {
                        return Some(segs.to_vec());
                    }
                    None
                }
            }
        }

        fn module_matches(item: &Item, module_path: &[String]) -> bool {
            let want = module_path.join("::");
            item.module == want || item.module.ends_with(&format!("::{want}"))
        }

        /// Items a path reference can mean (`a::b::NAME`, `Type::method`, `Self::X`, `name`).
        fn resolve(&self, from: &Item, segs: &[String], call: bool) -> Vec<usize> {
            let mut segs = segs.to_vec();
            if segs.first().is_some_and(|s| s == "Self") {
                match &from.owner {
                    Some(o) => segs[0] = o.clone(),
                    None => return Vec::new(),
                }
            }
            if segs.len() > 1 || self.files[from.file].uses.contains_key(segs[0].as_str()) {
                if let Some(abs) = self.absolute(from.file, &segs) {
                    if !abs.is_empty() {
                        segs = abs;
                    }
                }
            }
            let Some(last) = segs.last().cloned() else {
                return Vec::new();
            };
            let kind = if const_like(&last) {
                Kind::Const
            } else {
                Kind::Fn
            };
            let prefix = &segs[..segs.len() - 1];
            let found = |pred: &dyn Fn(&Item) -> bool| -> Vec<usize> {
                self.items
                    .iter()
                    .enumerate()
                    .filter(|(_, it)| it.name == last && it.kind == kind && pred(it))
                    .map(|(i, _)| i)
                    .collect()
            };
            match prefix.last() {
                Some(p) if type_like(p) => found(&|it: &Item| it.owner.as_deref() == Some(p)),
                Some(_) => {
                    found(&|it: &Item| it.owner.is_none() && Self::module_matches(it, prefix))
                }
                None => {
                    let local = found(&|it: &Item| it.owner.is_none() && it.file == from.file);
                    if !local.is_empty() {
                        local
                    } else if call || kind == Kind::Const {
                        // a glob import or a prelude: any free item of that name
                        found(&|it: &Item| it.owner.is_none())
                    } else {
                        Vec::new()
                    }
                }
            }
        }

        /// Reads a path (`a::b::<T>::c`) starting at `i`; returns the segments and the end.
        fn path_at(toks: &[Tok], mut i: usize) -> (Vec<String>, usize) {
            let mut segs = Vec::new();
            while let Some(w) = ident(toks.get(i)) {
                segs.push(w.to_string());
                i += 1;
                if is_punct(toks.get(i), ':') && is_punct(toks.get(i + 1), ':') {
                    i += 2;
                    if is_punct(toks.get(i), '<') {
                        let mut depth = 0;
                        while i < toks.len() {
                            match toks[i] {
                                Tok::Punct('<') => depth += 1,
                                Tok::Punct('>') => {
                                    depth -= 1;
                                    if depth == 0 {
                                        i += 1;
                                        break;
                                    }
                                }
                                _ => {}
                            }
                            i += 1;
                        }
                        if is_punct(toks.get(i), ':') && is_punct(toks.get(i + 1), ':') {
                            i += 2;
                        }
                    }
                } else {
                    break;
                }
            }
            (segs, i)
        }

        /// The tokens of `item` without the `match` arms for other sources than `keep`.
        pub fn filter_source_arms(toks: &[Tok], keep: Option<&str>) -> Vec<Tok> {
            let Some(keep) = keep else {
                return toks.to_vec();
            };
            let mut out = Vec::with_capacity(toks.len());
            let mut i = 0;
            'outer: while i < toks.len() {
                // a pattern `Source::A | Source::B =>`
                let mut j = i;
                let mut variants = Vec::new();
                while is_ident(toks.get(j), "Source")
                    && is_punct(toks.get(j + 1), ':')
                    && is_punct(toks.get(j + 2), ':')
                {
                    let Some(v) = ident(toks.get(j + 3)) else {
                        break;
                    };
                    variants.push(v.to_string());
                    j += 4;
                    if is_punct(toks.get(j), '|') {
                        j += 1;
                    } else {
                        break;
                    }
                }
                let arm = !variants.is_empty()
                    && is_punct(toks.get(j), '=')
                    && is_punct(toks.get(j + 1), '>');
                if arm && variants.iter().any(|v| v == keep) {
                    out.extend_from_slice(&toks[i..j + 2]);
                    i = j + 2;
                    continue 'outer;
                }
                if arm {
                    // skip the arm's body: a block, or an expression up to `,` or the match's `}`
                    let mut k = j + 2;
                    if is_punct(toks.get(k), '{') {
                        k = matching(toks, k) + 1;
                        if is_punct(toks.get(k), ',') {
                            k += 1;
                        }
                    } else {
                        while k < toks.len() {
                            match toks[k] {
                                Tok::Punct('(' | '[' | '{') => k = matching(toks, k) + 1,
                                Tok::Punct(',') => {
                                    k += 1;
                                    break;
                                }
                                Tok::Punct('}' | ')' | ']') => break,
                                _ => k += 1,
                            }
                        }
                    }
                    i = k;
                    continue 'outer;
                }
                out.push(toks[i].clone());
                i += 1;
            }
            out
        }

        /// A `const NAME: .. = "value";` declared inside a function body.
        fn local_const<'a>(from: &'a Item, name: &str) -> Option<&'a str> {
            from.toks.windows(2).enumerate().find_map(|(k, w)| {
                if !(is_ident(w.first(), "const") && is_ident(w.get(1), name)) {
                    return None;
                }
                let eq = (k..from.toks.len()).find(|&e| is_punct(from.toks.get(e), '='))?;
                match (from.toks.get(eq + 1), from.toks.get(eq + 2)) {
                    (Some(Tok::Str(v)), Some(Tok::Punct(';'))) => Some(v.as_str()),
                    _ => None,
                }
            })
        }

        /// Values of the UPPER_SNAKE string(s) an argument stands for.
        fn arg_values(&self, from: &Item, arg: &[Tok]) -> Vec<String> {
            match arg {
                [Tok::Str(s)] if env_like(s) => vec![s.clone()],
                [.., Tok::Ident(last)] if const_like(last) => {
                    let (segs, end) = Self::path_at(arg, 0);
                    if end != arg.len() {
                        return Vec::new();
                    }
                    if let [name] = segs.as_slice() {
                        if let Some(v) = Self::local_const(from, name) {
                            return vec![v.to_string()]
                                .into_iter()
                                .filter(|v| env_like(v))
                                .collect();
                        }
                    }
                    self.resolve(from, &segs, false)
                        .into_iter()
                        .filter_map(|c| self.items[c].str_value().map(str::to_string))
                        .filter(|v| env_like(v))
                        .collect()
                }
                _ => Vec::new(),
            }
        }

        /// The arguments of a call whose `(` is at `open`.
        fn args(toks: &[Tok], open: usize) -> Vec<&[Tok]> {
            let close = matching(toks, open);
            let mut out = Vec::new();
            let mut start = open + 1;
            let mut k = open + 1;
            while k < close {
                match toks[k] {
                    Tok::Punct('(' | '[' | '{') => k = matching(toks, k) + 1,
                    Tok::Punct(',') => {
                        out.push(&toks[start..k]);
                        k += 1;
                        start = k;
                    }
                    _ => k += 1,
                }
            }
            if start < close {
                out.push(&toks[start..close]);
            }
            out
        }

        /// Everything reachable from the `main` functions of the files `roots`, for a binary
        /// serving `source` (a `Source` variant name) or every source (`None`).
        pub fn usage(&self, roots: &[usize], source: Option<&str>) -> Usage {
            let mut usage = Usage::default();
            let mut seen = BTreeSet::new();
            let mut queue: VecDeque<usize> = self
                .items
                .iter()
                .enumerate()
                .filter(|(_, it)| {
                    roots.contains(&it.file) && it.name == "main" && it.kind == Kind::Fn
                })
                .map(|(i, _)| i)
                .collect();
            while let Some(idx) = queue.pop_front() {
                if !seen.insert(idx) {
                    continue;
                }
                let item = &self.items[idx];
                if item.kind == Kind::Const {
                    if item.name.ends_with("_VAR") {
                        if let Some(v) = item.str_value().filter(|v| env_like(v)) {
                            usage.env.insert(v.to_string());
                        }
                    }
                    continue;
                }
                let toks = Self::filter_source_arms(&item.toks, source);
                let dynamodb = self.files[item.file].dynamodb;
                let sqs = self.files[item.file].sqs;
                let mut i = 0;
                while i < toks.len() {
                    let after_dot = i > 0 && is_punct(toks.get(i - 1), '.');
                    let after_path =
                        i > 1 && is_punct(toks.get(i - 1), ':') && is_punct(toks.get(i - 2), ':');
                    let Some(word) = ident(toks.get(i)) else {
                        i += 1;
                        continue;
                    };
                    if after_dot {
                        let call = is_punct(toks.get(i + 1), '(')
                            || (is_punct(toks.get(i + 1), ':') && is_punct(toks.get(i + 3), '<'));
                        if call {
                            let open = (i + 1..toks.len())
                                .find(|&k| is_punct(toks.get(k), '('))
                                .unwrap_or(i + 1);
                            if ENV_METHODS.contains(&word) {
                                if let Some(arg) = Self::args(&toks, open).first() {
                                    usage.env.extend(self.arg_values(item, arg));
                                }
                            }
                            let no_args = is_punct(toks.get(open + 1), ')');
                            if dynamodb && no_args {
                                for (op, action) in DYNAMODB_OPS {
                                    if word == op {
                                        usage.aws_actions.insert(action.to_string());
                                    }
                                }
                            }
                            if sqs && no_args {
                                for (op, action) in SQS_OPS {
                                    if word == op {
                                        usage.aws_actions.insert(action.to_string());
                                    }
                                }
                            }
                            if let Some(ms) = self.methods.get(word) {
                                queue.extend(ms.iter().copied());
                            }
                        }
                        i += 1;
                        continue;
                    }
                    if after_path {
                        i += 1;
                        continue;
                    }
                    let (segs, end) = Self::path_at(&toks, i);
                    let call = is_punct(toks.get(end), '(');
                    let last = segs.last().map(String::as_str).unwrap_or_default();
                    if dynamodb && segs.len() >= 2 && last == "builder" {
                        let part = segs[segs.len() - 2].as_str();
                        for (p, action) in DYNAMODB_TRANSACT_PARTS {
                            if part == p {
                                usage.aws_actions.insert(action.to_string());
                            }
                        }
                    }
                    if call
                        && (last == "resolve_credentials"
                            || (last == "var" || last == "var_os")
                                && segs.len() >= 2
                                && segs[segs.len() - 2] == "env")
                    {
                        for arg in Self::args(&toks, end) {
                            usage.env.extend(self.arg_values(item, arg));
                        }
                    }
                    let is_path = segs.len() > 1;
                    if is_path || call || const_like(last) || !type_like(last) {
                        for m in self.resolve(item, &segs, call) {
                            queue.push_back(m);
                        }
                    }
                    i = end.max(i + 1);
                }
            }
            usage
        }

        /// Constants of the inline module `module` (e.g. `metrics::names`): name -> value.
        pub fn consts_of(&self, module: &str) -> BTreeMap<String, String> {
            self.items
                .iter()
                .filter(|it| it.kind == Kind::Const && it.module == module)
                .filter_map(|it| Some((it.name.clone(), it.str_value()?.to_string())))
                .collect()
        }

        /// Names used as `<module>::NAME` in the files other than `except`.
        pub fn qualified_uses(&self, module: &str, except: &str) -> BTreeSet<String> {
            let mut out = BTreeSet::new();
            for f in self.files.iter().filter(|f| f.rel != except) {
                for w in f.toks.windows(4) {
                    if let [Tok::Ident(m), Tok::Punct(':'), Tok::Punct(':'), Tok::Ident(n)] = w {
                        if m == module {
                            out.insert(n.clone());
                        }
                    }
                }
            }
            out
        }

        /// The string values `MetricLine::new(..)` is called with (literals or constants).
        pub fn metric_services(&self) -> BTreeSet<String> {
            let mut out = BTreeSet::new();
            for it in self.items.iter().filter(|it| it.kind == Kind::Fn) {
                let t = &it.toks;
                for k in 0..t.len() {
                    let hit = is_ident(t.get(k), "MetricLine")
                        && is_punct(t.get(k + 1), ':')
                        && is_ident(t.get(k + 3), "new")
                        && is_punct(t.get(k + 4), '(');
                    if !hit {
                        continue;
                    }
                    if let Some(arg) = Self::args(t, k + 4).first() {
                        match arg {
                            [Tok::Str(s)] => {
                                out.insert(s.clone());
                            }
                            [.., Tok::Ident(c)] if const_like(c) => {
                                let (segs, _) = Self::path_at(arg, 0);
                                for m in self.resolve(it, &segs, false) {
                                    if let Some(v) = self.items[m].str_value() {
                                        out.insert(v.to_string());
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            out
        }
    }
}

// =========================================================================================
// The workspace: binaries and their code.
// =========================================================================================

#[derive(Debug, Clone)]
struct Binary {
    name: String,
    /// Workspace-relative directory of its package.
    package: String,
    /// The `Source` variant its main serves (`None`: the notifier, which serves them all).
    source: Option<String>,
    usage: rust::Usage,
}

#[derive(Clone)]
struct Code {
    binaries: BTreeMap<String, Binary>,
    metric_names: BTreeMap<String, String>,
    /// Metric names (values) the code emits outside metrics.rs.
    emitted_metrics: BTreeSet<String>,
    /// `Service` dimension values the code emits.
    services: BTreeSet<String>,
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `[[bin]]` names of a package manifest (or the package name when it declares none).
fn bin_names(manifest: &str) -> Vec<String> {
    let mut section = String::new();
    let mut package = None;
    let mut bins = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        let Some(value) = line
            .strip_prefix("name")
            .map(str::trim_start)
            .and_then(|r| r.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_string())
        else {
            continue;
        };
        match section.as_str() {
            "[[bin]]" => bins.push(value),
            "[package]" => package = Some(value),
            _ => {}
        }
    }
    if bins.is_empty() {
        bins.extend(package);
    }
    bins
}

/// The workspace members under functions/, from the root manifest.
fn function_packages(root: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("root Cargo.toml");
    manifest
        .split('"')
        .filter(|s| s.starts_with("functions/"))
        .map(str::to_string)
        .collect()
}

fn shared_sources(root: &Path) -> Vec<(String, String, bool, String)> {
    let src = root.join("shared/src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    files
        .into_iter()
        .map(|p| {
            let in_src = p
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&p).unwrap();
            (rel, rust::module_of(&in_src), true, text)
        })
        .collect()
}

fn scan_code(root: &Path) -> Code {
    let shared = shared_sources(root);
    let mut binaries = BTreeMap::new();
    for package in function_packages(root) {
        let manifest = std::fs::read_to_string(root.join(&package).join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("{package}/Cargo.toml: {e}"));
        for name in bin_names(&manifest) {
            if NOT_DEPLOYED.iter().any(|(n, _)| *n == name) {
                continue;
            }
            let mut own = Vec::new();
            rs_files(&root.join(&package).join("src"), &mut own);
            let own: Vec<(String, String, bool, String)> = own
                .iter()
                .filter(|p| !p.ends_with("lib.rs"))
                .map(|p| {
                    let rel = p
                        .strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/");
                    let in_src = p
                        .strip_prefix(root.join(&package).join("src"))
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/");
                    (
                        rel,
                        rust::module_of(&in_src),
                        false,
                        std::fs::read_to_string(p).unwrap(),
                    )
                })
                .collect();
            let roots: Vec<usize> = (shared.len()..shared.len() + own.len()).collect();
            let universe = rust::Universe::new([shared.clone(), own].concat());
            let mut sources = BTreeSet::new();
            for &r in &roots {
                for w in universe.files[r].toks.windows(4) {
                    if let [rust::Tok::Ident(s), rust::Tok::Punct(':'), rust::Tok::Punct(':'), rust::Tok::Ident(v)] =
                        w
                    {
                        if s == "Source" {
                            sources.insert(v.clone());
                        }
                    }
                }
            }
            assert!(
                sources.len() <= 1,
                "binary {name} names several sources {sources:?}: one Lambda serves one route"
            );
            let source = sources.into_iter().next();
            let usage = universe.usage(&roots, source.as_deref());
            binaries.insert(
                name.clone(),
                Binary {
                    name,
                    package: package.clone(),
                    source,
                    usage,
                },
            );
        }
    }
    let universe = rust::Universe::new(shared);
    let metric_names = universe.consts_of("metrics::names");
    let used = universe.qualified_uses("names", "shared/src/metrics.rs");
    let emitted_metrics = metric_names
        .iter()
        .filter(|(k, _)| used.contains(*k))
        .map(|(_, v)| v.clone())
        .collect();
    let mut services: BTreeSet<String> =
        Source::ALL.iter().map(|s| s.as_str().to_string()).collect();
    services.extend(universe.metric_services());
    Code {
        binaries,
        metric_names,
        emitted_metrics,
        services,
    }
}

// =========================================================================================
// The template.
// =========================================================================================

fn yaml_to_json(y: &yaml_rust2::Yaml) -> Result<Value, String> {
    use yaml_rust2::Yaml;
    Ok(match y {
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(s.clone())),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect::<Result<_, _>>()?),
        Yaml::Hash(h) => {
            let mut m = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) | Yaml::Real(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => return Err(format!("unsupported mapping key {other:?}")),
                };
                m.insert(key, yaml_to_json(v)?);
            }
            Value::Object(m)
        }
        Yaml::Null => Value::Null,
        Yaml::Alias(_) => return Err("YAML aliases are not supported in template.yaml".into()),
        Yaml::BadValue => return Err("unreadable YAML value".into()),
    })
}

/// Parses template.yaml; short-form tags (`!Ref`) are refused: a plain YAML parser would
/// read them as strings and every check below would be wrong.
fn parse_template(text: &str) -> Result<Value, String> {
    for (n, line) in text.lines().enumerate() {
        let code = line.split(" #").next().unwrap_or_default();
        if code.trim_start().starts_with('#') {
            continue;
        }
        let chars: Vec<char> = code.chars().collect();
        for (k, c) in chars.iter().enumerate() {
            let prev_ok = k == 0 || matches!(chars[k - 1], ' ' | '[' | ',' | '{' | '-');
            if *c == '!' && prev_ok && chars.get(k + 1).is_some_and(char::is_ascii_uppercase) {
                return Err(format!(
                    "template.yaml:{}: short-form intrinsic tag; write the long form (Ref, Fn::Sub, Fn::GetAtt)",
                    n + 1
                ));
            }
        }
    }
    let docs = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    let doc = docs.first().ok_or("template.yaml is empty")?;
    yaml_to_json(doc)
}

struct Template {
    doc: Value,
}

/// One Allow statement of a function's policies.
struct Grant {
    actions: Vec<String>,
    resources: Vec<Value>,
}

fn as_list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

fn ref_of(v: &Value) -> Option<&str> {
    v.get("Ref")?.as_str()
}

fn getatt_of(v: &Value) -> Option<(&str, &str)> {
    match v.get("Fn::GetAtt")? {
        Value::Array(a) if a.len() == 2 => Some((a[0].as_str()?, a[1].as_str()?)),
        Value::String(s) => s.split_once('.'),
        _ => None,
    }
}

/// Logical ids a value refers to (Ref, Fn::GetAtt, `${X}` / `${X.Attr}` in Fn::Sub).
fn referenced(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = ref_of(v) {
                out.insert(r.to_string());
            }
            if let Some((r, _)) = getatt_of(v) {
                out.insert(r.to_string());
            }
            if let Some(sub) = m.get("Fn::Sub") {
                let text = match sub {
                    Value::Array(a) => a.first().and_then(Value::as_str).unwrap_or_default(),
                    other => other.as_str().unwrap_or_default(),
                };
                for part in text.split("${").skip(1) {
                    let name = part.split('}').next().unwrap_or_default();
                    let name = name.split('.').next().unwrap_or_default();
                    if !name.starts_with("AWS::") && !name.starts_with('!') {
                        out.insert(name.to_string());
                    }
                }
            }
            for value in m.values() {
                referenced(value, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| referenced(x, out)),
        _ => {}
    }
}

/// The literal text of a value (strings, and Fn::Sub templates), to look for wildcards.
fn literal_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(literal_text).collect::<Vec<_>>().join(" "),
        Value::Object(m) => m
            .iter()
            .filter(|(k, _)| *k != "Ref" && *k != "Fn::GetAtt")
            .map(|(_, x)| literal_text(x))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

impl Template {
    fn load() -> (String, Template) {
        let text = std::fs::read_to_string(workspace_root().join("template.yaml"))
            .expect("template.yaml at the workspace root");
        let doc = parse_template(&text).unwrap_or_else(|e| panic!("{e}"));
        (text, Template { doc })
    }

    fn resources(&self) -> &Map<String, Value> {
        self.doc["Resources"].as_object().expect("Resources")
    }

    fn type_of(&self, logical: &str) -> Option<&str> {
        self.resources().get(logical)?.get("Type")?.as_str()
    }

    fn of_type<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        self.resources()
            .iter()
            .filter(move |(_, r)| r["Type"].as_str() == Some(ty))
    }

    fn functions(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.of_type("AWS::Serverless::Function")
    }

    /// A function property, falling back to Globals.Function.
    fn prop<'a>(&'a self, f: &'a Value, key: &str) -> Option<&'a Value> {
        f["Properties"]
            .get(key)
            .or_else(|| self.doc["Globals"]["Function"].get(key))
    }

    fn binary_of<'a>(&self, f: &'a Value) -> Option<&'a str> {
        f["Metadata"]["BuildProperties"]["Binary"].as_str()
    }

    fn function_of_binary(&self, binary: &str) -> Vec<&String> {
        self.functions()
            .filter(|(_, f)| self.binary_of(f) == Some(binary))
            .map(|(n, _)| n)
            .collect()
    }

    /// The function's environment (Globals merged under its own).
    fn env(&self, f: &Value) -> BTreeMap<String, Value> {
        let mut env = BTreeMap::new();
        for src in [&self.doc["Globals"]["Function"], &f["Properties"]] {
            if let Some(vars) = src["Environment"]["Variables"].as_object() {
                env.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        env
    }

    /// The Allow statements of a function's inline policies; other entries are problems.
    fn grants(&self, name: &str, f: &Value, problems: &mut Vec<String>) -> Vec<Grant> {
        let mut grants = Vec::new();
        if f["Properties"].get("Role").is_some() {
            problems.push(format!(
                "{name}: an explicit Role cannot be checked; use Policies with inline statements"
            ));
        }
        for entry in as_list(&f["Properties"]["Policies"]) {
            let Some(statements) = entry.get("Statement") else {
                problems.push(format!(
                    "{name}: policy entry {entry} is not an inline statement list (managed policies and SAM policy templates grant more than the code uses)"
                ));
                continue;
            };
            for st in as_list(statements) {
                if st["Effect"].as_str() != Some("Allow") {
                    continue;
                }
                grants.push(Grant {
                    actions: as_list(&st["Action"])
                        .into_iter()
                        .filter_map(|a| a.as_str().map(str::to_string))
                        .collect(),
                    resources: as_list(&st["Resource"]).into_iter().cloned().collect(),
                });
            }
        }
        grants
    }

    /// Functions' timeouts (seconds).
    fn timeout(&self, f: &Value) -> Option<i64> {
        self.prop(f, "Timeout")?.as_i64()
    }

    fn alarms(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.of_type("AWS::CloudWatch::Alarm")
    }

    /// (namespace, metric, dimensions) of an alarm, metric-math alarms included.
    fn alarm_metrics(alarm: &Value) -> Vec<(String, String, BTreeMap<String, Value>)> {
        let p = &alarm["Properties"];
        let mut out = Vec::new();
        let dims = |d: &Value| -> BTreeMap<String, Value> {
            as_list(d)
                .into_iter()
                .filter_map(|x| Some((x["Name"].as_str()?.to_string(), x["Value"].clone())))
                .collect()
        };
        if let Some(metric) = p["MetricName"].as_str() {
            out.push((
                p["Namespace"].as_str().unwrap_or_default().to_string(),
                metric.to_string(),
                dims(&p["Dimensions"]),
            ));
        }
        for m in as_list(&p["Metrics"]) {
            let metric = &m["MetricStat"]["Metric"];
            if let Some(name) = metric["MetricName"].as_str() {
                out.push((
                    metric["Namespace"].as_str().unwrap_or_default().to_string(),
                    name.to_string(),
                    dims(&metric["Dimensions"]),
                ));
            }
        }
        out
    }
}

fn refers_to(v: &Value, logical: &str) -> bool {
    let mut set = BTreeSet::new();
    referenced(v, &mut set);
    set.contains(logical)
}

// =========================================================================================
// The checks.
// =========================================================================================

/// Every route of DESIGN §2 is a POST HttpApi event of one function, whose binary serves it.
fn check_routes(t: &Template, code: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    let mut declared = BTreeMap::new();
    for (name, f) in t.functions() {
        let Some(events) = f["Properties"]["Events"].as_object() else {
            continue;
        };
        for (ev_name, ev) in events {
            if ev["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let p = &ev["Properties"];
            let path = p["Path"].as_str().unwrap_or_default().to_string();
            let method = p["Method"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_uppercase();
            if method != "POST" {
                problems.push(format!(
                    "{name}.{ev_name}: {path} is {method}, the providers POST"
                ));
            }
            match ref_of(&p["ApiId"]) {
                Some(api) if t.type_of(api) == Some("AWS::Serverless::HttpApi") => {}
                _ => problems.push(format!(
                    "{name}.{ev_name}: ApiId must Ref the template's AWS::Serverless::HttpApi"
                )),
            }
            declared
                .entry(path)
                .or_insert_with(Vec::new)
                .push(name.clone());
        }
    }
    for (path, source) in ROUTES {
        let Some(fns) = declared.remove(path) else {
            problems.push(format!(
                "route POST {path} ({source}) has no function with that HttpApi event"
            ));
            continue;
        };
        if fns.len() != 1 {
            problems.push(format!(
                "route {path} is served by several functions: {fns:?}"
            ));
        }
        let want = format!("{source:?}");
        for f in fns {
            let binary = t.binary_of(&t.resources()[&f]).unwrap_or_default();
            match code.binaries.get(binary) {
                Some(b) if b.source.as_deref() == Some(want.as_str()) => {}
                Some(b) => problems.push(format!(
                    "route {path} goes to {f} (binary {binary}), which serves {:?}, not {want}",
                    b.source
                )),
                None => problems.push(format!(
                    "route {path} goes to {f}, whose binary {binary:?} does not exist"
                )),
            }
        }
    }
    for (path, fns) in declared {
        problems.push(format!(
            "HttpApi route {path} on {fns:?} is not a route of http::ROUTES"
        ));
    }
    // Each route's full URL is an output, to paste into the provider's dashboard.
    let outputs: Vec<String> = t.doc["Outputs"]
        .as_object()
        .map(|o| o.values().map(|v| literal_text(&v["Value"])).collect())
        .unwrap_or_default();
    for (path, source) in ROUTES {
        let url = outputs
            .iter()
            .any(|o| o.starts_with("https://${") && o.ends_with(path));
        if !url {
            problems.push(format!(
                "no output gives the https URL of {path} ({source})"
            ));
        }
    }
    problems
}

/// Every Lambda binary is one function built from it by cargo-lambda, on the Lambda
/// runtime for Rust, logging JSON to a log group with a retention.
fn check_binaries(t: &Template, code: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    for name in code.binaries.keys() {
        match t.function_of_binary(name).len() {
            1 => {}
            0 => problems.push(format!(
                "binary {name} has no function (Metadata.BuildProperties.Binary: {name})"
            )),
            n => problems.push(format!("binary {name} is built by {n} functions")),
        }
    }
    for (name, f) in t.functions() {
        match t.binary_of(f) {
            Some(b) if code.binaries.contains_key(b) => {}
            Some(b) => problems.push(format!(
                "{name} builds binary {b:?}, which is not a Lambda binary under functions/"
            )),
            None => problems.push(format!("{name}: no Metadata.BuildProperties.Binary")),
        }
        if f["Metadata"]["BuildMethod"].as_str() != Some("rust-cargolambda") {
            problems.push(format!(
                "{name}: Metadata.BuildMethod must be rust-cargolambda"
            ));
        }
        let expect = [
            ("Runtime", Value::from("provided.al2023")),
            ("Handler", Value::from("bootstrap")),
            ("Architectures", serde_json::json!(["arm64"])),
        ];
        for (key, want) in expect {
            if t.prop(f, key) != Some(&want) {
                problems.push(format!("{name}: {key} must be {want}"));
            }
        }
        // CodeUri: the workspace root, where `cargo lambda build --bin <binary>` runs and
        // target/lambda/<binary>/bootstrap appears.
        if t.prop(f, "CodeUri")
            .and_then(Value::as_str)
            .map(|s| s.trim_end_matches('/'))
            != Some(".")
        {
            problems.push(format!("{name}: CodeUri must be the workspace root (.)"));
        }
        let logging = t.prop(f, "LoggingConfig");
        let format = f["Properties"]["LoggingConfig"]["LogFormat"]
            .as_str()
            .or_else(|| t.doc["Globals"]["Function"]["LoggingConfig"]["LogFormat"].as_str());
        if format != Some("JSON") {
            problems.push(format!("{name}: LoggingConfig.LogFormat must be JSON"));
        }
        let group = logging.and_then(|l| ref_of(&l["LogGroup"]));
        match group {
            Some(g) if t.type_of(g) == Some("AWS::Logs::LogGroup") => {
                if t.resources()[g]["Properties"]
                    .get("RetentionInDays")
                    .is_none()
                {
                    problems.push(format!("{name}: log group {g} has no RetentionInDays"));
                }
            }
            _ => problems.push(format!(
                "{name}: LoggingConfig.LogGroup must Ref an AWS::Logs::LogGroup"
            )),
        }
    }
    problems
}

/// What each function's code reads is set; nothing else is; ALLOW_UNVERIFIED never.
fn check_env(t: &Template, code: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, f) in t.functions() {
        let env = t.env(f);
        for (var, why) in FORBIDDEN {
            if env.contains_key(var) {
                problems.push(format!("{name} sets {var}: {why}"));
            }
        }
        let Some(binary) = t.binary_of(f).and_then(|b| code.binaries.get(b)) else {
            continue;
        };
        let reads = &binary.usage.env;
        for var in reads {
            let excused = OPTIONAL
                .iter()
                .chain(FORBIDDEN.iter())
                .any(|(v, _)| v == var);
            if !excused && !env.contains_key(var) {
                problems.push(format!(
                    "{name} (binary {}) reads {var}, which the template does not set",
                    binary.name
                ));
            }
        }
        for var in env.keys() {
            let read_elsewhere = READ_BY_DEPENDENCIES.iter().any(|(v, _)| v == var);
            if !reads.contains(var) && !read_elsewhere {
                problems.push(format!(
                    "{name} sets {var}, which the code of binary {} ({}) never reads",
                    binary.name, binary.package
                ));
            }
        }
    }
    problems
}

/// Tables and queues named in a function's environment are in its policies; every AWS
/// operation its code can call is allowed; no wildcard; event sources are consumable.
fn check_policies(t: &Template, code: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, f) in t.functions() {
        let grants = t.grants(name, f, &mut problems);
        for g in &grants {
            for a in g.actions.iter().filter(|a| a.contains('*')) {
                problems.push(format!("{name}: wildcard action {a}"));
            }
            for r in &g.resources {
                if literal_text(r).contains('*') {
                    problems.push(format!("{name}: wildcard resource {r}"));
                }
            }
        }
        let allowed = |logical: &str, action: &dyn Fn(&str) -> bool| {
            grants.iter().any(|g| {
                g.actions.iter().any(|a| action(a))
                    && g.resources.iter().any(|r| refers_to(r, logical))
            })
        };
        let mut tables = BTreeSet::new();
        let mut queues = BTreeSet::new();
        for (var, value) in t.env(f) {
            let target = ref_of(&value).map(str::to_string);
            let ty = target.as_deref().and_then(|x| t.type_of(x));
            if var.ends_with("_TABLE") && ty != Some("AWS::DynamoDB::Table") {
                problems.push(format!("{name}: {var} must Ref an AWS::DynamoDB::Table"));
            }
            if var.ends_with("_QUEUE_URL") && ty != Some("AWS::SQS::Queue") {
                problems.push(format!(
                    "{name}: {var} must Ref an AWS::SQS::Queue (its URL)"
                ));
            }
            let Some(target) = target else { continue };
            match ty {
                Some("AWS::DynamoDB::Table") => {
                    if !allowed(&target, &|a| a.starts_with("dynamodb:")) {
                        problems.push(format!(
                            "{name}: {var} names table {target}, which its policies do not grant"
                        ));
                    }
                    tables.insert(target);
                }
                Some("AWS::SQS::Queue") => {
                    if !allowed(&target, &|a| a.starts_with("sqs:")) {
                        problems.push(format!(
                            "{name}: {var} names queue {target}, which its policies do not grant"
                        ));
                    }
                    queues.insert(target);
                }
                _ => {}
            }
        }
        // SQS event sources of this function.
        for (esm, m) in t.of_type("AWS::Lambda::EventSourceMapping") {
            let p = &m["Properties"];
            if !refers_to(&p["FunctionName"], name) {
                continue;
            }
            let Some((queue, _)) = getatt_of(&p["EventSourceArn"]) else {
                problems.push(format!(
                    "{esm}: EventSourceArn must be Fn::GetAtt of a queue's Arn"
                ));
                continue;
            };
            for action in SQS_CONSUMER_ACTIONS {
                if !allowed(queue, &|a| a == action) {
                    problems.push(format!(
                        "{name} consumes {queue} ({esm}) without {action} on it"
                    ));
                }
            }
            queues.insert(queue.to_string());
        }
        if let Some(events) = f["Properties"]["Events"].as_object() {
            for (ev, e) in events {
                if e["Type"].as_str() == Some("SQS") {
                    problems.push(format!(
                        "{name}.{ev}: SAM's SQS event attaches AWSLambdaSQSQueueExecutionRole (every queue); use an AWS::Lambda::EventSourceMapping and scoped statements"
                    ));
                }
            }
        }
        // The AWS operations the binary's code can call, and nothing more.
        let Some(binary) = t.binary_of(f).and_then(|b| code.binaries.get(b)) else {
            continue;
        };
        let consumes = t
            .of_type("AWS::Lambda::EventSourceMapping")
            .any(|(_, m)| refers_to(&m["Properties"]["FunctionName"], name));
        for g in &grants {
            for a in &g.actions {
                let aws = a.starts_with("dynamodb:") || a.starts_with("sqs:");
                let polled = consumes && SQS_CONSUMER_ACTIONS.contains(&a.as_str());
                if aws && !polled && !binary.usage.aws_actions.contains(a) {
                    problems.push(format!(
                        "{name} is granted {a}, which the code of binary {} never calls",
                        binary.name
                    ));
                }
            }
        }
        for action in &binary.usage.aws_actions {
            let targets = if action.starts_with("dynamodb:") {
                &tables
            } else {
                &queues
            };
            if !targets.iter().any(|r| allowed(r, &|a| a == action)) {
                problems.push(format!(
                    "{name}: the code of binary {} calls {action}, which no statement allows on its {}",
                    binary.name,
                    if action.starts_with("dynamodb:") { "tables" } else { "queues" }
                ));
            }
        }
    }
    problems
}

/// The transitions queue: FIFO, redriven to a FIFO DLQ after a bounded number of receives,
/// consumed by the notifier with ReportBatchItemFailures, visibility >= 6x its timeout.
fn check_queue(t: &Template, code: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    let mut published = BTreeSet::new();
    for (_, f) in t.functions() {
        if let Some(q) = t.env(f).get("TRANSITIONS_QUEUE_URL").and_then(ref_of) {
            published.insert(q.to_string());
        }
    }
    if published.len() != 1 {
        problems.push(format!(
            "the ingest functions must publish to one queue, found {published:?}"
        ));
    }
    for queue in &published {
        let Some(q) = t.resources().get(queue) else {
            continue;
        };
        let p = &q["Properties"];
        if p["FifoQueue"] != Value::Bool(true) {
            problems.push(format!("{queue} must be a FIFO queue"));
        }
        if p["ContentBasedDeduplication"] != Value::Bool(false) {
            problems.push(format!("{queue}: ContentBasedDeduplication must be false (MessageDeduplicationId = transition id)"));
        }
        let redrive = &p["RedrivePolicy"];
        match getatt_of(&redrive["deadLetterTargetArn"]) {
            Some((dlq, _))
                if t.resources()[dlq]["Properties"]["FifoQueue"] == Value::Bool(true) => {}
            _ => problems.push(format!(
                "{queue}: RedrivePolicy must target a FIFO dead-letter queue"
            )),
        }
        match redrive["maxReceiveCount"].as_i64() {
            Some(1..=10) => {}
            other => problems.push(format!(
                "{queue}: maxReceiveCount {other:?} must be 1 to 10"
            )),
        }
        let consumers: Vec<_> = t
            .of_type("AWS::Lambda::EventSourceMapping")
            .filter(|(_, m)| {
                getatt_of(&m["Properties"]["EventSourceArn"]).map(|x| x.0) == Some(queue.as_str())
            })
            .collect();
        if consumers.len() != 1 {
            problems.push(format!(
                "{queue} must have exactly one event source mapping, found {}",
                consumers.len()
            ));
        }
        for (esm, m) in consumers {
            let p = &m["Properties"];
            let types: Vec<_> = as_list(&p["FunctionResponseTypes"])
                .into_iter()
                .filter_map(Value::as_str)
                .collect();
            if !types.contains(&"ReportBatchItemFailures") {
                problems.push(format!(
                    "{esm}: FunctionResponseTypes must include ReportBatchItemFailures"
                ));
            }
            match p["BatchSize"].as_i64() {
                Some(1..=10) => {}
                other => {
                    problems.push(format!("{esm}: BatchSize {other:?} must be 1 to 10 (FIFO)"))
                }
            }
            let Some((fname, f)) = t
                .functions()
                .find(|(n, _)| refers_to(&p["FunctionName"], n))
            else {
                problems.push(format!(
                    "{esm}: FunctionName must Ref a function of the template"
                ));
                continue;
            };
            let serves_all = t
                .binary_of(f)
                .and_then(|b| code.binaries.get(b))
                .is_some_and(|b| b.source.is_none());
            if !serves_all {
                problems.push(format!(
                    "{esm}: {fname} is not the notifier (its binary serves one source)"
                ));
            }
            let visibility = q["Properties"]["VisibilityTimeout"].as_i64().unwrap_or(30);
            let timeout = t.timeout(f).unwrap_or(3);
            if visibility < 6 * timeout {
                problems.push(format!("{queue}: VisibilityTimeout {visibility} s is under 6x {fname}'s {timeout} s timeout"));
            }
        }
    }
    problems
}

/// Alarms on WebhookIngest metrics watch names and services the code emits.
fn check_metrics(t: &Template, code: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, alarm) in t.alarms() {
        for (namespace, metric, dims) in Template::alarm_metrics(alarm) {
            if namespace != NAMESPACE {
                continue;
            }
            if !code.metric_names.values().any(|v| *v == metric) {
                problems.push(format!(
                    "{name} watches {NAMESPACE}/{metric}, not a name in metrics::names"
                ));
            } else if !code.emitted_metrics.contains(&metric) {
                problems.push(format!(
                    "{name} watches {NAMESPACE}/{metric}, which no code emits"
                ));
            }
            match dims.get("Service").and_then(Value::as_str) {
                Some(s) if code.services.contains(s) => {}
                Some(s) => problems.push(format!(
                    "{name}: Service {s:?} is not a service the code emits metrics for ({:?})",
                    code.services
                )),
                None => problems.push(format!(
                    "{name}: EMF metrics are published per Service; the alarm needs that dimension"
                )),
            }
            if dims.keys().any(|k| k != "Service") {
                problems.push(format!(
                    "{name}: EMF lines carry only the Service dimension, not {:?}",
                    dims.keys()
                ));
            }
        }
    }
    problems
}

/// The alarms of DESIGN §8 exist and notify an SNS topic with an e-mail subscription.
fn check_alerting(t: &Template, code: &Code) -> Vec<String> {
    let mut problems = Vec::new();
    let topics: BTreeSet<&String> = t
        .of_type("AWS::SNS::Subscription")
        .filter(|(_, s)| {
            let p = &s["Properties"];
            p["Protocol"].as_str() == Some("email")
                && ref_of(&p["Endpoint"]).is_some_and(|e| t.doc["Parameters"].get(e).is_some())
        })
        .filter_map(|(_, s)| ref_of(&s["Properties"]["TopicArn"]))
        .filter_map(|topic| t.resources().keys().find(|k| *k == topic))
        .collect();
    if topics.is_empty() {
        problems
            .push("no SNS topic with an e-mail subscription whose address is a parameter".into());
    }
    let metrics: Vec<(String, String, String, BTreeMap<String, Value>)> = t
        .alarms()
        .flat_map(|(n, a)| {
            Template::alarm_metrics(a)
                .into_iter()
                .map(move |(ns, m, d)| (n.clone(), ns, m, d))
        })
        .collect();
    for (name, alarm) in t.alarms() {
        let actions = as_list(&alarm["Properties"]["AlarmActions"]);
        if actions.is_empty()
            || !actions
                .iter()
                .all(|a| ref_of(a).is_some_and(|r| topics.iter().any(|t| *t == r)))
        {
            problems.push(format!("{name}: AlarmActions must notify the alarm topic"));
        }
    }
    let has = |ns: &str, metric: &str, dim: &str, pred: &dyn Fn(&Value) -> bool| {
        metrics
            .iter()
            .any(|(_, n, m, d)| n == ns && m == metric && d.get(dim).is_some_and(pred))
    };
    for (fname, _) in t.functions() {
        for metric in ["Errors", "Throttles"] {
            if !has("AWS/Lambda", metric, "FunctionName", &|v| {
                ref_of(v) == Some(fname.as_str())
            }) {
                problems.push(format!("no AWS/Lambda {metric} alarm for {fname}"));
            }
        }
    }
    for (qname, _) in t.of_type("AWS::SQS::Queue") {
        let is_dlq = t.of_type("AWS::SQS::Queue").any(|(_, other)| {
            getatt_of(&other["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]).map(|x| x.0)
                == Some(qname.as_str())
        });
        let (metric, what) = if is_dlq {
            ("ApproximateNumberOfMessagesVisible", "depth")
        } else {
            ("ApproximateAgeOfOldestMessage", "age of the oldest message")
        };
        if !has("AWS/SQS", metric, "QueueName", &|v| {
            getatt_of(v) == Some((qname.as_str(), "QueueName"))
        }) {
            problems.push(format!("no {what} alarm ({metric}) on queue {qname}"));
        }
    }
    for (api, _) in t.of_type("AWS::Serverless::HttpApi") {
        if !has("AWS/ApiGateway", "5xx", "ApiId", &|v| {
            ref_of(v) == Some(api.as_str())
        }) {
            problems.push(format!(
                "no 5xx alarm on {api} (AWS/ApiGateway, dimension ApiId)"
            ));
        }
    }
    let verification = code
        .metric_names
        .get("VERIFICATION_FAILED")
        .cloned()
        .unwrap_or_default();
    for source in Source::ALL {
        if !has(NAMESPACE, &verification, "Service", &|v| {
            v.as_str() == Some(source.as_str())
        }) {
            problems.push(format!("no {verification} alarm for Service={source}"));
        }
    }
    let others: Vec<&String> = code
        .services
        .iter()
        .filter(|s| Source::parse(s).is_none())
        .collect();
    for key in ["NOTIFICATIONS_FAILED", "NOTIFICATIONS_PERMANENT_FAILURES"] {
        let metric = code.metric_names.get(key).cloned().unwrap_or_default();
        if !has(NAMESPACE, &metric, "Service", &|v| {
            others.iter().any(|s| v.as_str() == Some(s.as_str()))
        }) {
            problems.push(format!(
                "no {metric} alarm for the notifier's Service ({others:?})"
            ));
        }
    }
    problems
}

/// What the Lambda service calls with a function's role to poll its SQS event source.
const SQS_CONSUMER_ACTIONS: [&str; 3] = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
];

type Check = fn(&Template, &Code) -> Vec<String>;

const CHECKS: [(&str, Check); 7] = [
    ("routes", check_routes),
    ("binaries", check_binaries),
    ("environment", check_env),
    ("policies", check_policies),
    ("queue", check_queue),
    ("metrics", check_metrics),
    ("alerting", check_alerting),
];

fn all_problems(t: &Template, code: &Code) -> Vec<String> {
    CHECKS
        .iter()
        .flat_map(|(name, check)| {
            check(t, code)
                .into_iter()
                .map(move |p| format!("[{name}] {p}"))
        })
        .collect()
}

fn code() -> &'static Code {
    static CODE: std::sync::OnceLock<Code> = std::sync::OnceLock::new();
    CODE.get_or_init(|| scan_code(&workspace_root()))
}

#[test]
fn template_matches_the_code() {
    let (_, t) = Template::load();
    let code = code();
    let problems = all_problems(&t, code);
    assert!(
        problems.is_empty(),
        "template.yaml disagrees with the code:\n  {}\n\nwhat the code reads, per binary:\n{}",
        problems.join("\n  "),
        code.binaries
            .values()
            .map(|b| format!(
                "  {} ({:?}): env {:?}, aws {:?}",
                b.name, b.source, b.usage.env, b.usage.aws_actions
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_scan_finds_what_the_design_names() {
    // The scanner must see the obvious, or every other check is vacuous.
    let code = code();
    let lambda_bins: BTreeSet<&str> = code.binaries.keys().map(String::as_str).collect();
    for bin in [
        "pancake",
        "pancake-pos",
        "abaha",
        "fulfilment",
        "invoice",
        "notifier",
    ] {
        assert!(
            lambda_bins.contains(bin),
            "binary {bin} not found: {lambda_bins:?}"
        );
    }
    assert!(!lambda_bins.contains("webhooks-local"));
    let fulfilment = &code.binaries["fulfilment"];
    assert_eq!(fulfilment.source.as_deref(), Some("Fulfilment"));
    assert!(
        fulfilment.usage.env.contains("FULFILMENT_SECRETS"),
        "{:?}",
        fulfilment.usage.env
    );
    assert!(
        fulfilment.usage.env.contains("MAX_BODY_BYTES"),
        "{:?}",
        fulfilment.usage.env
    );
    assert!(
        fulfilment.usage.env.contains("ALLOW_UNVERIFIED"),
        "{:?}",
        fulfilment.usage.env
    );
    // the dispatcher's other arms are not followed
    assert!(
        !fulfilment
            .usage
            .env
            .iter()
            .any(|v| v.starts_with("INVOICE_")),
        "{:?}",
        fulfilment.usage.env
    );
    assert!(
        !fulfilment
            .usage
            .env
            .iter()
            .any(|v| v.starts_with("NOTIFY_")),
        "{:?}",
        fulfilment.usage.env
    );
    let notifier = &code.binaries["notifier"];
    assert_eq!(notifier.source, None);
    assert!(
        notifier.usage.env.contains("NOTIFY_URL"),
        "{:?}",
        notifier.usage.env
    );
    assert!(
        !notifier.usage.env.contains("FULFILMENT_SECRETS"),
        "{:?}",
        notifier.usage.env
    );
    for name in [
        "VerificationFailed",
        "NotificationsFailed",
        "NotificationsPermanentFailures",
    ] {
        assert!(
            code.emitted_metrics.contains(name),
            "{name} not emitted: {:?}",
            code.emitted_metrics
        );
    }
    assert!(code.services.contains("notifier"), "{:?}", code.services);
}

// =========================================================================================
// The checks notice breakage (each on a broken copy of the real template).
// =========================================================================================

fn broken(edit: impl FnOnce(&mut Value)) -> Template {
    let (_, t) = Template::load();
    let mut doc = t.doc;
    edit(&mut doc);
    Template { doc }
}

fn function_name_of(doc: &Value, binary: &str) -> String {
    doc["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, r)| r["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(binary))
        .map(|(n, _)| n.clone())
        .unwrap_or_else(|| panic!("no function for {binary}"))
}

fn assert_notices(check: Check, t: &Template, needle: &str) {
    let problems = check(t, code());
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "expected a problem mentioning {needle:?}, got {problems:#?}"
    );
}

#[test]
fn a_missing_route_is_noticed() {
    let t = broken(|doc| {
        let f = function_name_of(doc, "invoice");
        doc["Resources"][&f]["Properties"]["Events"]
            .as_object_mut()
            .unwrap()
            .clear();
    });
    assert_notices(check_routes, &t, "/callback/update-invoice");
}

#[test]
fn a_missing_webhook_url_output_is_noticed() {
    let t = broken(|doc| {
        doc["Outputs"]
            .as_object_mut()
            .unwrap()
            .retain(|_, o| !literal_text(&o["Value"]).ends_with("/api/v1/abaha/webhook"));
    });
    assert_notices(
        check_routes,
        &t,
        "no output gives the https URL of /api/v1/abaha/webhook",
    );
}

#[test]
fn a_route_on_the_wrong_function_or_method_is_noticed() {
    let t = broken(|doc| {
        let pancake = function_name_of(doc, "pancake");
        let abaha = function_name_of(doc, "abaha");
        let ev = doc["Resources"][&pancake]["Properties"]["Events"].clone();
        doc["Resources"][&abaha]["Properties"]["Events"] = ev;
    });
    assert_notices(check_routes, &t, "serves");
    let t = broken(|doc| {
        let f = function_name_of(doc, "fulfilment");
        for (_, ev) in doc["Resources"][&f]["Properties"]["Events"]
            .as_object_mut()
            .unwrap()
        {
            ev["Properties"]["Method"] = Value::from("GET");
        }
    });
    assert_notices(check_routes, &t, "the providers POST");
}

#[test]
fn a_missing_or_misnamed_binary_is_noticed() {
    let t = broken(|doc| {
        let f = function_name_of(doc, "pancake-pos");
        doc["Resources"][&f]["Metadata"]["BuildProperties"]["Binary"] = Value::from("pancake_pos");
    });
    assert_notices(check_binaries, &t, "binary pancake-pos has no function");
    assert_notices(check_binaries, &t, "\"pancake_pos\"");
}

#[test]
fn a_missing_log_retention_is_noticed() {
    let t = broken(|doc| {
        let f = function_name_of(doc, "abaha");
        let group = doc["Resources"][&f]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
            .as_str()
            .unwrap()
            .to_string();
        doc["Resources"][&group]["Properties"]
            .as_object_mut()
            .unwrap()
            .remove("RetentionInDays");
    });
    assert_notices(check_binaries, &t, "RetentionInDays");
}

#[test]
fn an_unset_variable_the_code_reads_is_noticed() {
    let code = code();
    let reads = &code.binaries["fulfilment"].usage.env;
    assert!(reads.contains("FULFILMENT_SECRETS"));
    let t = broken(|doc| {
        let f = function_name_of(doc, "fulfilment");
        doc["Resources"][&f]["Properties"]["Environment"]["Variables"]
            .as_object_mut()
            .unwrap()
            .remove("FULFILMENT_SECRETS");
    });
    assert_notices(check_env, &t, "reads FULFILMENT_SECRETS");
}

#[test]
fn a_variable_nobody_reads_and_allow_unverified_are_noticed() {
    let t = broken(|doc| {
        let f = function_name_of(doc, "notifier");
        let vars = doc["Resources"][&f]["Properties"]["Environment"]["Variables"]
            .as_object_mut()
            .unwrap();
        vars.insert("FULFILMENT_SECRET".into(), Value::from("typo"));
        vars.insert("ALLOW_UNVERIFIED".into(), Value::from("true"));
    });
    assert_notices(check_env, &t, "sets FULFILMENT_SECRET, which the code");
    assert_notices(check_env, &t, "sets ALLOW_UNVERIFIED");
}

#[test]
fn a_table_missing_from_the_policies_is_noticed() {
    let t = broken(|doc| {
        let f = function_name_of(doc, "abaha");
        let table = doc["Resources"][&f]["Properties"]["Environment"]["Variables"]
            ["ENTITIES_TABLE"]["Ref"]
            .as_str()
            .unwrap()
            .to_string();
        for policy in doc["Resources"][&f]["Properties"]["Policies"]
            .as_array_mut()
            .unwrap()
        {
            for st in policy["Statement"].as_array_mut().unwrap() {
                if let Some(r) = st["Resource"].as_array_mut() {
                    r.retain(|x| !refers_to(x, &table));
                }
            }
        }
    });
    assert_notices(check_policies, &t, "ENTITIES_TABLE names table");
}

#[test]
fn a_wildcard_or_a_managed_policy_is_noticed() {
    let t = broken(|doc| {
        let f = function_name_of(doc, "pancake");
        let policies = doc["Resources"][&f]["Properties"]["Policies"]
            .as_array_mut()
            .unwrap();
        policies[0]["Statement"][0]["Resource"] = Value::from("*");
        policies.push(Value::from("AmazonDynamoDBFullAccess"));
    });
    assert_notices(check_policies, &t, "wildcard resource");
    assert_notices(check_policies, &t, "AmazonDynamoDBFullAccess");
}

#[test]
fn an_operation_the_code_calls_but_no_statement_allows_is_noticed() {
    let (_, t) = Template::load();
    let mut code = code().clone();
    let notifier = code.binaries.get_mut("notifier").unwrap();
    notifier
        .usage
        .aws_actions
        .insert("dynamodb:DeleteItem".into());
    notifier.usage.aws_actions.insert("sqs:PurgeQueue".into());
    let problems = check_policies(&t, &code);
    for action in ["dynamodb:DeleteItem", "sqs:PurgeQueue"] {
        assert!(
            problems
                .iter()
                .any(|p| p.contains(&format!("calls {action}"))),
            "{action} not noticed: {problems:#?}"
        );
    }
}

#[test]
fn an_operation_granted_but_never_called_is_noticed() {
    let t = broken(|doc| {
        let f = function_name_of(doc, "pancake");
        let st = &mut doc["Resources"][&f]["Properties"]["Policies"][0]["Statement"][0];
        st["Action"]
            .as_array_mut()
            .unwrap()
            .push(Value::from("dynamodb:Scan"));
    });
    assert_notices(check_policies, &t, "granted dynamodb:Scan");
}

#[test]
fn every_excuse_is_still_needed() {
    // An OPTIONAL entry no binary reads any more would silently excuse a future typo.
    let code = code();
    for (var, why) in OPTIONAL.iter().chain(FORBIDDEN.iter()) {
        let read = code.binaries.values().any(|b| b.usage.env.contains(*var));
        let external = READ_BY_DEPENDENCIES.iter().any(|(v, _)| v == var);
        assert!(
            read || external,
            "{var} ({why}) is excused but no Lambda binary reads it"
        );
    }
}

#[test]
fn a_queue_without_batch_failures_or_dlq_is_noticed() {
    let t = broken(|doc| {
        let resources = doc["Resources"].as_object_mut().unwrap();
        for (_, r) in resources.iter_mut() {
            match r["Type"].as_str() {
                Some("AWS::Lambda::EventSourceMapping") => {
                    r["Properties"]["FunctionResponseTypes"] = Value::Array(Vec::new());
                }
                Some("AWS::SQS::Queue") => {
                    if let Some(p) = r["Properties"].as_object_mut() {
                        p.remove("RedrivePolicy");
                        if p.contains_key("VisibilityTimeout") {
                            p.insert("VisibilityTimeout".into(), Value::from(61));
                        }
                    }
                }
                _ => {}
            }
        }
    });
    assert_notices(check_queue, &t, "ReportBatchItemFailures");
    assert_notices(check_queue, &t, "dead-letter");
    assert_notices(check_queue, &t, "under 6x");
}

#[test]
fn an_alarm_on_a_metric_the_code_does_not_emit_is_noticed() {
    let t = broken(|doc| {
        for (_, r) in doc["Resources"].as_object_mut().unwrap().iter_mut() {
            if r["Properties"]["MetricName"].as_str() == Some("VerificationFailed") {
                r["Properties"]["MetricName"] = Value::from("VerificationFailures");
            }
            if r["Properties"]["MetricName"].as_str() == Some("NotificationsFailed") {
                r["Properties"]["Dimensions"][0]["Value"] = Value::from("notify");
            }
        }
    });
    assert_notices(
        check_metrics,
        &t,
        "VerificationFailures, not a name in metrics::names",
    );
    assert_notices(check_metrics, &t, "Service \"notify\"");
    assert_notices(
        check_alerting,
        &t,
        "no VerificationFailed alarm for Service=pancake",
    );
}

#[test]
fn a_missing_lambda_alarm_is_noticed() {
    let t = broken(|doc| {
        let f = function_name_of(doc, "notifier");
        doc["Resources"].as_object_mut().unwrap().retain(|_, r| {
            !(r["Properties"]["MetricName"].as_str() == Some("Throttles")
                && r["Properties"]["Dimensions"][0]["Value"]["Ref"].as_str() == Some(f.as_str()))
        });
    });
    assert_notices(check_alerting, &t, "no AWS/Lambda Throttles alarm");
}

#[test]
fn short_form_tags_are_refused() {
    let err = parse_template("Resources:\n  A:\n    Value: !Ref B\n").unwrap_err();
    assert!(err.contains("short-form"), "{err}");
    assert!(
        parse_template("# a comment with !Ref in it\nA: {Ref: B}\nC: \"it's fine!\"\n").is_ok()
    );
}

// =========================================================================================
// The scanner on small snippets.
// =========================================================================================

fn snippet_usage(files: &[(&str, &str)], root: &str, source: Option<&str>) -> rust::Usage {
    let sources: Vec<(String, String, bool, String)> = files
        .iter()
        .map(|(path, text)| {
            let shared = path.starts_with("shared/src/");
            let module = rust::module_of(
                path.trim_start_matches("shared/src/")
                    .trim_start_matches("bin/"),
            );
            (path.to_string(), module, shared, text.to_string())
        })
        .collect();
    let roots: Vec<usize> = files
        .iter()
        .enumerate()
        .filter(|(_, (p, _))| *p == root)
        .map(|(i, _)| i)
        .collect();
    rust::Universe::new(sources).usage(&roots, source)
}

#[test]
fn the_scanner_lexes_strings_comments_and_lifetimes() {
    use rust::Tok;
    let toks = rust::lex(
        r##"fn f<'a>(x: &'a str) -> char { /* "NOT_A" /* nested */ */ let _ = r#"R{A}"#; // "NOPE"
           let c = '{'; let b = b"B\"{"; 'x' }"##,
    );
    let strs: Vec<&str> = toks
        .iter()
        .filter_map(|t| match t {
            Tok::Str(s) => Some(s.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(strs, ["R{A}", "B\"{"]);
    let open = toks.iter().position(|t| *t == Tok::Punct('{')).unwrap();
    assert_eq!(
        rust::matching(&toks, open),
        toks.len() - 1,
        "char and string braces are not brackets"
    );
}

#[test]
fn the_scanner_follows_calls_constants_and_imports() {
    let usage = snippet_usage(
        &[
            (
                "bin/main.rs",
                "use webhook_core::runtime; fn main() { let env = Env::from_process(); runtime::start(&env); }",
            ),
            (
                "shared/src/runtime.rs",
                "use crate::store::Tables; pub fn start(env: &Env) { let t = Tables::from_env(env); t.connect(); }",
            ),
            (
                "shared/src/store/mod.rs",
                r#"pub struct Tables;
                impl Tables {
                    pub const EVENTS: &'static str = "EVENTS_TABLE";
                    pub fn from_env(env: &Env) -> Self { env.require(Self::EVENTS); Tables }
                    pub fn connect(&self) { helper() }
                    pub fn unused(&self, env: &Env) { env.get("NEVER_CALLED"); }
                }
                fn helper() { std::env::var("FROM_STD").ok(); const VAR: &str = "LOCAL_CONST"; env.u64_or(VAR, 1); }
                #[cfg(test)]
                mod tests { fn t(env: &Env) { env.get("ONLY_IN_TESTS"); } }"#,
            ),
        ],
        "bin/main.rs",
        None,
    );
    let env: Vec<&str> = usage.env.iter().map(String::as_str).collect();
    assert_eq!(env, ["EVENTS_TABLE", "FROM_STD", "LOCAL_CONST"]);
}

#[test]
fn the_scanner_keeps_only_the_binary_s_source_arm() {
    let files = [
        (
            "bin/main.rs",
            "fn main() { webhook_core::sources::provider_from_env(Source::Alpha, &env); }",
        ),
        (
            "shared/src/sources/mod.rs",
            "pub fn provider_from_env(source: Source, env: &Env) -> P {
                match source {
                    Source::Alpha => alpha::Alpha::from_env(env),
                    Source::Beta | Source::Gamma => { beta::Beta::from_env(env) }
                    other => panic!(),
                }
            }",
        ),
        (
            "shared/src/sources/alpha.rs",
            r#"pub const SECRETS_VAR: &str = "ALPHA_SECRETS";
            impl Alpha { pub fn from_env(env: &Env) -> Self { resolve_credentials(env, "alpha", SECRETS_VAR, "dev"); Alpha } }"#,
        ),
        (
            "shared/src/sources/beta.rs",
            r#"pub const SECRETS_VAR: &str = "BETA_SECRETS";
            impl Beta { pub fn from_env(env: &Env) -> Self { env.secrets(SECRETS_VAR); env.get_or("BETA_HEADER", "x"); Beta } }"#,
        ),
    ];
    let alpha = snippet_usage(&files, "bin/main.rs", Some("Alpha"));
    assert_eq!(alpha.env.iter().collect::<Vec<_>>(), ["ALPHA_SECRETS"]);
    let beta = snippet_usage(&files, "bin/main.rs", Some("Beta"));
    assert_eq!(
        beta.env.iter().collect::<Vec<_>>(),
        ["BETA_HEADER", "BETA_SECRETS"]
    );
    let all = snippet_usage(&files, "bin/main.rs", None);
    assert_eq!(all.env.len(), 3, "{:?}", all.env);
}

#[test]
fn the_scanner_maps_sdk_calls_to_iam_actions() {
    let usage = snippet_usage(
        &[
            ("bin/main.rs", "fn main() { store.persist(); }"),
            (
                "shared/src/store/dynamodb.rs",
                "use aws_sdk_dynamodb::types::Put;
                impl Store for DynamoDbStore {
                    async fn persist(&self) {
                        self.client.batch_get_item().send().await;
                        let p = Put::builder().build();
                        self.client.transact_write_items().send().await;
                    }
                    async fn create_tables(&self) { self.client.create_table().send().await; }
                }",
            ),
        ],
        "bin/main.rs",
        None,
    );
    let actions: Vec<&str> = usage.aws_actions.iter().map(String::as_str).collect();
    assert_eq!(actions, ["dynamodb:BatchGetItem", "dynamodb:PutItem"]);
}
