//! Idle live event streams held open on the server while a scenario is measured: what 1,000
//! dashboards watching the fleet cost ingest. Each is a `GET /api/v1/events/stream` read and
//! discarded by its own task, as a browser's `EventSource` would.

use anyhow::{Context, Result, ensure};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_postgres::Client;

pub struct IdleStreams {
    readers: JoinSet<()>,
}

impl IdleStreams {
    /// Opens `count` streams on the server at `server_url` (`http://host:port`), authorised by
    /// an admin token inserted for the purpose, and waits until each has its `200`.
    pub async fn open(db: &Client, server_url: &str, count: usize) -> Result<Self> {
        let token = format!(
            "nxk_{}",
            hex::encode(Sha256::digest(format!("bench streams {count}")))
        );
        db.execute(
            "INSERT INTO admin_tokens (name, hashed_token) VALUES ('bench streams', $1)
             ON CONFLICT (hashed_token) DO NOTHING",
            &[&hex::encode(Sha256::digest(token.as_bytes()))],
        )
        .await
        .context("Failed to insert the streams' admin token")?;
        let authority = server_url
            .strip_prefix("http://")
            .context("the server URL must start with http://")?
            .trim_end_matches('/')
            .to_owned();
        let request = format!(
            "GET /api/v1/events/stream HTTP/1.1\r\nHost: {authority}\r\n\
             Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        );
        let mut readers = JoinSet::new();
        for _ in 0..count {
            let mut stream = TcpStream::connect(&authority).await?;
            stream.write_all(request.as_bytes()).await?;
            let mut head = [0u8; 12];
            stream.read_exact(&mut head).await?;
            ensure!(
                &head == b"HTTP/1.1 200",
                "the event stream answered {}",
                String::from_utf8_lossy(&head)
            );
            readers.spawn(async move {
                let mut buffer = [0u8; 4096];
                while matches!(stream.read(&mut buffer).await, Ok(n) if n > 0) {}
            });
        }
        Ok(Self { readers })
    }

    /// Streams still open (a stream the server cut off has ended).
    pub fn open_count(&mut self) -> usize {
        while self.readers.try_join_next().is_some() {}
        self.readers.len()
    }
}
