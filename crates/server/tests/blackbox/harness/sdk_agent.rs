//! The real A2A agent (`tests/agents/echo_agent.py`, built on the official `a2a-sdk`) as a child
//! process on loopback: it registers itself with the server for a workspace and then serves A2A
//! (push mode) or reads its inbox (poll mode). Used by the tests and by the A2A benchmark.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::{TestServer, repo_root};

/// Bounds every wait on the agent (its first run imports the SDK).
pub const WAIT: Duration = Duration::from_secs(60);

/// The agent's python, from the venv `tests/agents/setup` creates once.
pub fn agent_python() -> String {
    let output = std::process::Command::new(repo_root().join("tests/agents/setup"))
        .output()
        .expect("tests/agents/setup runs");
    assert!(
        output.status.success(),
        "agent venv: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// A running agent and its stdout, one JSON object per line; killed when dropped.
pub struct Agent {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    /// What its first line announced: where it serves A2A in push mode (as it registered
    /// itself), `poll` in poll mode.
    #[allow(dead_code)] // Read by the A2A benchmark.
    pub url: String,
}

impl Agent {
    /// Starts the agent for `workspace` in `mode` (`push` or `poll`) and waits until it has
    /// registered.
    pub async fn start(server: &TestServer, workspace: &str, mode: &str) -> Agent {
        let mut child = Command::new(agent_python())
            .arg(repo_root().join("tests/agents/echo_agent.py"))
            .args([
                "--platform",
                &server.base_url,
                "--workspace-id",
                workspace,
                "--mode",
                mode,
            ])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the agent starts");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut agent = Agent {
            child,
            lines,
            url: String::new(),
        };
        let ready = agent.next_line().await;
        agent.url = ready["ready"]
            .as_str()
            .unwrap_or_else(|| panic!("the agent's first line names its URL: {ready}"))
            .to_string();
        agent
    }

    /// The agent's process id while it runs.
    #[allow(dead_code)] // Read by the A2A benchmark.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The next line the agent printed, within [`WAIT`].
    pub async fn next_line(&mut self) -> Value {
        let line = tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("the agent says something in time")
            .unwrap()
            .expect("the agent is running");
        serde_json::from_str(&line).unwrap()
    }
}
