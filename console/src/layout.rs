//! The page shell and the small formatting helpers every page shares.

use maud::{html, Markup, DOCTYPE};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use webhook_core::model::{EntityKey, EventKey};

use crate::PREFIX;

pub fn page(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · webhooks console" }
                link rel="stylesheet" href={ (PREFIX) "/assets/console.css" };
                script src={ (PREFIX) "/assets/console.js" } defer {}
            }
            body {
                nav {
                    a.brand href=(PREFIX) { "webhooks" }
                    a href=(PREFIX) { "Overview" }
                    a href={ (PREFIX) "/events" } { "Events" }
                    a href={ (PREFIX) "/dlq" } { "Dead letters" }
                    a href={ (PREFIX) "/refusals" } { "Refusals" }
                }
                main { (content) }
            }
        }
    }
}

/// Unix seconds as RFC 3339 (UTC).
pub fn time(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// An entity version (µs since the epoch) as RFC 3339.
pub fn version_time(version: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(version) * 1_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| version.to_string())
}

/// A URL under the console with its query encoded.
pub fn url(path: &str, query: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in query {
        q.append_pair(k, v);
    }
    let q = q.finish();
    if q.is_empty() {
        format!("{PREFIX}{path}")
    } else {
        format!("{PREFIX}{path}?{q}")
    }
}

pub fn event_url(key: &EventKey) -> String {
    url("/event", &[("key", key.as_str())])
}

pub fn entity_url(key: &EntityKey) -> String {
    url(
        "/entity",
        &[
            ("source", key.source.as_str()),
            ("tenant", key.tenant.as_str()),
            ("kind", key.kind.as_str()),
            ("id", &key.id),
        ],
    )
}

/// The CSS class of a status or outcome badge.
pub fn badge(label: &str) -> Markup {
    html! { span class={ "badge " (label) } { (label) } }
}
