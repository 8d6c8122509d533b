//! A typed client of the admin API, for code that talks to a mock in another process.

use crate::api::{
    Created, ErrorBody, FaultSpec, JobCall, JobView, NewPipeline, NewProject, NewRunner,
    PipelineCreated, PipelineView, ProjectView, RunnerCredentials, RunnerView, Settings,
};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Errors of [`AdminClient`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request did not get an HTTP reply.
    #[error("request to {url} failed: {source}")]
    Http {
        /// Requested URL.
        url: String,
        /// Cause.
        source: reqwest::Error,
    },
    /// The mock refused the request.
    #[error("{url} answered {status}: {message}")]
    Status {
        /// Requested URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The reply's `message`.
        message: String,
    },
}

/// Client of `/admin/api` of a running mock GitLab.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client for the mock at `base_url` (e.g. `http://127.0.0.1:41234`).
    pub fn new(base_url: &str) -> Self {
        AdminClient {
            base: base_url.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/admin/api/{path}", self.base)
    }

    async fn send(
        &self,
        url: String,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let response = req.send().await.map_err(|source| ClientError::Http {
            url: url.clone(),
            source,
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|e| e.message)
            .unwrap_or(text);
        Err(ClientError::Status {
            url,
            status: status.as_u16(),
            message,
        })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        url: String,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = self.send(url.clone(), req).await?;
        response
            .json()
            .await
            .map_err(|source| ClientError::Http { url, source })
    }

    /// `POST /admin/api/projects`.
    pub async fn create_project(&self, name: &str, repo: Option<&str>) -> Result<u64, ClientError> {
        let url = self.url("projects");
        let body = NewProject {
            name: name.into(),
            path: repo.map(str::to_string),
        };
        let created: Created = self
            .json(url.clone(), self.http.post(&url).json(&body))
            .await?;
        Ok(created.id)
    }

    /// `GET /admin/api/projects`.
    pub async fn projects(&self) -> Result<Vec<ProjectView>, ClientError> {
        let url = self.url("projects");
        self.json(url.clone(), self.http.get(&url)).await
    }

    /// `GET /admin/api/runners`.
    pub async fn runners(&self) -> Result<Vec<RunnerView>, ClientError> {
        let url = self.url("runners");
        self.json(url.clone(), self.http.get(&url)).await
    }

    /// `POST /admin/api/runners`.
    pub async fn register_runner(
        &self,
        runner: &NewRunner,
    ) -> Result<RunnerCredentials, ClientError> {
        let url = self.url("runners");
        self.json(url.clone(), self.http.post(&url).json(runner))
            .await
    }

    /// `POST /admin/api/pipelines`.
    pub async fn create_pipeline(
        &self,
        pipeline: &NewPipeline,
    ) -> Result<PipelineCreated, ClientError> {
        let url = self.url("pipelines");
        self.json(url.clone(), self.http.post(&url).json(pipeline))
            .await
    }

    /// `GET /admin/api/pipelines/:id`.
    pub async fn pipeline(&self, id: u64) -> Result<PipelineView, ClientError> {
        let url = self.url(&format!("pipelines/{id}"));
        self.json(url.clone(), self.http.get(&url)).await
    }

    /// `GET /admin/api/jobs/:id`.
    pub async fn job(&self, id: u64) -> Result<JobView, ClientError> {
        let url = self.url(&format!("jobs/{id}"));
        self.json(url.clone(), self.http.get(&url)).await
    }

    /// `GET /admin/api/jobs/:id/trace`: the raw trace bytes.
    pub async fn trace(&self, id: u64) -> Result<Vec<u8>, ClientError> {
        let url = self.url(&format!("jobs/{id}/trace"));
        let response = self.send(url.clone(), self.http.get(&url)).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|source| ClientError::Http { url, source })?;
        Ok(bytes.to_vec())
    }

    /// `GET /admin/api/jobs/:id/calls`: the runner calls about the job, with replies.
    pub async fn job_calls(&self, id: u64) -> Result<Vec<JobCall>, ClientError> {
        let url = self.url(&format!("jobs/{id}/calls"));
        self.json(url.clone(), self.http.get(&url)).await
    }

    /// `POST /admin/api/jobs/:id/cancel[?force=true]`.
    pub async fn cancel(&self, id: u64, force: bool) -> Result<JobView, ClientError> {
        let url = self.url(&format!("jobs/{id}/cancel?force={force}"));
        self.json(url.clone(), self.http.post(&url)).await
    }

    /// `POST /admin/api/jobs/:id/play` (manual jobs).
    pub async fn play(&self, id: u64) -> Result<JobView, ClientError> {
        let url = self.url(&format!("jobs/{id}/play"));
        self.json(url.clone(), self.http.post(&url)).await
    }

    /// `GET /admin/api/jobs/:id/wait?timeout_s=N`: waits server-side until the job is finished.
    pub async fn wait(&self, id: u64, timeout: Duration) -> Result<JobView, ClientError> {
        let url = self.url(&format!(
            "jobs/{id}/wait?timeout_s={}",
            timeout.as_secs().max(1)
        ));
        self.json(url.clone(), self.http.get(&url)).await
    }

    /// `POST /admin/api/faults`; returns the fault's id.
    pub async fn add_fault(&self, fault: &FaultSpec) -> Result<u64, ClientError> {
        let url = self.url("faults");
        let created: Created = self
            .json(url.clone(), self.http.post(&url).json(fault))
            .await?;
        Ok(created.id)
    }

    /// `DELETE /admin/api/faults`.
    pub async fn clear_faults(&self) -> Result<(), ClientError> {
        let url = self.url("faults");
        self.send(url.clone(), self.http.delete(&url)).await?;
        Ok(())
    }

    /// `GET /admin/api/settings`.
    pub async fn settings(&self) -> Result<Settings, ClientError> {
        let url = self.url("settings");
        self.json(url.clone(), self.http.get(&url)).await
    }

    /// `PUT /admin/api/settings`.
    pub async fn set_settings(&self, settings: &Settings) -> Result<Settings, ClientError> {
        let url = self.url("settings");
        self.json(url.clone(), self.http.put(&url).json(settings))
            .await
    }
}
