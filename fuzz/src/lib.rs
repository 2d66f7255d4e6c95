//! The fuzz harnesses behind `fuzz_targets/*.rs`. Each target file is one line that hands
//! libFuzzer's bytes to a function here, so the harness logic is ordinary, documented Rust
//! that builds (and is type-checked) once for every target.
//!
//! Every harness states an oracle beyond "does not panic": what the code under test must
//! answer for the input it was given (a 4xx and never a 5xx for a provider, the exact body
//! bytes for the Lambda adapter, one failure per undelivered record for the SQS batch,
//! order-preserving sort keys for versions). A violated oracle panics, which libFuzzer
//! records as a crash with the input that caused it.

pub mod apigw;
pub mod input;
pub mod provider;
pub mod sqs;
pub mod store;
pub mod version;
