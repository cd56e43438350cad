//! A client for the simulator's control API under `/_sim/`.

use std::time::Duration;

use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::wire::{CpFaultMode, CpFaults, CpFaultsPatch, CpStatus, Faults, FaultsPatch, SimStatus};

#[derive(Debug, Error)]
pub enum SimControlError {
    #[error("control request to the simulator failed")]
    Http(#[from] reqwest::Error),
    #[error("the simulator answered {status}: {body}")]
    Status { status: u16, body: String },
}

/// Drives one simulator's faults and reads its counters.
#[derive(Debug, Clone)]
pub struct SimControl {
    base: String,
    http: reqwest::Client,
}

#[derive(serde::Deserialize)]
struct Count {
    count: u64,
}

impl SimControl {
    /// `aws_endpoint_url` is the simulator's base URL (`http://127.0.0.1:PORT`).
    pub fn new(aws_endpoint_url: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a plain HTTP client always builds");
        Self {
            base: aws_endpoint_url.trim_end_matches('/').to_owned(),
            http,
        }
    }

    pub async fn status(&self) -> Result<SimStatus, SimControlError> {
        self.send(self.http.get(self.url("status"))).await
    }

    /// Applies a partial fault update and returns the faults now in force.
    pub async fn set_faults(&self, patch: FaultsPatch) -> Result<Faults, SimControlError> {
        self.send(self.http.post(self.url("faults")).json(&patch))
            .await
    }

    /// Refuse (or allow again) new tunnels.
    pub async fn refuse_tunnels(&self, refuse: bool) -> Result<Faults, SimControlError> {
        self.set_faults(FaultsPatch {
            refuse_tunnels: Some(refuse),
            ..FaultsPatch::default()
        })
        .await
    }

    /// Drops every live tunnel now; returns how many were dropped.
    pub async fn drop_tunnels(&self) -> Result<u64, SimControlError> {
        let count: Count = self.send(self.http.post(self.url("tunnels/drop"))).await?;
        Ok(count.count)
    }

    /// Expires every pushed key now; returns how many were live.
    pub async fn expire_keys(&self) -> Result<u64, SimControlError> {
        let count: Count = self.send(self.http.post(self.url("keys/expire"))).await?;
        Ok(count.count)
    }

    /// Stops an instance's sshd (and drops the tunnels to it, as a crashed instance would).
    pub async fn stop_sshd(&self, instance_id: &str) -> Result<(), SimControlError> {
        let url = self.url(&format!("instances/{instance_id}/sshd/stop"));
        self.send::<serde_json::Value>(self.http.post(url))
            .await
            .map(drop)
    }

    /// Starts an instance's sshd again on the same port.
    pub async fn start_sshd(&self, instance_id: &str) -> Result<(), SimControlError> {
        let url = self.url(&format!("instances/{instance_id}/sshd/start"));
        self.send::<serde_json::Value>(self.http.post(url))
            .await
            .map(drop)
    }

    /// The simulated control plane's calls, machines and faults (`--control-plane`).
    pub async fn cp_status(&self) -> Result<CpStatus, SimControlError> {
        self.send(self.http.get(self.url("cp/status"))).await
    }

    /// Applies a partial update of the control plane's faults.
    pub async fn set_cp_faults(&self, patch: CpFaultsPatch) -> Result<CpFaults, SimControlError> {
        self.send(self.http.post(self.url("cp/faults")).json(&patch))
            .await
    }

    /// Sets the control plane's fault mode.
    pub async fn cp_fault(&self, mode: CpFaultMode) -> Result<CpFaults, SimControlError> {
        self.set_cp_faults(CpFaultsPatch {
            mode: Some(mode),
            delay_ms: None,
        })
        .await
    }

    /// Forgets the control plane's recorded calls (and resets its in-flight high-water mark).
    pub async fn clear_cp_calls(&self) -> Result<u64, SimControlError> {
        let count: Count = self.send(self.http.delete(self.url("cp/calls"))).await?;
        Ok(count.count)
    }

    /// A control-plane session for `user_id`: the `Cookie` value (`cp_session=…`) that makes
    /// `/cp/auth/tenant-member` answer a member.
    pub async fn cp_session(&self, user_id: &str) -> Result<String, SimControlError> {
        #[derive(serde::Deserialize)]
        struct Session {
            cookie: String,
        }
        let session: Session = self
            .send(
                self.http
                    .post(self.url("cp/sessions"))
                    .json(&serde_json::json!({ "user_id": user_id })),
            )
            .await?;
        Ok(session.cookie)
    }

    fn url(&self, path: &str) -> String {
        format!("{}/_sim/{path}", self.base)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, SimControlError> {
        let response = request.send().await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(SimControlError::Status {
                status: status.as_u16(),
                body,
            });
        }
        Ok(response.json().await?)
    }
}
