//! Starts the SFTP server on a session channel and returns its byte stream, keeping what the
//! server says on stderr: when it cannot start (say `sudo: a password is required`), that text
//! is the only useful diagnosis.

use std::sync::{Arc, Mutex};

use russh::ChannelMsg;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::ssh::{self, SshHandle};
use crate::EicError;
use crate::error::cause;

/// Bytes of stderr kept for the error message.
const STDERR_KEPT: usize = 2048;
/// Buffer between the channel and the SFTP client (SFTP replies are at most ~256 KiB).
const PIPE_BUFFER: usize = 512 * 1024;

/// What the SFTP server's process reported besides its protocol bytes.
#[derive(Default)]
pub(crate) struct ServerReport {
    stderr: Vec<u8>,
    exit_status: Option<u32>,
    /// sshd answered the `exec` request with a failure: nothing runs on the channel.
    refused: bool,
}

impl ServerReport {
    /// A one-line description for a failed start.
    pub(crate) fn describe(&self) -> String {
        if self.refused {
            return "sshd refused to run it".to_owned();
        }
        let stderr = String::from_utf8_lossy(&self.stderr);
        let stderr = stderr.trim();
        match (self.exit_status, stderr.is_empty()) {
            (Some(status), true) => format!("it exited with status {status}"),
            (Some(status), false) => format!("it exited with status {status}: {stderr}"),
            (None, false) => format!("it said: {stderr}"),
            (None, true) => "it closed the channel without a word".to_owned(),
        }
    }
}

/// Opens the first channel after login, `exec`s `command` on it, and returns the channel as a byte stream plus the
/// server's report, without waiting for the `exec` reply (data written meanwhile waits for the
/// channel's window, which sshd opens once the command runs). A pump task moves channel data
/// into the stream; it ends with the channel, or at once if the `exec` is refused.
pub(crate) async fn start(
    handle: &SshHandle,
    command: &str,
) -> Result<
    (
        impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
        Arc<Mutex<ServerReport>>,
    ),
    EicError,
> {
    let channel = ssh::open_first_channel(handle)
        .await
        .map_err(|e| EicError::Ssh { source: cause(e) })?;
    channel
        .exec(true, command.as_bytes())
        .await
        .map_err(|e| EicError::Ssh { source: cause(e) })?;
    let (mut from_channel, to_channel) = channel.split();
    // Boxed as `'static` so that `to_channel` can move into the pump (the writer does not
    // borrow it, but its opaque type says it might).
    let writer: std::pin::Pin<Box<dyn AsyncWrite + Send + 'static>> =
        Box::pin(to_channel.make_writer());
    let (reader, mut pipe) = tokio::io::simplex(PIPE_BUFFER);
    let report = Arc::new(Mutex::new(ServerReport::default()));
    let reported = report.clone();
    tokio::spawn(async move {
        let _keep_open = to_channel;
        while let Some(message) = from_channel.wait().await {
            match message {
                ChannelMsg::Data { data } if pipe.write_all(&data).await.is_err() => {
                    break; // the SFTP session is gone
                }
                ChannelMsg::Data { .. } => {}
                ChannelMsg::ExtendedData { data, .. } => {
                    let mut report = reported.lock().unwrap_or_else(|e| e.into_inner());
                    let room = STDERR_KEPT.saturating_sub(report.stderr.len());
                    report
                        .stderr
                        .extend_from_slice(&data[..data.len().min(room)]);
                }
                ChannelMsg::ExitStatus { exit_status } => {
                    let mut report = reported.lock().unwrap_or_else(|e| e.into_inner());
                    report.exit_status = Some(exit_status);
                }
                // The only request we send is the `exec`: refused, nothing will ever answer.
                ChannelMsg::Failure => {
                    reported.lock().unwrap_or_else(|e| e.into_inner()).refused = true;
                    break;
                }
                ChannelMsg::Eof | ChannelMsg::Close => break,
                _ => {}
            }
        }
        // Ends the SFTP client's stream (dropping a simplex half alone would not).
        let _ = pipe.shutdown().await;
    });
    Ok((tokio::io::join(reader, writer), report))
}
