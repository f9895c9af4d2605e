//! Caps each read from a client connection at [`MAX_READ`] bytes.
//!
//! The HTTP server's read buffer adapts to what it reads: whenever one read fills it, the next
//! is twice as large (up to 400 KiB), and a keep-alive connection keeps that capacity while it
//! sits idle between posts. With 25 KiB snapshots arriving over loopback each connection kept
//! ~32 KiB, the largest share of the server's memory with 500 agents connected (valgrind
//! massif, BENCHMARKS.md). Capped reads keep every buffer at 16 KiB at most, for a few more
//! system calls per body.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest read from a connection, in bytes.
pub const MAX_READ: usize = 8 * 1024;

/// A connection whose reads return at most [`MAX_READ`] bytes.
pub struct CappedIo<T>(pub T);

impl<T: AsyncRead + Unpin> AsyncRead for CappedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() <= MAX_READ {
            return Pin::new(&mut self.0).poll_read(cx, buf);
        }
        let mut capped = buf.take(MAX_READ);
        ready!(Pin::new(&mut self.0).poll_read(cx, &mut capped))?;
        let read = capped.filled().len();
        // SAFETY: the inner reader initialised and filled `read` bytes of `buf`'s unfilled part.
        unsafe { buf.assume_init(read) };
        buf.advance(read);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CappedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_large_read_returns_at_most_the_cap_and_loses_nothing() {
        let data: Vec<u8> = (0..3 * MAX_READ + 5).map(|i| i as u8).collect();
        let mut io = CappedIo(&data[..]);
        let mut buf = vec![0; data.len()];
        assert_eq!(io.read(&mut buf).await.unwrap(), MAX_READ);
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.unwrap();
        assert_eq!([&buf[..MAX_READ], &rest[..]].concat(), data);
    }
}
