//! Job ID tokens: the key set at `/oauth/discovery/keys`, the tokens of jobs with `id_tokens:`
//! (claims, header, signature), the `id_token` faults, and who started a pipeline.

mod common;

use common::{Fixture, header};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mock_gitlab::api::{FaultEndpoint, FaultSpec, IdTokenFault, NewPipeline, WRONG_AUDIENCE};
use mock_gitlab::id_token;
use serde_json::{Value, json};

const WITH_TOKEN: &str = "build:\n  id_tokens:\n    BATCHCI_ID_TOKEN:\n      aud: https://batchci.example\n  script: [make]\n";

/// The JWKS the mock serves, fetched over HTTP.
async fn served_keys(fx: &Fixture) -> JwkSet {
    let reply = fx
        .http
        .get(format!("{}/oauth/discovery/keys", fx.gitlab.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    reply.json().await.unwrap()
}

/// Checks the token's signature against the served keys and returns its claims; `Err` with
/// jsonwebtoken's reason when the signature does not verify.
fn verify(keys: &JwkSet, token: &str) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = keys.find(&kid).ok_or("unknown kid")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.to_string())
}

/// Creates a pipeline from `yaml` in a new project, started by `user` (login, id).
fn pipeline_as(fx: &Fixture, name: &str, yaml: &str, user: Option<(&str, Option<u64>)>) -> u64 {
    let project = fx.gitlab.create_project(name, None).unwrap();
    let created = fx
        .gitlab
        .create_pipeline(NewPipeline {
            project_id: project,
            ci_yaml: yaml.into(),
            user_login: user.map(|(login, _)| login.to_string()),
            user_id: user.and_then(|(_, id)| id),
            ..Default::default()
        })
        .unwrap();
    created.id
}

/// Takes the next job and returns its payload.
async fn take(fx: &Fixture) -> Value {
    let reply = fx.request_job().await;
    assert_eq!(reply.status(), 201);
    reply.json().await.unwrap()
}

/// The job's variables named `key`.
fn variables<'a>(job: &'a Value, key: &str) -> Vec<&'a Value> {
    job["variables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["key"] == key)
        .collect()
}

/// The value of the job's only variable `key`.
fn token_of(job: &Value, key: &str) -> String {
    let found = variables(job, key);
    assert_eq!(found.len(), 1, "one {key}");
    found[0]["value"].as_str().unwrap().to_string()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn the_key_set_is_served_where_gitlab_serves_it() {
    let fx = Fixture::start().await;

    let reply = fx
        .http
        .get(format!("{}/oauth/discovery/keys", fx.gitlab.url()))
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 200);
    assert_eq!(header(&reply, "content-type"), Some("application/json"));
    let body: Value = reply.json().await.unwrap();
    let key = &body["keys"][0];
    assert_eq!(body["keys"].as_array().unwrap().len(), 1);
    assert_eq!(
        body,
        json!({"keys": [{"kty": "RSA", "kid": id_token::key_id().unwrap(), "e": "AQAB",
                         "n": key["n"], "use": "sig", "alg": "RS256"}]})
    );
    // A 2048-bit modulus is 256 bytes: 342 base64url characters without padding.
    assert_eq!(key["n"].as_str().unwrap().len(), 342);
    assert_eq!(body, id_token::jwks().unwrap());
}

#[tokio::test]
async fn the_openid_configuration_points_at_the_key_set() {
    let fx = Fixture::start().await;

    let body: Value = fx
        .http
        .get(format!(
            "{}/.well-known/openid-configuration",
            fx.gitlab.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let url = fx.gitlab.url();
    assert_eq!(
        body,
        json!({"issuer": url, "jwks_uri": format!("{url}/oauth/discovery/keys"),
               "response_types_supported": ["code"], "subject_types_supported": ["public"],
               "id_token_signing_alg_values_supported": ["RS256"]})
    );
}

#[tokio::test]
async fn a_job_with_id_tokens_gets_each_as_a_masked_variable_signed_with_the_published_key() {
    let fx = Fixture::start().await;
    let pipeline = pipeline_as(&fx, "hpc-app", WITH_TOKEN, Some(("alice", Some(1001))));
    let keys = served_keys(&fx).await;

    let job = take(&fx).await;

    let variable = variables(&job, "BATCHCI_ID_TOKEN");
    assert_eq!(variable.len(), 1);
    assert_eq!(variable[0]["masked"], true);
    assert_eq!(variable[0]["public"], false);
    let last = job["variables"].as_array().unwrap().last().unwrap();
    assert_eq!(last["key"], "BATCHCI_ID_TOKEN", "tokens come last");
    let token = token_of(&job, "BATCHCI_ID_TOKEN");
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(header.kid.as_deref(), Some(id_token::key_id().unwrap()));
    let before = now();
    let mut claims = verify(&keys, &token).unwrap();

    let iat = claims["iat"].as_i64().unwrap();
    assert!(
        (before - 60..=before).contains(&iat),
        "iat {iat}, now {before}"
    );
    assert_eq!(claims["nbf"].as_i64(), Some(iat - 5));
    assert_eq!(
        claims["exp"].as_i64(),
        Some(iat + 3600),
        "the job's timeout"
    );
    let jti = claims["jti"].as_str().unwrap();
    assert_eq!(jti.len(), 36);
    assert_eq!(claims["iss"], fx.gitlab.url());
    assert_eq!(claims["job_id"], job["id"].to_string());
    assert_eq!(claims["pipeline_id"], pipeline.to_string());
    assert_eq!(
        claims["project_id"],
        job["job_info"]["project_id"].to_string()
    );
    assert_eq!(claims["runner_id"], fx.runner.id);
    for volatile in ["jti", "iat", "nbf", "exp"] {
        claims[volatile] = json!(format!("[{volatile}]"));
    }
    let text = serde_json::to_string(&claims).unwrap().replace(
        fx.gitlab.url().trim_start_matches("http://"),
        "127.0.0.1:PORT",
    );
    let mut claims: Value = serde_json::from_str(&text).unwrap();
    claims["job_id"] = json!("[job_id]");
    claims["pipeline_id"] = json!("[pipeline_id]");
    claims["project_id"] = json!("[project_id]");
    claims["runner_id"] = json!("[runner_id]");
    insta::assert_json_snapshot!("id_token_claims", claims);
}

#[tokio::test]
async fn an_audience_list_stays_a_list_and_each_token_is_its_own() {
    let fx = Fixture::start().await;
    pipeline_as(
        &fx,
        "two",
        "build:\n  id_tokens:\n    A_TOKEN: {aud: [https://a.example, https://b.example]}\n    \
         B_TOKEN: {aud: https://b.example}\n  script: [make]\n",
        None,
    );
    let keys = served_keys(&fx).await;

    let job = take(&fx).await;

    let a = verify(&keys, &token_of(&job, "A_TOKEN")).unwrap();
    let b = verify(&keys, &token_of(&job, "B_TOKEN")).unwrap();
    assert_eq!(a["aud"], json!(["https://a.example", "https://b.example"]));
    assert_eq!(b["aud"], json!("https://b.example"));
    assert_ne!(a["jti"], b["jti"]);
}

#[tokio::test]
async fn a_job_without_id_tokens_gets_none() {
    let fx = Fixture::start().await;
    pipeline_as(&fx, "plain", "build:\n  script: [make]\n", None);

    let job = take(&fx).await;

    let jwts: Vec<&Value> = job["variables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["value"].as_str().unwrap_or("").starts_with("eyJ"))
        .collect();
    assert_eq!(jwts, Vec::<&Value>::new());
}

#[tokio::test]
async fn a_wrong_key_fault_signs_with_an_unpublished_key_under_the_published_kid() {
    let fx = Fixture::start().await;
    fx.gitlab
        .add_fault(FaultSpec::id_token(IdTokenFault::WrongKey).times(1))
        .unwrap();
    pipeline_as(&fx, "p1", WITH_TOKEN, None);
    pipeline_as(&fx, "p2", WITH_TOKEN, None);
    let keys = served_keys(&fx).await;

    let spoiled = token_of(&take(&fx).await, "BATCHCI_ID_TOKEN");
    let next = token_of(&take(&fx).await, "BATCHCI_ID_TOKEN");

    let header = jsonwebtoken::decode_header(&spoiled).unwrap();
    assert_eq!(header.kid.as_deref(), Some(id_token::key_id().unwrap()));
    assert_eq!(verify(&keys, &spoiled), Err("InvalidSignature".to_string()));
    assert!(verify(&keys, &next).is_ok(), "count 1 spoils one token");
}

#[tokio::test]
async fn an_expired_fault_issues_a_token_that_expired_an_hour_ago() {
    let fx = Fixture::start().await;
    fx.gitlab
        .add_fault(FaultSpec::id_token(IdTokenFault::Expired))
        .unwrap();
    pipeline_as(&fx, "p", WITH_TOKEN, None);
    let keys = served_keys(&fx).await;

    let claims = verify(&keys, &token_of(&take(&fx).await, "BATCHCI_ID_TOKEN")).unwrap();

    let exp = claims["exp"].as_i64().unwrap();
    let ago = now() - exp;
    assert!((3600..3660).contains(&ago), "expired {ago} s ago");
    assert_eq!(claims["iat"].as_i64(), Some(exp - 3600));
    assert_eq!(claims["aud"], "https://batchci.example");
}

#[tokio::test]
async fn a_wrong_audience_fault_names_another_audience() {
    let fx = Fixture::start().await;
    fx.gitlab
        .add_fault(FaultSpec::id_token(IdTokenFault::WrongAudience))
        .unwrap();
    pipeline_as(&fx, "p", WITH_TOKEN, None);
    let keys = served_keys(&fx).await;

    let claims = verify(&keys, &token_of(&take(&fx).await, "BATCHCI_ID_TOKEN")).unwrap();

    assert_eq!(claims["aud"], WRONG_AUDIENCE);
    assert_eq!(WRONG_AUDIENCE, "https://wrong-audience.example");
}

#[tokio::test]
async fn a_missing_fault_drops_the_token_and_faults_are_set_over_http() {
    let fx = Fixture::start().await;
    let reply = fx
        .http
        .post(fx.admin("faults"))
        .json(&json!({"endpoint": "id_token", "mode": "missing", "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201);
    let listed: Value = fx
        .http
        .get(fx.admin("faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = listed[0]["id"].clone();
    assert_eq!(
        listed,
        json!([{"endpoint": "id_token", "mode": "missing", "rate": 1.0, "delay_ms": 0,
                "drop_connection": false, "count": 1, "id": id, "remaining": 1}])
    );
    pipeline_as(&fx, "p", WITH_TOKEN, None);

    let job = take(&fx).await;

    assert_eq!(variables(&job, "BATCHCI_ID_TOKEN"), Vec::<&Value>::new());
    let listed: Value = fx
        .http
        .get(fx.admin("faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["remaining"], 0);
}

#[tokio::test]
async fn id_token_faults_are_checked_when_added() {
    let fx = Fixture::start().await;
    let cases = [
        (
            json!({"endpoint": "id_token"}),
            "mode: endpoint id_token needs one of wrong_key, expired, wrong_audience, missing",
        ),
        (
            json!({"endpoint": "id_token", "mode": "expired", "status": 500}),
            "endpoint id_token takes mode, rate and count only (it spoils tokens, not replies)",
        ),
        (
            json!({"endpoint": "trace", "mode": "expired"}),
            "mode: only for endpoint id_token",
        ),
    ];
    for (body, message) in cases {
        let reply = fx
            .http
            .post(fx.admin("faults"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 422, "{body}");
        assert_eq!(
            reply.json::<Value>().await.unwrap(),
            json!({"message": message})
        );
    }
    let reply = fx
        .http
        .post(fx.admin("faults"))
        .json(&json!({"endpoint": "id_token", "mode": "forged"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 422);
    let message = reply.json::<Value>().await.unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with("invalid JSON body: field `mode`: unknown variant `forged`"),
        "{message}"
    );
}

#[tokio::test]
async fn a_catch_all_fault_does_not_spoil_tokens() {
    let fx = Fixture::start().await;
    fx.gitlab
        .add_fault(FaultSpec::status(FaultEndpoint::All, 503).times(1))
        .unwrap();
    pipeline_as(&fx, "p", WITH_TOKEN, None);
    let keys = served_keys(&fx).await;
    assert_eq!(fx.request_job().await.status(), 503);

    let job = take(&fx).await;

    assert!(verify(&keys, &token_of(&job, "BATCHCI_ID_TOKEN")).is_ok());
}

#[tokio::test]
async fn the_pipeline_user_defaults_to_root_and_a_named_user_keeps_their_id() {
    let fx = Fixture::start().await;
    let project = fx.gitlab.create_project("users", None).unwrap();
    let post = |user: Value| {
        let mut body = json!({"project_id": project, "ci_yaml": "build:\n  script: [make]\n"});
        for (k, v) in user.as_object().unwrap() {
            body[k] = v.clone();
        }
        fx.http.post(fx.admin("pipelines")).json(&body).send()
    };
    let view = |id: u64| fx.http.get(fx.admin(&format!("pipelines/{id}"))).send();

    let mut seen = Vec::new();
    for extra in [
        json!({}),
        json!({"user_login": "alice"}),
        json!({"user_login": "bob", "user_id": 1001}),
        json!({"user_login": "alice"}),
    ] {
        let reply = post(extra).await.unwrap();
        assert_eq!(reply.status(), 201);
        let id = reply.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
        let pipeline: Value = view(id).await.unwrap().json().await.unwrap();
        seen.push((pipeline["user_login"].clone(), pipeline["user_id"].clone()));
    }

    assert_eq!(
        seen,
        [
            (json!("root"), json!(1)),
            (json!("alice"), json!(2)),
            (json!("bob"), json!(1001)),
            (json!("alice"), json!(2)),
        ]
    );
    for (extra, message) in [
        (json!({"user_id": 5}), "user_id: give user_login with it"),
        (
            json!({"user_login": "alice", "user_id": 7}),
            "user_id: user alice is user 2, not 7",
        ),
        (
            json!({"user_login": "carol", "user_id": 1001}),
            "user_id: 1001 is already user bob",
        ),
        (
            json!({"user_login": "carol smith"}),
            "user_login: use letters, digits, '-', '_' and '.' only",
        ),
    ] {
        let reply = post(extra.clone()).await.unwrap();
        assert_eq!(reply.status(), 422, "{extra}");
        assert_eq!(
            reply.json::<Value>().await.unwrap(),
            json!({"message": message})
        );
    }
}

#[tokio::test]
async fn the_job_payload_and_token_name_the_user_who_started_the_pipeline() {
    let fx = Fixture::start().await;
    pipeline_as(&fx, "mine", WITH_TOKEN, Some(("alice", None)));
    let keys = served_keys(&fx).await;

    let job = take(&fx).await;

    let value = |key: &str| variables(&job, key)[0]["value"].clone();
    assert_eq!(value("GITLAB_USER_LOGIN"), "alice");
    assert_eq!(value("GITLAB_USER_ID"), "2");
    assert_eq!(value("GITLAB_USER_EMAIL"), "alice@example.com");
    assert_eq!(job["job_info"]["user_id"], 2);
    let claims = verify(&keys, &token_of(&job, "BATCHCI_ID_TOKEN")).unwrap();
    assert_eq!(
        (
            &claims["user_login"],
            &claims["user_id"],
            &claims["user_email"]
        ),
        (&json!("alice"), &json!("2"), &json!("alice@example.com"))
    );
}
