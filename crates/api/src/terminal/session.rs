//! One terminal session: WebSocket frames to and from a shell on the pooled connection.
//!
//! Keystrokes arrive as text (or binary) frames and go to the shell raw, except a text frame
//! that is a resize message; output leaves in binary frames of at most 4096 bytes (the
//! original's framing, `handlers/terminal.go:433-453` at 624ef4d0). Either side closing closes
//! the other. The close frame says why: the shell exited (1000, empty reason as the original),
//! 30 minutes without input, the tunnel's end, or a failed step (1011, naming it).

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use eic_pool::{EicError, EicPool, Shell, ShellEvent, ShellSize};
use serde::Deserialize;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::files::eic::step_name;

/// Without input for this long, the session closes (`handlers/terminal.go:28` at 624ef4d0).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Output frames carry at most this many bytes, as the original's.
const FRAME_BYTES: usize = 4096;

/// `{"type":"resize","cols":…,"rows":…}`, an addition the canvas may send.
#[derive(Debug, Deserialize)]
struct Resize {
    #[serde(rename = "type")]
    kind: String,
    cols: u32,
    rows: u32,
}

/// Why the session ended, as the close frame tells it.
enum End {
    /// The client went away: nothing to tell it.
    ClientGone,
    Closed {
        code: u16,
        reason: String,
    },
}

impl End {
    fn normal(reason: &str) -> End {
        End::Closed {
            code: close_code::NORMAL,
            reason: reason.to_string(),
        }
    }

    fn failed(error: &EicError) -> End {
        let step = error.step().map_or("connection", step_name);
        End::Closed {
            code: close_code::ERROR,
            reason: format!("terminal closed: {step} failed"),
        }
    }
}

/// Opens the shell, then relays until one side ends.
pub async fn run(
    mut socket: WebSocket,
    pool: EicPool,
    instance_id: String,
    shutdown: CancellationToken,
) {
    let end = match pool.open_shell(&instance_id, ShellSize::default()).await {
        Ok(shell) => relay(&mut socket, shell, pool.shell_end_warning(), &shutdown).await,
        Err(error) => {
            tracing::warn!(error = %error, cause = ?std::error::Error::source(&error), "terminal setup failed");
            End::failed(&error)
        }
    };
    if let End::Closed { code, reason } = end {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = socket.send(Message::Close(Some(frame))).await;
    }
}

async fn relay(
    socket: &mut WebSocket,
    mut shell: Shell,
    end_warning: Duration,
    shutdown: &CancellationToken,
) -> End {
    let ends_at = shell.ends_at();
    let mut warn_at = Some(
        ends_at
            .checked_sub(end_warning)
            .unwrap_or_else(Instant::now),
    );
    let mut idle_at = Instant::now() + IDLE_TIMEOUT;
    let end = loop {
        tokio::select! {
            () = shutdown.cancelled() => break End::normal("server is shutting down"),
            () = sleep_until(idle_at) => {
                let _ = send_text(socket, "\r\nSession closed after 30 minutes without input.\r\n").await;
                break End::normal("idle for 30 minutes");
            }
            () = sleep_until(ends_at) => {
                break End::normal("the EC2 Instance Connect tunnel reached its maximum duration");
            }
            () = sleep_until(warn_at.unwrap_or(ends_at)), if warn_at.is_some() => {
                warn_at = None;
                if send_text(socket, &end_warning_text(ends_at)).await.is_err() {
                    break End::ClientGone;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(message)) => {
                    idle_at = Instant::now() + IDLE_TIMEOUT;
                    match forward(&shell, message).await {
                        Ok(true) => {}
                        Ok(false) => break End::ClientGone,
                        Err(error) => break End::failed(&error),
                    }
                }
                Some(Err(_)) | None => break End::ClientGone,
            },
            event = shell.next_event() => match event {
                ShellEvent::Output(bytes) => {
                    if send_output(socket, &bytes).await.is_err() {
                        break End::ClientGone;
                    }
                }
                ShellEvent::Exited(_) => break End::normal(""),
                ShellEvent::Lost(error) => break End::failed(&error),
            },
        }
    };
    shell.close().await;
    end
}

/// One client frame to the shell; `Ok(false)` when the client closed.
async fn forward(shell: &Shell, message: Message) -> Result<bool, EicError> {
    match message {
        Message::Text(text) => match resize_of(&text) {
            Some(size) => shell.resize(size).await?,
            None => shell.write(text.as_bytes()).await?,
        },
        Message::Binary(bytes) => shell.write(&bytes).await?,
        Message::Close(_) => return Ok(false),
        Message::Ping(_) | Message::Pong(_) => {}
    }
    Ok(true)
}

fn resize_of(text: &str) -> Option<ShellSize> {
    if !text.starts_with('{') {
        return None;
    }
    let resize: Resize = serde_json::from_str(text).ok()?;
    (resize.kind == "resize" && resize.cols > 0 && resize.rows > 0).then_some(ShellSize {
        cols: resize.cols.min(1000),
        rows: resize.rows.min(1000),
    })
}

async fn send_output(socket: &mut WebSocket, bytes: &[u8]) -> Result<(), axum::Error> {
    for chunk in bytes.chunks(FRAME_BYTES) {
        socket
            .send(Message::Binary(bytes::Bytes::copy_from_slice(chunk)))
            .await?;
    }
    Ok(())
}

async fn send_text(socket: &mut WebSocket, text: &str) -> Result<(), axum::Error> {
    socket.send(Message::Text(text.into())).await
}

/// The line written into the terminal before the tunnel's end.
fn end_warning_text(ends_at: Instant) -> String {
    let minutes = ends_at
        .saturating_duration_since(Instant::now())
        .as_secs()
        .div_ceil(60);
    format!(
        "\r\n[workspace-server] This terminal session will end in {minutes} minute(s): the \
         EC2 Instance Connect tunnel reaches its maximum duration. Reconnect to continue.\r\n"
    )
}
