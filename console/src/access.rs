//! Who may use the console. Raw bodies carry customers' names and phone numbers, so the
//! console answers on loopback by default; beyond loopback it requires `CONSOLE_TOKEN`,
//! presented as `Authorization: Bearer <token>` or through the login form, which sets an
//! HttpOnly, SameSite=Strict cookie holding a digest of the token (never the token).
//! Comparisons are constant-time over fixed-length digests, so neither the token's bytes
//! nor its length leak through timing. Every state-changing form carries this process's
//! CSRF token; without a token, a loopback console also refuses Host names other than
//! loopback ones, so a page that rebinds its DNS name to 127.0.0.1 cannot read it.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use thiserror::Error;
use webhook_core::config::{vars, Env};
use webhook_core::verify::{ct_eq, hmac_sha256, Secret};

use crate::error::ConsoleError;
use crate::{layout, Console, PREFIX};

const COOKIE: &str = "webhooks_console";

/// The console's settings from the environment (`CONSOLE_TOKEN`).
#[derive(Debug, Clone, Default)]
pub struct ConsoleSettings {
    token: Option<Secret>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AccessError {
    #[error(
        "the console would listen on {addr}, beyond loopback, and CONSOLE_TOKEN is not set \
         (its pages show raw bodies with customers' data): set CONSOLE_TOKEN, {way_out}"
    )]
    NeedsToken { addr: SocketAddr, way_out: String },
    #[error("no random source for the console's CSRF key: {0}")]
    NoRandom(String),
}

impl ConsoleSettings {
    pub fn from_env(env: &Env) -> Self {
        let token = env
            .get(&vars::CONSOLE_TOKEN)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(Secret::new);
        ConsoleSettings { token }
    }

    pub fn with_token(token: &str) -> Self {
        ConsoleSettings {
            token: Some(Secret::new(token)),
        }
    }

    /// The access rule of a console bound to `addr`; `way_out` completes the refusal
    /// ("or pass --no-console to serve only the webhook routes").
    pub fn access(&self, addr: SocketAddr, way_out: &str) -> Result<Access, AccessError> {
        if self.token.is_none() && !addr.ip().is_loopback() {
            return Err(AccessError::NeedsToken {
                addr,
                way_out: way_out.to_string(),
            });
        }
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).map_err(|e| AccessError::NoRandom(e.to_string()))?;
        Ok(Access {
            token: self.token.clone(),
            csrf: hex::encode(key),
        })
    }
}

/// The access rule in force.
pub struct Access {
    token: Option<Secret>,
    csrf: String,
}

impl Access {
    fn digest(&self, presented: &[u8]) -> [u8; 32] {
        hmac_sha256(b"webhooks-console token", presented)
    }

    fn is_token(&self, presented: &str) -> bool {
        self.token.as_ref().is_some_and(|t| {
            ct_eq(
                &self.digest(presented.as_bytes()),
                &self.digest(t.expose().as_bytes()),
            )
        })
    }

    /// The cookie value: a digest of the token, so the cookie never holds the token itself.
    fn session(&self) -> Option<String> {
        let t = self.token.as_ref()?;
        Some(hex::encode(hmac_sha256(
            t.expose().as_bytes(),
            b"webhooks-console session",
        )))
    }

    pub fn asks_token(&self) -> bool {
        self.token.is_some()
    }

    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    pub fn check_csrf(&self, presented: &str) -> Result<(), ConsoleError> {
        if ct_eq(presented.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden(
                "this form is not one this console issued (missing or stale CSRF token): \
                 reload the page and try again"
                    .into(),
            ))
        }
    }

    /// Whether the request may see the console: `Ok(false)` means "log in first".
    fn admits(&self, headers: &HeaderMap) -> Result<bool, ConsoleError> {
        if self.token.is_none() {
            return match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
                Some(host) if !is_loopback_host(host) => Err(ConsoleError::Forbidden(
                    "this console answers only to a loopback host name (localhost, \
                     127.0.0.1, [::1]); set CONSOLE_TOKEN to serve it under another name"
                        .into(),
                )),
                _ => Ok(true),
            };
        }
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if let Some(presented) = bearer {
            return if self.is_token(presented.trim()) {
                Ok(true)
            } else {
                Err(ConsoleError::Unauthorized)
            };
        }
        let session = self.session().unwrap_or_default();
        Ok(cookie(headers).is_some_and(|c| ct_eq(c.as_bytes(), session.as_bytes())))
    }
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((name, _)) => name,
            None => return false,
        },
        None => host.split(':').next().unwrap_or(""),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            pair.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_string)
        })
}

/// Lets a request through, sends a browser to the login form, or refuses it.
pub async fn guard(State(c): State<Console>, req: Request, next: Next) -> Response {
    match c.access.admits(req.headers()) {
        Ok(true) => next.run(req).await,
        Ok(false) if req.method() == Method::GET => {
            let back = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default();
            Redirect::to(&layout::url("/login", &[("next", &back)])).into_response()
        }
        Ok(false) => ConsoleError::Unauthorized.into_response(),
        Err(e) => e.into_response(),
    }
}

/// Only a page of this console: never a redirect elsewhere.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with(PREFIX) && !n.starts_with("//") && !n.contains('\\') => {
            n.to_string()
        }
        _ => PREFIX.to_string(),
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

fn login_form(next: &str, wrong: bool) -> Markup {
    layout::page(
        "Log in",
        html! {
            h1 { "Log in" }
            @if wrong { p.error { "That is not this console's token." } }
            p { "This console asks for its token (the value of CONSOLE_TOKEN)." }
            form.login method="post" action={ (PREFIX) "/login" } {
                input type="hidden" name="next" value=(next);
                label { "Token " input type="password" name="token" autocomplete="current-password" autofocus; }
                button type="submit" { "Log in" }
            }
        },
    )
}

pub async fn login_page(
    State(c): State<Console>,
    query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if !c.access.asks_token() {
        return Redirect::to(PREFIX).into_response();
    }
    let next = query.ok().and_then(|Query(q)| q.next);
    login_form(&safe_next(next.as_deref()), false).into_response()
}

pub async fn login(
    State(c): State<Console>,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return ConsoleError::BadInput("the login form needs a token field".into()).into_response();
    };
    let next = safe_next(form.next.as_deref());
    match c.access.session() {
        Some(session) if c.access.is_token(form.token.trim()) => {
            let cookie = format!("{COOKIE}={session}; Path={PREFIX}; HttpOnly; SameSite=Strict");
            ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
        }
        Some(_) => (
            axum::http::StatusCode::UNAUTHORIZED,
            login_form(&next, true),
        )
            .into_response(),
        None => Redirect::to(PREFIX).into_response(),
    }
}

#[derive(Deserialize)]
pub struct LogoutForm {
    csrf: String,
}

pub async fn logout(
    State(c): State<Console>,
    form: Result<Form<LogoutForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ConsoleError> {
    let Form(form) = form?;
    c.access.check_csrf(&form.csrf)?;
    let cookie = format!("{COOKIE}=; Path={PREFIX}; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok((
        [(header::SET_COOKIE, cookie)],
        Redirect::to(&layout::url("/login", &[])),
    )
        .into_response())
}

/// The hidden field every state-changing form carries.
pub fn csrf_field(access: &Access) -> Markup {
    html! { input type="hidden" name="csrf" value=(access.csrf()); }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_host_names() {
        for host in [
            "localhost",
            "LOCALHOST:3000",
            "127.0.0.1",
            "127.8.9.1:80",
            "[::1]",
            "[::1]:3000",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "attacker.example",
            "localhost.attacker.example",
            "10.0.0.1:3000",
            "[::2]",
            "",
            "[::1",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn next_stays_on_the_console() {
        assert_eq!(
            safe_next(Some("/console/events?source=abaha")),
            "/console/events?source=abaha"
        );
        for bad in [
            "//attacker.example/console",
            "https://attacker.example/",
            "/other",
            "/console\\..\\x",
        ] {
            assert_eq!(safe_next(Some(bad)), PREFIX, "{bad}");
        }
        assert_eq!(safe_next(None), PREFIX);
    }

    #[test]
    fn the_session_cookie_is_found_among_others_and_holds_no_token() {
        let access = ConsoleSettings::with_token("tok")
            .access("127.0.0.1:1".parse().unwrap(), "")
            .unwrap();
        let session = access.session().unwrap();
        assert!(!session.contains("tok") && session.len() == 64);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!("a=1; {COOKIE}={session}; b=2").parse().unwrap(),
        );
        assert_eq!(access.admits(&headers), Ok(true));
        let first = if session.starts_with('0') { '1' } else { '0' };
        let forged = format!("{COOKIE}={first}{}", &session[1..]);
        headers.insert(header::COOKIE, forged.parse().unwrap());
        assert_eq!(access.admits(&headers), Ok(false));
        let other = ConsoleSettings::with_token("tok2")
            .access("127.0.0.1:1".parse().unwrap(), "")
            .unwrap();
        assert_ne!(
            other.session(),
            access.session(),
            "a new token logs everyone out"
        );
        assert_ne!(
            other.csrf(),
            access.csrf(),
            "each process makes its own CSRF token"
        );
    }
}
