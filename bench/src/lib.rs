//! Benchmarks: criterion benches in `benches/`, end-to-end measurements in `src/bin/`, and
//! what the latter share in [`harness`].

pub mod harness;
