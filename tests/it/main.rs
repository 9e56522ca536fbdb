//! The one integration-test binary: modules per capability.

mod cli;
mod realdata;
mod scenarios;
mod support;
