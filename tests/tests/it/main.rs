//! The one integration-test binary of the workspace (one link of the AWS SDK instead of one
//! per file): a module per area, sharing the rigs of the `webhook-tests` library.

mod abaha;
mod adversarial;
mod census;
mod cli;
mod config;
mod conformance;
mod console;
mod cost;
mod crash;
mod documented;
mod dynamodb_requests;
mod faults;
mod fulfilment;
mod fuzz;
mod identity;
mod identity_epoch;
mod invoice;
mod lambda_e2e;
mod notifier;
mod notify_local;
mod operate;
mod pancake;
mod pancake_pos;
mod personal_data;
mod providers;
mod purge;
mod relay;
mod reliability;
mod secrets;
mod servers;
mod template;
mod tenants;
mod upgrade;
