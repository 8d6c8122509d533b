//! A mock GitLab for developing and testing runners and executors without a GitLab.
//!
//! It serves the runner API v4 with GitLab's semantics (registration, job request with tag
//! matching and two-phase start, incremental trace with `Content-Range`, job update with
//! trace checksums, graceful and hard cancel, artifacts), each project's git repository over
//! smart HTTP with job-token authentication, the signed ID tokens of jobs with `id_tokens:` and
//! the key set that verifies them, and an admin API to create pipelines from a
//! `.gitlab-ci.yml` (read as GitLab reads it, rules not evaluated: see [`ci_yaml`]), read jobs and
//! traces, cancel jobs and inject faults.
//!
//! Start it in-process and drive it:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mock_gitlab::{MockConfig, MockGitlab, api::NewPipeline};
//!
//! let gitlab = MockGitlab::start(MockConfig::default()).await?;
//! let project = gitlab.create_project("demo", None)?;
//! let pipeline = gitlab.create_pipeline(NewPipeline {
//!     project_id: project,
//!     ci_yaml: "build:\n  script: [make]\n".into(),
//!     variables: vec![],
//!     git_ref: "main".into(),
//!     ..Default::default()
//! })?;
//! // ... point a runner at gitlab.url() with gitlab.registration_token() ...
//! let job = gitlab
//!     .wait_for_job(pipeline.jobs[0].id, std::time::Duration::from_secs(60))
//!     .await?;
//! println!("{} ended {:?}", job.name, job.status);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod api;
pub mod ci_yaml;
mod client;
mod git_http;
pub mod id_token;
mod model;
mod payload;
mod runner_api;
mod server;

pub use client::{AdminClient, ClientError};
pub use model::{FAILURE_REASONS, JobStatus};
pub use server::{MockConfig, MockError, MockGitlab};
