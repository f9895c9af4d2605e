//! A deadline on receiving each request's head (request line and headers).
//!
//! The HTTP server has no header read timeout of its own, and its idle timeout is reset by every
//! byte, so a client trickling a header a byte at a time could hold a connection forever. This
//! wraps accepted connections: from the first byte of a request until the blank line ending its
//! head, at most `limit` may pass; past it the connection is closed. After the head the body is
//! bounded by the body read timeout; after a response is written, the next byte starts the next
//! request's deadline.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep, sleep_until};

/// A connection whose request heads must arrive within a deadline.
pub struct DeadlineIo<T> {
    inner: T,
    limit: Duration,
    phase: Phase,
    /// The last bytes of the head seen so far, to find `\r\n\r\n` across reads.
    tail: [u8; 3],
}

enum Phase {
    /// Waiting for the next request (bounded by the server's idle timeout).
    Idle,
    /// Receiving a head that must be complete by the deadline.
    Head(Pin<Box<Sleep>>),
    /// Head received; the body and the response follow.
    Rest,
}

impl<T> DeadlineIo<T> {
    pub fn new(inner: T, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            phase: Phase::Idle,
            tail: [0; 3],
        }
    }

    /// Follows the bytes of a request: the first one starts the deadline, the end of the head
    /// stops it.
    fn observe(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Phase::Idle = self.phase {
            self.phase = Phase::Head(Box::pin(sleep_until(Instant::now() + self.limit)));
            self.tail = [0; 3];
        }
        if let Phase::Head(_) = self.phase {
            let mut window = self.tail.to_vec();
            window.extend_from_slice(bytes);
            if window.windows(4).any(|w| w == b"\r\n\r\n") {
                self.phase = Phase::Rest;
            }
            let keep = window.len().min(3);
            self.tail = [0; 3];
            self.tail[3 - keep..].copy_from_slice(&window[window.len() - keep..]);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for DeadlineIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                self.observe(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => {
                let expired = match &mut self.phase {
                    Phase::Head(deadline) => deadline.as_mut().poll(cx).is_ready(),
                    _ => false,
                };
                if expired {
                    let error = io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request head not received in time",
                    );
                    Poll::Ready(Err(error))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for DeadlineIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        // A response is going out: the next byte read starts the next request.
        if let Phase::Rest = self.phase {
            self.phase = Phase::Idle;
        }
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io() -> DeadlineIo<()> {
        DeadlineIo {
            inner: (),
            limit: Duration::from_secs(5),
            phase: Phase::Idle,
            tail: [0; 3],
        }
    }

    fn in_head(io: &DeadlineIo<()>) -> bool {
        matches!(io.phase, Phase::Head(_))
    }

    #[tokio::test]
    async fn the_deadline_runs_from_the_first_byte_to_the_end_of_the_head() {
        let mut io = io();
        io.observe(b"GET / HTTP/1.1\r\nHost: x\r\n");
        assert!(in_head(&io));
        io.observe(b"\r");
        assert!(in_head(&io));
        io.observe(b"\nbody");
        assert!(
            !in_head(&io),
            "the blank line split across reads ends the head"
        );
    }

    #[tokio::test]
    async fn body_bytes_do_not_start_a_deadline_but_the_next_request_does() {
        let mut io = io();
        io.observe(b"POST / HTTP/1.1\r\n\r\n{\"a\":");
        io.observe(b"1}");
        assert!(!in_head(&io), "body bytes");
        io.phase = Phase::Idle; // as after writing the response
        io.observe(b"GET /next HTTP/1.1\r\n");
        assert!(in_head(&io));
    }
}
