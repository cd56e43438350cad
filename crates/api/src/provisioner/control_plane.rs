//! The control plane's HTTP API as a [`Provisioner`] (`provisioner/cp_provisioner.go` at
//! 624ef4d0): provision (exactly 201), stop, status and console, every call bounded by 120 s.

use std::time::Duration;

use futures_util::future::BoxFuture;
use reqwest::{RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use uuid::Uuid;

use super::{ProvisionError, ProvisionRequest, Provisioner, ProvisionerConfig};

/// The public control plane, when neither `CP_PROVISION_URL` nor `MOLECULE_CP_URL` is set.
pub const DEFAULT_BASE_URL: &str = "https://api.moleculesai.app";
/// Every control-plane call's bound (`cp_provisioner.go:114`).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Bodies read from the provision and status calls (`cp_provisioner.go:198`).
const ANSWER_CAP: usize = 64 * 1024;
/// Console output read at most (`cp_provisioner.go:417`).
const CONSOLE_CAP: usize = 256 * 1024;
/// Error bodies quoted in a stop failure.
const ERROR_QUOTE: usize = 512;

/// The control plane client.
#[derive(Debug)]
pub struct ControlPlane {
    client: reqwest::Client,
    base_url: String,
    shared_secret: Option<SecretString>,
    admin_api_token: Option<SecretString>,
    admin_token: Option<SecretString>,
}

#[derive(Deserialize, Default)]
struct ProvisionAnswer {
    #[serde(default)]
    instance_id: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    error: String,
}

#[derive(Deserialize)]
struct StatusAnswer {
    #[serde(default)]
    state: String,
}

#[derive(Deserialize)]
struct ConsoleAnswer {
    #[serde(default)]
    output: String,
}

impl ControlPlane {
    pub fn new(config: &ProvisionerConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(config.call_timeout.unwrap_or(CALL_TIMEOUT))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            client,
            base_url: config
                .base_url
                .clone()
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_string()),
            shared_secret: config.shared_secret.clone(),
            admin_api_token: config
                .admin_api_token
                .clone()
                .or_else(|| config.shared_secret.clone()),
            admin_token: config.admin_token.clone(),
        }
    }

    /// `/cp/workspaces/*` calls: the shared secret as bearer, the admin token beside it.
    fn provision_auth(&self, request: RequestBuilder) -> RequestBuilder {
        self.with_auth(request, self.shared_secret.as_ref())
    }

    /// `/cp/admin/*` calls: the admin API token as bearer.
    fn admin_auth(&self, request: RequestBuilder) -> RequestBuilder {
        self.with_auth(request, self.admin_api_token.as_ref())
    }

    fn with_auth(
        &self,
        mut request: RequestBuilder,
        bearer: Option<&SecretString>,
    ) -> RequestBuilder {
        if let Some(bearer) = bearer
            .map(ExposeSecret::expose_secret)
            .filter(|b| !b.is_empty())
        {
            request = request.bearer_auth(bearer);
        }
        if let Some(token) = self.admin_token.as_ref().map(ExposeSecret::expose_secret) {
            request = request.header("X-Molecule-Admin-Token", token);
        }
        request
    }

    async fn provision(&self, request: &ProvisionRequest) -> Result<String, ProvisionError> {
        let url = format!("{}/cp/workspaces/provision", self.base_url);
        let response = self
            .provision_auth(self.client.post(url).json(request))
            .send()
            .await?;
        let status = response.status();
        let body = read_capped(response, ANSWER_CAP).await?;
        let answer: ProvisionAnswer = serde_json::from_slice(&body).unwrap_or_default();
        if status != StatusCode::CREATED {
            let message = if answer.error.is_empty() {
                format!("<unstructured body, {} bytes>", body.len())
            } else {
                answer.error
            };
            return Err(ProvisionError::Provision {
                status: status.as_u16(),
                message,
            });
        }
        tracing::info!(workspace_id = %request.workspace_id, instance_id = %answer.instance_id,
            state = %answer.state, "control plane provisioned the workspace");
        Ok(answer.instance_id)
    }

    async fn terminate(&self, workspace_id: Uuid, instance_id: &str) -> Result<(), ProvisionError> {
        let url = format!(
            "{}/cp/workspaces/{workspace_id}?instance_id={instance_id}",
            self.base_url
        );
        let response = self.provision_auth(self.client.delete(url)).send().await?;
        expect_success(response, "stop").await.map(drop)
    }

    async fn running(&self, workspace_id: Uuid, instance_id: &str) -> Result<bool, ProvisionError> {
        let url = format!(
            "{}/cp/workspaces/{workspace_id}/status?instance_id={instance_id}",
            self.base_url
        );
        let response = self.provision_auth(self.client.get(url)).send().await?;
        let body = expect_success(response, "status").await?;
        let answer: StatusAnswer =
            serde_json::from_slice(&body).map_err(|_| ProvisionError::Decode("status"))?;
        Ok(answer.state == "running")
    }

    async fn console_output(&self, workspace_id: Uuid) -> Result<String, ProvisionError> {
        let url = format!(
            "{}/cp/admin/workspaces/{workspace_id}/console",
            self.base_url
        );
        let response = self.admin_auth(self.client.get(url)).send().await?;
        let status = response.status();
        if !status.is_success() {
            return Err(ProvisionError::Unexpected {
                call: "console",
                status: status.as_u16(),
                body: String::new(),
            });
        }
        let body = read_capped(response, CONSOLE_CAP).await?;
        let answer: ConsoleAnswer =
            serde_json::from_slice(&body).map_err(|_| ProvisionError::Decode("console"))?;
        Ok(answer.output)
    }
}

impl Provisioner for ControlPlane {
    fn start<'a>(
        &'a self,
        request: &'a ProvisionRequest,
    ) -> BoxFuture<'a, Result<String, ProvisionError>> {
        Box::pin(self.provision(request))
    }

    fn stop<'a>(
        &'a self,
        workspace_id: Uuid,
        instance_id: &'a str,
    ) -> BoxFuture<'a, Result<(), ProvisionError>> {
        Box::pin(self.terminate(workspace_id, instance_id))
    }

    fn is_running<'a>(
        &'a self,
        workspace_id: Uuid,
        instance_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, ProvisionError>> {
        Box::pin(self.running(workspace_id, instance_id))
    }

    fn console(&self, workspace_id: Uuid) -> BoxFuture<'_, Result<String, ProvisionError>> {
        Box::pin(self.console_output(workspace_id))
    }
}

/// The body of a 2xx answer (capped), or the error naming `call`, status and body start.
async fn expect_success(response: Response, call: &'static str) -> Result<Vec<u8>, ProvisionError> {
    let status = response.status();
    let body = read_capped(response, ANSWER_CAP).await?;
    if status.is_success() {
        return Ok(body);
    }
    let quoted = &body[..body.len().min(ERROR_QUOTE)];
    Err(ProvisionError::Unexpected {
        call,
        status: status.as_u16(),
        body: String::from_utf8_lossy(quoted).into_owned(),
    })
}

/// Reads at most `cap` bytes of a body (the rest is dropped with the connection).
pub(crate) async fn read_capped(
    mut response: Response,
    cap: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = cap - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == cap {
            break;
        }
    }
    Ok(body)
}
