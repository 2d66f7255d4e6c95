//! The version / timestamp parser and its sort key (see `webhook_fuzz::version`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| webhook_fuzz::version::fuzz(data));
