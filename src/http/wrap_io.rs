//! An acceptor that wraps each connection it accepts: how the connection layers (the read cap,
//! the header deadline, the write deadline) go onto every client connection, in one place.

use std::io;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite};

/// Accepts connections from `inner`, each passed through `wrap`.
pub struct WrapIo<A, F> {
    inner: A,
    wrap: F,
}

impl<A, F> WrapIo<A, F> {
    pub fn new(inner: A, wrap: F) -> Self {
        Self { inner, wrap }
    }
}

impl<A, F, T> Acceptor for WrapIo<A, F>
where
    A: Acceptor,
    F: FnMut(A::Io) -> T + Send,
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Io = T;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(T, LocalAddr, RemoteAddr, Scheme)> {
        let (io, local, remote, scheme) = self.inner.accept().await?;
        Ok(((self.wrap)(io), local, remote, scheme))
    }
}
