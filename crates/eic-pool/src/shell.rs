//! Interactive shells on the pooled connection: a PTY session channel on the instance's SSH
//! connection, held by a shell lease (no operation slot, a shell slot of its own), so a warm
//! terminal open costs one channel instead of a setup.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::time::Instant;

use crate::eic::EicConnector;
use crate::error::{cause, cause_msg};
use crate::pool::Lease;
use crate::{EicError, metrics};

/// The terminal type the PTY announces (xterm.js speaks it).
pub const TERM: &str = "xterm-256color";

/// A terminal size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShellSize {
    pub cols: u32,
    pub rows: u32,
}

impl Default for ShellSize {
    /// The size a terminal gets until the client says otherwise.
    fn default() -> Self {
        Self { cols: 80, rows: 24 }
    }
}

/// What the shell did next.
#[derive(Debug)]
pub enum ShellEvent {
    /// Bytes the shell wrote to its terminal (stdout and stderr share the PTY).
    Output(Bytes),
    /// The shell ended by itself (`exit`), with its status when sshd sent one.
    Exited(Option<u32>),
    /// The connection under the shell broke; the error names the step.
    Lost(EicError),
}

/// Counts open shells, for `EicPool::open_shells` and the `eic_shells_open` gauge.
#[derive(Debug, Default)]
pub(crate) struct ShellCount(Arc<AtomicUsize>);

impl ShellCount {
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    fn open(&self) -> OpenShell {
        let open = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::shells_open(open);
        OpenShell(self.0.clone())
    }
}

struct OpenShell(Arc<AtomicUsize>);

impl Drop for OpenShell {
    fn drop(&mut self) {
        let open = self.0.fetch_sub(1, Ordering::Relaxed) - 1;
        metrics::shells_open(open);
    }
}

/// One interactive shell on an instance. Dropping it closes the channel and frees its slot.
pub struct Shell {
    output: ChannelReadHalf,
    input: ChannelWriteHalf<Msg>,
    lease: Lease<EicConnector>,
    ends_at: Instant,
    exit_status: Option<u32>,
    _open: OpenShell,
}

impl std::fmt::Debug for Shell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shell")
            .field("ends_at", &self.ends_at)
            .finish()
    }
}

impl Shell {
    /// Opens a PTY and a login shell on the leased connection.
    pub(crate) async fn open(
        lease: Lease<EicConnector>,
        size: ShellSize,
        ends_at: Instant,
        count: &ShellCount,
    ) -> Result<Shell, EicError> {
        let channel = lease.open_shell_channel(size).await;
        let channel = match channel {
            Ok(channel) => channel,
            Err(err) => {
                if err.is_transport() {
                    lease.poison();
                }
                return Err(err);
            }
        };
        let (output, input) = channel.split();
        Ok(Shell {
            output,
            input,
            lease,
            ends_at,
            exit_status: None,
            _open: count.open(),
        })
    }

    /// When the tunnel under this shell reaches its maximum duration and the shell ends.
    pub fn ends_at(&self) -> Instant {
        self.ends_at
    }

    /// Waits for the shell's next output, its end, or the loss of its connection.
    pub async fn next_event(&mut self) -> ShellEvent {
        loop {
            match self.output.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    return ShellEvent::Output(Bytes::from(data.to_vec()));
                }
                Some(ChannelMsg::ExtendedData { data, .. }) => {
                    return ShellEvent::Output(Bytes::from(data.to_vec()));
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    self.exit_status = Some(exit_status)
                }
                Some(ChannelMsg::Close) => return ShellEvent::Exited(self.exit_status),
                Some(_) => {}
                None => return self.ended_without_close(),
            }
        }
    }

    /// The channel vanished without a close: a clean exit if sshd reported one, else the
    /// connection under it broke.
    fn ended_without_close(&self) -> ShellEvent {
        if self.exit_status.is_some() && !self.lease.is_closed() {
            return ShellEvent::Exited(self.exit_status);
        }
        self.lease.poison();
        ShellEvent::Lost(EicError::Tunnel {
            source: cause_msg("the connection to the instance closed under the shell"),
        })
    }

    /// Sends keystrokes (or pasted text) to the shell.
    pub async fn write(&self, bytes: &[u8]) -> Result<(), EicError> {
        self.input
            .data_bytes(Bytes::copy_from_slice(bytes))
            .await
            .map_err(|e| self.transport(e))
    }

    /// Tells the PTY its new size.
    pub async fn resize(&self, size: ShellSize) -> Result<(), EicError> {
        self.input
            .window_change(size.cols, size.rows, 0, 0)
            .await
            .map_err(|e| self.transport(e))
    }

    /// Closes the channel politely (the shell gets a hang-up).
    pub async fn close(self) {
        let _ = self.input.close().await;
    }

    fn transport(&self, err: russh::Error) -> EicError {
        self.lease.poison();
        EicError::Ssh { source: cause(err) }
    }
}
