//! Bypass detection: every Unisolate in the tenant that no release of dualkey's explains.
//!
//! An Unisolate is explained when a release of this dualkey dispatched exactly that action (its
//! `mde_action_id`), the action's comment carries that release's marker, and MDE names
//! dualkey's own app as its requestor (`[mde] app_requestor`, or learned from the actions
//! dualkey created). Any other Unisolate created since the first start (or
//! `[mde] bypass_scan_since`), in any status but `Failed` or `Cancelled`, is a bypass: recorded
//! once (the MDE action id is unique in `bypasses`), audited, notified, counted in readiness,
//! and with `[policy] on_bypass = "reisolate"` answered by isolating the device again once the
//! bypassing action has succeeded.

use crate::audit::{self, Actor, AuditEvent, Subject};
use crate::clock::Timestamp;
use crate::db::{self, fleet::BypassRow};
use crate::domain::ReleaseStatus;
use crate::mde::{ActionStatus, ActionType, IsolationType, MachineAction, MdeClient, MdeError};
use crate::rules::{OnBypass, ReisolateType};
use crate::state::AppState;
use crate::worker::RetryPolicy;
use time::OffsetDateTime;

/// What one Unisolate is to dualkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A release of dualkey's dispatched exactly this action.
    Explained,
    /// Marked by a release still being sent: decided at a later scan, once its answer is recorded.
    Undecided,
    /// Released outside dualkey.
    Bypass,
    /// Failed or cancelled (it released nothing), or older than the scan's start.
    Ignored,
}

/// Judges one Unisolate. `release` is the status and dispatched action of the release its
/// comment's marker names, if that release exists; `own` is dualkey's requestor when known.
pub(crate) fn classify(
    a: &MachineAction,
    since: OffsetDateTime,
    own: Option<&str>,
    release: Option<(ReleaseStatus, Option<&str>)>,
) -> Verdict {
    if matches!(a.status, Some(ActionStatus::Failed | ActionStatus::Cancelled)) {
        return Verdict::Ignored;
    }
    // An action without a readable time is judged, not skipped.
    if a.created_at().is_some_and(|t| t < since) {
        return Verdict::Ignored;
    }
    let ours = own.is_none_or(|o| a.requestor.as_deref().is_some_and(|r| r.eq_ignore_ascii_case(o)));
    match release {
        Some((_, Some(dispatched))) if dispatched.eq_ignore_ascii_case(&a.id) && ours => Verdict::Explained,
        Some((ReleaseStatus::Approved | ReleaseStatus::Dispatching, None)) if ours => Verdict::Undecided,
        _ => Verdict::Bypass,
    }
}

/// The text every re-isolation's comment starts with; how a retry finds the one it made.
pub(crate) fn marker(bypassing_action: &str) -> String {
    format!("[dualkey-bypass:{bypassing_action}]")
}

/// The start of the window bypasses are looked for in: `[mde] bypass_scan_since`, else this
/// installation's first start (stored the first time it is asked for).
pub(crate) async fn since(state: &AppState) -> anyhow::Result<Timestamp> {
    if let Some(s) = &state.settings.mde.bypass_scan_since
        && let Some(t) = Timestamp::parse_rfc3339(s)
    {
        return Ok(t);
    }
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let value = db::fleet::init_state(&mut tx, db::fleet::BYPASS_SCAN_FROM, &now.unix_ms().to_string()).await?;
    tx.commit().await?;
    Ok(value.parse::<i64>().ok().map_or(now, Timestamp::from_unix_ms))
}

/// dualkey's requestor as MDE names it: configured, or learned.
async fn own_requestor(state: &AppState) -> anyhow::Result<Option<String>> {
    if let Some(r) = &state.settings.mde.app_requestor {
        return Ok(Some(r.clone()));
    }
    let mut conn = state.db.reader().await?;
    Ok(db::fleet::get_state(&mut conn, db::fleet::APP_REQUESTOR).await?)
}

/// Remembers how MDE names dualkey's app, from an action dualkey created (the first one wins;
/// `[mde] app_requestor` overrides).
pub(crate) async fn learn_requestor(state: &AppState, action: &MachineAction) -> anyhow::Result<()> {
    let Some(r) = action.requestor.as_deref().filter(|r| !r.trim().is_empty()) else { return Ok(()) };
    if own_requestor(state).await?.is_some() {
        return Ok(());
    }
    let mut tx = state.db.begin().await?;
    db::fleet::init_state(&mut tx, db::fleet::APP_REQUESTOR, r).await?;
    tx.commit().await?;
    Ok(())
}

/// Judges each of `unisolates` and records the bypasses not recorded yet. Answers how many
/// new ones it recorded, and those whose verdict must wait (marked by a release still being
/// sent), to be judged again at the next review.
pub(crate) async fn review(
    state: &AppState,
    since: Timestamp,
    unisolates: &[MachineAction],
) -> anyhow::Result<(usize, Vec<MachineAction>)> {
    let own = own_requestor(state).await?;
    let since = since.to_datetime();
    let mut found = 0;
    let mut later = Vec::new();
    for a in unisolates {
        // Before the window: no verdict needed, and no read of the release it names.
        if a.created_at().is_some_and(|t| t < since) {
            continue;
        }
        let release = match a.marked_release() {
            Some(id) => {
                let mut conn = state.db.reader().await?;
                db::fleet::dispatched_action(&mut conn, id).await?
            }
            None => None,
        };
        let verdict = classify(a, since, own.as_deref(), release.as_ref().map(|(s, id)| (*s, id.as_deref())));
        match verdict {
            Verdict::Explained if own.is_none() => learn_requestor(state, a).await?,
            Verdict::Undecided => later.push(a.clone()),
            Verdict::Bypass => {
                let status = a.status.as_ref().map(|s| s.as_str().to_string());
                let known = {
                    let mut conn = state.db.reader().await?;
                    db::fleet::is_known_bypass(&mut conn, &a.id).await?
                };
                if known {
                    if let Some(status) = &status {
                        let mut tx = state.db.begin().await?;
                        db::fleet::saw_status(&mut tx, &a.id, status).await?;
                        tx.commit().await?;
                    }
                } else if record(state, a).await? {
                    found += 1;
                }
            }
            _ => {}
        }
    }
    Ok((found, later))
}

/// Records a new bypass with its audit entry and notification, in one transaction. False when
/// another scan recorded it first.
async fn record(state: &AppState, a: &MachineAction) -> anyhow::Result<bool> {
    let Some(machine_id) = a.machine_id.clone() else {
        tracing::warn!(mde_action_id = %a.id, "an Unisolate without a machine id; cannot record it as a bypass");
        return Ok(false);
    };
    let now = state.clock.now();
    let policy = state.policy();
    let response = policy.on_bypass();
    let row = BypassRow {
        seq: 0,
        id: uuid::Uuid::now_v7().to_string(),
        mde_action_id: a.id.clone(),
        machine_id: machine_id.clone(),
        requestor: a.requestor.clone(),
        requestor_comment: a.requestor_comment.clone(),
        action_created: a.creation_date_time_utc.clone(),
        action_status: a.status.as_ref().map(|s| s.as_str().to_string()),
        detected_at: now,
        response: response.as_str().to_string(),
        reisolation_action_id: None,
        reisolation_attempts: 0,
        reisolation_due_at: None,
        reisolation_finished_at: None,
        reisolation_outcome: None,
        acknowledged_at: None,
        acknowledged_by: None,
    };
    let bypass_id = row.id.clone();
    let mut tx = state.db.begin().await?;
    if !db::fleet::insert_bypass(&mut tx, row).await? {
        return Ok(false);
    }
    let event = AuditEvent::BypassDetected {
        bypass_id: bypass_id.clone(),
        mde_action_id: a.id.clone(),
        requestor: a.requestor.clone(),
        requestor_comment: a.requestor_comment.clone(),
        created: a.creation_date_time_utc.clone(),
        mde_action_status: a.status.as_ref().map(|s| s.as_str().to_string()),
        response: response.as_str().to_string(),
    };
    let subject = Subject { release_id: None, machine_id: Some(&machine_id) };
    audit::record(&mut tx, now, Actor::System, subject, &event).await?;
    let data = serde_json::json!({
        "bypass": {
            "id": bypass_id,
            "machine_id": machine_id,
            "mde_action_id": a.id,
            "requestor": a.requestor,
            "requestor_comment": a.requestor_comment,
            "created": a.creation_date_time_utc,
            "response": response.as_str(),
        }
    });
    crate::notify::outbox::other_event(&mut tx, "bypass.detected", &data, now).await?;
    tx.commit().await?;
    tracing::warn!(
        machine_id = %machine_id,
        mde_action_id = %a.id,
        requestor = %crate::logsafe::untrusted(a.requestor.as_deref().unwrap_or("unknown")),
        "BYPASS: a device was released outside dualkey"
    );
    Ok(true)
}

/// Answers each due bypass whose response is `reisolate`: once its action has succeeded, the
/// device is isolated again, exactly once (a retry first looks for the Isolate it made). The
/// bypassing action's status comes from `status_of` (the view); one that ended without
/// succeeding released nothing and needs no answer.
pub(crate) async fn reisolate_due(
    state: &AppState,
    mde: &MdeClient,
    retry: RetryPolicy,
    status_of: impl Fn(&str) -> Option<ActionStatus>,
) -> anyhow::Result<usize> {
    let now = state.clock.now();
    let due = {
        let mut conn = state.db.reader().await?;
        db::fleet::reisolations_due(&mut conn, now).await?
    };
    let mut done = 0;
    for b in due {
        let status = status_of(&b.mde_action_id).or_else(|| b.action_status.as_deref().map(ActionStatus::from));
        match status {
            Some(ActionStatus::Succeeded) => {}
            Some(s) if s.is_final() => {
                let outcome = format!("the bypassing action ended {}: the device was not released", s.as_str());
                finish(state, &b, None, &outcome, b.reisolation_attempts as u32).await?;
                continue;
            }
            _ => continue,
        }
        isolate_again(state, mde, retry, &b).await?;
        done += 1;
    }
    Ok(done)
}

async fn isolate_again(state: &AppState, mde: &MdeClient, retry: RetryPolicy, b: &BypassRow) -> anyhow::Result<()> {
    let mark = marker(&b.mde_action_id);
    let isolation = match state.policy().on_bypass() {
        OnBypass::Reisolate { isolation_type: ReisolateType::Selective } => IsolationType::Selective,
        OnBypass::Reisolate { isolation_type: ReisolateType::Full } | OnBypass::Record => IsolationType::Full,
    };
    let bypass_created = b.action_created.as_deref().and_then(crate::mde::types::parse_timestamp);
    let attempt = b.reisolation_attempts as u32 + 1;
    let result: Result<Result<MachineAction, String>, MdeError> = async {
        let isolates = mde.list_actions(&b.machine_id, &ActionType::Isolate).await?;
        if let Some(mine) = isolates.iter().find(|a| a.requestor_comment.as_deref().is_some_and(|c| c.starts_with(&mark))) {
            return Ok(Ok(mine.clone()));
        }
        // Someone isolated it again after the bypass: nothing left to answer.
        let again = isolates.iter().find(|a| {
            !matches!(a.status, Some(ActionStatus::Failed | ActionStatus::Cancelled))
                && a.created_at().zip(bypass_created).is_some_and(|(t, b)| t > b)
        });
        if let Some(i) = again {
            return Ok(Err(format!("already isolated again by {} (MDE action {})", i.made_by(), i.id)));
        }
        let requestor = b.requestor.as_deref().unwrap_or("an unnamed requestor");
        let text = format!(
            "{mark} Isolated again by dualkey: MDE action {} by {requestor} released this device outside the two-person rule",
            b.mde_action_id
        );
        mde.isolate(&b.machine_id, &text, isolation).await.map(Ok)
    }
    .await;
    match result {
        Ok(Ok(action)) => {
            let now = state.clock.now();
            let mut tx = state.db.begin().await?;
            if db::fleet::finish_reisolation(&mut tx, &b.id, Some(&action.id), "reisolated", attempt, now).await? {
                let event = AuditEvent::BypassReisolated {
                    bypass_id: b.id.clone(),
                    bypassing_action_id: b.mde_action_id.clone(),
                    mde_action_id: action.id.clone(),
                    isolation_type: format!("{isolation:?}"),
                };
                let subject = Subject { release_id: None, machine_id: Some(&b.machine_id) };
                audit::record(&mut tx, now, Actor::System, subject, &event).await?;
                tx.commit().await?;
                tracing::warn!(machine_id = %b.machine_id, mde_action_id = %action.id, "bypass answered: device isolated again");
            }
            Ok(())
        }
        Ok(Err(outcome)) => finish(state, b, None, &outcome, attempt).await,
        Err(e) => {
            let now = state.clock.now();
            let next = retry.delay(attempt, e.retry_after(), rand::random::<f64>()).map(|d| now.plus(d));
            let mut tx = state.db.begin().await?;
            let event = AuditEvent::BypassReisolationFailed {
                bypass_id: b.id.clone(),
                error: e.to_string(),
                http_status: e.status(),
                attempt,
                next_attempt_at: next,
            };
            let subject = Subject { release_id: None, machine_id: Some(&b.machine_id) };
            match next {
                Some(due) => {
                    db::fleet::defer_reisolation(&mut tx, &b.id, attempt, due).await?;
                    audit::record(&mut tx, now, Actor::System, subject, &event).await?;
                    tx.commit().await?;
                    tracing::error!(error = %e, attempt, "isolating a bypassed device again failed; will retry");
                    Ok(())
                }
                None => {
                    audit::record(&mut tx, now, Actor::System, subject, &event).await?;
                    tx.commit().await?;
                    let outcome = format!("gave up after {attempt} attempts: {e}");
                    tracing::error!(error = %e, "gave up isolating a bypassed device again; isolate it by hand");
                    finish(state, b, None, &outcome, attempt).await
                }
            }
        }
    }
}

/// Ends a re-isolation without an Isolate, with its audit entry.
async fn finish(
    state: &AppState,
    b: &BypassRow,
    action: Option<&str>,
    outcome: &str,
    attempts: u32,
) -> anyhow::Result<()> {
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    if db::fleet::finish_reisolation(&mut tx, &b.id, action, outcome, attempts, now).await? {
        let event = AuditEvent::BypassReisolationEnded { bypass_id: b.id.clone(), outcome: outcome.to_string() };
        let subject = Subject { release_id: None, machine_id: Some(&b.machine_id) };
        audit::record(&mut tx, now, Actor::System, subject, &event).await?;
        tx.commit().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn unisolate(status: &str, requestor: &str, comment: &str, created: &str) -> MachineAction {
        serde_json::from_value(json!({
            "id": "act-1", "type": "Unisolate", "status": status, "machineId": "m1",
            "requestor": requestor, "requestorComment": comment, "creationDateTimeUtc": created,
        }))
        .unwrap()
    }

    fn t(s: &str) -> OffsetDateTime {
        crate::mde::types::parse_timestamp(s).unwrap()
    }

    const SINCE: &str = "2026-12-01T00:00:00Z";
    const NEW: &str = "2026-12-01T10:00:00.1234567Z";

    #[test]
    fn only_a_release_that_dispatched_exactly_that_action_explains_it() {
        let own = Some("dualkey app");
        let a = unisolate("Succeeded", "dualkey app", "[dualkey:x] Released", NEW);
        let since = t(SINCE);
        assert_eq!(classify(&a, since, own, Some((ReleaseStatus::Succeeded, Some("ACT-1")))), Verdict::Explained);
        assert_eq!(classify(&a, since, None, Some((ReleaseStatus::Succeeded, Some("act-1")))), Verdict::Explained);
        assert_eq!(
            classify(&a, since, own, Some((ReleaseStatus::Succeeded, Some("act-2")))),
            Verdict::Bypass,
            "another action"
        );
        assert_eq!(classify(&a, since, own, None), Verdict::Bypass, "no such release");
        assert_eq!(classify(&a, since, own, Some((ReleaseStatus::Dispatching, None))), Verdict::Undecided);
        assert_eq!(classify(&a, since, own, Some((ReleaseStatus::Failed, None))), Verdict::Bypass);
        let portal = unisolate("Pending", "admin@contoso.com", "[dualkey:x] copied", NEW);
        assert_eq!(
            classify(&portal, since, own, Some((ReleaseStatus::Succeeded, Some("act-1")))),
            Verdict::Bypass,
            "another requestor"
        );
    }

    #[test]
    fn failed_cancelled_and_older_unisolates_are_not_bypasses_but_timed_out_ones_are() {
        let since = t(SINCE);
        for status in ["Failed", "Cancelled"] {
            assert_eq!(classify(&unisolate(status, "x", "", NEW), since, None, None), Verdict::Ignored);
        }
        for status in ["Pending", "InProgress", "Succeeded", "TimeOut"] {
            assert_eq!(classify(&unisolate(status, "x", "", NEW), since, None, None), Verdict::Bypass, "{status}");
        }
        let old = unisolate("Succeeded", "x", "", "2026-11-30T23:59:59Z");
        assert_eq!(classify(&old, since, None, None), Verdict::Ignored);
    }
}
