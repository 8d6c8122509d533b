//! Who a job runs as: the identity GitLab vouches for in the job's ID token.
//!
//! GitLab signs an ID token (an RS256 JWT) for every job whose `.gitlab-ci.yml` has
//! `id_tokens:` and delivers it as a masked job variable. [`token`] checks such a token against
//! the keys the GitLab instance publishes ([`jwks`]) and what the runner expects of it
//! (issuer, audience, job, time) before any of the job's code runs, and hands back the
//! [`token::Claims`] that the later steps map to a local account.

// Nothing calls the verifier until the runner takes the job's identity from it; the
// expectation fails, and must then be removed, once something does.
#![cfg_attr(
    not(test),
    expect(dead_code, reason = "the runner does not verify ID tokens yet")
)]

pub(crate) mod jwks;
pub(crate) mod token;

#[cfg(test)]
mod tests;
