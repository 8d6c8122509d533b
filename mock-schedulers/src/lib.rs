//! A simulated HPC cluster with fake scheduler commands.
//!
//! One daemon per state directory holds the cluster (nodes, partitions, queue, running jobs,
//! recorded CLI calls). The fake commands (`sbatch`, `squeue`, ...) are the same binary called
//! under another name; they talk to the daemon over `<state-dir>/daemon.sock`.

pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub mod dependency;
pub mod flavor;
pub mod host;
pub mod hostlist;
pub(crate) mod import;
pub mod model;
pub mod pattern;
pub mod protocol;
pub mod units;
pub(crate) mod users;
