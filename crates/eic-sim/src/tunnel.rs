//! `GET /openTunnel`: verify the presigned URL like the EC2 Instance Connect Endpoint, then relay
//! bytes between binary WebSocket frames and a TCP connection to the instance's sshd.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::sigv4::SignedRequest;
use crate::state::Sim;

const SSHD_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Chunks queued per direction before the reader waits (bounds memory under latency).
const QUEUED_CHUNKS: usize = 256;
const READ_CHUNK: usize = 64 * 1024;

/// A verified tunnel request, connected to the instance's sshd.
struct Accepted {
    instance_id: String,
    sshd: TcpStream,
    max_duration: Option<Duration>,
}

pub async fn open_tunnel(
    State(sim): State<Arc<Sim>>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let accepted = match accept(&sim, &uri, &headers).await {
        Ok(accepted) => accepted,
        Err((status, reason)) => {
            sim.count_rejected_tunnel();
            tracing::info!(%status, reason, "openTunnel rejected");
            return (status, reason).into_response();
        }
    };
    match upgrade {
        Ok(upgrade) => upgrade.on_upgrade(move |socket| relay(sim, accepted, socket)),
        Err(rejection) => {
            sim.count_rejected_tunnel();
            rejection.into_response()
        }
    }
}

async fn accept(
    sim: &Sim,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Accepted, (StatusCode, String)> {
    let forbidden = |reason: String| (StatusCode::FORBIDDEN, reason);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| forbidden("missing Host header".into()))?;
    let query = uri.query().unwrap_or("");
    let request = SignedRequest {
        method: "GET",
        host,
        path: uri.path(),
        query,
        headers,
        body: &[],
    };
    sim.verifier
        .verify_presigned(&request, "ec2-instance-connect")
        .map_err(forbidden)?;
    let params = TunnelParams::parse(query).map_err(forbidden)?;
    let instance = sim.instance_by_ip(&params.private_ip).ok_or_else(|| {
        forbidden(format!(
            "no instance has privateIpAddress {}",
            params.private_ip
        ))
    })?;

    let faults = sim.faults();
    if faults.refuse_tunnels {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "the endpoint refuses new tunnels (fault injected by eic-sim)".into(),
        ));
    }
    let max_tunnels = sim.max_tunnels();
    if sim.live_tunnels() >= max_tunnels {
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            format!("the endpoint allows {max_tunnels} concurrent connections"),
        ));
    }
    if faults.handshake_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.handshake_delay_ms)).await;
    }
    Ok(Accepted {
        instance_id: instance.id.clone(),
        sshd: connect_sshd(instance.ssh_port, &params.private_ip).await?,
        max_duration: params.max_duration,
    })
}

/// The `openTunnel` query parameters the endpoint checks, as AWS does: its own endpoint id,
/// port 22 only, an optional `maxTunnelDuration` of 1..=3600 s.
struct TunnelParams {
    private_ip: String,
    max_duration: Option<Duration>,
}

impl TunnelParams {
    fn parse(query: &str) -> Result<TunnelParams, String> {
        let param = |name: &str| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let required = |name: &str| param(name).ok_or_else(|| format!("missing parameter {name}"));
        let endpoint_id = required("instanceConnectEndpointId")?;
        let remote_port = required("remotePort")?;
        let private_ip = required("privateIpAddress")?;
        if endpoint_id != eic_sim::ENDPOINT_ID {
            return Err(format!("unknown instanceConnectEndpointId {endpoint_id}"));
        }
        if remote_port != "22" {
            return Err(format!("remotePort {remote_port} is not allowed (only 22)"));
        }
        let max_duration = match param("maxTunnelDuration") {
            None => None,
            Some(s) => Some(
                s.parse::<u64>()
                    .ok()
                    .filter(|s| (1..=3600).contains(s))
                    .map(Duration::from_secs)
                    .ok_or_else(|| "maxTunnelDuration must be 1..=3600".to_string())?,
            ),
        };
        Ok(TunnelParams {
            private_ip,
            max_duration,
        })
    }
}

/// Connects to the instance's sshd on loopback, as the endpoint connects to port 22.
async fn connect_sshd(port: u16, private_ip: &str) -> Result<TcpStream, (StatusCode, String)> {
    let address = ("127.0.0.1", port);
    let sshd = match tokio::time::timeout(SSHD_CONNECT_TIMEOUT, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            return Err((
                StatusCode::BAD_GATEWAY,
                format!("cannot connect to {private_ip}:22: {e}"),
            ));
        }
        Err(_) => {
            return Err((
                StatusCode::GATEWAY_TIMEOUT,
                format!("connecting to {private_ip}:22 timed out"),
            ));
        }
    };
    // Without it every small SSH packet waits for a delayed ACK (~40 ms).
    sshd.set_nodelay(true).map_err(|e| {
        (
            StatusCode::BAD_GATEWAY,
            format!("cannot configure the connection: {e}"),
        )
    })?;
    Ok(sshd)
}

async fn relay(sim: Arc<Sim>, accepted: Accepted, socket: WebSocket) {
    let guard = sim.open_tunnel(&accepted.instance_id);
    let cancel = guard.cancel.clone();
    if let Some(limit) = accepted.max_duration {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(limit) => cancel.cancel(),
                () = cancel.cancelled() => {}
            }
        });
    }
    tracing::debug!(instance_id = accepted.instance_id, "tunnel open");
    relay_bytes(&sim, socket, accepted.sshd, &cancel).await;
    // Stops the max-duration timer too.
    cancel.cancel();
    tracing::debug!(instance_id = accepted.instance_id, "tunnel closed");
    drop(guard);
}

/// Each direction is a delay line: a reader stamps every chunk with its due time (now + the
/// injected latency) and a writer forwards it then, so latency does not serialise the chunks.
async fn relay_bytes(sim: &Sim, socket: WebSocket, sshd: TcpStream, cancel: &CancellationToken) {
    let (mut ws_tx, mut ws_rx) = socket.split();
    let (mut tcp_rx, mut tcp_tx) = sshd.into_split();
    let (up_tx, mut up_rx) = mpsc::channel::<(Instant, Bytes)>(QUEUED_CHUNKS);
    let (down_tx, mut down_rx) = mpsc::channel::<(Instant, Bytes)>(QUEUED_CHUNKS);
    let due = || Instant::now() + Duration::from_millis(sim.faults().chunk_latency_ms);

    let ws_reader = async move {
        while let Some(Ok(message)) = ws_rx.next().await {
            match message {
                Message::Binary(data) => {
                    if up_tx.send((due(), data)).await.is_err() {
                        break;
                    }
                }
                // The endpoint carries binary frames only.
                Message::Text(_) | Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
    };
    let tcp_writer = async move {
        while let Some((at, data)) = up_rx.recv().await {
            hold_until(at).await;
            if tcp_tx.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = tcp_tx.shutdown().await;
    };
    let tcp_reader = async move {
        let mut buf = vec![0u8; READ_CHUNK];
        while let Ok(n @ 1..) = tcp_rx.read(&mut buf).await {
            if down_tx
                .send((due(), Bytes::copy_from_slice(&buf[..n])))
                .await
                .is_err()
            {
                break;
            }
        }
    };
    let ws_writer = async {
        while let Some((at, data)) = down_rx.recv().await {
            hold_until(at).await;
            if ws_tx.send(Message::Binary(data)).await.is_err() {
                return;
            }
        }
        let _ = ws_tx.send(close(1000, "")).await;
    };

    let dropped = tokio::select! {
        _ = async { tokio::join!(ws_reader, tcp_writer, tcp_reader, ws_writer) } => false,
        () = cancel.cancelled() => true,
    };
    if dropped {
        let goodbye = ws_tx.send(close(1011, "tunnel dropped by eic-sim"));
        let _ = tokio::time::timeout(Duration::from_secs(1), goodbye).await;
    }
}

/// Waits for a chunk's due time. Without injected latency the chunk is already due: no timer at
/// all, since the timer's millisecond granularity would add up to a millisecond per chunk.
async fn hold_until(at: Instant) {
    if at > Instant::now() {
        tokio::time::sleep_until(at).await;
    }
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}
