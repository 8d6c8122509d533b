//! Registration, verify, unregister, reset and discovery: one test per reply of GitLab's
//! `lib/api/ci/runner.rb` as gitlab-runner's `network/gitlab.go` handles them
//! (table "Registration" in `docs/mock-gitlab.md`).

mod common;

use common::{Fixture, header};
use serde_json::{Value, json};

#[tokio::test]
async fn register_with_the_registration_token_answers_201_with_a_runner_token() {
    let fx = Fixture::start().await;

    let reply = fx
        .http
        .post(fx.api("runners"))
        .json(
            &json!({"token": "reg-token", "description": "hpc", "tag_list": "slurm, gpu",
                      "run_untagged": false, "info": {"name": "gitlab-runner"}}),
        )
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 201);
    assert_eq!(header(&reply, "content-type"), Some("application/json"));
    let body: Value = reply.json().await.unwrap();
    assert!(body["id"].as_u64().is_some_and(|id| id > 0));
    assert!(body["token"].as_str().unwrap().starts_with("glrt-"));
    assert_eq!(body["token_expires_at"], Value::Null);
}

#[tokio::test]
async fn registered_tags_decide_which_jobs_the_runner_gets() {
    let fx = Fixture::start().await;
    let reply = fx
        .http
        .post(fx.api("runners"))
        .json(&json!({"token": "reg-token", "tag_list": "slurm,gpu", "run_untagged": false}))
        .send()
        .await
        .unwrap();
    let token = reply.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    fx.pipeline("untagged:\n  script: [a]\n");
    let tagged = fx.pipeline("tagged:\n  tags: [slurm]\n  script: [a]\n");

    let reply = fx.request_job_as(&token).await;

    assert_eq!(reply.status(), 201);
    let job: Value = reply.json().await.unwrap();
    assert_eq!(job["id"], tagged.jobs[0].id);
    assert_eq!(fx.request_job_as(&token).await.status(), 204);
}

#[tokio::test]
async fn register_with_a_wrong_registration_token_is_403() {
    let fx = Fixture::start().await;

    let reply = fx
        .http
        .post(fx.api("runners"))
        .json(&json!({"token": "nope"}))
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 403);
    assert_eq!(
        reply.json::<Value>().await.unwrap(),
        json!({"message": "403 Forbidden"})
    );
}

#[tokio::test]
async fn verify_answers_200_with_id_token_and_expiry_for_a_body_token() {
    let fx = Fixture::start().await;

    let reply = fx
        .http
        .post(fx.api("runners/verify"))
        .json(&json!({"token": fx.runner.token, "system_id": "s_760931104d8c"}))
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 200);
    assert_eq!(header(&reply, "content-type"), Some("application/json"));
    assert_eq!(
        reply.json::<Value>().await.unwrap(),
        json!({"id": fx.runner.id, "token": fx.runner.token, "token_expires_at": null})
    );
}

#[tokio::test]
async fn verify_accepts_the_token_from_the_runner_token_header() {
    let fx = Fixture::start().await;

    let reply = fx
        .http
        .post(fx.api("runners/verify"))
        .header("RUNNER-TOKEN", &fx.runner.token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 200);
    assert_eq!(reply.json::<Value>().await.unwrap()["id"], fx.runner.id);
}

#[tokio::test]
async fn verify_with_an_unknown_token_is_403() {
    let fx = Fixture::start().await;

    let reply = fx
        .http
        .post(fx.api("runners/verify"))
        .json(&json!({"token": "glrt-unknown"}))
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 403);
}

#[tokio::test]
async fn delete_runner_answers_204_and_the_token_stops_working() {
    let fx = Fixture::start().await;

    let reply = fx
        .http
        .delete(fx.api("runners"))
        .json(&json!({"token": fx.runner.token}))
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 204);
    assert_eq!(fx.request_job().await.status(), 403);
}

#[tokio::test]
async fn delete_runner_with_an_unknown_token_is_403() {
    let fx = Fixture::start().await;

    let reply = fx
        .http
        .delete(fx.api("runners"))
        .json(&json!({"token": "glrt-unknown"}))
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 403);
}

#[tokio::test]
async fn delete_runner_manager_answers_204_and_keeps_the_runner() {
    let fx = Fixture::start().await;

    let reply = fx
        .http
        .delete(fx.api("runners/managers"))
        .json(&json!({"token": fx.runner.token, "system_id": "s_760931104d8c"}))
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 204);
    assert_eq!(fx.request_job().await.status(), 204);
}

#[tokio::test]
async fn delete_runner_manager_with_an_unknown_token_is_403() {
    let fx = Fixture::start().await;

    let reply = fx
        .http
        .delete(fx.api("runners/managers"))
        .json(&json!({"token": "glrt-unknown", "system_id": "s_1"}))
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 403);
}

#[tokio::test]
async fn reset_authentication_token_answers_201_with_a_new_token() {
    let fx = Fixture::start().await;

    let reply = fx
        .http
        .post(fx.api("runners/reset_authentication_token"))
        .json(&json!({"token": fx.runner.token}))
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 201);
    let body: Value = reply.json().await.unwrap();
    let new_token = body["token"].as_str().unwrap();
    assert_ne!(new_token, fx.runner.token);
    assert_eq!(body["token_expires_at"], Value::Null);
    assert_eq!(fx.request_job().await.status(), 403, "old token is gone");
    assert_eq!(fx.request_job_as(new_token).await.status(), 204);
}

#[tokio::test]
async fn reset_authentication_token_with_an_unknown_token_is_403() {
    let fx = Fixture::start().await;

    let reply = fx
        .http
        .post(fx.api("runners/reset_authentication_token"))
        .json(&json!({"token": "glrt-unknown"}))
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 403);
}

#[tokio::test]
async fn router_discovery_is_501_because_the_mock_has_no_job_router() {
    let fx = Fixture::start().await;

    let reply = fx
        .http
        .get(fx.api("runners/router/discovery"))
        .header("RUNNER-TOKEN", &fx.runner.token)
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 501);
}

#[tokio::test]
async fn router_discovery_with_an_unknown_token_is_403() {
    let fx = Fixture::start().await;

    let reply = fx
        .http
        .get(fx.api("runners/router/discovery"))
        .header("RUNNER-TOKEN", "glrt-unknown")
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 403);
}

#[tokio::test]
async fn malformed_json_is_400_and_a_wrongly_typed_field_is_422_naming_it() {
    let fx = Fixture::start().await;

    let syntax = fx
        .http
        .post(fx.api("runners/verify"))
        .header("Content-Type", "application/json")
        .body("{\"token\": ")
        .send()
        .await
        .unwrap();
    let typed = fx
        .http
        .post(fx.api("runners/verify"))
        .json(&json!({"token": 42}))
        .send()
        .await
        .unwrap();

    assert_eq!(syntax.status(), 400);
    assert!(
        syntax
            .text()
            .await
            .unwrap()
            .contains("invalid JSON body: EOF")
    );
    assert_eq!(typed.status(), 422);
    let message = typed.json::<Value>().await.unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("field `token`: invalid type: integer `42`, expected a string"),
        "{message}"
    );
}

#[tokio::test]
async fn a_runners_maximum_timeout_caps_the_job_timeout() {
    let fx = Fixture::start().await;
    let reply = fx
        .http
        .post(fx.api("runners"))
        .json(&json!({"token": "reg-token", "maximum_timeout": 600}))
        .send()
        .await
        .unwrap();
    let token = reply.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    fx.pipeline("long:\n  timeout: 2h\n  script: [x]\nshort:\n  timeout: 5m\n  script: [x]\n");

    let long: Value = fx.request_job_as(&token).await.json().await.unwrap();
    let short: Value = fx.request_job_as(&token).await.json().await.unwrap();

    assert_eq!(long["runner_info"]["timeout"], 600);
    assert_eq!(long["steps"][0]["timeout"], 600);
    assert_eq!(short["runner_info"]["timeout"], 300);
}
