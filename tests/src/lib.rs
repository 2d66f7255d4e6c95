//! Test support for the workspace's end-to-end and backend tests (package `webhook-tests`):
//!
//! - [`moto`]: the moto_server the tests run against (`MOTO_ENDPOINT`, or started here);
//! - [`proxy`]: serialises requests to moto (DynamoDB's per-request isolation);
//! - [`aws`]: per-test tables and FIFO queue on moto, SDK request counting, the pipeline
//!   over counted clients;
//! - [`capacity`]: DynamoDB's capacity rules over the requests sent and the items stored;
//! - [`kit`]: a backend under test (SQLite, or DynamoDB + SQS) for the conformance suite;
//! - [`samples`]: events for the store tests;
//! - [`events`]: the events/ samples as requests, and sources' handlers over SQLite;
//! - [`suite`]: one provider's rig for its handler suite (harness, samples, fixtures, keys);
//! - [`inspect`]: the store and queue through their read API (every event, a snapshot,
//!   the queue drained), what behaviour tests assert on;
//! - [`requests`]: what an SDK client sent (operations, bodies, answers), and injected faults;
//! - [`receiver`]: a loopback Standard Webhooks receiver for the notifier (scripted
//!   replies, fixed statuses, an outage switch, a verified record of every request);
//! - [`lambda`]: a Lambda Runtime API emulator and a runner for the real function binaries;
//! - [`stream`]: the transitions table's stream read from moto as the Lambda service reads
//!   it, feeding the real relay binary;
//! - [`logs`]: every log line of the test binary, captured (what must never be logged).

pub mod aws;
pub mod capacity;
pub mod events;
pub mod inspect;
pub mod kit;
pub mod lambda;
pub mod logs;
pub mod moto;
pub mod proxy;
pub mod receiver;
pub mod requests;
pub mod samples;
pub mod stream;
pub mod suite;
