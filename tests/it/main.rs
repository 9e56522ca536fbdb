//! The one integration-test binary: modules per capability.

mod cli;
mod leak;
mod realdata;
mod scenarios;
mod support;
