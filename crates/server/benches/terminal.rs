//! The web terminal through the real server against `eic-sim --profile aws` (release build): what
//! the canvas's Terminal tab sees on `GET /workspaces/{id}/terminal`, WebSocket in, shell on the
//! pooled EIC connection out.
//!
//! 1. warm open: the WebSocket upgrade until the shell's prompt, the instance's connection
//!    already pooled (median of 10);
//! 2. keystroke to echo: one key as a text frame until its echo comes back as a binary frame
//!    (p50 of 200).
//!
//! Run with `scripts/bench-terminal`, which first runs `eic-sim`'s own terminal benchmark: the
//! same figures at the pool, the simulator's round trip measured, and the original's path.

// The black-box tests' harness (only part of it is used here).
#[allow(dead_code)]
#[path = "../tests/blackbox/harness/mod.rs"]
mod harness;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use harness::panel::{PanelRig, instance_ids, load_panel, ms, quantile};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const WARM_OPENS: usize = 10;
const KEYSTROKES: usize = 200;
/// Nothing here should take longer; a stuck shell fails the run instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() {
    run().await;
}

async fn run() {
    let instances = instance_ids(1);
    let rig = PanelRig::start("aws", &instances).await;
    let id = rig
        .attached_workspace("bench-terminal", &instances[0])
        .await;
    // The instance's connection is set up and pooled by a first panel load.
    load_panel(&rig.server, &id).await;
    let url = rig
        .server
        .url(&format!("/workspaces/{id}/terminal"))
        .replacen("http://", "ws://", 1);

    let mut opens = Vec::with_capacity(WARM_OPENS);
    for _ in 0..WARM_OPENS {
        let started = Instant::now();
        let mut socket = connect(&url).await;
        read_until(&mut socket, b"$ ").await;
        opens.push(started.elapsed());
        socket.close(None).await.expect("closed");
    }

    let mut socket = connect(&url).await;
    read_until(&mut socket, b"$ ").await;
    let mut echoes = Vec::with_capacity(KEYSTROKES);
    for n in 0..KEYSTROKES {
        let key = (b'a' + (n % 26) as u8) as char;
        let started = Instant::now();
        let frame = Message::Text(key.to_string().into());
        socket.send(frame).await.expect("a keystroke sent");
        read_until(&mut socket, &[key as u8]).await;
        echoes.push(started.elapsed());
    }
    socket.close(None).await.expect("closed");

    println!("web terminal through the server's WebSocket, profile aws:");
    println!(
        "  warm open (upgrade until the prompt): median {} of {WARM_OPENS}",
        ms(quantile(&opens, 0.5))
    );
    println!(
        "  keystroke to echo: p50 {} of {KEYSTROKES} (p90 {})",
        ms(quantile(&echoes, 0.5)),
        ms(quantile(&echoes, 0.9))
    );
}

async fn connect(url: &str) -> Socket {
    let (socket, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(url))
        .await
        .expect("the upgrade in time")
        .expect("the terminal opens");
    socket
}

/// Reads binary output frames until `marker` has been seen.
async fn read_until(socket: &mut Socket, marker: &[u8]) {
    let mut tail: Vec<u8> = Vec::new();
    let seen = tokio::time::timeout(PATIENCE, async {
        while let Some(message) = socket.next().await {
            match message.expect("a frame") {
                Message::Binary(bytes) => {
                    tail.extend_from_slice(&bytes);
                    if tail.windows(marker.len()).any(|w| w == marker) {
                        return;
                    }
                    let keep = tail.len().saturating_sub(marker.len());
                    tail.drain(..keep);
                }
                Message::Close(frame) => panic!("the terminal closed: {frame:?}"),
                _ => {}
            }
        }
        panic!("the terminal ended");
    })
    .await;
    seen.expect("the output in time");
}
