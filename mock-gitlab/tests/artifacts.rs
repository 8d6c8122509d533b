//! Artifacts upload (multipart part `file`) and download with the dependency's token: one
//! test per reply (section "Artifacts" in `docs/mock-gitlab.md`, from gitlab-runner's
//! `artifacts_uploader.go`).

mod common;

use common::{Fixture, header};
use mock_gitlab::api::{FaultEndpoint, FaultSpec, Settings};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

const TWO_STAGES: &str = "stages: [build, test]\nbuild:\n  stage: build\n  script: [make]\n  artifacts:\n    paths: [out/]\ntest:\n  stage: test\n  script: [make check]\n";

async fn upload(
    fx: &Fixture,
    id: u64,
    token: &str,
    part_name: &str,
    data: Vec<u8>,
) -> reqwest::Response {
    let form = Form::new()
        .part(
            part_name.to_string(),
            Part::bytes(data).file_name("artifacts.zip"),
        )
        .text("artifact_format", "zip")
        .text("artifact_type", "archive");
    fx.http
        .post(fx.api(&format!(
            "jobs/{id}/artifacts?artifact_format=zip&artifact_type=archive"
        )))
        .header("JOB-TOKEN", token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_upload_is_201_and_the_dependent_job_downloads_it_with_the_dependencys_token() {
    let fx = Fixture::start().await;
    fx.pipeline(TWO_STAGES);
    let (build, build_token) = fx.take_job().await;

    let uploaded = upload(
        &fx,
        build,
        &build_token,
        "file",
        b"PK\x03\x04zip-bytes".to_vec(),
    )
    .await;
    fx.update(build, json!({"token": build_token, "state": "success"}))
        .await;
    let test_job: Value = fx.request_job().await.json().await.unwrap();
    let dependency = &test_job["dependencies"][0];
    let downloaded = fx
        .http
        .get(fx.api(&format!("jobs/{}/artifacts", dependency["id"])))
        .header("JOB-TOKEN", dependency["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();

    assert_eq!(uploaded.status(), 201);
    assert_eq!(dependency["id"], build);
    assert_eq!(dependency["name"], "build");
    assert_eq!(
        dependency["artifacts_file"],
        json!({"filename": "artifacts.zip", "size": 13})
    );
    assert_eq!(downloaded.status(), 200);
    assert_eq!(header(&downloaded, "content-type"), Some("application/zip"));
    assert_eq!(
        downloaded.bytes().await.unwrap().as_ref(),
        b"PK\x03\x04zip-bytes"
    );
}

#[tokio::test]
async fn an_upload_without_a_file_part_is_400() {
    let fx = Fixture::start().await;
    fx.pipeline(TWO_STAGES);
    let (build, token) = fx.take_job().await;

    let reply = upload(&fx, build, &token, "archive", b"zip".to_vec()).await;

    assert_eq!(reply.status(), 400);
    assert_eq!(
        reply.json::<Value>().await.unwrap()["message"],
        "400 Bad request - file is missing"
    );
}

#[tokio::test]
async fn an_upload_with_a_wrong_job_token_is_403() {
    let fx = Fixture::start().await;
    fx.pipeline(TWO_STAGES);
    let (build, _token) = fx.take_job().await;

    let reply = upload(&fx, build, "glcbt-wrong", "file", b"zip".to_vec()).await;

    assert_eq!(reply.status(), 403);
}

#[tokio::test]
async fn an_upload_over_the_size_limit_is_413() {
    let fx = Fixture::with_settings(Settings {
        max_artifact_size: 1024,
        ..Settings::default()
    })
    .await;
    fx.pipeline(TWO_STAGES);
    let (build, token) = fx.take_job().await;

    let reply = upload(&fx, build, &token, "file", vec![0; 4096]).await;

    assert_eq!(reply.status(), 413);
}

#[tokio::test]
async fn an_unavailable_upload_is_503_through_a_fault() {
    let fx = Fixture::start().await;
    fx.pipeline(TWO_STAGES);
    let (build, token) = fx.take_job().await;
    fx.gitlab
        .add_fault(FaultSpec::status(FaultEndpoint::Artifacts, 503).times(1))
        .unwrap();

    let first = upload(&fx, build, &token, "file", b"zip".to_vec()).await;
    let retried = upload(&fx, build, &token, "file", b"zip".to_vec()).await;

    assert_eq!(first.status(), 503);
    assert_eq!(retried.status(), 201);
}

#[tokio::test]
async fn a_download_with_an_unrelated_token_is_403() {
    let fx = Fixture::start().await;
    fx.pipeline(TWO_STAGES);
    let (build, token) = fx.take_job().await;
    upload(&fx, build, &token, "file", b"zip".to_vec()).await;

    let reply = fx
        .http
        .get(fx.api(&format!("jobs/{build}/artifacts")))
        .header("JOB-TOKEN", "glcbt-stranger")
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 403);
}

#[tokio::test]
async fn a_download_of_a_job_without_artifacts_is_404() {
    let fx = Fixture::start().await;
    fx.pipeline(TWO_STAGES);
    let (build, token) = fx.take_job().await;

    let reply = fx
        .http
        .get(fx.api(&format!("jobs/{build}/artifacts")))
        .header("JOB-TOKEN", &token)
        .send()
        .await
        .unwrap();

    assert_eq!(reply.status(), 404);
}
