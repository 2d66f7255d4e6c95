//! What every provider does the same way with its credential (ARCHITECTURE §3): the one
//! reader of a configurable credential header name.

use crate::config::{ConfigError, Env};
use crate::http::KEPT_HEADERS;

/// Reads the name of a configurable credential header: `var`, else `default`, trimmed and
/// kept as written (requests are matched case-insensitively; messages show it as
/// configured). Refused at start-up, naming `var`, when it is not an HTTP header name (it
/// could never match, so every delivery would be 401), or when it is one of the headers the
/// event log keeps ([`KEPT_HEADERS`], any case): the credential would be stored with every
/// event.
pub fn credential_header(
    env: &Env,
    var: &'static str,
    default: &str,
) -> Result<String, ConfigError> {
    let name = env.get_or(var, default);
    let refuse = |reason| Err(ConfigError::Invalid { var, reason });
    if !is_header_name(name) {
        return refuse(format!("{name:?} is not a valid HTTP header name"));
    }
    if KEPT_HEADERS
        .iter()
        .any(|kept| kept.eq_ignore_ascii_case(name))
    {
        return refuse(format!(
            "{name} is stored with every event; a credential must not be"
        ));
    }
    Ok(name.to_string())
}

/// An RFC 9110 token: the characters a header name may have.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VAR: &str = "SOME_HEADER";

    fn read(value: Option<&str>) -> Result<String, ConfigError> {
        let env = Env::from_pairs(value.map(|v| (VAR, v)));
        credential_header(&env, VAR, "X-Default-Secret")
    }

    #[test]
    fn header_names() {
        assert!(is_header_name("X-Webhook-Secret"));
        assert!(is_header_name("x_token.v2"));
        assert!(!is_header_name(""));
        assert!(!is_header_name("a b"));
        assert!(!is_header_name("a\r\nb"));
    }

    #[test]
    fn the_configured_name_is_read_trimmed_else_the_default() {
        assert_eq!(read(None).unwrap(), "X-Default-Secret");
        assert_eq!(read(Some("  ")).unwrap(), "X-Default-Secret");
        assert_eq!(read(Some(" X-Shop-Token ")).unwrap(), "X-Shop-Token");
    }

    #[test]
    fn a_name_that_is_no_token_or_is_kept_is_refused_naming_the_variable() {
        for bad in ["X Shop", "X-Token:", "Tên", "a\tb"] {
            let err = read(Some(bad)).unwrap_err().to_string();
            assert!(
                err.contains(VAR) && err.contains("not a valid HTTP header name"),
                "{err}"
            );
        }
        for kept in KEPT_HEADERS {
            let err = read(Some(&kept.to_ascii_uppercase()))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(VAR) && err.contains("stored with every event"),
                "{err}"
            );
        }
    }
}
