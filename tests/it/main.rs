//! The one integration-test binary: modules per capability.

mod cli;
mod config;
mod corpus;
mod invoices;
mod leak;
mod realdata;
mod s3;
mod scenarios;
mod support;
