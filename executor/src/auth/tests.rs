//! Job ID tokens, as an administrator meets them: tokens signed with the mock GitLab's key,
//! checked against a key set served by a scripted GitLab (wiremock) or by the mock GitLab
//! itself, each refusal with the exact words the job's log gets.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mock_gitlab::api::{FaultSpec, IdTokenFault, NewPipeline, NewRunner};
use mock_gitlab::id_token::{self, SigningKey};
use mock_gitlab::{MockConfig, MockGitlab};
use proptest::prelude::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::jwks::JwksClient;
use super::token::{Claims, DEFAULT_TOKEN_VARIABLE, Expectations, TokenError, TokenVerifier};
use crate::gitlab::{GitlabClient, JobRequest};
use crate::job::{Job, Variable};

/// The runner's clock in these tests: 2026-11-30T01:00:00Z.
const NOW: i64 = 1_796_000_400;
const AUD: &str = "https://batchci.example";
const VAR: &str = DEFAULT_TOKEN_VARIABLE;

/// The claims GitLab signs for job 13 of `physics/solver`, started by alice, issued a minute
/// before [`NOW`], valid for an hour.
fn claims(issuer: &str) -> Value {
    json!({
        "namespace_id": "7", "namespace_path": "physics", "project_id": "42",
        "project_path": "physics/solver", "user_id": "1001", "user_login": "alice",
        "user_email": "alice@example.com", "pipeline_id": "12", "pipeline_source": "push",
        "job_id": "13", "ref": "main", "ref_type": "branch", "ref_path": "refs/heads/main",
        "ref_protected": "true", "runner_id": 5, "runner_environment": "self-hosted",
        "sha": "9fceb02d0ae598e95dc970b74767f19372d61af8",
        "jti": "3b241101-e2bb-4255-8caf-4136c566a962", "iss": issuer,
        "iat": NOW - 60, "nbf": NOW - 65, "exp": NOW + 3540,
        "sub": "project_path:physics/solver:ref_type:branch:ref:main", "aud": AUD,
    })
}

fn sign(claims: &Value) -> String {
    id_token::sign(claims, SigningKey::Published).expect("the mock's key signs")
}

/// A GitLab (scripted) that serves the mock's key set.
async fn gitlab_with_keys() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/oauth/discovery/keys"))
        .respond_with(ResponseTemplate::new(200).set_body_json(id_token::jwks().unwrap()))
        .mount(&server)
        .await;
    server
}

fn verifier(server: &MockServer) -> TokenVerifier {
    TokenVerifier::new(&server.uri(), reqwest::Client::new())
}

fn expect(server: &MockServer, job_id: u64) -> Expectations {
    Expectations::new(&server.uri(), AUD, VAR, job_id)
}

fn keys_url(server: &MockServer) -> String {
    format!("{}/oauth/discovery/keys", server.uri())
}

/// A token with the same signature and payload under another header.
fn with_header(token: &str, header: Value) -> String {
    let (_, rest) = token.split_once('.').unwrap();
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
}

/// A token with the same header and signature but another payload.
fn with_payload(token: &str, payload: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        parts[2]
    )
}

#[tokio::test]
async fn a_token_gitlab_signed_for_this_job_gives_its_claims() {
    let server = gitlab_with_keys().await;
    let token = sign(&claims(&server.uri()));

    let claims = verifier(&server)
        .verify_at(&token, &expect(&server, 13), NOW)
        .await
        .unwrap();

    assert_eq!(
        claims,
        Claims {
            user_login: "alice".into(),
            user_id: 1001,
            user_email: Some("alice@example.com".into()),
            namespace_id: 7,
            namespace_path: "physics".into(),
            project_id: 42,
            project_path: "physics/solver".into(),
            pipeline_id: 12,
            pipeline_source: Some("push".into()),
            job_id: 13,
            ref_: "main".into(),
            ref_type: Some("branch".into()),
            ref_protected: true,
            sha: Some("9fceb02d0ae598e95dc970b74767f19372d61af8".into()),
            runner_id: Some(5),
            subject: "project_path:physics/solver:ref_type:branch:ref:main".into(),
            expires_at: NOW + 3540,
        }
    );
}

/// Signs `claims(issuer)` changed by `change`, verifies it for job 13 at [`NOW`].
async fn refusal(change: impl FnOnce(&mut Value, &str)) -> (String, String) {
    let server = gitlab_with_keys().await;
    let mut claims = claims(&server.uri());
    change(&mut claims, &server.uri());
    let token = sign(&claims);
    let error = verifier(&server)
        .verify_at(&token, &expect(&server, 13), NOW)
        .await
        .unwrap_err()
        .to_string();
    assert!(!error.contains(&token), "the token is never shown");
    (error, server.uri())
}

#[tokio::test]
async fn each_claim_check_says_what_failed() {
    type Change = Box<dyn FnOnce(&mut Value, &str)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|c, _| c["exp"] = json!(NOW - 120)),
            "the job's ID token in BATCHCI_ID_TOKEN has expired (exp 2026-11-30T00:58:00Z, now 2026-11-30T01:00:00Z)",
        ),
        (
            Box::new(|c, _| c["nbf"] = json!(NOW + 300)),
            "the job's ID token in BATCHCI_ID_TOKEN is not valid yet (nbf 2026-11-30T01:05:00Z, now 2026-11-30T01:00:00Z): check the clocks of GitLab and this runner",
        ),
        (
            Box::new(|c, _| c["iat"] = json!(NOW + 600)),
            "the job's ID token in BATCHCI_ID_TOKEN was issued in the future (iat 2026-11-30T01:10:00Z, now 2026-11-30T01:00:00Z): check the clocks of GitLab and this runner",
        ),
        (
            Box::new(|c, _| c["aud"] = json!("https://vault.example")),
            "the job's ID token in BATCHCI_ID_TOKEN is for audience https://vault.example, this runner expects https://batchci.example",
        ),
        (
            Box::new(|c, _| c["aud"] = json!(["https://a.example", "https://b.example"])),
            "the job's ID token in BATCHCI_ID_TOKEN is for audiences https://a.example, https://b.example, this runner expects https://batchci.example",
        ),
        (
            Box::new(|c, _| {
                c.as_object_mut().unwrap().remove("aud");
            }),
            "the job's ID token in BATCHCI_ID_TOKEN is for no audience, this runner expects https://batchci.example",
        ),
        (
            Box::new(|c, _| c["iss"] = json!("https://gitlab.other.example")),
            "the job's ID token in BATCHCI_ID_TOKEN was issued by https://gitlab.other.example, not by this runner's GitLab http://127.0.0.1:PORT",
        ),
        (
            Box::new(|c, _| c["job_id"] = json!("12")),
            "the job's ID token in BATCHCI_ID_TOKEN belongs to job 12, not to this job 13",
        ),
        (
            Box::new(|c, _| {
                c.as_object_mut().unwrap().remove("user_login");
            }),
            "the job's ID token in BATCHCI_ID_TOKEN lacks what batchci needs: missing field `user_login`",
        ),
        (
            Box::new(|c, _| c["user_id"] = json!("alice")),
            "the job's ID token in BATCHCI_ID_TOKEN lacks what batchci needs: claim `user_id`: invalid value: string \"alice\", expected an id (a number or a string of digits)",
        ),
        (
            Box::new(|c, _| c["ref_protected"] = json!("yes")),
            "the job's ID token in BATCHCI_ID_TOKEN lacks what batchci needs: claim `ref_protected`: invalid value: string \"yes\", expected \"true\" or \"false\"",
        ),
        (
            Box::new(|c, _| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            "the job's ID token in BATCHCI_ID_TOKEN lacks what batchci needs: no `exp` claim: it would never expire",
        ),
        (
            Box::new(|c, _| c["exp"] = json!("tomorrow")),
            "the job's ID token in BATCHCI_ID_TOKEN lacks what batchci needs: claim `exp`: not a time in seconds",
        ),
    ];
    for (change, expected) in cases {
        let (error, uri) = refusal(change).await;
        let port = uri.rsplit(':').next().unwrap();
        assert_eq!(error.replace(port, "PORT"), expected);
    }
}

#[tokio::test]
async fn the_clock_leeway_is_a_minute_either_way() {
    for change in [
        |c: &mut Value| c["exp"] = json!(NOW - 59),
        |c: &mut Value| c["nbf"] = json!(NOW + 60),
        |c: &mut Value| c["iat"] = json!(NOW + 60),
    ] {
        let server = gitlab_with_keys().await;
        let mut claims = claims(&server.uri());
        change(&mut claims);

        let verified = verifier(&server)
            .verify_at(&sign(&claims), &expect(&server, 13), NOW)
            .await;

        assert!(verified.is_ok(), "{claims}: {verified:?}");
    }
}

#[tokio::test]
async fn ids_and_flags_may_also_come_as_json_numbers_and_booleans() {
    let server = gitlab_with_keys().await;
    let mut claims = claims(&format!("{}/", server.uri()));
    for id in [
        "namespace_id",
        "project_id",
        "user_id",
        "pipeline_id",
        "job_id",
    ] {
        let n: u64 = claims[id].as_str().unwrap().parse().unwrap();
        claims[id] = json!(n);
    }
    claims["ref_protected"] = json!(false);
    claims["runner_id"] = Value::Null;

    let verified = verifier(&server)
        .verify_at(&sign(&claims), &expect(&server, 13), NOW)
        .await
        .unwrap();

    assert_eq!(
        (verified.user_id, verified.ref_protected, verified.runner_id),
        (1001, false, None)
    );
}

#[tokio::test]
async fn forged_and_foreign_tokens_are_not_signed_by_this_gitlab() {
    let server = gitlab_with_keys().await;
    let claims = claims(&server.uri());
    let good = sign(&claims);
    let mut as_root = claims.clone();
    as_root["user_login"] = json!("root");
    let kid = id_token::key_id().unwrap();
    let url = keys_url(&server);
    let port = server.uri().rsplit(':').next().unwrap().to_string();
    let cases = [
        (
            id_token::sign(&claims, SigningKey::Unpublished).unwrap(),
            format!(
                "the job's ID token in BATCHCI_ID_TOKEN was not signed by this GitLab's keys: its signature does not match key {kid} at {url}"
            ),
        ),
        (
            with_payload(&good, &as_root),
            format!(
                "the job's ID token in BATCHCI_ID_TOKEN was not signed by this GitLab's keys: its signature does not match key {kid} at {url}"
            ),
        ),
        (
            with_header(&good, json!({"alg": "RS256", "typ": "JWT", "kid": "rotated-away"})),
            format!(
                "the job's ID token in BATCHCI_ID_TOKEN was not signed by this GitLab's keys: its key rotated-away is not among those at {url}"
            ),
        ),
        (
            with_header(&good, json!({"alg": "RS256", "typ": "JWT"})),
            "the job's ID token in BATCHCI_ID_TOKEN names no key (kid) in its header, so it was not signed by this GitLab's keys".to_string(),
        ),
        (
            with_header(&good, json!({"alg": "HS256", "typ": "JWT", "kid": kid})),
            "the job's ID token in BATCHCI_ID_TOKEN is signed with HS256, but GitLab signs with RS256".to_string(),
        ),
        (
            with_header(&good, json!({"alg": "none", "typ": "JWT"})),
            "the job's ID token in BATCHCI_ID_TOKEN is not a well-formed JWT: its header or payload is not the JSON of a JWT".to_string(),
        ),
        (
            "not-a-jwt".to_string(),
            "the job's ID token in BATCHCI_ID_TOKEN is not a well-formed JWT: it is not three dot-separated parts".to_string(),
        ),
        (
            "a$b.c.d".to_string(),
            "the job's ID token in BATCHCI_ID_TOKEN is not a well-formed JWT: a part is not base64url".to_string(),
        ),
    ];
    let verifier = verifier(&server);
    for (token, expected) in cases {
        let error = verifier
            .verify_at(&token, &expect(&server, 13), NOW)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            error.replace(&port, "PORT"),
            expected.replace(&port, "PORT")
        );
        assert!(!error.contains(&token));
    }
}

#[tokio::test]
async fn the_token_is_read_from_the_last_variable_of_its_name() {
    let server = gitlab_with_keys().await;
    // Valid by the machine's clock: verify_job reads it.
    let now = chrono::Utc::now().timestamp();
    let mut claims = claims(&server.uri());
    claims["iat"] = json!(now - 60);
    claims["nbf"] = json!(now - 65);
    claims["exp"] = json!(now + 3540);
    let token = sign(&claims);
    let variable = |key: &str, value: &str| Variable {
        key: key.into(),
        value: value.into(),
        masked: true,
        ..Variable::default()
    };
    let verifier = verifier(&server);
    let expect = expect(&server, 13);

    let missing = [
        vec![],
        vec![variable("OTHER_TOKEN", &token)],
        vec![variable(VAR, &token), variable(VAR, "  ")],
    ];
    for variables in missing {
        let error = verifier.verify_job(&variables, &expect).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "the job has no ID token: add `id_tokens: {BATCHCI_ID_TOKEN: {aud: https://batchci.example}}` to the job"
        );
    }
    let claims = verifier
        .verify_job(&[variable(VAR, "forged"), variable(VAR, &token)], &expect)
        .await
        .unwrap();
    assert_eq!(claims.user_login, "alice");
}

#[tokio::test]
async fn keys_are_fetched_once_and_kept() {
    let server = MockServer::start().await;
    Mock::given(path("/oauth/discovery/keys"))
        .respond_with(ResponseTemplate::new(200).set_body_json(id_token::jwks().unwrap()))
        .expect(1)
        .mount(&server)
        .await;
    let token = sign(&claims(&server.uri()));
    let verifier = verifier(&server);

    for _ in 0..3 {
        verifier
            .verify_at(&token, &expect(&server, 13), NOW)
            .await
            .unwrap();
    }
    server.verify().await;
}

#[tokio::test]
async fn kept_keys_are_fetched_again_when_they_are_old() {
    let server = MockServer::start().await;
    Mock::given(path("/oauth/discovery/keys"))
        .respond_with(ResponseTemplate::new(200).set_body_json(id_token::jwks().unwrap()))
        .expect(2)
        .mount(&server)
        .await;
    let token = sign(&claims(&server.uri()));
    let verifier = TokenVerifier::with_keys(
        JwksClient::new(&server.uri(), reqwest::Client::new()).with_ttl(Duration::ZERO),
    );

    for _ in 0..2 {
        verifier
            .verify_at(&token, &expect(&server, 13), NOW)
            .await
            .unwrap();
    }
    server.verify().await;
}

#[tokio::test]
async fn an_unknown_key_id_fetches_the_keys_once_more() {
    let server = MockServer::start().await;
    // GitLab rotated its key after the runner fetched the old set.
    let mut old = id_token::jwks().unwrap();
    old["keys"][0]["kid"] = json!("old-key");
    Mock::given(path("/oauth/discovery/keys"))
        .respond_with(ResponseTemplate::new(200).set_body_json(old))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/oauth/discovery/keys"))
        .respond_with(ResponseTemplate::new(200).set_body_json(id_token::jwks().unwrap()))
        .mount(&server)
        .await;
    let token = sign(&claims(&server.uri()));
    let stranger = with_header(&token, json!({"alg": "RS256", "kid": "nobody"}));
    let verifier = verifier(&server);
    let requests = || async { server.received_requests().await.unwrap().len() };
    let unknown_key = |result: Result<Claims, TokenError>| matches!(result, Err(TokenError::UnknownKey { ref kid, .. }) if kid == "nobody");
    assert!(unknown_key(
        verifier
            .verify_at(&stranger, &expect(&server, 13), NOW)
            .await
    ));
    assert_eq!(requests().await, 1, "the old set");

    verifier
        .verify_at(&token, &expect(&server, 13), NOW)
        .await
        .unwrap();
    assert_eq!(requests().await, 2, "the new set, for the new key id");

    assert!(unknown_key(
        verifier
            .verify_at(&stranger, &expect(&server, 13), NOW)
            .await
    ));
    assert_eq!(requests().await, 3, "one more fetch for an unknown key id");

    verifier
        .verify_at(&token, &expect(&server, 13), NOW)
        .await
        .unwrap();
    assert_eq!(requests().await, 3, "known keys come from memory");
}

#[tokio::test]
async fn a_gitlab_whose_keys_cannot_be_had_is_named_with_the_url() {
    let cases = [
        (
            ResponseTemplate::new(500).set_body_string("oops"),
            "GitLab answered 500 for its ID token keys at URL: oops",
        ),
        (
            ResponseTemplate::new(200).set_body_string("<html>sign in</html>"),
            "GitLab's ID token keys at URL are not understood: not JSON (expected value at line 1 column 1)",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"keys": []})),
            "GitLab's ID token keys at URL are not understood: none of its 0 keys is an RSA key with a key id",
        ),
    ];
    for (reply, expected) in cases {
        let server = MockServer::start().await;
        Mock::given(path("/oauth/discovery/keys"))
            .respond_with(reply)
            .mount(&server)
            .await;
        let token = sign(&claims(&server.uri()));

        let error = verifier(&server)
            .verify_at(&token, &expect(&server, 13), NOW)
            .await
            .unwrap_err();

        assert_eq!(
            error.to_string(),
            format!("the job's ID token in BATCHCI_ID_TOKEN cannot be checked: {expected}")
                .replace("URL", &keys_url(&server))
        );
    }
}

#[tokio::test]
async fn an_unreachable_gitlab_is_named_with_the_url_and_the_cause() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let token = sign(&claims(&url));

    let error = TokenVerifier::new(&url, reqwest::Client::new())
        .verify_at(&token, &Expectations::new(&url, AUD, VAR, 13), NOW)
        .await
        .unwrap_err()
        .to_string();

    let prefix = format!(
        "the job's ID token in BATCHCI_ID_TOKEN cannot be checked: cannot fetch GitLab's ID token keys from {url}/oauth/discovery/keys: "
    );
    assert!(error.starts_with(&prefix), "{error}");
    assert!(error.contains("Connection refused"), "{error}");
}

#[test]
fn any_change_to_a_signed_token_is_refused() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(gitlab_with_keys());
    let verifier = verifier(&server);
    let expect = expect(&server, 13);
    let claims = claims(&server.uri());
    let token = sign(&claims);
    runtime
        .block_on(verifier.verify_at(&token, &expect, NOW))
        .expect("the unchanged token is accepted");
    let mut runner = proptest::test_runner::TestRunner::default();

    // One byte anywhere (header, payload, signature, the dots) changed.
    runner
        .run(&(any::<prop::sample::Index>(), 1u8..=255), |(at, flip)| {
            let mut bytes = token.clone().into_bytes();
            let at = at.index(bytes.len());
            bytes[at] ^= flip;
            let mutated = String::from_utf8_lossy(&bytes).into_owned();
            let verified = runtime.block_on(verifier.verify_at(&mutated, &expect, NOW));
            prop_assert!(verified.is_err(), "byte {at} ^ {flip:#04x} accepted");
            if let Err(error) = verified {
                prop_assert!(!error.to_string().contains(&mutated));
            }
            Ok(())
        })
        .unwrap();

    // Any claim given another value, re-encoded, with the original signature.
    let keys: Vec<String> = claims.as_object().unwrap().keys().cloned().collect();
    runner
        .run(
            &(prop::sample::select(keys), any::<String>(), any::<bool>()),
            |(key, text, as_number)| {
                let mut changed = claims.clone();
                let value = if as_number {
                    json!(text.len() as u64 + 1)
                } else {
                    json!(text)
                };
                prop_assume!(changed[&key] != value);
                changed[&key] = value;
                let forged = with_payload(&token, &changed);
                let verified = runtime.block_on(verifier.verify_at(&forged, &expect, NOW));
                prop_assert!(
                    matches!(verified, Err(TokenError::BadSignature { .. })),
                    "{key} changed: {verified:?}"
                );
                Ok(())
            },
        )
        .unwrap();
}

/// A mock GitLab with one runner and a pipeline of `jobs` jobs that ask for
/// `BATCHCI_ID_TOKEN`, started by alice.
async fn mock_gitlab(jobs: usize) -> (MockGitlab, GitlabClient, String) {
    let gitlab = MockGitlab::start(MockConfig::default()).await.unwrap();
    let project = gitlab.create_project("solver", None).unwrap();
    let job = format!(
        "  id_tokens:\n    BATCHCI_ID_TOKEN:\n      aud: {AUD}\n  variables: {{GIT_STRATEGY: none}}\n  script: [make]\n"
    );
    let yaml: String = (0..jobs).map(|n| format!("job{n}:\n{job}")).collect();
    gitlab
        .create_pipeline(NewPipeline {
            project_id: project,
            ci_yaml: yaml,
            user_login: Some("alice".into()),
            user_id: Some(1001),
            ..Default::default()
        })
        .unwrap();
    let runner = gitlab.register_runner(NewRunner::default());
    let client = GitlabClient::new(gitlab.url(), "slurm").unwrap();
    (gitlab, client, runner.token)
}

/// The next job the runner is handed.
async fn take(client: &GitlabClient, runner_token: &str) -> Job {
    match client.request_job(runner_token, None).await.unwrap() {
        JobRequest::Job(job, _) => *job,
        other => panic!("expected a job, got {other:?}"),
    }
}

/// Hands out one job with `fault` active and verifies its token as the runner would.
async fn verify_handed_out(fault: Option<IdTokenFault>) -> (Result<Claims, TokenError>, String) {
    let (gitlab, client, runner) = mock_gitlab(1).await;
    if let Some(mode) = fault {
        gitlab.add_fault(FaultSpec::id_token(mode)).unwrap();
    }
    let job = take(&client, &runner).await;
    let verifier = TokenVerifier::new(gitlab.url(), client.http_client());
    let expect = Expectations::new(gitlab.url(), AUD, VAR, job.id);
    (
        verifier.verify_job(&job.variables, &expect).await,
        gitlab.url().to_string(),
    )
}

#[tokio::test]
async fn the_mock_gitlab_token_of_a_job_verifies_to_who_started_it() {
    let (gitlab, client, runner) = mock_gitlab(1).await;
    let job = take(&client, &runner).await;
    let verifier = TokenVerifier::new(gitlab.url(), client.http_client());

    let claims = verifier
        .verify_job(
            &job.variables,
            &Expectations::new(&format!("{}/", gitlab.url()), AUD, VAR, job.id),
        )
        .await
        .unwrap();

    let pipeline = gitlab.job(job.id).unwrap().pipeline_id;
    assert_eq!(
        claims,
        Claims {
            user_login: "alice".into(),
            user_id: 1001,
            user_email: Some("alice@example.com".into()),
            namespace_id: 1,
            namespace_path: "group".into(),
            project_id: job.job_info.project_id,
            project_path: "group/solver".into(),
            pipeline_id: pipeline,
            pipeline_source: Some("push".into()),
            job_id: job.id,
            ref_: "main".into(),
            ref_type: Some("branch".into()),
            ref_protected: false,
            sha: Some("0".repeat(40)),
            runner_id: gitlab.job(job.id).unwrap().runner_id,
            subject: "project_path:group/solver:ref_type:branch:ref:main".into(),
            expires_at: claims.expires_at,
        }
    );
    let lifetime = claims.expires_at - chrono::Utc::now().timestamp();
    assert!((3500..=3600).contains(&lifetime), "{lifetime}");
}

#[tokio::test]
async fn a_token_of_another_job_is_refused() {
    let (gitlab, client, runner) = mock_gitlab(2).await;
    let first = take(&client, &runner).await;
    let second = take(&client, &runner).await;
    let verifier = TokenVerifier::new(gitlab.url(), client.http_client());

    let error = verifier
        .verify_job(
            &first.variables,
            &Expectations::new(gitlab.url(), AUD, VAR, second.id),
        )
        .await
        .unwrap_err();

    assert_eq!(
        error.to_string(),
        format!(
            "the job's ID token in BATCHCI_ID_TOKEN belongs to job {}, not to this job {}",
            first.id, second.id
        )
    );
}

#[tokio::test]
async fn a_mock_gitlab_token_signed_with_a_wrong_key_is_refused() {
    let (verified, url) = verify_handed_out(Some(IdTokenFault::WrongKey)).await;

    assert_eq!(
        verified.unwrap_err().to_string(),
        format!(
            "the job's ID token in BATCHCI_ID_TOKEN was not signed by this GitLab's keys: its signature does not match key {} at {url}/oauth/discovery/keys",
            id_token::key_id().unwrap()
        )
    );
}

#[tokio::test]
async fn an_expired_mock_gitlab_token_is_refused() {
    let (verified, _) = verify_handed_out(Some(IdTokenFault::Expired)).await;

    let error = verified.unwrap_err();
    let TokenError::Expired { exp, now, .. } = error.clone() else {
        panic!("expected Expired, got {error}");
    };
    assert!(
        (3600..3660).contains(&(now - exp)),
        "expired {} s ago",
        now - exp
    );
    assert_eq!(
        error.to_string(),
        format!(
            "the job's ID token in BATCHCI_ID_TOKEN has expired (exp {}, now {})",
            chrono::DateTime::from_timestamp(exp, 0)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%SZ"),
            chrono::DateTime::from_timestamp(now, 0)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%SZ"),
        )
    );
}

#[tokio::test]
async fn a_mock_gitlab_token_for_another_audience_is_refused() {
    let (verified, _) = verify_handed_out(Some(IdTokenFault::WrongAudience)).await;

    assert_eq!(
        verified.unwrap_err().to_string(),
        "the job's ID token in BATCHCI_ID_TOKEN is for audience https://wrong-audience.example, this runner expects https://batchci.example"
    );
}

#[tokio::test]
async fn a_job_whose_token_gitlab_did_not_deliver_is_refused() {
    let (verified, _) = verify_handed_out(Some(IdTokenFault::Missing)).await;

    assert_eq!(
        verified.unwrap_err().to_string(),
        "the job has no ID token: add `id_tokens: {BATCHCI_ID_TOKEN: {aud: https://batchci.example}}` to the job"
    );
}
