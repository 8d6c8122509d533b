//! Each project's repository over git's smart HTTP, through `git http-backend` as a CGI
//! program, with `gitlab-ci-token:<job token>` basic authentication as GitLab checks it.

use crate::api::{ErrorBody, JobCall};
use crate::server::App;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Resolves `git_ref` to a commit id in `repo`.
pub(crate) fn resolve_ref(git: &str, repo: &Path, git_ref: &str) -> Result<String, String> {
    if git_ref.starts_with('-') || git_ref.is_empty() {
        return Err(format!("{git_ref:?} is not a branch name"));
    }
    let output = std::process::Command::new(git)
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
        .arg(format!("{git_ref}^{{commit}}"))
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "safe.directory")
        .env("GIT_CONFIG_VALUE_0", "*")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {git}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{git_ref} does not name a commit in {}",
            repo.display()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(ErrorBody {
            message: "404 Not Found".into(),
        }),
    )
        .into_response()
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"GitLab\""),
        )],
        "HTTP Basic: Access denied\n",
    )
        .into_response()
}

/// Decodes standard base64 (with or without padding); `None` on any invalid character.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT.decode(text).ok()
}

/// `(user, password)` of an `Authorization: Basic` header.
fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(decode_base64(encoded.trim())?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Serves `/<group>/<project>.git/...`; anything else is 404.
pub(crate) async fn serve(State(app): State<Arc<App>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let Some((repo_path, rest)) = path.split_once(".git/") else {
        return not_found();
    };
    let full_path = repo_path.trim_start_matches('/');
    let (project_id, repo) = {
        let store = app.store();
        match store.projects.values().find(|p| p.full_path == full_path) {
            Some(p) => (p.id, p.repo.clone()),
            None => return not_found(),
        }
    };
    let Some(repo) = repo else {
        return not_found();
    };
    let job = match basic_auth(req.headers()) {
        Some((user, token)) if user == "gitlab-ci-token" => {
            let store = app.store();
            store
                .jobs
                .values()
                .find(|j| {
                    j.project_id == project_id && j.token == token && j.status.is_processing()
                })
                .map(|j| j.id)
        }
        _ => None,
    };
    let Some(job) = job else {
        return unauthorized();
    };
    app.store().record(
        job,
        JobCall::Git {
            service: rest.to_string(),
        },
    );
    if !(rest == "info/refs" || rest == "git-upload-pack") {
        // Only fetching is served: jobs never push through the job token.
        return (
            StatusCode::FORBIDDEN,
            axum::Json(ErrorBody {
                message: "403 Forbidden - only fetch (git-upload-pack) is served".into(),
            }),
        )
            .into_response();
    }
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, crate::server::GIT_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response();
        }
    };
    match run_backend(&app.git_program, &repo, rest, &parts, body).await {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!("git http-backend failed: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(ErrorBody {
                    message: format!("500 git http-backend failed: {e}"),
                }),
            )
                .into_response()
        }
    }
}

async fn run_backend(
    git: &str,
    repo: &Path,
    rest: &str,
    parts: &axum::http::request::Parts,
    body: Bytes,
) -> std::io::Result<Response> {
    let repo = repo.canonicalize()?;
    let (root, name) = match (repo.parent(), repo.file_name()) {
        (Some(root), Some(name)) => (root.to_path_buf(), name.to_string_lossy().into_owned()),
        _ => {
            return Err(std::io::Error::other("repository path has no parent"));
        }
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut child = Command::new(git)
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "safe.directory")
        .env("GIT_CONFIG_VALUE_0", "*")
        .env("PATH_INFO", format!("/{name}/{rest}"))
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_USER", "gitlab-ci-token")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin"))?;
    // Feed the body while reading the reply so neither pipe can fill up and block the other.
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
        drop(stdin);
    });
    // Reads stdout and stderr together, so neither pipe can fill up and stall git.
    let result = child.wait_with_output().await?;
    let _ = writer.await;
    let output = result.stdout;
    if !result.status.success() && output.is_empty() {
        return Err(std::io::Error::other(
            String::from_utf8_lossy(&result.stderr).trim().to_string(),
        ));
    }
    Ok(cgi_response(&output))
}

/// Turns CGI output (headers, blank line, body) into an HTTP response.
fn cgi_response(output: &[u8]) -> Response {
    let (head, body) = match find_header_end(output) {
        Some((head_end, body_start)) => (&output[..head_end], &output[body_start..]),
        None => (&output[..0], output),
    };
    let mut status = StatusCode::OK;
    let mut builder = Response::builder();
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            if let Some(code) = value
                .split_whitespace()
                .next()
                .and_then(|c| c.parse::<u16>().ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
            {
                status = code;
            }
        } else {
            builder = builder.header(name.trim(), value);
        }
    }
    builder
        .status(status)
        .body(Body::from(body.to_vec()))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

fn find_header_end(output: &[u8]) -> Option<(usize, usize)> {
    if let Some(i) = output.windows(4).position(|w| w == b"\r\n\r\n") {
        return Some((i, i + 4));
    }
    output
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_basic_auth_values() {
        assert_eq!(
            decode_base64("Z2l0bGFiLWNpLXRva2VuOnNlY3JldA==").as_deref(),
            Some(&b"gitlab-ci-token:secret"[..])
        );
        assert_eq!(decode_base64("YQ").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode_base64("a*b"), None);
    }

    #[test]
    fn cgi_output_becomes_status_headers_and_body() {
        let response =
            cgi_response(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()["content-type"], "text/plain");
    }
}
