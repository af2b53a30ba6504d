//! Requesting a batch: read every device once (outside any transaction), then in one
//! transaction decide each device under its own rule, store one pending release per device that
//! can be taken, the batch, and their audit entries. All or nothing.

use super::BatchState;
use crate::audit::{self, Actor, AuditEvent, Subject};
use crate::auth::Principal;
use crate::db;
use crate::db::velocity::Counted;
use crate::domain::{Batch, BatchId, BatchSelector, Comment, MAX_BATCH_MACHINES, MachineId, Refusal, Refused, Ticket};
use crate::error::ApiError;
use crate::rules::{AppliedRule, Policy, over_limit};
use crate::service::device::{self, Device, DeviceFacts, Known};
use crate::service::releases::require_role;
use crate::service::request::{Requested, open_release, store};
use crate::state::AppState;
use axum::http::StatusCode;

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

/// Which devices a batch asks for.
#[derive(Debug)]
pub(crate) enum Target {
    /// These machines (1 to [`MAX_BATCH_MACHINES`], no duplicates: the caller parsed them).
    Machines(Vec<MachineId>),
    /// Every device isolated now that the selector matches.
    Selector(BatchSelector),
}

/// A validated batch request.
#[derive(Debug)]
pub(crate) struct NewBatch {
    pub target: Target,
    pub comment: Comment,
    pub ticket: Option<Ticket>,
}

/// A device that can be taken: its facts and the rule it gets.
struct Candidate {
    /// Its place among the devices asked for, so refusals list in the order asked.
    at: usize,
    machine_id: MachineId,
    facts: DeviceFacts,
    rule: AppliedRule,
}

/// Splits the devices read into those a release may be requested for and those refused, by
/// the same rules and with the same codes as a single request.
fn classify(policy: &Policy, known: Vec<(MachineId, Known)>) -> (Vec<Candidate>, Vec<(usize, Refused)>) {
    let (mut take, mut refused) = (Vec::new(), Vec::new());
    for (at, (machine_id, known)) in known.into_iter().enumerate() {
        let facts = match known {
            Known::Unknown => {
                let message = format!("Defender for Endpoint has no machine {machine_id}");
                refused.push((at, Refused::new(&machine_id, Refusal::UnknownMachine, message)));
                continue;
            }
            Known::Device(Device::NotIsolated(why)) => {
                refused.push((at, Refused::new(&machine_id, Refusal::DeviceNotIsolated, why)));
                continue;
            }
            Known::Device(Device::Isolated(facts)) => facts,
        };
        let rule = policy.rule_for(&facts.device);
        match &rule.deny {
            Some(reason) => {
                let denied = Refused {
                    rule: Some(rule.name.clone()),
                    ..Refused::new(&machine_id, Refusal::DeniedByPolicy, reason)
                };
                refused.push((at, denied));
            }
            None => take.push(Candidate { at, machine_id, facts, rule }),
        }
    }
    (take, refused)
}

/// The devices `target` names, as MDE describes them now (network calls; no transaction).
async fn read(state: &AppState, target: &Target) -> Result<Vec<(MachineId, Known)>, ApiError> {
    match target {
        Target::Machines(ids) => device::read_many(state, ids).await,
        Target::Selector(s) => {
            let selector = device::Selector { rbac_groups: s.rbac_groups.clone(), tags: s.tags.clone() };
            let mut found = device::isolated_matching(state, &selector).await?;
            found.sort_by(|a, b| a.0.cmp(&b.0));
            found.dedup_by(|a, b| a.0 == b.0);
            if found.len() > MAX_BATCH_MACHINES {
                return Err(ApiError::unprocessable(
                    "batch_too_large",
                    format!(
                        "the selector matches {} isolated devices; a batch holds at most {MAX_BATCH_MACHINES}: narrow it",
                        found.len()
                    ),
                ));
            }
            Ok(found.into_iter().map(|(id, facts)| (id, Known::Device(Device::Isolated(facts)))).collect())
        }
    }
}

/// Records a batch request refused whole (nothing else is stored) and returns its error.
async fn refuse(state: &AppState, p: &Principal, event: AuditEvent, err: ApiError) -> ApiError {
    let now = state.clock.now();
    let result: Result<(), sqlx::Error> = async {
        let mut tx = state.db.begin().await?;
        audit::record(&mut tx, now, Actor::Principal(&p.id), Subject::default(), &event).await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => err,
        Err(e) => e.into(),
    }
}

/// Requests a release of every device `b` names that can be taken, as one batch by `p` under
/// `policy`. Devices that cannot be taken are listed in the batch's `refused`; when none can,
/// nothing is stored (422 `nothing_to_release`). The velocity guard counts every release.
#[tracing::instrument(skip_all, fields(requested_by = %crate::logsafe::untrusted(&p.id)))]
pub(crate) async fn request(
    state: &AppState,
    policy: &Policy,
    p: &Principal,
    b: NewBatch,
) -> Result<BatchState, ApiError> {
    require_role(p, &state.settings.auth.requester_role)?;
    if policy.require_ticket() && b.ticket.is_none() {
        return Err(ApiError::unprocessable("ticket_required", "this policy requires a ticket reference"));
    }
    // The network calls come first, outside any transaction.
    let known = read(state, &b.target).await?;
    let selector = match b.target {
        Target::Selector(s) => Some(s),
        Target::Machines(_) => None,
    };
    let (candidates, mut refused) = classify(policy, known);
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let mut take = Vec::with_capacity(candidates.len());
    for c in candidates {
        match open_release(&mut tx, &c.machine_id, now).await? {
            Some((open, status)) => {
                let message = format!("machine {} already has an open release {open} ({status})", c.machine_id);
                refused.push((c.at, Refused::new(&c.machine_id, Refusal::ReleaseAlreadyOpen, message)));
            }
            None => take.push(c),
        }
    }
    refused.sort_by_key(|(at, _)| *at);
    let refused: Vec<Refused> = refused.into_iter().map(|(_, r)| r).collect();
    let count = take.len() as u32;
    if take.is_empty() {
        drop(tx);
        let message = match &selector {
            Some(_) if refused.is_empty() => "no isolated device matches the selector; nothing was stored".to_string(),
            _ => "none of the devices can be released (see refused); nothing was stored".to_string(),
        };
        let event = AuditEvent::BatchRequestRefused {
            reason: "nothing_to_release".into(),
            message: message.clone(),
            count,
            refused: refused.clone(),
            selector,
        };
        let refused = serde_json::to_value(&refused).map_err(ApiError::internal)?;
        let err = ApiError::unprocessable("nothing_to_release", message).with("refused", refused);
        return Err(refuse(state, p, event, err).await);
    }
    let limit = policy.max_requests_per_requester_per_hour();
    let recent = match limit {
        Some(_) => db::velocity::count_since(&mut tx, Counted::Requests, &p.id, now.minus(HOUR)).await?,
        None => 0,
    };
    // Each release counts: the batch must fit under the limit whole.
    if let Some(max) = limit.filter(|_| over_limit(recent + count - 1, limit)) {
        // When enough of the hour's requests have left the window for the batch (or, for a
        // batch larger than the limit, for as many as the limit allows).
        let counted = (recent + count.min(max)).saturating_sub(1);
        let retry =
            crate::service::velocity::retry_after(&mut tx, Counted::Requests, &p.id, now, counted, limit).await?;
        drop(tx);
        let message = format!(
            "this batch would request {count} releases; with your {recent} in the last hour that passes the policy's \
             limit of {max} per hour{}; nothing was stored",
            if count > max { " (split the batch)" } else { "" }
        );
        let event = AuditEvent::BatchRequestRefused {
            reason: "request_rate_exceeded".into(),
            message: message.clone(),
            count,
            refused,
            selector,
        };
        let err =
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "request_rate_exceeded", message).with_retry_after(retry);
        return Err(refuse(state, p, event, err).await);
    }
    let batch = Batch {
        id: BatchId::new(),
        requested_by: p.id.clone(),
        requested_at: now,
        comment: b.comment.as_str().to_string(),
        ticket: b.ticket.as_ref().map(|t| t.as_str().to_string()),
        selector,
        refused,
    };
    db::batches::insert(&mut tx, &batch).await?;
    let event = AuditEvent::BatchRequested {
        batch_id: batch.id.to_string(),
        count,
        refused: batch.refused.clone(),
        comment: batch.comment.clone(),
        ticket: batch.ticket.clone(),
        selector: batch.selector.clone(),
        console: p.sign_in.clone(),
    };
    audit::record(&mut tx, now, Actor::Principal(&p.id), Subject::default(), &event).await?;
    for c in take {
        let new = Requested {
            machine_id: &c.machine_id,
            comment: &b.comment,
            ticket: b.ticket.as_ref(),
            facts: c.facts,
            rule: c.rule,
            break_glass: None,
            batch_id: Some(batch.id),
        };
        store(&mut tx, policy, p, new, now).await?;
    }
    let releases = db::releases::of_batch(&mut tx, batch.id).await?;
    tx.commit().await?;
    tracing::debug!(batch_id = %batch.id, releases = count, refused = batch.refused.len(), "release batch requested");
    Ok(BatchState { batch, releases })
}
