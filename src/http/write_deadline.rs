//! A deadline on each write to a client: a connection whose client reads nothing for `limit`
//! while the server has bytes to send is closed.
//!
//! The HTTP server stops polling a response body while the socket is full, so nothing above the
//! connection notices a client that stopped reading: a live event stream's cut-off for a reader
//! that falls behind (docs/ARCHITECTURE.md, "Event ids in commit order") only runs when the body
//! is polled again, and the server's idle timeout waits for the response to finish. This wraps
//! accepted connections: a write that stays blocked for `limit` fails, which ends the
//! connection; whatever was already in the socket's buffer still reaches the client, then the
//! end of the stream.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep, sleep_until};

/// A connection whose writes fail once one has been blocked for the limit.
pub struct WriteDeadlineIo<T> {
    inner: T,
    limit: Duration,
    /// Set while a write waits for the client; `None` once writes make progress. Allocated only
    /// when a write blocks, so a connection that never stalls carries no timer.
    blocked: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteDeadlineIo<T> {
    pub fn new(inner: T, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            blocked: None,
        }
    }

    /// Passes on what the inner write answered: progress clears the deadline, a blocked write
    /// starts it (or fails once it has passed).
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Pending => {
                let limit = self.limit;
                let deadline = self
                    .blocked
                    .get_or_insert_with(|| Box::pin(sleep_until(Instant::now() + limit)));
                if deadline.as_mut().poll(cx).is_ready() {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client read nothing within the write timeout",
                    )))
                } else {
                    Poll::Pending
                }
            }
            ready => {
                self.blocked = None;
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadlineIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadlineIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            // A flush that finds nothing to do (a TCP socket's always does) is no sign that the
            // client read anything: only a write's progress clears the deadline.
            Poll::Pending => self.watch(cx, Poll::Pending),
            ready => ready,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_write_the_client_never_reads_fails_after_the_limit() {
        let (server, _client) = tokio::io::duplex(64);
        let mut io = WriteDeadlineIo::new(server, Duration::from_millis(200));
        let started = std::time::Instant::now();
        let written = tokio::time::timeout(Duration::from_secs(5), io.write_all(&[0; 1024]))
            .await
            .expect("the write ends by itself");
        assert_eq!(written.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn a_client_that_keeps_reading_is_never_cut_off() {
        let (server, mut client) = tokio::io::duplex(64);
        let mut io = WriteDeadlineIo::new(server, Duration::from_secs(1));
        let reader = tokio::spawn(async move {
            let mut read = Vec::new();
            let mut buf = [0; 64];
            // Slower than the data comes, but reading within every limit: the writes stall
            // again and again, each time for less than the limit.
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                match client.read(&mut buf).await.unwrap() {
                    0 => return read,
                    n => read.extend_from_slice(&buf[..n]),
                }
            }
        });
        let data: Vec<u8> = (0..1024).map(|i| i as u8).collect();
        io.write_all(&data).await.expect("no write timed out");
        io.shutdown().await.unwrap();
        drop(io);
        assert_eq!(reader.await.unwrap(), data);
    }
}
