//! Sending the outbox: one task per channel, so a slow or failing channel never delays another
//! (nor the API or the worker, which only write rows). A channel's messages go strictly in
//! order: only the oldest pending one is ever attempted, until it is delivered or dead. Failed
//! attempts back off exponentially with jitter (never sooner than `Retry-After`); a message
//! older than `max_age`, or refused for good, is dead. Every end is in the audit trail.
//!
//! A message is marked only after its attempt: a daemon that dies in between sends it again
//! on restart, with the same id, so delivery is at least once and receivers can tell repeats.

use super::channel::{Channel, Sender};
use super::{Attempt, Message, Outcome, Routing};
use crate::audit::{self, Actor, AuditEvent, Subject};
use crate::clock::Timestamp;
use crate::db::outbox::{self, Finish, OutboxRow};
use crate::metrics::Observation;
use crate::state::AppState;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Without a wake-up, a channel looks for messages written by another process this often.
const RESCAN: Duration = Duration::from_secs(5);
/// After a storage error, a channel waits this long before reading its queue again.
const STORAGE_PAUSE: Duration = Duration::from_secs(2);

/// What a channel does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Its queue moved: look again now.
    Again,
    /// Its head may be attempted at this time.
    At(Timestamp),
    /// Nothing pending.
    Idle,
}

/// The channels and the one HTTP/SMTP sender they share.
pub(crate) struct Delivery {
    pub(crate) channels: Vec<Arc<Channel>>,
    pub(crate) sender: Arc<Sender>,
    pub(crate) routing: Arc<Routing>,
}

impl Delivery {
    /// Runs one task per channel until `stop`.
    pub(crate) async fn run(self: Arc<Self>, state: AppState, stop: CancellationToken) {
        let mut tasks = tokio::task::JoinSet::new();
        for channel in &self.channels {
            tasks.spawn(run_channel(self.clone(), state.clone(), channel.clone(), stop.clone()));
        }
        while tasks.join_next().await.is_some() {}
    }
}

async fn run_channel(d: Arc<Delivery>, state: AppState, channel: Arc<Channel>, stop: CancellationToken) {
    let mut written = d.routing.watch();
    let mut failing = false;
    let task = format!("delivery.{}", channel.name);
    state.tasks.started(&task);
    loop {
        let stepped = step(&d, &state, &channel).await;
        state.tasks.ended(&task, &stepped, state.clock.now());
        let next = match stepped {
            Ok(next) => {
                if std::mem::take(&mut failing) {
                    tracing::info!(channel = %channel.name, "notification outbox readable again");
                }
                next
            }
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(channel = %channel.name, error = %e, "notification outbox unavailable; retrying");
                }
                Next::At(state.clock.now().plus(STORAGE_PAUSE))
            }
        };
        let deadline = match next {
            Next::Again => continue,
            Next::At(t) => t,
            Next::Idle => state.clock.now().plus(RESCAN),
        };
        let wait = deadline.since(state.clock.now());
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = written.changed() => {}
            () = state.clock.sleep(wait) => {}
        }
    }
}

/// Looks at `channel`'s head and attempts it if due.
pub(crate) async fn step(d: &Delivery, state: &AppState, channel: &Channel) -> Result<Next, sqlx::Error> {
    let head = {
        let mut conn = state.db.reader().await?;
        outbox::head(&mut conn, &channel.name).await?
    };
    let Some(head) = head else { return Ok(Next::Idle) };
    let now = state.clock.now();
    let max_age = d.routing.settings.max_age.get();
    if now >= head.created_at.plus(max_age) {
        let reason = format!("not delivered within notify.max_age ({})", humantime::format_duration(max_age));
        finish(state, &head, Finish::Dead, false, Some(&reason)).await?;
        return Ok(Next::Again);
    }
    if now < head.next_attempt_at {
        return Ok(Next::At(head.next_attempt_at));
    }
    let data: serde_json::Value = serde_json::from_str(&head.data).unwrap_or_default();
    let msg = Message { id: &head.id, event: &head.event, timestamp: head.created_at, data: &data };
    let Attempt { outcome, status, .. } = d.sender.send(channel, &msg).await;
    let now = state.clock.now();
    match outcome {
        Outcome::Delivered => finish(state, &head, Finish::Delivered, true, None).await?,
        Outcome::Dead { reason } => finish(state, &head, Finish::Dead, true, Some(&reason)).await?,
        Outcome::Retry { reason, retry_after } => {
            let attempts = u32::try_from(head.attempts).unwrap_or(u32::MAX).saturating_add(1);
            let wait = backoff(&d.routing, attempts, rand::random::<f64>()).max(retry_after.unwrap_or_default());
            tracing::info!(channel = %channel.name, message_id = %head.id, ?status, %reason, attempts, ?wait, "notification attempt failed; retrying");
            let mut tx = state.db.begin().await?;
            outbox::retry_later(&mut tx, &head.id, &reason, now.plus(wait)).await?;
            tx.observe(Observation::Notification { channel: head.channel.clone(), outcome: "retry" });
            tx.commit().await?;
        }
    }
    Ok(Next::Again)
}

/// The wait after the `attempts`-th failed attempt: `backoff_base * 2^(attempts-1)`, at most
/// `backoff_max`, scaled by `jitter` in `[0, 1)` into its upper half.
pub(crate) fn backoff(routing: &Routing, attempts: u32, jitter: f64) -> Duration {
    let (base, max) = (routing.settings.backoff_base.get(), routing.settings.backoff_max.get());
    let exp = base.saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1).min(30))).min(max);
    exp.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0).max(base.min(max))
}

/// Ends `head` and records the end in the audit trail, in one transaction.
async fn finish(
    state: &AppState,
    head: &OutboxRow,
    how: Finish,
    attempted: bool,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    if !outbox::finish(&mut tx, &head.id, how, attempted, reason, now).await? {
        return Ok(());
    }
    let attempts = u32::try_from(head.attempts).unwrap_or(u32::MAX).saturating_add(u32::from(attempted));
    let (message_id, channel, event) = (head.id.clone(), head.channel.clone(), head.event.clone());
    let audit_event = match how {
        Finish::Delivered => AuditEvent::NotificationDelivered { message_id, channel, event, attempts },
        Finish::Dead => AuditEvent::NotificationDead {
            message_id,
            channel,
            event,
            attempts,
            reason: reason.unwrap_or("dead").to_string(),
        },
    };
    let subject = Subject { release_id: head.release_id.as_deref(), machine_id: None };
    audit::record(&mut tx, now, Actor::System, subject, &audit_event).await?;
    let outcome = match how {
        Finish::Delivered => "delivered",
        Finish::Dead => "dead",
    };
    tx.observe(Observation::Notification { channel: head.channel.clone(), outcome });
    tx.commit().await?;
    match how {
        Finish::Delivered => tracing::debug!(channel = %head.channel, message_id = %head.id, "notification delivered"),
        Finish::Dead => {
            tracing::warn!(channel = %head.channel, message_id = %head.id, reason = ?reason, "notification dead")
        }
    }
    Ok(())
}
