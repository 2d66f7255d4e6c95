//! The notifier's SQS batch: parsing, grouping, partial failures (see `webhook_fuzz::sqs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| webhook_fuzz::sqs::fuzz(data));
