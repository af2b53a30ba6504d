//! Writing messages: inside the transaction of the change they report (a committed change
//! always has its messages, a rolled-back one never does), one per routed channel, with the
//! release as the API showed it at that moment.

use crate::clock::Timestamp;
use crate::db::outbox::OutboxRow;
use crate::db::{self, Tx};
use crate::domain::{Move, Release, ReleaseId};
use crate::settings::{NotifySettings, Settings};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The routes of this daemon and what messages need besides the release: read once at start-up.
#[derive(Debug)]
pub(crate) struct Routing {
    pub(crate) settings: NotifySettings,
    approver_role: String,
    /// `[console] public_url`, the base of every link; without it messages carry no link.
    public_url: Option<String>,
    /// Bumped after each commit that wrote messages; delivery tasks watch it.
    written: watch::Sender<u64>,
}

impl Routing {
    /// `None` when no route sends anything anywhere.
    pub(crate) fn from_settings(s: &Settings) -> Option<Self> {
        if s.notify.routes.is_empty() {
            return None;
        }
        Some(Self {
            settings: s.notify.clone(),
            approver_role: s.auth.approver_role.clone(),
            public_url: s.console.public_url.as_deref().map(|u| u.trim_end_matches('/').to_string()),
            written: watch::channel(0).0,
        })
    }

    /// Called by [`Tx::commit`] after a commit that wrote messages.
    pub(crate) fn committed(&self) {
        self.written.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Changes each time messages were committed.
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.written.subscribe()
    }

    /// The console page of release `id`, when a public URL is configured.
    fn link(&self, id: ReleaseId) -> Option<String> {
        self.public_url.as_ref().map(|base| format!("{base}/ui/releases/{id}"))
    }
}

/// The event a move of the state machine reports, if any.
pub(crate) fn event_of(mv: Move) -> Option<&'static str> {
    Some(match mv {
        Move::Request => "release.requested",
        Move::RequestBreakGlass => "break_glass.used",
        Move::Approve => "release.approved",
        Move::Reject => "release.rejected",
        Move::Cancel => "release.cancelled",
        Move::Expire | Move::ExpireApproval => "release.expired",
        Move::Dispatch => "release.dispatched",
        Move::Succeed => "release.succeeded",
        Move::Fail => "release.failed",
        Move::Reisolate => "break_glass.unratified",
        Move::Claim | Move::Reclaim | Move::Retry | Move::Reopen => return None,
    })
}

/// Writes `event` about release `id` (as it stands in `tx` now) for every channel routed to it.
pub(crate) async fn release_event(tx: &mut Tx, event: &str, id: ReleaseId, at: Timestamp) -> Result<(), sqlx::Error> {
    let Some(routing) = tx.routing() else { return Ok(()) };
    // Most moves are routed nowhere: no read for them.
    if !routing.settings.routes.iter().any(|r| r.events.iter().any(|e| e == event)) {
        return Ok(());
    }
    let Some(release) = db::releases::get(tx, id).await? else { return Ok(()) };
    let rule = rule_of(&release);
    let channels = routing.settings.channels_for(event, Some(&rule));
    if channels.is_empty() {
        return Ok(());
    }
    let view = serde_json::to_value(crate::views::ReleaseView::new(release, &routing.approver_role))
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let data = json!({ "release": view, "url": routing.link(id) });
    write(tx, &channels, event, Some(id), &data, at).await
}

/// Writes an event that is about no release (`policy.reload_refused`) to its channels.
pub(crate) async fn other_event(tx: &mut Tx, event: &str, data: &Value, at: Timestamp) -> Result<(), sqlx::Error> {
    let Some(routing) = tx.routing() else { return Ok(()) };
    let channels = routing.settings.channels_for(event, None);
    write(tx, &channels, event, None, data, at).await
}

fn rule_of(r: &Release) -> String {
    r.decided_under.as_ref().map_or_else(|| "default".to_string(), |d| d.rule.name.clone())
}

async fn write(
    tx: &mut Tx,
    channels: &[&str],
    event: &str,
    release_id: Option<ReleaseId>,
    data: &Value,
    at: Timestamp,
) -> Result<(), sqlx::Error> {
    let text = db::releases::encode_json(data)?;
    for channel in channels {
        let row = OutboxRow {
            // Standard Webhooks' shape of a message id.
            id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
            channel: channel.to_string(),
            event: event.to_string(),
            release_id: release_id.map(|id| id.to_string()),
            data: text.clone(),
            created_at: at,
            status: "pending".into(),
            attempts: 0,
            next_attempt_at: at,
            last_error: None,
            finished_at: None,
            seq: 0,
        };
        db::outbox::insert(tx, row).await?;
    }
    if !channels.is_empty() {
        tx.wrote_messages();
    }
    Ok(())
}
