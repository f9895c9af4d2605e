//! One Alertmanager: posts every batch the sender publishes to its `/api/v2/alerts`, retries a
//! failed post until it gets through (an Alertmanager that was down then holds everything
//! still firing or recently resolved), and mirrors its silences of our alerts back into
//! `alerts.silenced_until`. Each Alertmanager has its own task, so a slow one delays only itself.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use reqwest::Url;
use serde::Deserialize;
use tokio::sync::watch;

use crate::http::metrics;
use crate::store::Store;
use crate::store::alertmanager::AlertSubject;

/// The latest round's bodies to post, in turn; `None` while this process does not hold the
/// sender's lease.
pub type Batches = watch::Receiver<Option<Arc<Vec<Bytes>>>>;

pub struct Endpoint {
    /// The base URL requests go to; its user and password (if any) become basic auth.
    base: String,
    /// The base URL as logged: without the password.
    shown: String,
    http: reqwest::Client,
}

impl Endpoint {
    pub fn new(url: &Url, http: reqwest::Client) -> Self {
        let mut shown = url.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("REDACTED"));
        }
        Self {
            base: url.as_str().trim_end_matches('/').to_owned(),
            shown: shown.as_str().trim_end_matches('/').to_owned(),
            http,
        }
    }

    /// Posts each published batch; a failed post is retried every `retry` until it succeeds or
    /// a newer batch replaces it.
    pub async fn deliver(self, mut batches: Batches, store: Store, retry: Duration) {
        let mut failing = false;
        loop {
            let batch = batches.borrow_and_update().clone();
            if let Some(bodies) = batch {
                let posted = self.post_all(&bodies).await;
                metrics::record_alertmanager_post(posted.is_ok());
                match posted {
                    Ok(()) => {
                        if failing {
                            tracing::info!(alertmanager = %self.shown, "Alertmanager reachable again");
                            failing = false;
                        }
                        if let Err(error) = self.mirror_silences(&store).await {
                            tracing::warn!(
                                alertmanager = %self.shown,
                                error = format!("{error:#}"),
                                "reading Alertmanager's silences failed"
                            );
                        }
                    }
                    Err(error) => {
                        // Said once per outage, not on every retry.
                        if !failing {
                            tracing::warn!(
                                alertmanager = %self.shown,
                                error = format!("{error:#}"),
                                "sending alerts to Alertmanager failed; retrying"
                            );
                            failing = true;
                        }
                        tokio::select! {
                            changed = batches.changed() => if changed.is_err() { return },
                            _ = tokio::time::sleep(retry) => {}
                        }
                        continue;
                    }
                }
            }
            if batches.changed().await.is_err() {
                return;
            }
        }
    }

    async fn post_all(&self, bodies: &[Bytes]) -> anyhow::Result<()> {
        for body in bodies {
            self.post(body).await?;
        }
        Ok(())
    }

    async fn post(&self, body: &Bytes) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}/api/v2/alerts", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await
            // Its URL may hold a password.
            .map_err(reqwest::Error::without_url)
            .context("Failed to post to /api/v2/alerts")?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            anyhow::bail!("/api/v2/alerts answered {status}: {}", truncate(&text));
        }
        Ok(())
    }

    /// Alertmanager's silences of our firing alerts, written to `silenced_until` (the latest end
    /// of the silences muting each).
    async fn mirror_silences(&self, store: &Store) -> anyhow::Result<()> {
        let mut url = Url::parse(&format!("{}/api/v2/alerts", self.base))?;
        url.query_pairs_mut()
            .append_pair("active", "false")
            .append_pair("unprocessed", "false")
            .append_pair("silenced", "true")
            .append_pair("inhibited", "true")
            .append_pair("filter", r#"rule_id=~"[0-9]+""#);
        let alerts: Vec<GettableAlert> = self.get_json(url).await?;
        let mut ends: HashMap<String, DateTime<Utc>> = HashMap::new();
        let mut mirrored = HashSet::new();
        for alert in alerts {
            let Some(subject) = alert.subject() else {
                continue;
            };
            let mut until = None;
            for id in &alert.status.silenced_by {
                let end = match ends.get(id) {
                    Some(end) => *end,
                    None => {
                        let url = Url::parse(&format!("{}/api/v2/silence/{id}", self.base))?;
                        let silence: GettableSilence = self.get_json(url).await?;
                        ends.insert(id.clone(), silence.ends_at);
                        silence.ends_at
                    }
                };
                until = until.max(Some(end));
            }
            if let Some(until) = until
                && mirrored.insert(subject.clone())
                && store.mirror_silence(&subject, until).await?
            {
                tracing::info!(?subject, %until, "alert silenced in Alertmanager");
            }
        }
        Ok(())
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: Url) -> anyhow::Result<T> {
        let path = url.path().to_owned();
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(reqwest::Error::without_url)
            .with_context(|| format!("Failed to get {path}"))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(reqwest::Error::without_url)?;
        if !status.is_success() {
            anyhow::bail!(
                "{path} answered {status}: {}",
                truncate(&String::from_utf8_lossy(&bytes))
            );
        }
        serde_json::from_slice(&bytes).with_context(|| format!("Failed to parse {path}'s answer"))
    }
}

/// An alert as `GET /api/v2/alerts` returns it (the fields we read).
#[derive(Deserialize)]
struct GettableAlert {
    labels: HashMap<String, String>,
    status: AlertStatus,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlertStatus {
    silenced_by: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GettableSilence {
    ends_at: DateTime<Utc>,
}

impl GettableAlert {
    /// Which of our alerts this is, from the labels we sent; `None` for anyone else's.
    fn subject(&self) -> Option<AlertSubject> {
        Some(AlertSubject {
            rule_id: self.labels.get("rule_id")?.parse().ok()?,
            host_id: self.labels.get("host_id")?.parse().ok()?,
            container_id: self.labels.get("container_id").cloned(),
        })
    }
}

/// An error body as far as a log line needs it.
fn truncate(text: &str) -> &str {
    let end = text
        .char_indices()
        .nth(200)
        .map_or(text.len(), |(index, _)| index);
    &text[..end]
}
