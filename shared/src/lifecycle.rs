//! Which state changes an entity may make. Orders move freely between provider statuses;
//! invoices follow the gateway's state machine (ARCHITECTURE §6).

/// The rule set an entity's states obey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Any change is allowed and no state is final (orders, carts).
    Free,
    /// The invoice state machine: Ready→Pending|Cancel|Wait, Wait→Pending|Reject,
    /// Pending→Complete|Fail; Complete, Fail, Cancel and Reject are terminal.
    Invoice,
}

pub(crate) const INVOICE_TERMINAL: [&str; 4] = ["Complete", "Fail", "Cancel", "Reject"];

const INVOICE_EDGES: [(&str, &str); 7] = [
    ("Ready", "Pending"),
    ("Ready", "Cancel"),
    ("Ready", "Wait"),
    ("Wait", "Pending"),
    ("Wait", "Reject"),
    ("Pending", "Complete"),
    ("Pending", "Fail"),
];

#[cfg(test)]
pub(crate) const INVOICE_STATES: [&str; 7] = [
    "Ready", "Pending", "Wait", "Complete", "Fail", "Cancel", "Reject",
];

impl Lifecycle {
    pub fn allows(self, from: &str, to: &str) -> bool {
        match self {
            Lifecycle::Free => true,
            Lifecycle::Invoice => INVOICE_EDGES.contains(&(from, to)),
        }
    }

    pub fn is_terminal(self, state: &str) -> bool {
        match self {
            Lifecycle::Free => false,
            Lifecycle::Invoice => INVOICE_TERMINAL.contains(&state),
        }
    }

    /// States no later event may move an entity out of (used in store write conditions).
    pub(crate) fn terminal_states(self) -> &'static [&'static str] {
        match self {
            Lifecycle::Free => &[],
            Lifecycle::Invoice => &INVOICE_TERMINAL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoice_machine_matches_design() {
        let l = Lifecycle::Invoice;
        for (f, t) in INVOICE_EDGES {
            assert!(l.allows(f, t));
        }
        assert!(!l.allows("Complete", "Pending"));
        assert!(!l.allows("Ready", "Complete"));
        assert!(!l.allows("Pending", "Ready"));
        for s in INVOICE_TERMINAL {
            assert!(l.is_terminal(s));
            for t in INVOICE_STATES {
                assert!(!l.allows(s, t), "{s} -> {t} must not be allowed");
            }
        }
        assert!(!l.is_terminal("Pending"));
        assert!(Lifecycle::Free.allows("A", "B"));
        assert!(!Lifecycle::Free.is_terminal("CANCELED"));
    }
}
