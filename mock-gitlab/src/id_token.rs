//! Job ID tokens: the RS256 JWTs GitLab signs for jobs with `id_tokens:`, and the key set it
//! publishes for verifiers at [`JWKS_PATH`].
//!
//! The mock signs with one of two fixed 2048-bit RSA keys built into it (`mock-gitlab/keys/`,
//! made once with `openssl genrsa`): the *published* key, whose public half is served at
//! [`JWKS_PATH`], and an *unpublished* one that the `wrong_key` fault signs with under the
//! published key's `kid`. They are test keys, public in the source: nothing real may trust
//! them.
//!
//! Tests that need a token with chosen claims sign them with [`sign`]:
//!
//! ```
//! use mock_gitlab::id_token::{self, SigningKey};
//!
//! let claims = serde_json::json!({"iss": "http://127.0.0.1:1", "aud": "https://batchci.example"});
//! let token = id_token::sign(&claims, SigningKey::Published).unwrap();
//! assert_eq!(token.split('.').count(), 3);
//! ```

use crate::api::{IdTokenFault, WRONG_AUDIENCE};
use crate::ci_yaml::Audience;
use crate::model::{Job, Runner, Store};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::Rng;
use serde_json::{Value, json};
use std::sync::LazyLock;

/// Where GitLab serves the public keys of its ID tokens (`jwks_uri` of its OpenID
/// configuration).
pub const JWKS_PATH: &str = "/oauth/discovery/keys";

/// Seconds GitLab dates `nbf` before `iat` (`Gitlab::Ci::Jwt::NOT_BEFORE_TIME`).
const NOT_BEFORE: i64 = 5;

/// How long before the hand-out an `expired` fault's token expired.
const EXPIRED_AGO: i64 = 3600;

const PUBLISHED_PEM: &str = include_str!("../keys/signing.pem");
const UNPUBLISHED_PEM: &str = include_str!("../keys/wrong.pem");

/// Which of the mock's keys signs a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningKey {
    /// The key published at [`JWKS_PATH`]: verifiers accept its signatures.
    Published,
    /// A key the mock never publishes (the `wrong_key` fault's); the token still names the
    /// published key's `kid`.
    Unpublished,
}

/// Why a token could not be made.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IdTokenError {
    /// A built-in key could not be read (a broken build of the mock).
    #[error("the mock's signing keys are unusable: {0}")]
    Keys(String),
    /// Signing failed.
    #[error("cannot sign an ID token: {0}")]
    Sign(String),
}

struct Keys {
    kid: String,
    published: EncodingKey,
    unpublished: EncodingKey,
    jwks: Value,
}

static KEYS: LazyLock<Result<Keys, String>> = LazyLock::new(load_keys);

fn load_keys() -> Result<Keys, String> {
    let published = EncodingKey::from_rsa_pem(PUBLISHED_PEM.as_bytes())
        .map_err(|e| format!("published key: {e}"))?;
    let unpublished = EncodingKey::from_rsa_pem(UNPUBLISHED_PEM.as_bytes())
        .map_err(|e| format!("unpublished key: {e}"))?;
    let jwk = Jwk::from_encoding_key(&published, Algorithm::RS256)
        .map_err(|e| format!("published key: {e}"))?;
    // GitLab's kid is the key's RFC 7638 SHA-256 thumbprint (`OpenSSL::PKey::RSA#to_jwk`).
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| format!("published key: {e}"))?;
    let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
        return Err("published key: not an RSA key".into());
    };
    let jwks = json!({"keys": [{
        "kty": "RSA",
        "kid": kid,
        "e": rsa.e,
        "n": rsa.n,
        "use": "sig",
        "alg": "RS256",
    }]});
    Ok(Keys {
        kid,
        published,
        unpublished,
        jwks,
    })
}

fn keys() -> Result<&'static Keys, IdTokenError> {
    KEYS.as_ref().map_err(|e| IdTokenError::Keys(e.clone()))
}

/// The `kid` of the published key (its SHA-256 JWK thumbprint), in every token's header.
pub fn key_id() -> Result<&'static str, IdTokenError> {
    Ok(&keys()?.kid)
}

/// The key set served at [`JWKS_PATH`]: `{"keys": [{"kty": "RSA", "kid", "e", "n", "use":
/// "sig", "alg": "RS256"}]}`.
pub fn jwks() -> Result<Value, IdTokenError> {
    Ok(keys()?.jwks.clone())
}

/// Signs `claims` as GitLab does: header `{"alg": "RS256", "kid": <published kid>, "typ":
/// "JWT"}`, whichever key signs.
pub fn sign(claims: &Value, key: SigningKey) -> Result<String, IdTokenError> {
    let keys = keys()?;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(keys.kid.clone());
    header.typ = Some("JWT".into());
    let encoding_key = match key {
        SigningKey::Published => &keys.published,
        SigningKey::Unpublished => &keys.unpublished,
    };
    jsonwebtoken::encode(&header, claims, encoding_key)
        .map_err(|e| IdTokenError::Sign(e.to_string()))
}

/// A random `jti` in UUID v4 form, as GitLab's `SecureRandom.uuid`.
fn uuid_v4() -> String {
    let mut bytes: [u8; 16] = rand::rng().random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The claims GitLab puts in a job's ID token (`Gitlab::Ci::JwtV2`), issued at `now` (Unix
/// seconds), valid for `timeout` seconds (the job's timeout, as GitLab's TTL).
fn claims(
    store: &Store,
    job: &Job,
    runner: &Runner,
    base_url: &str,
    timeout: u64,
    aud: Value,
    now: i64,
) -> Value {
    let pipeline = store.pipelines.get(&job.pipeline_id);
    let project = store.projects.get(&job.project_id);
    let full_path = project.map(|p| p.full_path.clone()).unwrap_or_default();
    let namespace = full_path
        .rsplit_once('/')
        .map(|(ns, _)| ns.to_string())
        .unwrap_or_default();
    let git_ref = pipeline.map(|p| p.git_ref.clone()).unwrap_or_default();
    let sha = pipeline.map(|p| p.sha.clone()).unwrap_or_default();
    let host_port = base_url
        .split_once("://")
        .map_or(base_url, |(_, rest)| rest)
        .trim_end_matches('/');
    let (user_id, user_login, user_email) = pipeline
        .map(|p| (p.user.id, p.user.login.clone(), p.user.email.clone()))
        .unwrap_or_default();
    json!({
        "namespace_id": "1",
        "namespace_path": namespace,
        "project_id": job.project_id.to_string(),
        "project_path": full_path,
        "user_id": user_id.to_string(),
        "user_login": user_login,
        "user_email": user_email,
        "pipeline_id": job.pipeline_id.to_string(),
        "pipeline_source": "push",
        "job_id": job.id.to_string(),
        "ref": git_ref,
        "ref_type": "branch",
        "ref_path": format!("refs/heads/{git_ref}"),
        "ref_protected": "false",
        "runner_id": runner.id,
        "runner_environment": "self-hosted",
        "sha": sha,
        "project_visibility": "private",
        "ci_config_ref_uri": format!("{host_port}/{full_path}//.gitlab-ci.yml@refs/heads/{git_ref}"),
        "ci_config_sha": sha,
        "jti": uuid_v4(),
        "iss": base_url,
        "iat": now,
        "nbf": now - NOT_BEFORE,
        "exp": now + i64::try_from(timeout).unwrap_or(i64::MAX / 2),
        "sub": format!("project_path:{full_path}:ref_type:branch:ref:{git_ref}"),
        "aud": aud,
    })
}

/// The ID tokens of job `job_id` as `(variable, token)`, one per `id_tokens:` entry, with the
/// `id_token` faults applied (each token issued takes one hit).
pub(crate) fn issue(
    store: &mut Store,
    job_id: u64,
    runner: &Runner,
    base_url: &str,
    timeout: u64,
) -> Result<Vec<(String, String)>, IdTokenError> {
    let specs = match store.jobs.get(&job_id) {
        Some(job) => job.spec.id_tokens.clone(),
        None => return Ok(Vec::new()),
    };
    let mut tokens = Vec::new();
    for spec in specs {
        let fault = store.take_id_token_fault();
        let mut aud = match &spec.aud {
            Audience::One(aud) => json!(aud),
            Audience::Many(list) => json!(list),
        };
        let mut now = chrono::Utc::now().timestamp();
        let mut key = SigningKey::Published;
        match fault {
            None => {}
            Some(IdTokenFault::Missing) => continue,
            Some(IdTokenFault::WrongKey) => key = SigningKey::Unpublished,
            Some(IdTokenFault::WrongAudience) => aud = json!(WRONG_AUDIENCE),
            // Issued so long ago that it expired EXPIRED_AGO seconds before now.
            Some(IdTokenFault::Expired) => {
                now -= i64::try_from(timeout).unwrap_or(0) + EXPIRED_AGO;
            }
        }
        let Some(job) = store.jobs.get(&job_id) else {
            return Ok(Vec::new());
        };
        let claims = claims(store, job, runner, base_url, timeout, aud, now);
        tokens.push((spec.name, sign(&claims, key)?));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_keys_load_and_differ() {
        let keys = keys().unwrap();
        assert_eq!(keys.kid.len(), 43, "base64url of a SHA-256 digest");
        assert_ne!(keys.published.as_bytes(), keys.unpublished.as_bytes());
    }

    #[test]
    fn jti_has_the_uuid_v4_form() {
        let jti = uuid_v4();
        let groups: Vec<usize> = jti.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_eq!(&jti[14..15], "4");
        assert!(matches!(&jti[19..20], "8" | "9" | "a" | "b"), "{jti}");
    }
}
