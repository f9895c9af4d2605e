//! The live side of the events table: one listener per server process that, while at least one
//! stream is open, hands every new event to every subscriber, whichever process wrote it.
//!
//! The table is the source of truth. The listener LISTENs on [`EVENTS_CHANNEL`] (a wake-up
//! without payload, sent by the table's insert trigger at commit), then reads the table from the
//! last id it handed out; ids are taken in commit order, so reading "after id N" misses nothing.
//! A subscriber gets events through a bounded ring ([`broadcast`]): one that falls further
//! behind than the ring holds is told so ([`RecvError::Lagged`]) and its stream is ended, never
//! waited for, so a reader that does not read slows neither the listener nor the ingest. (A
//! client that stops reading altogether stops its stream from being polled, so it never hears
//! of its lag; the connection's write deadline, src/http/write_deadline.rs, closes that one.)
//!
//! Nothing runs while nobody listens: the listener connects with the first subscriber and stops
//! (closing its connection) once the last one is gone.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{Notify, broadcast, watch};
use tokio_postgres::AsyncMessage;

pub use tokio::sync::broadcast::error::RecvError;

use super::events::{
    EVENTS_AFTER_SQL, EVENTS_CHANNEL, Event, EventFilter, events_after, newest_event_id,
};
use crate::error::Error;

/// `application_name` of the listener connection (to spot it in `pg_stat_activity`).
pub const FEED_APPLICATION_NAME: &str = "nexus-telemetry-events";

/// How often the listener checks whether anyone still listens, and that its connection lives.
const CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Events read from the table per query.
const READ_PAGE: i64 = 500;

/// The process's event feed; subscribe to receive every event written from now on.
pub struct EventFeed {
    url: String,
    /// Events a subscriber may fall behind by before it is cut off.
    capacity: usize,
    running: Mutex<Option<Running>>,
}

struct Running {
    sender: broadcast::Sender<Arc<Event>>,
    /// `Some(id)` once listening: every event after `id` will be sent.
    ready: watch::Receiver<Option<i64>>,
}

/// A subscriber's end of the feed.
pub struct Subscription {
    pub receiver: broadcast::Receiver<Arc<Event>>,
    ready: watch::Receiver<Option<i64>>,
}

impl Subscription {
    /// Waits until the listener is listening: from then on every event committed later reaches
    /// `receiver`, so a reader of the table that starts now, then switches to `receiver`, misses
    /// nothing. An error when the listener could not start.
    pub async fn listening(&mut self) -> Result<(), Error> {
        self.ready
            .wait_for(Option::is_some)
            .await
            .map(drop)
            .map_err(|_| {
                Error::Unavailable(anyhow::anyhow!("the event listener could not connect"))
            })
    }
}

impl EventFeed {
    /// A feed reading through `url` (a session connection: LISTEN needs one); `capacity` events
    /// is how far a subscriber may fall behind.
    pub fn new(url: String, capacity: usize) -> Self {
        Self {
            url,
            capacity: capacity.max(1),
            running: Mutex::new(None),
        }
    }

    /// Subscribes, starting the listener if it is not running.
    pub fn subscribe(self: &Arc<Self>) -> Subscription {
        let mut running = self.running.lock().expect("event feed");
        if let Some(live) = running
            .as_ref()
            .filter(|live| live.ready.has_changed().is_ok())
        {
            return Subscription {
                receiver: live.sender.subscribe(),
                ready: live.ready.clone(),
            };
        }
        let (sender, receiver) = broadcast::channel(self.capacity);
        let (ready_sender, ready) = watch::channel(None);
        *running = Some(Running {
            sender: sender.clone(),
            ready: ready.clone(),
        });
        tokio::spawn(listen(self.clone(), sender, ready_sender));
        Subscription { receiver, ready }
    }

    /// Whether a listener runs (it stops soon after the last subscriber leaves).
    pub fn is_listening(&self) -> bool {
        self.running.lock().expect("event feed").is_some()
    }

    /// Ends the listener if nobody subscribes any more; true if it should stop.
    fn stop_if_unused(&self, sender: &broadcast::Sender<Arc<Event>>) -> bool {
        let mut running = self.running.lock().expect("event feed");
        // Subscriptions are made under this lock, so none can arrive between the count and the
        // removal.
        if sender.receiver_count() > 0 {
            return false;
        }
        if running
            .as_ref()
            .is_some_and(|live| live.sender.same_channel(sender))
        {
            *running = None;
        }
        true
    }

    /// Forgets a listener that ended, unless another has replaced it.
    fn forget(&self, sender: &broadcast::Sender<Arc<Event>>) {
        let mut running = self.running.lock().expect("event feed");
        if running
            .as_ref()
            .is_some_and(|live| live.sender.same_channel(sender))
        {
            *running = None;
        }
    }
}

/// One listening session; subscribers see their receivers close when it ends (and resume with
/// `Last-Event-ID`).
async fn listen(
    feed: Arc<EventFeed>,
    sender: broadcast::Sender<Arc<Event>>,
    ready: watch::Sender<Option<i64>>,
) {
    let result = session(&feed, &sender, &ready).await;
    feed.forget(&sender);
    if let Err(error) = result {
        tracing::warn!(
            error = format!("{error:#}"),
            "event feed listener ended; open streams are closed"
        );
    }
}

async fn session(
    feed: &EventFeed,
    sender: &broadcast::Sender<Arc<Event>>,
    ready: &watch::Sender<Option<i64>>,
) -> anyhow::Result<()> {
    let (client, mut connection) =
        super::listener_connection(&feed.url, FEED_APPLICATION_NAME).await?;
    // Notifications arrive only while the connection is polled for messages; they carry
    // nothing but the wake-up, so many fold into one.
    let wake = Arc::new(Notify::new());
    let driver = tokio::spawn({
        let wake = wake.clone();
        async move {
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => wake.notify_one(),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            // The connection ended: wake the session so it notices.
            wake.notify_one();
        }
    });
    let result = async {
        client
            .batch_execute(&format!("LISTEN {EVENTS_CHANNEL}"))
            .await
            .context("Failed to LISTEN")?;
        let read = client
            .prepare(EVENTS_AFTER_SQL)
            .await
            .context("Failed to prepare the events query")?;
        // Read after LISTEN: an event committed meanwhile is both counted here and notified.
        let mut cursor = newest_event_id(&client)
            .await
            .context("Failed to read the newest event id")?;
        ready.send_replace(Some(cursor));
        let everything = EventFilter::default();
        // One timer for the whole session: busy wake-ups must not postpone the check.
        let mut check = tokio::time::interval(CHECK_INTERVAL);
        check.tick().await;
        loop {
            tokio::select! {
                _ = wake.notified() => {}
                _ = check.tick() => {
                    if feed.stop_if_unused(sender) {
                        return Ok(());
                    }
                    client.simple_query("").await.context("The listener connection is dead")?;
                    continue;
                }
            }
            if client.is_closed() {
                anyhow::bail!("the listener connection closed");
            }
            loop {
                let events = events_after(&client, &read, &everything, cursor, READ_PAGE)
                    .await
                    .context("Failed to read new events")?;
                let complete = (events.len() as i64) < READ_PAGE;
                for event in events {
                    cursor = event.id;
                    // An error only says nobody subscribes at this instant.
                    let _ = sender.send(Arc::new(event));
                }
                if complete {
                    break;
                }
            }
        }
    }
    .await;
    driver.abort();
    result
}
