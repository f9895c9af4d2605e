//! One Alertmanager: posts every batch the sender publishes to its `/api/v2/alerts`, retries a
//! failed post until it gets through (an Alertmanager that was down then holds everything
//! still firing or recently resolved), keeps a silence there for each alert silenced through
//! our API, and mirrors its own silences of our alerts back into `alerts.silenced_until`. Each
//! Alertmanager has its own task, so a slow one delays only itself.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Url;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use crate::http::metrics;
use crate::store::Store;
use crate::store::alertmanager::{AlertSubject, SilenceToSet};
use crate::store::leases::Lease;

/// The latest round's bodies to post, in turn; `None` while this process does not hold the
/// sender's lease.
pub type Batches = watch::Receiver<Option<Arc<Vec<Bytes>>>>;

/// The `createdBy` of the silences the sender keeps for our API's silences; the mirror leaves
/// them out, so our own silence never comes back as Alertmanager's.
pub const SILENCE_AUTHOR: &str = "nexus-telemetry";

/// How often the holder looks for API silences to copy or expire between rounds.
const SILENCE_CHECK: Duration = Duration::from_secs(5);

pub struct Endpoint {
    /// The base URL requests go to; its user and password (if any) become basic auth.
    base: String,
    /// The base URL as logged: without the password.
    shown: String,
    /// The base URL without user and password: which Alertmanager a recorded silence is in.
    identity: String,
    http: reqwest::Client,
    /// The sender's lease, checked before a silence is created or expired.
    lease: Lease,
    /// Our public URL, for the link in a silence's comment.
    public_url: String,
}

impl Endpoint {
    pub fn new(url: &Url, http: reqwest::Client, lease: Lease, public_url: &str) -> Self {
        let mut shown = url.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("REDACTED"));
        }
        let mut identity = url.clone();
        let _ = identity.set_password(None);
        let _ = identity.set_username("");
        Self {
            base: url.as_str().trim_end_matches('/').to_owned(),
            shown: shown.as_str().trim_end_matches('/').to_owned(),
            identity: identity.as_str().trim_end_matches('/').to_owned(),
            http,
            lease,
            public_url: public_url.to_owned(),
        }
    }

    /// Posts each published batch; a failed post is retried every `retry` until it succeeds or
    /// a newer batch replaces it. Between batches, while this process sends, copies our API's
    /// silences every [`SILENCE_CHECK`].
    pub async fn deliver(self, mut batches: Batches, store: Store, retry: Duration) {
        let mut failing = false;
        let mut silences_failing = false;
        let mut silence_check = tokio::time::interval(SILENCE_CHECK);
        silence_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                        // Ours first: the mirror then reads Alertmanager with our silences in it.
                        self.sync_silences_logged(&store, &mut silences_failing)
                            .await;
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
            loop {
                tokio::select! {
                    changed = batches.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        break;
                    }
                    _ = silence_check.tick() => {
                        if batches.borrow().is_some() {
                            self.sync_silences_logged(&store, &mut silences_failing).await;
                        }
                    }
                }
            }
        }
    }

    /// [`Self::sync_silences`], its failure logged once until it succeeds again.
    async fn sync_silences_logged(&self, store: &Store, failing: &mut bool) {
        match self.sync_silences(store).await {
            Ok(()) => *failing = false,
            Err(error) => {
                if !*failing {
                    tracing::warn!(
                        alertmanager = %self.shown,
                        error = format!("{error:#}"),
                        "copying silences to Alertmanager failed; retrying"
                    );
                }
                *failing = true;
            }
        }
    }

    /// Makes this Alertmanager hold a silence for each open alert silenced through our API
    /// (matching its `rule_id`, `host_id` and `container_id` labels, ending at its
    /// `silenced_until`), and expires the ones whose alert is no longer so silenced. Every
    /// silence is recorded (`alertmanager_silences`) once Alertmanager gave its id, so a later
    /// change moves that silence instead of adding one; one created just before a crash, before
    /// it was recorded, is found again by its comment and adopted.
    async fn sync_silences(&self, store: &Store) -> anyhow::Result<()> {
        let (to_set, to_expire) = store
            .silences_to_sync(&self.identity)
            .await
            .context("Failed to read the silences to copy")?;
        let (ended, to_expire): (Vec<_>, Vec<_>) =
            to_expire.into_iter().partition(|silence| silence.ended);
        // Alertmanager expired these by itself at their end.
        for silence in ended {
            store
                .forget_alertmanager_silence(&self.identity, silence.alert_id, &silence.silence_id)
                .await?;
        }
        if to_set.is_empty() && to_expire.is_empty() {
            return Ok(());
        }
        // A process that lost the lease leaves the silences to the new holder.
        if !store.holds_lease(&self.lease).await? {
            return Ok(());
        }
        for silence in to_expire {
            self.expire_silence(&silence.silence_id).await?;
            store
                .forget_alertmanager_silence(&self.identity, silence.alert_id, &silence.silence_id)
                .await?;
            tracing::info!(alertmanager = %self.shown, alert = silence.alert_id, "silence expired in Alertmanager");
        }
        let mut created_before: Option<HashMap<i64, String>> = None;
        for silence in to_set {
            let known = match &silence.silence_id {
                Some(id) => Some(id.clone()),
                None => {
                    if created_before.is_none() {
                        created_before = Some(self.our_silences().await?);
                    }
                    created_before
                        .as_ref()
                        .and_then(|ours| ours.get(&silence.alert_id).cloned())
                }
            };
            let id = self.put_silence(&silence, known.as_deref()).await?;
            store
                .record_alertmanager_silence(&self.identity, silence.alert_id, &id, silence.until)
                .await?;
            tracing::info!(
                alertmanager = %self.shown,
                alert = silence.alert_id,
                until = %silence.until,
                "alert silenced in Alertmanager"
            );
        }
        Ok(())
    }

    /// Creates the silence of `silence`, or moves silence `known` to its end (Alertmanager may
    /// replace it by a new one); the id it has now.
    async fn put_silence(
        &self,
        silence: &SilenceToSet,
        known: Option<&str>,
    ) -> anyhow::Result<String> {
        let SilenceToSet {
            alert_id,
            subject,
            until,
            ..
        } = silence;
        let mut body = json!({
            "matchers": silence_matchers(subject),
            "startsAt": Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
            "endsAt": until.to_rfc3339_opts(SecondsFormat::Micros, true),
            "createdBy": SILENCE_AUTHOR,
            "comment": silence_comment(*alert_id, &self.public_url),
        });
        if let Some(id) = known {
            body["id"] = json!(id);
        }
        let response = self.post_json("/api/v2/silences", body.to_string()).await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND && known.is_some() {
            // Gone (an Alertmanager restarted without its storage): a new one.
            return Box::pin(self.put_silence(silence, None)).await;
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Created {
            #[serde(rename = "silenceID")]
            silence_id: String,
        }
        let created: Created = json_answer("/api/v2/silences", response).await?;
        Ok(created.silence_id)
    }

    /// Expires silence `id`; one that is gone or expired already counts as done.
    async fn expire_silence(&self, id: &str) -> anyhow::Result<()> {
        let response = self
            .http
            .delete(format!("{}/api/v2/silence/{id}", self.base))
            .send()
            .await
            .map_err(reqwest::Error::without_url)
            .context("Failed to delete a silence")?;
        let status = response.status();
        if status.is_success() || status == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        // Alertmanager refuses to expire an expired silence (a 500 saying so).
        let text = response.text().await.unwrap_or_default();
        let url = Url::parse(&format!("{}/api/v2/silence/{id}", self.base))?;
        let silence: GettableSilence = self.get_json(url).await?;
        if silence.status.state == "expired" {
            return Ok(());
        }
        anyhow::bail!(
            "/api/v2/silence/{{id}} answered {status} to DELETE: {}",
            truncate(&text)
        )
    }

    /// The unexpired silences we created, by the alert their comment names.
    async fn our_silences(&self) -> anyhow::Result<HashMap<i64, String>> {
        let url = Url::parse(&format!("{}/api/v2/silences", self.base))?;
        let silences: Vec<GettableSilence> = self.get_json(url).await?;
        Ok(silences
            .into_iter()
            .filter(|silence| {
                silence.created_by == SILENCE_AUTHOR && silence.status.state != "expired"
            })
            .filter_map(|silence| Some((silenced_alert(&silence.comment)?, silence.id)))
            .collect())
    }

    async fn post_all(&self, bodies: &[Bytes]) -> anyhow::Result<()> {
        for body in bodies {
            self.post(body).await?;
        }
        Ok(())
    }

    async fn post(&self, body: &Bytes) -> anyhow::Result<()> {
        let response = self.post_json("/api/v2/alerts", body.clone()).await?;
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
        let mut ends: HashMap<String, Option<DateTime<Utc>>> = HashMap::new();
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
                        // Our copy of an API silence: the alert holds that silence already.
                        let end = (silence.created_by != SILENCE_AUTHOR).then_some(silence.ends_at);
                        ends.insert(id.clone(), end);
                        end
                    }
                };
                until = until.max(end);
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

    /// POSTs a JSON `body` to `path` of this Alertmanager; the answer, whatever its status.
    async fn post_json(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> anyhow::Result<reqwest::Response> {
        self.http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            // Its URL may hold a password.
            .map_err(reqwest::Error::without_url)
            .with_context(|| format!("Failed to post to {path}"))
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
        json_answer(&path, response).await
    }
}

/// The JSON of `path`'s answer; an error naming its status and body unless it succeeded.
async fn json_answer<T: serde::de::DeserializeOwned>(
    path: &str,
    response: reqwest::Response,
) -> anyhow::Result<T> {
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
    id: String,
    ends_at: DateTime<Utc>,
    created_by: String,
    #[serde(default)]
    comment: String,
    status: SilenceStatus,
}

#[derive(Deserialize)]
struct SilenceStatus {
    /// `active`, `pending` or `expired`.
    state: String,
}

/// The matchers of our silence of an alert: the labels that identify its rule and subject
/// (`container_id` empty, which matches no such label, for a host's alert), as we send them.
fn silence_matchers(subject: &AlertSubject) -> serde_json::Value {
    let matcher = |name: &str, value: &str| json!({"name": name, "value": value, "isRegex": false, "isEqual": true});
    json!([
        matcher("rule_id", &subject.rule_id.to_string()),
        matcher("host_id", &subject.host_id.to_string()),
        matcher(
            "container_id",
            subject.container_id.as_deref().unwrap_or_default()
        ),
    ])
}

/// Our silence's comment: it names the alert, so a silence created before a crash kept it
/// from being recorded is recognised ([`silenced_alert`]).
fn silence_comment(alert_id: i64, public_url: &str) -> String {
    format!(
        "nexus-telemetry alert {alert_id}: silenced through its API ({})",
        super::payload::alert_link(public_url, alert_id)
    )
}

/// The alert a comment of [`silence_comment`] names.
fn silenced_alert(comment: &str) -> Option<i64> {
    comment
        .strip_prefix("nexus-telemetry alert ")?
        .split(':')
        .next()?
        .parse()
        .ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silence_matches_exactly_the_alerts_rule_and_subject_and_its_comment_names_the_alert() {
        let host = AlertSubject {
            rule_id: 3,
            host_id: 11,
            container_id: None,
        };
        let names: Vec<(String, String)> = silence_matchers(&host)
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                assert_eq!(
                    (m["isRegex"].clone(), m["isEqual"].clone()),
                    (json!(false), json!(true))
                );
                (
                    m["name"].as_str().unwrap().into(),
                    m["value"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("rule_id".into(), "3".into()),
                ("host_id".into(), "11".into()),
                ("container_id".into(), String::new()),
            ],
            "a host's alert: no container_id label, so not its containers' alerts"
        );
        let comment = silence_comment(42, "http://nexus:8080/");
        assert_eq!(
            comment,
            "nexus-telemetry alert 42: silenced through its API (http://nexus:8080/api/v1/alerts/42)"
        );
        assert_eq!(silenced_alert(&comment), Some(42));
        assert_eq!(silenced_alert("maintenance"), None);
    }
}
