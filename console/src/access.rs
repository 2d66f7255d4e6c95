//! Who may use the console. Raw bodies carry customers' names and phone numbers, so the
//! console answers on loopback by default; beyond loopback it requires `CONSOLE_TOKEN` (at
//! least [`MIN_TOKEN_CHARS`] characters, else start-up fails), presented as
//! `Authorization: Bearer <token>` or through the login form. A login starts a server-side
//! session ([`crate::session`]): the HttpOnly, SameSite=Strict cookie holds a random id that
//! expires and ends at logout, never the token or anything derived from it. Failed logins and
//! wrong bearer tokens are throttled per client address ([`crate::throttle`]: 429 with
//! `Retry-After`). The cookie is `Secure` when the request came through TLS, which the console
//! learns from a TLS-terminating proxy's `X-Forwarded-Proto: https` (or `Forwarded:
//! proto=https`): it serves plain HTTP itself, and trusting that header can only make a cookie
//! stricter. Token comparisons are constant-time over fixed-length digests, so neither the
//! token's bytes nor its length leak through timing. Every state-changing form carries this
//! process's CSRF token; without a token, a loopback console also refuses Host names other
//! than loopback ones, so a page that rebinds its DNS name to 127.0.0.1 cannot read it.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use thiserror::Error;
use webhook_core::config::{vars, Env};
use webhook_core::verify::{ct_eq, hmac_sha256, Secret};

use crate::error::ConsoleError;
use crate::session::{Sessions, LIFETIME};
use crate::throttle::Throttle;
use crate::{layout, Console, PREFIX};

const COOKIE: &str = "webhooks_console";

/// The shortest `CONSOLE_TOKEN` accepted: 32 characters (e.g. `openssl rand -hex 32` gives
/// 64), out of reach of guessing even at the throttle's pace.
pub const MIN_TOKEN_CHARS: usize = 32;

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
    #[error(
        "CONSOLE_TOKEN is {chars} characters long; it must be at least {MIN_TOKEN_CHARS} \
         (generate one with `openssl rand -hex 32`)"
    )]
    TokenTooShort { chars: usize },
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
    /// ("or pass --no-console to serve only the webhook routes"). A token shorter than
    /// [`MIN_TOKEN_CHARS`] is refused wherever the console listens.
    pub fn access(&self, addr: SocketAddr, way_out: &str) -> Result<Access, AccessError> {
        if let Some(t) = &self.token {
            let chars = t.expose().chars().count();
            if chars < MIN_TOKEN_CHARS {
                return Err(AccessError::TokenTooShort { chars });
            }
        } else if !addr.ip().is_loopback() {
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
            sessions: Sessions::default(),
            throttle: Throttle::default(),
        })
    }
}

/// The access rule in force, with its live sessions and failure counts.
pub struct Access {
    token: Option<Secret>,
    csrf: String,
    sessions: Sessions,
    throttle: Throttle,
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

    /// Checks a presented token under the client's throttle: 429 while it is locked out,
    /// `Ok(false)` (counted) when wrong.
    fn try_token(
        &self,
        presented: &str,
        client: Option<IpAddr>,
        now: Instant,
    ) -> Result<bool, ConsoleError> {
        if let Err(wait) = self.throttle.check(client, now) {
            return Err(ConsoleError::TooManyAttempts {
                retry_after: wait.as_secs_f64().ceil() as u64,
            });
        }
        if self.is_token(presented) {
            self.throttle.succeeded(client);
            Ok(true)
        } else {
            if let Some(lockout) = self.throttle.failed(client, now) {
                tracing::warn!(
                    client = ?client,
                    lockout_secs = lockout.as_secs(),
                    "console: repeated wrong tokens; the address is locked out"
                );
            }
            Ok(false)
        }
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
    fn admits(&self, headers: &HeaderMap, client: Option<IpAddr>) -> Result<bool, ConsoleError> {
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
        let now = Instant::now();
        if let Some(presented) = bearer {
            return match self.try_token(presented.trim(), client, now)? {
                true => Ok(true),
                false => Err(ConsoleError::Unauthorized),
            };
        }
        Ok(cookie(headers).is_some_and(|id| self.sessions.is_live(&id, now)))
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

/// The client as the console sees it: its TCP peer address (set by [`crate::server`]) and
/// whether the request reached a TLS-terminating proxy first.
pub struct Client {
    ip: Option<IpAddr>,
    tls: bool,
}

impl Client {
    fn of(parts: &axum::http::request::Parts) -> Self {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Client {
            ip,
            tls: came_through_tls(&parts.headers),
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Client::of(parts))
    }
}

/// `X-Forwarded-Proto: https` or `Forwarded: …proto=https` (the first hop's value).
fn came_through_tls(headers: &HeaderMap) -> bool {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let forwarded_proto = value("x-forwarded-proto")
        .and_then(|v| v.split(',').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    let forwarded = value("forwarded")
        .and_then(|v| v.split(',').next())
        .is_some_and(|hop| {
            hop.split(';').any(|pair| {
                pair.trim().split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("proto")
                        && v.trim().trim_matches('"').eq_ignore_ascii_case("https")
                })
            })
        });
    forwarded_proto || forwarded
}

/// The session cookie's attributes; `Secure` behind TLS.
fn cookie_attributes(tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    format!("Path={PREFIX}; HttpOnly; SameSite=Strict{secure}")
}

/// Lets a request through, sends a browser to the login form, or refuses it.
pub async fn guard(State(c): State<Console>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let client = Client::of(&parts);
    match c.access.admits(&parts.headers, client.ip) {
        Ok(true) => next.run(Request::from_parts(parts, body)).await,
        Ok(false) if parts.method == Method::GET => {
            let back = parts
                .uri
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
    client: Client,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return ConsoleError::BadInput("the login form needs a token field".into()).into_response();
    };
    let next = safe_next(form.next.as_deref());
    if !c.access.asks_token() {
        return Redirect::to(PREFIX).into_response();
    }
    let now = Instant::now();
    match c.access.try_token(form.token.trim(), client.ip, now) {
        Ok(true) => match c.access.sessions.start(now) {
            Ok(id) => {
                let cookie = format!(
                    "{COOKIE}={id}; {}; Max-Age={}",
                    cookie_attributes(client.tls),
                    LIFETIME.as_secs()
                );
                ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
            }
            Err(e) => ConsoleError::Unavailable(format!("no random source for a session: {e}"))
                .into_response(),
        },
        Ok(false) => (StatusCode::UNAUTHORIZED, login_form(&next, true)).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
pub struct LogoutForm {
    csrf: String,
}

/// Ends the session on the server (the cookie's id stops working everywhere it was copied)
/// and clears the cookie.
pub async fn logout(
    State(c): State<Console>,
    client: Client,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ConsoleError> {
    let Form(form) = form?;
    c.access.check_csrf(&form.csrf)?;
    if let Some(id) = cookie(&headers) {
        c.access.sessions.end(&id);
    }
    let cookie = format!("{COOKIE}=; {}; Max-Age=0", cookie_attributes(client.tls));
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

    const TOKEN: &str = "a-console-token-of-32-characters";

    fn access(token: &str) -> Access {
        ConsoleSettings::with_token(token)
            .access("127.0.0.1:1".parse().unwrap(), "")
            .unwrap()
    }

    #[test]
    fn a_short_token_is_refused_at_start_up() {
        let err = ConsoleSettings::with_token("a")
            .access("0.0.0.0:1".parse().unwrap(), "")
            .err()
            .unwrap();
        assert_eq!(err, AccessError::TokenTooShort { chars: 1 });
        assert!(err.to_string().contains("at least 32"), "{err}");
        let loopback =
            ConsoleSettings::with_token(&TOKEN[..31]).access("127.0.0.1:1".parse().unwrap(), "");
        assert!(loopback.is_err(), "on loopback too");
        assert!(ConsoleSettings::with_token(TOKEN)
            .access("0.0.0.0:1".parse().unwrap(), "")
            .is_ok());
    }

    #[test]
    fn the_session_cookie_is_found_among_others_and_is_a_live_session() {
        let access = access(TOKEN);
        let session = access.sessions.start(Instant::now()).unwrap();
        assert!(!session.contains(TOKEN) && session.len() == 64);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!("a=1; {COOKIE}={session}; b=2").parse().unwrap(),
        );
        assert_eq!(access.admits(&headers, None), Ok(true));
        let first = if session.starts_with('0') { '1' } else { '0' };
        let forged = format!("{COOKIE}={first}{}", &session[1..]);
        let mut forged_headers = HeaderMap::new();
        forged_headers.insert(header::COOKIE, forged.parse().unwrap());
        assert_eq!(access.admits(&forged_headers, None), Ok(false));
        access.sessions.end(&session);
        assert_eq!(access.admits(&headers, None), Ok(false), "logged out");
        let other = self::access(TOKEN);
        assert_ne!(
            other.csrf(),
            access.csrf(),
            "each process makes its own CSRF token"
        );
    }

    #[test]
    fn wrong_bearer_tokens_are_throttled_per_client() {
        let access = access(TOKEN);
        let client: Option<IpAddr> = Some("198.51.100.4".parse().unwrap());
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Bearer guess".parse().unwrap());
        let answers: Vec<_> = (0..8).map(|_| access.admits(&headers, client)).collect();
        assert!(answers[..5]
            .iter()
            .all(|a| *a == Err(ConsoleError::Unauthorized)));
        assert!(matches!(
            answers[5],
            Err(ConsoleError::TooManyAttempts { retry_after: 1 })
        ));
        let mut right = HeaderMap::new();
        right.insert(
            header::AUTHORIZATION,
            format!("Bearer {TOKEN}").parse().unwrap(),
        );
        assert!(
            matches!(
                access.admits(&right, client),
                Err(ConsoleError::TooManyAttempts { .. })
            ),
            "even the right token waits out the lock-out"
        );
        assert_eq!(
            access.admits(&right, Some("198.51.100.5".parse().unwrap())),
            Ok(true)
        );
    }

    #[test]
    fn tls_is_learnt_from_the_proxy_headers() {
        let with = |name: &'static str, value: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(name, value.parse().unwrap());
            came_through_tls(&h)
        };
        assert!(with("x-forwarded-proto", "https"));
        assert!(with("x-forwarded-proto", "HTTPS, http"));
        assert!(with(
            "forwarded",
            "for=192.0.2.60;proto=https;by=203.0.113.43"
        ));
        assert!(with("forwarded", "proto=\"https\""));
        assert!(!with("x-forwarded-proto", "http"));
        assert!(!with("forwarded", "for=192.0.2.60;proto=http"));
        assert!(!came_through_tls(&HeaderMap::new()));
        assert!(cookie_attributes(true).ends_with("; Secure"));
        assert!(!cookie_attributes(false).contains("Secure"));
    }
}
