//! [`TunnelListener`]: a local TCP port where every accepted connection gets its own new presigned
//! `openTunnel` WebSocket, like `aws ec2-instance-connect open-tunnel --local-port`.

use std::net::SocketAddr;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::presign::{TunnelTarget, presign_open_tunnel_url};
use crate::wire::SimInfo;

/// The largest binary frame a client sends (aws-cli reads 65 000 bytes at a time).
const MAX_FRAME: usize = 65_000;

/// Accepts local connections until dropped.
#[derive(Debug)]
pub struct TunnelListener {
    local_addr: SocketAddr,
    _stop: DropGuard,
}

impl TunnelListener {
    /// Listens on a free loopback port, tunnelling to `instance_id`'s port 22 via the simulator.
    pub async fn bind(info: &SimInfo, instance_id: &str) -> std::io::Result<TunnelListener> {
        let instance = info.instances.get(instance_id).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("the simulator has no instance {instance_id}"),
            )
        })?;
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let local_addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let config = TunnelConfig {
            credentials: Credentials::new(
                &info.access_key_id,
                &info.secret_access_key,
                None,
                None,
                "eic-sim",
            ),
            region: info.region.clone(),
            endpoint_dns: info.endpoint_dns().to_owned(),
            private_ip: instance.private_ip.clone(),
        };
        tokio::spawn(accept_loop(listener, config, stop.clone()));
        Ok(TunnelListener {
            local_addr,
            _stop: stop.drop_guard(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

struct TunnelConfig {
    credentials: Credentials,
    region: String,
    endpoint_dns: String,
    private_ip: String,
}

async fn accept_loop(listener: TcpListener, config: TunnelConfig, stop: CancellationToken) {
    let config = std::sync::Arc::new(config);
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let config = config.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                result = tunnel(tcp, &config) => {
                    if let Err(error) = result {
                        tracing::warn!(%error, "local tunnel connection failed");
                    }
                }
            }
        });
    }
}

async fn tunnel(tcp: TcpStream, config: &TunnelConfig) -> Result<(), Box<dyn std::error::Error>> {
    tcp.set_nodelay(true)?;
    let target = TunnelTarget {
        endpoint_dns: &config.endpoint_dns,
        endpoint_id: crate::ENDPOINT_ID,
        private_ip: &config.private_ip,
        remote_port: 22,
        max_tunnel_duration: None,
    };
    let url = presign_open_tunnel_url(
        &target,
        &config.credentials,
        &config.region,
        SystemTime::now(),
    )?;
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await?;
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut tcp_rx, mut tcp_tx) = tcp.into_split();
    let upstream = async {
        let mut buf = vec![0u8; MAX_FRAME];
        loop {
            let n = tcp_rx.read(&mut buf).await?;
            if n == 0 {
                ws_tx.send(Message::Close(None)).await?;
                return Ok::<_, Box<dyn std::error::Error>>(());
            }
            ws_tx
                .send(Message::Binary(bytes::Bytes::copy_from_slice(&buf[..n])))
                .await?;
        }
    };
    let downstream = async {
        while let Some(message) = ws_rx.next().await {
            match message? {
                Message::Binary(data) => tcp_tx.write_all(&data).await?,
                Message::Text(_) => return Err("received invalid data from server".into()),
                Message::Close(frame) => {
                    if let Some(frame) = frame.filter(|f| u16::from(f.code) != 1000) {
                        return Err(format!("websocket closure reason: {}", frame.reason).into());
                    }
                    break;
                }
                _ => {}
            }
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    };
    // Either direction ending ends the connection, as the CLI does.
    tokio::select! {
        result = upstream => result,
        result = downstream => result,
    }
}
