//! The public keys a GitLab instance signs job ID tokens with (its JWKS at
//! `{url}/oauth/discovery/keys`), fetched over HTTP and kept in memory for a while.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{AlgorithmFamily, DecodingKey};
use serde_json::Value;

/// Where GitLab publishes the keys of its ID tokens, relative to its URL.
pub(crate) const KEYS_PATH: &str = "/oauth/discovery/keys";

/// How long fetched keys are used before they are fetched again.
pub(crate) const KEYS_TTL: Duration = Duration::from_secs(10 * 60);

/// Longest wait for GitLab's answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Why GitLab's keys could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JwksError {
    /// No HTTP answer (connection refused, no such host, TLS, timeout).
    #[error("cannot fetch GitLab's ID token keys from {url}: {cause}")]
    Transport {
        /// The key set's URL.
        url: String,
        /// Every cause down to the operating system's words.
        cause: String,
    },
    /// GitLab answered, but not 200.
    #[error("GitLab answered {status} for its ID token keys at {url}: {body}")]
    Status {
        /// The key set's URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer.
        body: String,
    },
    /// The answer is not a key set batchci can use.
    #[error("GitLab's ID token keys at {url} are not understood: {reason}")]
    Payload {
        /// The key set's URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

/// The RSA keys of one fetch, by `kid`.
struct KeySet {
    fetched: Instant,
    keys: Vec<(String, DecodingKey)>,
}

impl KeySet {
    fn find(&self, kid: &str) -> Option<DecodingKey> {
        self.keys
            .iter()
            .find(|(id, _)| id == kid)
            .map(|(_, key)| key.clone())
    }
}

/// A GitLab's ID token keys: fetched on first use, kept for [`KEYS_TTL`], fetched again once
/// when a token names a key id that is not among them (GitLab rotated its key).
pub(crate) struct JwksClient {
    url: String,
    http: reqwest::Client,
    ttl: Duration,
    cache: tokio::sync::Mutex<Option<KeySet>>,
}

impl std::fmt::Debug for JwksClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksClient")
            .field("url", &self.url)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl JwksClient {
    /// The keys of the GitLab at `gitlab_url` (`https://gitlab.example.com`, with or without a
    /// trailing slash), fetched with `http` (the runner's client: its TLS settings and user
    /// agent).
    pub(crate) fn new(gitlab_url: &str, http: reqwest::Client) -> JwksClient {
        JwksClient {
            url: format!("{}{KEYS_PATH}", gitlab_url.trim_end_matches('/')),
            http,
            ttl: KEYS_TTL,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// Keeps fetched keys for `ttl` instead of [`KEYS_TTL`].
    #[cfg(test)]
    pub(crate) fn with_ttl(mut self, ttl: Duration) -> JwksClient {
        self.ttl = ttl;
        self
    }

    /// The key set's URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The key with id `kid`, or `None` when GitLab does not publish it (after one fresh
    /// fetch). Concurrent callers share one fetch.
    pub(crate) async fn key(&self, kid: &str) -> Result<Option<DecodingKey>, JwksError> {
        let asked = Instant::now();
        let mut cache = self.cache.lock().await;
        if let Some(set) = cache.as_ref()
            && set.fetched.elapsed() < self.ttl
        {
            if let Some(key) = set.find(kid) {
                return Ok(Some(key));
            }
            // Someone fetched while this call waited for the lock: that fetch is the fresh one.
            if set.fetched >= asked {
                return Ok(None);
            }
        }
        let set = self.fetch().await?;
        let key = set.find(kid);
        *cache = Some(set);
        Ok(key)
    }

    async fn fetch(&self) -> Result<KeySet, JwksError> {
        let response = self
            .http
            .get(&self.url)
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| JwksError::Transport {
                url: self.url.clone(),
                cause: crate::error_chain(&e),
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| JwksError::Transport {
            url: self.url.clone(),
            cause: crate::error_chain(&e),
        })?;
        if status != reqwest::StatusCode::OK {
            return Err(JwksError::Status {
                url: self.url.clone(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).chars().take(200).collect(),
            });
        }
        let keys = parse_key_set(&body).map_err(|reason| JwksError::Payload {
            url: self.url.clone(),
            reason,
        })?;
        tracing::debug!(url = %self.url, keys = keys.len(), "fetched GitLab's ID token keys");
        Ok(KeySet {
            fetched: Instant::now(),
            keys,
        })
    }
}

/// The RSA keys with a `kid` of a JWKS document; other keys (EC, symmetric, without `kid`,
/// unreadable) are left out, since GitLab signs ID tokens with RSA keys only.
fn parse_key_set(body: &[u8]) -> Result<Vec<(String, DecodingKey)>, String> {
    let document: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    let Some(entries) = document.get("keys").and_then(Value::as_array) else {
        return Err("no \"keys\" list".into());
    };
    let keys: Vec<(String, DecodingKey)> = entries
        .iter()
        .filter_map(|entry| {
            let jwk: Jwk = serde_json::from_value(entry.clone()).ok()?;
            let kid = jwk.common.key_id.clone().filter(|k| !k.is_empty())?;
            let key = DecodingKey::from_jwk(&jwk).ok()?;
            (key.family() == AlgorithmFamily::Rsa).then_some((kid, key))
        })
        .collect();
    if keys.is_empty() {
        return Err(format!(
            "none of its {} keys is an RSA key with a key id",
            entries.len()
        ));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_set_keeps_the_rsa_keys_with_a_kid() {
        let rsa = mock_gitlab::id_token::jwks().unwrap()["keys"][0].clone();
        let mut without_kid = rsa.clone();
        without_kid
            .as_object_mut()
            .and_then(|o| o.remove("kid"))
            .unwrap();
        let document = serde_json::json!({"keys": [
            {"kty": "EC", "kid": "ec", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            without_kid,
            rsa,
            {"kty": "RSA", "kid": "broken", "n": 17, "e": "AQAB"},
        ]});

        let keys = parse_key_set(document.to_string().as_bytes()).unwrap();

        let kids: Vec<&str> = keys.iter().map(|(kid, _)| kid.as_str()).collect();
        assert_eq!(kids, [mock_gitlab::id_token::key_id().unwrap()]);
    }

    #[test]
    fn unusable_documents_say_why() {
        let cases: [(&[u8], &str); 4] = [
            (b"<html>", "not JSON (expected value at line 1 column 1)"),
            (b"{\"jwks\": []}", "no \"keys\" list"),
            (b"{\"keys\": {}}", "no \"keys\" list"),
            (
                b"{\"keys\": [{\"kty\": \"oct\", \"kid\": \"h\", \"k\": \"c2VjcmV0\"}]}",
                "none of its 1 keys is an RSA key with a key id",
            ),
        ];
        for (body, reason) in cases {
            assert_eq!(
                parse_key_set(body).err().as_deref(),
                Some(reason),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
