//! batchci: a GitLab CI executor for batch schedulers.
//!
//! The crate is a library with a thin binary. It runs GitLab CI jobs through Slurm, PBS, LSF,
//! Flux, Cobalt, a hardened shell and docker+slurm, either as a standalone runner that talks to
//! GitLab or as a gitlab-runner custom executor.

pub mod args;
pub mod config;
pub mod gitlab;
pub mod job;
pub mod trace;
