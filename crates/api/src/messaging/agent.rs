//! The proxy's side of the wire to the agent: one POST, its failures sorted the way the original
//! answers them (`handlers/a2a_proxy_helpers.go:33-143` at 624ef4d0), the answer read whole
//! (bounded) or relayed chunk by chunk when it is a stream of server-sent events.

use std::future::Future;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use super::watch::IdleWatch;

/// The largest answer read; the rest is dropped, as in the original.
pub const MAX_ANSWER_BYTES: usize = 10 * 1024 * 1024;
/// Chunks of a relayed stream waiting for a slow client.
const RELAY_BUFFER: usize = 16;

/// The HTTP client agents are called with: bounded connect and header waits, no overall timeout
/// (the idle watch and the ceiling bound a call), no redirects followed.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .tcp_keepalive(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// Why no answer came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Timed out or cut off mid-way: the agent is working on something else.
    Busy(String),
    /// Nothing listens at the agent's address.
    Refused(String),
    /// Anything else (DNS, TLS, …).
    Other(String),
}

impl Failure {
    pub fn text(&self) -> &str {
        match self {
            Failure::Busy(text) | Failure::Refused(text) | Failure::Other(text) => text,
        }
    }

    fn of(error: &reqwest::Error) -> Failure {
        let text = chain(error);
        let lower = text.to_lowercase();
        if error.is_timeout()
            || lower.contains("eof")
            || lower.contains("connection reset")
            || lower.contains("connection closed")
        {
            Failure::Busy(text)
        } else if error.is_connect() && lower.contains("refused") {
            Failure::Refused(text)
        } else {
            Failure::Other(text)
        }
    }
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// POSTs the request to the agent's URL exactly as stored; nothing of the caller's (no
/// credentials) is forwarded.
pub async fn send(
    client: &reqwest::Client,
    url: &str,
    body: Bytes,
    watch: &mut IdleWatch,
) -> Result<reqwest::Response, Failure> {
    let request = client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .send();
    match watch.run(request).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(error)) => Err(Failure::of(&error)),
        Err(stall) => Err(Failure::Busy(stall.to_string())),
    }
}

/// Whether the agent answers with a stream of server-sent events.
pub fn is_event_stream(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// Reads the whole answer, at most [`MAX_ANSWER_BYTES`]; every chunk counts as a sign of life.
pub async fn read(mut response: reqwest::Response, watch: &mut IdleWatch) -> Result<Bytes, String> {
    let mut answer = Vec::new();
    loop {
        match watch.run(response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                watch.alive();
                let room = MAX_ANSWER_BYTES - answer.len();
                answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if answer.len() == MAX_ANSWER_BYTES {
                    break;
                }
            }
            Ok(Ok(None)) => break,
            Ok(Err(error)) => return Err(chain(&error)),
            Err(stall) => return Err(stall.to_string()),
        }
    }
    Ok(Bytes::from(answer))
}

/// Relays a stream of server-sent events to the caller as it arrives, in a task on `tasks`.
/// `finished` receives the last `data:` event that was JSON (the final state of the task) once
/// the stream ends.
pub fn relay<F, Fut>(
    tasks: &TaskTracker,
    mut response: reqwest::Response,
    mut watch: IdleWatch,
    finished: F,
) -> Body
where
    F: FnOnce(Option<Value>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let (sender, receiver) = mpsc::channel::<Bytes>(RELAY_BUFFER);
    tasks.spawn(async move {
        let mut events = LastEvent::default();
        while let Ok(Ok(Some(chunk))) = watch.run(response.chunk()).await {
            watch.alive();
            events.feed(&chunk);
            // The caller went away: stop reading the agent.
            if sender.send(chunk).await.is_err() {
                break;
            }
        }
        finished(events.last).await;
    });
    let chunks = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.recv().await?;
        Some((Ok::<_, std::io::Error>(chunk), receiver))
    });
    Body::from_stream(chunks)
}

/// Keeps the last JSON `data:` line of an event stream, holding at most one partial line.
#[derive(Default)]
struct LastEvent {
    partial: Vec<u8>,
    last: Option<Value>,
}

impl LastEvent {
    fn feed(&mut self, chunk: &[u8]) {
        for byte in chunk {
            if *byte != b'\n' {
                if self.partial.len() < MAX_ANSWER_BYTES {
                    self.partial.push(*byte);
                }
                continue;
            }
            let line = std::mem::take(&mut self.partial);
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            if let Some(data) = line.strip_prefix(b"data:")
                && let Ok(value) = serde_json::from_slice(data.trim_ascii())
            {
                self.last = Some(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_json_event_is_kept_across_chunk_boundaries() {
        let mut events = LastEvent::default();
        events.feed(b"data: {\"n\":1}\n\nda");
        events.feed(b"ta: {\"n\":");
        events.feed(b"2}\r\n\n: comment\n");
        events.feed(b"data: not json\n\n");
        assert_eq!(events.last, Some(serde_json::json!({"n": 2})));
    }
}
