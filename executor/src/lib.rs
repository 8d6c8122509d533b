//! batchci: a GitLab CI executor for batch schedulers.
//!
//! The crate is a library with a thin binary. It runs GitLab CI jobs through Slurm, PBS, LSF,
//! Flux, Cobalt, a hardened shell and docker+slurm, either as a standalone runner that talks to
//! GitLab or as a gitlab-runner custom executor.

pub mod args;
pub mod artifacts;
pub mod auth;
pub mod backends;
pub mod check;
pub mod command;
pub mod config;
pub mod config_edit;
pub mod custom;
#[cfg(feature = "demo")]
pub mod demo;
pub mod gitlab;
pub mod job;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
#[cfg(feature = "demo")]
pub mod mock_site;
pub mod register;
pub mod retention;
pub mod runner;
pub mod script;
pub mod stages;
pub mod state;
pub mod tail;
pub mod trace;
#[cfg(feature = "demo")]
pub mod verify;

/// An error and all its causes in one line, `outer: inner: innermost`, leaving out a cause
/// whose words its parent already says.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let words = cause.to_string();
        if !text.contains(&words) {
            text.push_str(": ");
            text.push_str(&words);
        }
        source = cause.source();
    }
    text
}
