//! A runner's life as an admin sees it: `GET /admin/api/runners` after registration, contact,
//! token reset and deletion; token expiry (`runner_token_expiration_interval`); the token
//! calls with a form body as `curl --data` sends it (table "Registration" and "Runners" in
//! `docs/mock-gitlab.md`).

mod common;

use common::Fixture;
use mock_gitlab::api::{RunnerView, Settings};
use serde_json::{Value, json};

/// Parses an API time, failing the test when it is not RFC 3339 with milliseconds in UTC.
fn api_time(text: &str) -> chrono::DateTime<chrono::Utc> {
    assert!(
        text.ends_with('Z') && text.len() == "2026-11-23T18:00:01.123Z".len(),
        "{text}"
    );
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

async fn runners(fx: &Fixture) -> Vec<RunnerView> {
    let reply = fx.http.get(fx.admin("runners")).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    reply.json().await.unwrap()
}

#[tokio::test]
async fn the_admin_list_shows_each_runner_as_registered_then_its_first_contact() {
    let fx = Fixture::start().await;
    let before = chrono::Utc::now();
    let reply = fx
        .http
        .post(fx.api("runners"))
        .json(
            &json!({"token": "reg-token", "description": "cluster-a", "tag_list": "slurm,hpc",
                      "run_untagged": false, "paused": true, "maximum_timeout": 3600}),
        )
        .send()
        .await
        .unwrap();
    let registered: Value = reply.json().await.unwrap();
    let id = registered["id"].as_u64().unwrap();

    let listed = runners(&fx).await;

    assert_eq!(listed.len(), 2, "the fixture's runner and the new one");
    let runner = listed.iter().find(|r| r.id == id).unwrap().clone();
    let created = api_time(&runner.created_at);
    assert!(created >= before - chrono::TimeDelta::milliseconds(1));
    assert_eq!(
        runner,
        RunnerView {
            id,
            description: "cluster-a".into(),
            tag_list: vec!["slurm".into(), "hpc".into()],
            run_untagged: false,
            paused: true,
            active: false,
            maximum_timeout: Some(3600),
            token_expires_at: None,
            contacted_at: None,
            created_at: runner.created_at.clone(),
            status: "never_contacted".into(),
            system_ids: vec![],
        }
    );

    let verified = fx
        .http
        .post(fx.api("runners/verify"))
        .json(&json!({"token": registered["token"], "system_id": "s_0123456789ab"}))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 200);
    let after = runners(&fx).await;
    let runner = after.iter().find(|r| r.id == id).unwrap();
    assert_eq!(runner.status, "online");
    assert!(api_time(runner.contacted_at.as_deref().unwrap()) >= created);
    assert_eq!(runner.system_ids, ["s_0123456789ab"]);
}

#[tokio::test]
async fn a_job_request_is_contact_and_a_token_reset_is_not() {
    let fx = Fixture::start().await;

    let reset = fx
        .http
        .post(fx.api("runners/reset_authentication_token"))
        .json(&json!({"token": fx.runner.token}))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 201);
    assert_eq!(runners(&fx).await[0].contacted_at, None);

    let token = reset.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(fx.request_job_as(&token).await.status(), 204);
    assert_eq!(runners(&fx).await[0].status, "online");
}

#[tokio::test]
async fn a_deleted_runner_leaves_the_admin_list() {
    let fx = Fixture::start().await;

    let reply = fx
        .http
        .delete(fx.api("runners"))
        .json(&json!({"token": fx.runner.token}))
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 204);
    assert_eq!(runners(&fx).await, vec![]);
    assert_eq!(fx.gitlab.runners(), vec![]);
}

#[tokio::test]
async fn with_an_expiration_interval_tokens_carry_their_expiry_and_a_reset_renews_it() {
    let fx = Fixture::with_settings(Settings {
        runner_token_expiration_interval: Some(7 * 24 * 3600),
        ..Settings::default()
    })
    .await;
    let reply = fx
        .http
        .post(fx.api("runners"))
        .json(&json!({"token": "reg-token", "description": "expiring"}))
        .send()
        .await
        .unwrap();
    let registered: Value = reply.json().await.unwrap();
    let expires = api_time(registered["token_expires_at"].as_str().unwrap());
    let week = chrono::TimeDelta::days(7);
    let now = chrono::Utc::now();
    assert!(expires > now + week - chrono::TimeDelta::minutes(1) && expires <= now + week);

    let verified: Value = fx
        .http
        .post(fx.api("runners/verify"))
        .json(&json!({"token": registered["token"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verified["token_expires_at"], registered["token_expires_at"]);

    let reset = fx
        .http
        .post(fx.api("runners/reset_authentication_token"))
        .json(&json!({"token": registered["token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 201);
    let body: Value = reset.json().await.unwrap();
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["token", "token_expires_at"]
    );
    let renewed = api_time(body["token_expires_at"].as_str().unwrap());
    assert!(renewed >= expires);
    let listed = runners(&fx).await;
    let runner = listed
        .iter()
        .find(|r| r.id == registered["id"].as_u64().unwrap())
        .unwrap();
    assert_eq!(
        runner.token_expires_at.as_deref(),
        body["token_expires_at"].as_str()
    );
}

#[tokio::test]
async fn an_expired_token_is_refused_by_every_runner_call() {
    // An interval of 0 issues tokens that have expired when they are handed out.
    let fx = Fixture::with_settings(Settings {
        runner_token_expiration_interval: Some(0),
        ..Settings::default()
    })
    .await;
    let token = fx.runner.token.clone();
    let call = |path: &'static str| {
        fx.http
            .post(fx.api(path))
            .json(&json!({"token": token}))
            .send()
    };

    assert_eq!(call("runners/verify").await.unwrap().status(), 403);
    assert_eq!(
        call("runners/reset_authentication_token")
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(fx.request_job().await.status(), 403);
    let deleted = fx
        .http
        .delete(fx.api("runners"))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 403);
    assert_eq!(runners(&fx).await.len(), 1, "still listed, as on GitLab");
}

#[tokio::test]
async fn the_token_calls_take_a_form_body_as_curl_data_sends_it() {
    let fx = Fixture::start().await;
    let form = |path: &'static str, body: String| {
        fx.http
            .post(fx.api(path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };

    let verified = form("runners/verify", format!("token={}", fx.runner.token))
        .await
        .unwrap();
    assert_eq!(verified.status(), 200);
    let refused = form("runners/verify", "token=glrt-unknown".into())
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let reset = form(
        "runners/reset_authentication_token",
        format!("token={}&system_id=s_%30%31", fx.runner.token),
    )
    .await
    .unwrap();
    assert_eq!(reset.status(), 201);
    let token = reset.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let deleted = fx
        .http
        .delete(fx.api("runners"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
}
