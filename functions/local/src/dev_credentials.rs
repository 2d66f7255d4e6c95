//! The development credentials (`dev-pancake-key`, …, ARCHITECTURE §3) are public: they are
//! for trying the gateway on one's own machine. `webhooks-local` therefore refuses to start
//! on them when it listens beyond loopback, or when credentials are configured anywhere (the
//! environment, or the credential table), where a source left on its placeholder would admit
//! any tenant beside the bound keys.

use std::net::SocketAddr;

use thiserror::Error;
use webhook_core::config::{self, Env};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DevCredentialsRefused {
    #[error(
        "webhooks-local would listen on {addr}, beyond loopback, and {sources} would accept \
         the public development credentials: configure their credentials (README \
         \"Verification\"), listen on a loopback address, or set ALLOW_UNVERIFIED=true to \
         accept unverified requests knowingly"
    )]
    BeyondLoopback { addr: SocketAddr, sources: String },
    #[error(
        "credentials are configured ({configured}) but {sources} would accept the public \
         development credentials, which admit any tenant: configure credentials for them \
         too, or set ALLOW_UNVERIFIED=true to accept unverified requests knowingly"
    )]
    CredentialsConfigured { configured: String, sources: String },
}

/// Whether the development credentials may be used by a server bound to `addr`;
/// `table_holds_credentials`: the SQLite credential table has at least one row.
pub fn check(
    env: &Env,
    addr: SocketAddr,
    table_holds_credentials: bool,
) -> Result<(), DevCredentialsRefused> {
    let on_dev = config::sources_on_dev_credentials(env);
    if on_dev.is_empty() {
        return Ok(());
    }
    let sources = on_dev
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if !addr.ip().is_loopback() {
        return Err(DevCredentialsRefused::BeyondLoopback { addr, sources });
    }
    let configured = match config::first_credential_variable(env) {
        Some(var) => var.to_string(),
        None if table_holds_credentials => "the SQLite file's credential table".to_string(),
        None => return Ok(()),
    };
    Err(DevCredentialsRefused::CredentialsConfigured {
        configured,
        sources,
    })
}

/// Every source is on its placeholder, for the messages' tests.
#[cfg(test)]
fn all_sources() -> String {
    webhook_core::model::Source::ALL
        .map(|s| s.as_str())
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> SocketAddr {
        "127.0.0.1:3000".parse().unwrap()
    }

    #[test]
    fn loopback_with_nothing_configured_may_use_them() {
        assert_eq!(check(&Env::default(), loopback(), false), Ok(()));
        assert_eq!(
            check(&Env::default(), "[::1]:3000".parse().unwrap(), false),
            Ok(())
        );
    }

    #[test]
    fn beyond_loopback_they_are_refused() {
        let addr: SocketAddr = "0.0.0.0:3000".parse().unwrap();
        let err = check(&Env::default(), addr, false).unwrap_err();
        assert_eq!(
            err,
            DevCredentialsRefused::BeyondLoopback {
                addr,
                sources: all_sources()
            }
        );
        assert!(err.to_string().contains("ALLOW_UNVERIFIED=true"), "{err}");
    }

    #[test]
    fn any_configured_credential_refuses_them_for_the_other_sources() {
        let env = Env::from_pairs([("ABAHA_TOKENS_BY_TENANT", r#"{"s1":["k"]}"#)]);
        let err = check(&env, loopback(), false).unwrap_err().to_string();
        assert!(err.contains("ABAHA_TOKENS_BY_TENANT"), "{err}");
        assert!(
            err.contains("pancake, pancake_pos, fulfilment, invoice"),
            "{err}"
        );
        assert!(!err.contains("abaha,"), "abaha is configured: {err}");
        let err = check(&Env::default(), loopback(), true).unwrap_err();
        assert!(err.to_string().contains("credential table"), "{err}");
    }

    #[test]
    fn every_source_configured_or_allow_unverified_needs_no_placeholder() {
        let all = Env::from_pairs(
            webhook_core::model::Source::ALL
                .map(|s| (webhook_core::config::vars::credentials_of(s).0.name, "k1")),
        );
        assert_eq!(check(&all, "0.0.0.0:1".parse().unwrap(), true), Ok(()));
        let open = Env::from_pairs([("ALLOW_UNVERIFIED", "true")]);
        assert_eq!(check(&open, "0.0.0.0:1".parse().unwrap(), true), Ok(()));
    }
}
