//! The `openTunnel` WebSocket as a byte stream for russh.
//!
//! After the upgrade the endpoint relays raw TCP bytes as binary frames. [`TunnelStream`] adapts
//! the WebSocket's `Stream`/`Sink` of messages to `AsyncRead + AsyncWrite` directly (no pump
//! tasks, no extra copy through a pipe): reads drain binary payloads, writes send one binary
//! frame of at most 65 000 bytes each (as aws-cli does). A text frame or a close with a code
//! other than 1000 is an I/O error that carries the endpoint's reason.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::EicError;
use crate::error::{cause, cause_msg};

/// Largest binary frame we send (aws-cli's `MAX_BYTES_PER_FRAME`).
const MAX_FRAME: usize = 65_000;

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens the presigned tunnel URL (Nagle disabled: SSH sends many small packets).
pub(crate) async fn open(url: &str) -> Result<TunnelStream<Ws>, EicError> {
    match tokio_tungstenite::connect_async_with_config(url, None, true).await {
        Ok((ws, _response)) => Ok(TunnelStream::new(ws)),
        Err(tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            Err(EicError::Tunnel {
                source: cause_msg(format!(
                    "openTunnel answered {}: {}",
                    response.status(),
                    body.trim()
                )),
            })
        }
        Err(err) => Err(EicError::Tunnel { source: cause(err) }),
    }
}

/// `AsyncRead + AsyncWrite` over a WebSocket of binary frames.
pub(crate) struct TunnelStream<S> {
    ws: S,
    /// Unread rest of the last binary frame.
    pending: Bytes,
    eof: bool,
}

impl<S> TunnelStream<S> {
    pub(crate) fn new(ws: S) -> Self {
        Self {
            ws,
            pending: Bytes::new(),
            eof: false,
        }
    }
}

impl<S> AsyncRead for TunnelStream<S>
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending[..n]);
                self.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            if self.eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(data))) => self.pending = data,
                Some(Ok(Message::Text(text))) => {
                    tracing::warn!(frame = %text, "EIC tunnel sent a text frame");
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("tunnel sent a text frame (invalid data): {text}"),
                    )));
                }
                Some(Ok(Message::Close(Some(frame)))) if frame.code != CloseCode::Normal => {
                    tracing::warn!(code = u16::from(frame.code), reason = %frame.reason, "EIC tunnel closed");
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        format!(
                            "tunnel closed ({}): {}",
                            u16::from(frame.code),
                            frame.reason
                        ),
                    )));
                }
                Some(Ok(Message::Close(_))) | None => self.eof = true,
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Err(err)) => return Poll::Ready(Err(io::Error::other(err))),
            }
        }
    }
}

impl<S> AsyncWrite for TunnelStream<S>
where
    S: Sink<Message, Error = tungstenite::Error> + Unpin,
{
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(io::Error::other)?;
        let n = data.len().min(MAX_FRAME);
        Pin::new(&mut self.ws)
            .start_send(Message::Binary(Bytes::copy_from_slice(&data[..n])))
            .map_err(io::Error::other)?;
        // Push the frame out now: a writer that never flushes (russh's version line) must not
        // leave it sitting in the WebSocket's buffer. If the socket is full, `poll_ready` or
        // `poll_flush` finishes the job later.
        if let Poll::Ready(Err(err)) = Pin::new(&mut self.ws).poll_flush(cx) {
            return Poll::Ready(Err(io::Error::other(err)));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws)
            .poll_flush(cx)
            .map_err(io::Error::other)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws)
            .poll_close(cx)
            .map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, stream};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;

    fn frames(
        messages: Vec<Message>,
    ) -> impl Stream<Item = Result<Message, tungstenite::Error>> + Unpin {
        stream::iter(messages.into_iter().map(Ok))
    }

    #[tokio::test]
    async fn binary_frames_read_as_one_byte_stream() {
        let ws = frames(vec![
            Message::Binary(Bytes::from_static(b"SSH-2.0-")),
            Message::Ping(Bytes::new()),
            Message::Binary(Bytes::from_static(b"OpenSSH\r\n")),
            Message::Close(None),
        ]);
        let mut out = String::new();
        TunnelStream::new(ws)
            .read_to_string(&mut out)
            .await
            .unwrap();
        assert_eq!(out, "SSH-2.0-OpenSSH\r\n");
    }

    #[tokio::test]
    async fn a_text_frame_is_an_error() {
        let ws = frames(vec![Message::text("no")]);
        let err = TunnelStream::new(ws).read_u8().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn an_abnormal_close_carries_its_reason() {
        let ws = frames(vec![Message::Close(Some(CloseFrame {
            code: CloseCode::Policy,
            reason: "tunnel expired".into(),
        }))]);
        let err = TunnelStream::new(ws).read_u8().await.unwrap_err();
        assert!(err.to_string().contains("tunnel expired"), "{err}");
    }

    #[tokio::test]
    async fn writes_become_binary_frames_of_at_most_65000_bytes() {
        let mut sent: Vec<Message> = Vec::new();
        let sink = (&mut sent).sink_map_err(|never| match never {});
        let mut stream = TunnelStream::new(sink);
        stream.write_all(&vec![7u8; 100_000]).await.unwrap();
        stream.shutdown().await.unwrap();
        drop(stream);
        let sizes: Vec<usize> = sent
            .into_iter()
            .map(|m| match m {
                Message::Binary(b) => b.len(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(sizes, vec![65_000, 35_000]);
    }
}
