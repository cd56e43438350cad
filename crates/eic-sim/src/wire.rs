//! JSON shapes shared by the simulator and its clients: the ready line and the control API.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The simulator's ready line: everything a client needs to reach it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SimInfo {
    /// `http://127.0.0.1:PORT`, the `AWS_ENDPOINT_URL` for every service.
    pub aws_endpoint_url: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The login user every instance's sshd accepts.
    pub os_user: String,
    pub instances: BTreeMap<String, SimInstance>,
    /// With `--control-plane`: the simulated control plane's base URL (its own port), the
    /// tenant's `CP_PROVISION_URL`, `MOLECULE_CP_URL` and `CP_UPSTREAM_URL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_url: Option<String>,
}

/// One simulated instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SimInstance {
    /// The instance's file system root (its sshd's `ChrootDirectory`).
    pub root: PathBuf,
    /// The loopback port of its sshd.
    pub ssh_port: u16,
    /// The private IP `DescribeInstances` reports and `openTunnel` expects.
    pub private_ip: String,
}

impl SimInfo {
    /// `127.0.0.1:PORT`: the endpoint's DNS name as `DescribeInstanceConnectEndpoints` reports it.
    pub fn endpoint_dns(&self) -> &str {
        self.aws_endpoint_url
            .split_once("://")
            .map_or(self.aws_endpoint_url.as_str(), |(_, authority)| authority)
            .trim_end_matches('/')
    }

    /// The environment a process (the server, the AWS SDK) needs to use this simulator.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.aws_endpoint_url.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
            ("AWS_REGION", self.region.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

/// Faults injected at run time (all off with profile `none`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Faults {
    /// Answer every new `openTunnel` with 503.
    pub refuse_tunnels: bool,
    /// Delay every `SendSSHPublicKey` answer (the key is usable only once answered).
    pub key_push_delay_ms: u64,
    /// Delay every `openTunnel` handshake before the `101`.
    pub handshake_delay_ms: u64,
    /// Delay every relayed chunk, each way (a delay line: chunks stay pipelined).
    pub chunk_latency_ms: u64,
    /// How long a key pushed from now on authorises logins (`--key-ttl`; 0: not at all).
    pub key_ttl_ms: u64,
    /// Delay every `DescribeInstances` and `DescribeInstanceConnectEndpoints` answer.
    #[serde(default)]
    pub describe_delay_ms: u64,
    /// Split the `DescribeInstanceConnectEndpoints` listing over this many pages, the endpoint on
    /// the last and a `nextToken` on every other (as EC2 may answer: a page can be empty); 0 and
    /// 1 both mean one page.
    #[serde(default)]
    pub endpoint_pages: u32,
}

/// A partial update of [`Faults`] (`POST /_sim/faults`); absent fields keep their value.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FaultsPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refuse_tunnels: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_push_delay_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake_delay_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunk_latency_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_ttl_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub describe_delay_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_pages: Option<u32>,
}

impl Faults {
    pub fn apply(&mut self, patch: FaultsPatch) {
        if let Some(v) = patch.refuse_tunnels {
            self.refuse_tunnels = v;
        }
        if let Some(v) = patch.key_push_delay_ms {
            self.key_push_delay_ms = v;
        }
        if let Some(v) = patch.handshake_delay_ms {
            self.handshake_delay_ms = v;
        }
        if let Some(v) = patch.chunk_latency_ms {
            self.chunk_latency_ms = v;
        }
        if let Some(v) = patch.key_ttl_ms {
            self.key_ttl_ms = v;
        }
        if let Some(v) = patch.describe_delay_ms {
            self.describe_delay_ms = v;
        }
        if let Some(v) = patch.endpoint_pages {
            self.endpoint_pages = v;
        }
    }
}

/// `GET /_sim/status`: counters tests use to assert amortisation and the absence of leaks.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SimStatus {
    /// Tunnels relaying right now.
    pub live_tunnels: u64,
    /// Tunnels that reached the relay since start.
    pub tunnels_opened: u64,
    /// `openTunnel` requests answered with an error since start.
    pub tunnels_rejected: u64,
    /// Successful `SendSSHPublicKey` calls since start.
    pub keys_pushed: u64,
    /// `DescribeInstances` + `DescribeInstanceConnectEndpoints` calls since start.
    pub describe_calls: u64,
    pub faults: Faults,
    /// Whether each instance's sshd is running.
    pub sshd_running: BTreeMap<String, bool>,
}

/// How the simulated control plane misbehaves (`POST /_sim/cp/faults`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CpFaultMode {
    /// Answer normally.
    #[default]
    None,
    /// Close every new connection before reading it (a control plane that is down).
    Refuse,
    /// Never answer (until the simulator stops).
    Hang,
    /// Answer every call 500 `{"error": "simulated control plane failure"}`.
    Error,
}

/// The simulated control plane's faults.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CpFaults {
    pub mode: CpFaultMode,
    /// Delay before answering any `/cp/*` call (`--cp-delay`; the "slow" fault).
    pub delay_ms: u64,
}

/// A partial update of [`CpFaults`]; absent fields keep their value.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CpFaultsPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<CpFaultMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
}

impl CpFaults {
    pub fn apply(&mut self, patch: CpFaultsPatch) {
        if let Some(mode) = patch.mode {
            self.mode = mode;
        }
        if let Some(delay_ms) = patch.delay_ms {
            self.delay_ms = delay_ms;
        }
    }
}

/// One call the simulated control plane received (recorded before any fault applies).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CpCall {
    pub method: String,
    /// The path as received (not normalised).
    pub path: String,
    #[serde(default)]
    pub query: Option<String>,
    /// The request headers, lower-case names (a repeated header's values joined with `, `).
    pub headers: BTreeMap<String, String>,
    /// The body as JSON (`null` when empty or not JSON).
    pub body: serde_json::Value,
}

/// A workspace's machine as the simulated control plane knows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CpInstance {
    pub instance_id: String,
    /// `running`, `stopped` or `terminated`.
    pub state: String,
    /// Whether it is one of the simulator's real instances (an sshd) rather than a bare id
    /// minted when every real instance was taken.
    pub real: bool,
}

/// `GET /_sim/cp/status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CpStatus {
    pub faults: CpFaults,
    /// Every call received since start (or since the last `DELETE /_sim/cp/calls`).
    pub calls: Vec<CpCall>,
    /// Provision calls being answered right now, and the most at once since start.
    pub provisions_in_flight: u64,
    pub max_provisions_in_flight: u64,
    /// Per workspace id: its current (last) machine.
    pub workspaces: BTreeMap<String, CpInstance>,
}
