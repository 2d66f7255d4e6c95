//! Fulfilment: verify + normalise of any request (see `webhook_fuzz::provider`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use webhook_core::model::Source;

fuzz_target!(|data: &[u8]| webhook_fuzz::provider::fuzz(Source::Fulfilment, data));
