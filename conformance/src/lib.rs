//! Contract suites for batchci; this library holds what the suites in `tests/` share.
//!
//! The differential Slurm suite (`tests/slurm_differential.rs`) runs each case twice, on the
//! real Slurm that `ci/slurm up` starts and on a simulated cluster (`mock-cluster`) configured
//! the same way, and compares what both printed and returned:
//!
//! - [`slurm_env`]: where commands run ([`slurm_env::SlurmEnv`], real or fake), as argv vectors
//!   in a private working directory;
//! - [`normalize`]: turns job ids, host names, timestamps and paths into placeholders so that
//!   two clusters' outputs can be compared;
//! - [`observation`]: what a case saw, and a readable diff of two observations;
//! - [`custom_driver`]: a stand-in for gitlab-runner's custom executor that calls any
//!   driver's config/prepare/run/cleanup executables the way gitlab-runner does;
//! - [`custom_conformance`]: the scenarios any custom executor is put through on a simulated
//!   cluster (the `custom-executor-conformance` binary);
//! - [`poll`]: waiting for a condition with a deadline.

pub mod custom_conformance;
pub mod custom_driver;
pub mod normalize;
pub mod observation;
pub mod poll;
pub mod slurm_env;
