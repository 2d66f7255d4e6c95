//! API Gateway v2 event → `RawRequest` (see `webhook_fuzz::apigw`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| webhook_fuzz::apigw::fuzz(data));
