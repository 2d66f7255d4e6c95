//! The most recent refused requests (ARCHITECTURE §8): when, which source, the status and
//! reason code, the body's size, and the tenant when a verified body named one. A refusal
//! stores nothing, so only `webhooks-local`, which answered them, can list its own (a
//! bounded record in memory, lost on restart); `webhooks console` points to where they are
//! on AWS instead. Never a credential, a header or a body.

use axum::extract::State;
use maud::{html, Markup};
use webhook_core::refusals::Refusal;

use crate::layout::{self, badge};
use crate::Console;

pub async fn page(State(c): State<Console>) -> Markup {
    let content = match &c.served {
        Some(served) => {
            let (recent, total) = served.refusals.newest_first();
            html! {
                p.muted {
                    (total) " refused since this process started; the newest "
                    (recent.len()) " are kept here (in memory, at most "
                    (webhook_core::refusals::RECENT_CAPACITY) "). Nothing of a refused request is stored."
                }
                (table(&recent))
            }
        }
        None => html! {
            p.muted {
                "Refused requests store nothing, so only the process that answered them can list \
                 them: webhooks-local shows its own here. On AWS each refusal is one log line; the \
                 saved CloudWatch Logs Insights query <stack>-refusals (linked from the dashboard) \
                 lists them."
            }
        },
    };
    layout::page(
        "Refusals",
        html! {
            h1 { "Recent refusals" }
            (content)
        },
    )
}

fn table(recent: &[Refusal]) -> Markup {
    html! {
        @if recent.is_empty() {
            p { "No request has been refused." }
        } @else {
            table.refusals {
                thead { tr {
                    th { "Time" } th { "Source" } th.num { "Status" } th { "Reason" }
                    th { "Code" } th.num { "Bytes" } th { "Tenant" } th { "Request id" }
                } }
                tbody {
                    @for r in recent {
                        tr data-source=(r.source.as_str()) {
                            td { (layout::time(r.at)) }
                            td { (r.source.as_str()) }
                            td.num { (r.status) }
                            td { (badge(r.reason)) }
                            td { code { (r.code) } }
                            td.num { (r.size) }
                            td { (r.tenant.as_ref().map_or("-", |t| t.as_str())) }
                            td { code { (r.request_id) } }
                        }
                    }
                }
            }
        }
    }
}
