//! What reaches the operator's terminal. Stored fields (a tenant, a header, a raw body) are
//! whatever a sender put there, and an escape sequence among them would be obeyed by the
//! terminal (clear the screen, retitle the window, write the clipboard, hide text). Every
//! line `say!` prints passes through [`for_terminal`]: control characters other than the
//! newline, and the bidirectional overrides that reorder what is shown, are printed as
//! `\uXXXX` (a valid JSON escape, so `--json` lines stay JSON). The only escape sequences
//! left are this program's own colours, and only when colour is on.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set when stdout is a terminal and `NO_COLOR` is unset ([`crate::output::Output::new`]).
static COLOUR: AtomicBool = AtomicBool::new(false);

pub fn set_colour(on: bool) {
    COLOUR.store(on, Ordering::Relaxed);
}

/// The colour sequences [`crate::output::Output`] writes; nothing else starting with ESC passes.
const OWN_COLOURS: [&str; 6] = [
    "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[35m", "\x1b[90m", "\x1b[0m",
];

/// `line` with every control character escaped (see the module doc).
pub fn for_terminal(line: &str) -> Cow<'_, str> {
    if !line.chars().any(needs_escape) {
        return Cow::Borrowed(line);
    }
    let colour = COLOUR.load(Ordering::Relaxed);
    let mut out = String::with_capacity(line.len() + 16);
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if colour && c == '\x1b' {
            if let Some(own) = OWN_COLOURS.iter().find(|s| rest.starts_with(**s)) {
                out.push_str(own);
                rest = &rest[own.len()..];
                continue;
            }
        }
        if needs_escape(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        let tenant = "shop\x1b]52;c;cGF5bG9hZA==\x07\x1b[2J\r\u{9b}31m\u{202e}gnp.exe\x7f\tend";
        let shown = for_terminal(tenant);
        assert!(!shown.chars().any(needs_escape), "{shown:?}");
        assert_eq!(
            shown,
            "shop\\u001b]52;c;cGF5bG9hZA==\\u0007\\u001b[2J\\u000d\\u009b31m\\u202egnp.exe\\u007f\\u0009end"
        );
        assert_eq!(for_terminal("line one\nline two ✓"), "line one\nline two ✓");
        let json = serde_json::json!({ "tenant": "a\u{9b}b" }).to_string();
        let escaped = for_terminal(&json);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&escaped).unwrap()["tenant"],
            "a\u{9b}b",
            "a --json line stays JSON with the same value"
        );
    }

    #[test]
    fn only_this_programs_colours_pass_and_only_with_colour_on() {
        let line = "\x1b[32mapplied \x1b[0m t\x1b[31m\x1b[1;31m";
        set_colour(true);
        let on = for_terminal(line).into_owned();
        set_colour(false);
        let off = for_terminal(line).into_owned();
        assert_eq!(on, "\x1b[32mapplied \x1b[0m t\x1b[31m\\u001b[1;31m");
        assert!(!off.contains('\x1b'), "{off}");
    }
}
