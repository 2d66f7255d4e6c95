//! Workspace test crate: end-to-end and backend conformance tests live in tests/.
