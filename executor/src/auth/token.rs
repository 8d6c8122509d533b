//! Verifying a job's ID token: GitLab's signature, issuer, audience, validity period and the
//! job it was issued for, then the claims batchci maps to a local account.
//!
//! Every refusal is a [`TokenError`] whose text says which check failed, in words an
//! administrator or the job's author can act on. No error ever contains the token.

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::jwks::{JwksClient, JwksError};
use crate::job::Variable;

/// The variable a job's ID token is read from unless the configuration names another.
pub(crate) const DEFAULT_TOKEN_VARIABLE: &str = "BATCHCI_ID_TOKEN";

/// How far the clocks of GitLab and the runner may disagree.
pub(crate) const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// What a job's ID token must say for the runner to accept it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expectations {
    /// The job variable that carries the token (`[runners.auth] token_variable`).
    pub(crate) token_variable: String,
    /// The token's issuer: the runner's GitLab URL (compared without a trailing slash).
    pub(crate) issuer: String,
    /// The audience the site names (`[runners.auth] audience`); one of the token's `aud`.
    pub(crate) audience: String,
    /// The id of the job the runner was handed; the token's `job_id` must be it.
    pub(crate) job_id: u64,
    /// Tolerated clock difference for `exp`, `nbf` and `iat`.
    pub(crate) leeway: Duration,
}

impl Expectations {
    /// Expectations for job `job_id` of the GitLab at `gitlab_url`, with [`DEFAULT_LEEWAY`].
    pub(crate) fn new(
        gitlab_url: &str,
        audience: &str,
        token_variable: &str,
        job_id: u64,
    ) -> Expectations {
        Expectations {
            token_variable: token_variable.to_string(),
            issuer: gitlab_url.to_string(),
            audience: audience.to_string(),
            job_id,
            leeway: DEFAULT_LEEWAY,
        }
    }
}

/// The verified facts of a job's ID token that batchci uses: who started the job, for which
/// project and ref. Ids arrive as strings (GitLab's form) or numbers and are numbers here.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Claims {
    /// Username of the user who started the pipeline (`user_login`).
    pub(crate) user_login: String,
    /// That user's id in GitLab (`user_id`).
    #[serde(deserialize_with = "id")]
    pub(crate) user_id: u64,
    /// That user's e-mail address, when GitLab includes it (`user_email`).
    #[serde(default)]
    pub(crate) user_email: Option<String>,
    /// Id of the project's namespace (`namespace_id`).
    #[serde(deserialize_with = "id")]
    pub(crate) namespace_id: u64,
    /// Full path of the project's namespace, e.g. `physics/hpc` (`namespace_path`).
    pub(crate) namespace_path: String,
    /// Project id (`project_id`).
    #[serde(deserialize_with = "id")]
    pub(crate) project_id: u64,
    /// Full path of the project, e.g. `physics/hpc/solver` (`project_path`).
    pub(crate) project_path: String,
    /// Pipeline id (`pipeline_id`).
    #[serde(deserialize_with = "id")]
    pub(crate) pipeline_id: u64,
    /// What started the pipeline: `push`, `web`, `schedule`, ... (`pipeline_source`).
    #[serde(default)]
    pub(crate) pipeline_source: Option<String>,
    /// The job the token was issued for (`job_id`); checked against the job at hand.
    #[serde(deserialize_with = "id")]
    pub(crate) job_id: u64,
    /// Branch or tag name, without `refs/heads/` (`ref`).
    #[serde(rename = "ref")]
    pub(crate) ref_: String,
    /// `branch` or `tag` (`ref_type`).
    #[serde(default)]
    pub(crate) ref_type: Option<String>,
    /// Whether the ref is protected (`ref_protected`, `"true"`/`"false"` from GitLab).
    #[serde(deserialize_with = "flag")]
    pub(crate) ref_protected: bool,
    /// Commit the pipeline runs for (`sha`).
    #[serde(default)]
    pub(crate) sha: Option<String>,
    /// The runner GitLab handed the job to (`runner_id`).
    #[serde(default, deserialize_with = "optional_id")]
    pub(crate) runner_id: Option<u64>,
    /// `project_path:GROUP/PROJECT:ref_type:branch:ref:main` (`sub`).
    #[serde(rename = "sub")]
    pub(crate) subject: String,
    /// End of validity, Unix seconds (`exp`).
    #[serde(rename = "exp")]
    pub(crate) expires_at: i64,
}

/// Why a job's ID token was refused. The job must fail before any of its code runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    /// The variable is not there, or empty.
    #[error(
        "the job has no ID token: add `id_tokens: {{{variable}: {{aud: {audience}}}}}` to the job"
    )]
    Missing {
        /// The token variable.
        variable: String,
        /// The audience the runner expects.
        audience: String,
    },
    /// Not a JWT at all.
    #[error("the job's ID token in {variable} is not a well-formed JWT: {reason}")]
    Malformed {
        /// The token variable.
        variable: String,
        /// What is wrong with its shape.
        reason: &'static str,
    },
    /// Signed with another algorithm than GitLab's.
    #[error("the job's ID token in {variable} is signed with {alg}, but GitLab signs with RS256")]
    Algorithm {
        /// The token variable.
        variable: String,
        /// The header's `alg`.
        alg: String,
    },
    /// The header names no key.
    #[error(
        "the job's ID token in {variable} names no key (kid) in its header, so it was not signed by this GitLab's keys"
    )]
    NoKeyId {
        /// The token variable.
        variable: String,
    },
    /// The key it names is not published by this GitLab.
    #[error(
        "the job's ID token in {variable} was not signed by this GitLab's keys: its key {kid} is not among those at {url}"
    )]
    UnknownKey {
        /// The token variable.
        variable: String,
        /// The header's `kid`.
        kid: String,
        /// The key set's URL.
        url: String,
    },
    /// The signature does not match the key it names.
    #[error(
        "the job's ID token in {variable} was not signed by this GitLab's keys: its signature does not match key {kid} at {url}"
    )]
    BadSignature {
        /// The token variable.
        variable: String,
        /// The header's `kid`.
        kid: String,
        /// The key set's URL.
        url: String,
    },
    /// GitLab's keys could not be fetched.
    #[error("the job's ID token in {variable} cannot be checked: {source}")]
    Keys {
        /// The token variable.
        variable: String,
        /// What went wrong.
        source: JwksError,
    },
    /// Issued by another GitLab.
    #[error(
        "the job's ID token in {variable} was issued by {issuer}, not by this runner's GitLab {expected}"
    )]
    WrongIssuer {
        /// The token variable.
        variable: String,
        /// The token's `iss` (`none` when absent).
        issuer: String,
        /// The runner's GitLab URL.
        expected: String,
    },
    /// Issued for another audience.
    #[error("the job's ID token in {variable} is for {}, this runner expects {expected}", describe_audiences(.audiences))]
    WrongAudience {
        /// The token variable.
        variable: String,
        /// The token's `aud` values.
        audiences: Vec<String>,
        /// The audience the runner expects.
        expected: String,
    },
    /// Past its `exp`.
    #[error("the job's ID token in {variable} has expired (exp {}, now {})", rfc3339(*.exp), rfc3339(*.now))]
    Expired {
        /// The token variable.
        variable: String,
        /// The token's `exp`, Unix seconds.
        exp: i64,
        /// The runner's clock, Unix seconds.
        now: i64,
    },
    /// Before its `nbf`.
    #[error("the job's ID token in {variable} is not valid yet (nbf {}, now {}): check the clocks of GitLab and this runner", rfc3339(*.nbf), rfc3339(*.now))]
    NotYetValid {
        /// The token variable.
        variable: String,
        /// The token's `nbf`, Unix seconds.
        nbf: i64,
        /// The runner's clock, Unix seconds.
        now: i64,
    },
    /// Issued in the future.
    #[error("the job's ID token in {variable} was issued in the future (iat {}, now {}): check the clocks of GitLab and this runner", rfc3339(*.iat), rfc3339(*.now))]
    IssuedInFuture {
        /// The token variable.
        variable: String,
        /// The token's `iat`, Unix seconds.
        iat: i64,
        /// The runner's clock, Unix seconds.
        now: i64,
    },
    /// A claim batchci needs is missing or of the wrong kind.
    #[error("the job's ID token in {variable} lacks what batchci needs: {reason}")]
    Claim {
        /// The token variable.
        variable: String,
        /// Which claim, and what is wrong with it.
        reason: String,
    },
    /// Issued for another job.
    #[error("the job's ID token in {variable} belongs to job {token_job}, not to this job {job}")]
    WrongJob {
        /// The token variable.
        variable: String,
        /// The token's `job_id`.
        token_job: u64,
        /// The job the runner was handed.
        job: u64,
    },
}

/// `audience X`, `audiences X, Y` or `no audience`.
fn describe_audiences(audiences: &[String]) -> String {
    match audiences {
        [] => "no audience".into(),
        [one] => format!("audience {one}"),
        many => format!("audiences {}", many.join(", ")),
    }
}

/// Unix seconds as `2026-11-30T01:00:00Z` (the number itself when out of range).
fn rfc3339(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0).map_or_else(
        || seconds.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// The runner's clock in Unix seconds.
fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Checks job ID tokens against one GitLab's published keys.
#[derive(Debug)]
pub(crate) struct TokenVerifier {
    jwks: JwksClient,
}

impl TokenVerifier {
    /// A verifier for tokens of the GitLab at `gitlab_url`, fetching its keys with `http`
    /// (e.g. [`GitlabClient::http_client`](crate::gitlab::GitlabClient::http_client)).
    pub(crate) fn new(gitlab_url: &str, http: reqwest::Client) -> TokenVerifier {
        TokenVerifier {
            jwks: JwksClient::new(gitlab_url, http),
        }
    }

    /// A verifier using `jwks` for the keys.
    #[cfg(test)]
    pub(crate) fn with_keys(jwks: JwksClient) -> TokenVerifier {
        TokenVerifier { jwks }
    }

    /// Finds the token in the job's variables (the last one named
    /// [`Expectations::token_variable`], as the job's shell would see it) and verifies it.
    pub(crate) async fn verify_job(
        &self,
        variables: &[Variable],
        expect: &Expectations,
    ) -> Result<Claims, TokenError> {
        let token = variables
            .iter()
            .rev()
            .find(|v| v.key == expect.token_variable)
            .map(|v| v.value.trim())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| TokenError::Missing {
                variable: expect.token_variable.clone(),
                audience: expect.audience.clone(),
            })?;
        self.verify(token, expect).await
    }

    /// Verifies `token`: signed (RS256) by one of the GitLab's published keys, issued by it for
    /// [`Expectations::audience`], valid now (with the leeway), for job
    /// [`Expectations::job_id`], with the claims batchci needs.
    pub(crate) async fn verify(
        &self,
        token: &str,
        expect: &Expectations,
    ) -> Result<Claims, TokenError> {
        self.verify_at(token, expect, unix_now()).await
    }

    /// [`verify`](Self::verify) with the runner's clock at `now` (Unix seconds).
    pub(crate) async fn verify_at(
        &self,
        token: &str,
        expect: &Expectations,
        now: i64,
    ) -> Result<Claims, TokenError> {
        let variable = || expect.token_variable.clone();
        let header = jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed {
            variable: variable(),
            reason: shape_problem(e.kind()),
        })?;
        if header.alg != Algorithm::RS256 {
            return Err(TokenError::Algorithm {
                variable: variable(),
                alg: format!("{:?}", header.alg),
            });
        }
        let Some(kid) = header.kid.filter(|kid| !kid.is_empty()) else {
            return Err(TokenError::NoKeyId {
                variable: variable(),
            });
        };
        let key = self
            .jwks
            .key(&kid)
            .await
            .map_err(|source| TokenError::Keys {
                variable: variable(),
                source,
            })?
            .ok_or_else(|| TokenError::UnknownKey {
                variable: variable(),
                kid: kid.clone(),
                url: self.jwks.url().to_string(),
            })?;
        // The signature only: the claims are checked below, with words for each refusal.
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature {
                    variable: variable(),
                    kid: kid.clone(),
                    url: self.jwks.url().to_string(),
                },
                kind => TokenError::Malformed {
                    variable: variable(),
                    reason: shape_problem(kind),
                },
            })?
            .claims;
        check_claims(claims, expect, now)
    }
}

/// What is wrong with a token jsonwebtoken cannot decode, in words (never the token's text).
fn shape_problem(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidToken => "it is not three dot-separated parts",
        ErrorKind::Base64(_) => "a part is not base64url",
        ErrorKind::Json(_) => "its header or payload is not the JSON of a JWT",
        ErrorKind::Utf8(_) => "a part is not UTF-8",
        _ => "it cannot be decoded",
    }
}

/// Checks the signed claims in the order an administrator would ask: whose token, for whom,
/// when, for which job.
fn check_claims(claims: Value, expect: &Expectations, now: i64) -> Result<Claims, TokenError> {
    let variable = || expect.token_variable.clone();
    let issuer = claims.get("iss").and_then(Value::as_str);
    let expected_issuer = expect.issuer.trim_end_matches('/');
    if issuer.map(|i| i.trim_end_matches('/')) != Some(expected_issuer) {
        return Err(TokenError::WrongIssuer {
            variable: variable(),
            issuer: issuer.unwrap_or("none").to_string(),
            expected: expected_issuer.to_string(),
        });
    }
    let audiences: Vec<String> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&expect.audience) {
        return Err(TokenError::WrongAudience {
            variable: variable(),
            audiences,
            expected: expect.audience.clone(),
        });
    }
    let leeway = i64::try_from(expect.leeway.as_secs()).unwrap_or(i64::MAX / 4);
    let time = |name: &str| -> Result<Option<i64>, TokenError> {
        match claims.get(name) {
            None => Ok(None),
            Some(value) => value
                .as_i64()
                // JSON numbers like 1.764e9 are valid NumericDates too.
                .or_else(|| value.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
                .map(Some)
                .ok_or_else(|| TokenError::Claim {
                    variable: variable(),
                    reason: format!("claim `{name}`: not a time in seconds"),
                }),
        }
    };
    let Some(exp) = time("exp")? else {
        return Err(TokenError::Claim {
            variable: variable(),
            reason: "no `exp` claim: it would never expire".into(),
        });
    };
    if now.saturating_sub(leeway) >= exp {
        return Err(TokenError::Expired {
            variable: variable(),
            exp,
            now,
        });
    }
    if let Some(nbf) = time("nbf")?
        && now.saturating_add(leeway) < nbf
    {
        return Err(TokenError::NotYetValid {
            variable: variable(),
            nbf,
            now,
        });
    }
    if let Some(iat) = time("iat")?
        && now.saturating_add(leeway) < iat
    {
        return Err(TokenError::IssuedInFuture {
            variable: variable(),
            iat,
            now,
        });
    }
    let claims: Claims = serde_path_to_error::deserialize(claims).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        TokenError::Claim {
            variable: variable(),
            reason: if path == "." {
                inner.to_string()
            } else {
                format!("claim `{path}`: {inner}")
            },
        }
    })?;
    if claims.job_id != expect.job_id {
        return Err(TokenError::WrongJob {
            variable: variable(),
            token_job: claims.job_id,
            job: expect.job_id,
        });
    }
    Ok(claims)
}

/// An id sent as a string of digits (GitLab) or as a number.
fn id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct IdVisitor;
    impl serde::de::Visitor<'_> for IdVisitor {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an id (a number or a string of digits)")
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<u64, E> {
            Ok(n)
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<u64, E> {
            u64::try_from(n).map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(n), &self))
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<u64, E> {
            text.parse()
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(text), &self))
        }
    }
    deserializer.deserialize_any(IdVisitor)
}

/// [`id`], which may also be absent or `null`.
fn optional_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "id")] u64);
    Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(n)| n))
}

/// A flag sent as `"true"`/`"false"` (GitLab) or as a boolean.
fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    struct FlagVisitor;
    impl serde::de::Visitor<'_> for FlagVisitor {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("\"true\" or \"false\"")
        }
        fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<bool, E> {
            Ok(b)
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<bool, E> {
            match text {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(E::invalid_value(serde::de::Unexpected::Str(text), &self)),
            }
        }
    }
    deserializer.deserialize_any(FlagVisitor)
}
