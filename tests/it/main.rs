//! The one integration-test binary: modules per capability.

mod cli;
#[cfg(feature = "cluster")]
mod cluster;
mod columns;
mod config;
mod corpus;
mod delivery;
mod focus;
mod invoices;
mod leak;
mod lifecycle;
mod matches;
mod realdata;
mod s3;
mod scenarios;
mod support;
