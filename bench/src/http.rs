//! One agent's keep-alive HTTP/1.1 connection (hyper's client connection, no pool): posts a
//! snapshot and reads the whole answer. A broken connection is reopened on the next post.

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub struct Connection {
    /// `host:port` to connect to, also the `Host` header.
    authority: String,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// Connections opened so far (1 when keep-alive held throughout).
    pub opened: u64,
}

impl Connection {
    /// A connection to `http://host:port` (not opened yet).
    pub fn new(base_url: &str) -> Result<Self> {
        let authority = base_url
            .strip_prefix("http://")
            .context("the server URL must start with http://")?
            .trim_end_matches('/')
            .to_owned();
        Ok(Self {
            authority,
            sender: None,
            opened: 0,
        })
    }

    async fn open(&mut self) -> Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.is_none() {
            let stream = TcpStream::connect(&self.authority).await?;
            stream.set_nodelay(true)?;
            let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            self.opened += 1;
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("just opened"))
    }

    /// Posts `body` to the telemetry endpoint with `token`; the answer's status.
    pub async fn post(&mut self, path: &str, token: &str, body: Bytes) -> Result<StatusCode> {
        let result = self.try_post(path, token, body).await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    async fn try_post(&mut self, path: &str, token: &str, body: Bytes) -> Result<StatusCode> {
        let authority = self.authority.clone();
        let sender = self.open().await?;
        sender.ready().await?;
        let request = Request::post(path)
            .header(HOST, authority)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        Ok(status)
    }

    /// `GET path` with `token`: the answer's status and body.
    pub async fn get(&mut self, path: &str, token: &str) -> Result<(StatusCode, Bytes)> {
        let authority = self.authority.clone();
        let sender = self.open().await?;
        sender.ready().await?;
        let request = Request::get(path)
            .header(HOST, authority)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}
