//! `GET /api/machineactions`: releases as MDE's Unisolate actions in MDE's collection
//! envelope, filtered by `$filter` (see [`super::filter`]) and paged by `$top` and `$skip`.

use super::action::MachineActionView;
use super::fault::{MdeErrorDoc, MdeFault};
use super::filter::Filter;
use super::{base, metadata, reader};
use crate::auth::Principal;
use crate::db::releases::ListFilter;
use crate::domain::{Release, ReleaseStatus};
use crate::error::ApiError;
use crate::mde::{ActionStatus, percent_encode};
use crate::service::reading;
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Serialize;

/// The most actions one page of a list holds; `@odata.nextLink` leads to the rest.
const PAGE: usize = 200;
/// The largest `$top` MDE accepts.
const MAX_TOP: usize = 10_000;

/// MDE's collection envelope.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = MachineActionList)]
pub(super) struct Collection {
    /// `{base}/api/$metadata#MachineActions`.
    #[serde(rename = "@odata.context")]
    context: String,
    /// Newest first, at most 200 (and at most `$top`).
    value: Vec<MachineActionView>,
    /// The next page's URL, only while more actions match.
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
}

/// A list request's `$filter`, `$top` and `$skip`.
struct Paging {
    filter_text: Option<String>,
    filter: Filter,
    top: Option<usize>,
    skip: usize,
}

impl Paging {
    fn parse(pairs: Vec<(String, String)>) -> Result<Self, MdeFault> {
        let (mut filter_text, mut top, mut skip) = (None, None, None);
        for (key, value) in pairs {
            let slot = match key.as_str() {
                "$filter" => &mut filter_text,
                "$top" => &mut top,
                "$skip" => &mut skip,
                _ => return Err(MdeFault::odata(format!("The query parameter '{key}' is not supported."))),
            };
            if slot.replace(value).is_some() {
                return Err(MdeFault::odata(format!("The query parameter '{key}' is given twice.")));
            }
        }
        let number = |key: &str, v: Option<String>| {
            v.map(|v| {
                v.trim().parse::<usize>().map_err(|_| MdeFault::odata(format!("Invalid value for {key}: '{v}'.")))
            })
            .transpose()
        };
        let top = number("$top", top)?;
        if top.is_some_and(|t| t > MAX_TOP) {
            return Err(MdeFault::odata(format!("The limit of '{MAX_TOP}' for Top query has been exceeded.")));
        }
        let skip = number("$skip", skip)?.unwrap_or(0);
        // An int64, as the document says: no list is longer.
        if i64::try_from(skip).is_err() {
            return Err(MdeFault::odata(format!("Invalid value for $skip: '{skip}'.")));
        }
        let filter = Filter::parse(filter_text.as_deref()).map_err(MdeFault::odata)?;
        Ok(Self { filter_text, filter, top, skip })
    }

    /// The query of the page after one of `returned` actions: as MDE links, the same `$filter`
    /// and `$top` (a page size), `$skip` advanced.
    fn next_query(&self, returned: usize) -> String {
        let mut q = String::new();
        if let Some(f) = &self.filter_text {
            q.push_str(&format!("$filter={}&", percent_encode(f)));
        }
        if let Some(top) = self.top {
            q.push_str(&format!("$top={top}&"));
        }
        q.push_str(&format!("$skip={}", self.skip.saturating_add(returned)));
        q
    }
}

/// List machine actions: dualkey's releases as MDE's Unisolate actions, newest first, at most
/// 200 per answer (`@odata.nextLink` leads on). Any role that reads releases.
#[utoipa::path(
    get,
    path = "/machineactions",
    operation_id = "mde_list_machine_actions",
    tag = super::TAG,
    params(
        // The grammar `filter.rs` reads, in MDE's spelling (the daemon also takes other cases).
        ("$filter" = Option<String>, Query, pattern = r"^\s*(machineId\s+eq\s+'([^']|'')*'|status\s+eq\s+'(Pending|InProgress|Succeeded|Failed|TimeOut|Cancelled)'|type\s+eq\s+'(RunAntiVirusScan|Offboard|LiveResponse|CollectInvestigationPackage|Isolate|Unisolate|StopAndQuarantineFile|RestrictCodeExecution|UnrestrictCodeExecution)')(\s+and\s+(machineId\s+eq\s+'([^']|'')*'|status\s+eq\s+'(Pending|InProgress|Succeeded|Failed|TimeOut|Cancelled)'|type\s+eq\s+'(RunAntiVirusScan|Offboard|LiveResponse|CollectInvestigationPackage|Isolate|Unisolate|StopAndQuarantineFile|RestrictCodeExecution|UnrestrictCodeExecution)'))*\s*$",
            description = "`machineId eq '<id>'`, `status eq '<status>'`, `type eq '<action type>'`, joined by `and`; \
            only `Unisolate` matches, and a `machineId` that is no machine id matches nothing"),
        ("$top" = Option<u32>, Query, minimum = 0, maximum = 10000, description = "At most this many actions in all"),
        ("$skip" = Option<i64>, Query, minimum = 0, description = "Leave out this many matching actions first"),
    ),
    responses(
        (status = 200, description = "The actions", body = Collection),
        (status = 400, description = "`ODataError`: another parameter, clause, operator or value, a parameter given twice, \
            `$top` over 10000", body = MdeErrorDoc),
        (status = 403, description = "`Forbidden` (`missing_role`: no role that reads releases)", body = MdeErrorDoc),
    )
)]
pub(super) async fn list(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Collection>, MdeFault> {
    let p = reader(&state, principal)?;
    let Query(pairs) = query.map_err(|e| MdeFault::odata(e.body_text()))?;
    let paging = Paging::parse(pairs)?;
    let want = paging.top.unwrap_or(MAX_TOP).min(PAGE);
    let mut found = if paging.filter.matches_nothing() || want == 0 {
        Vec::new()
    } else {
        matching(&state, &p, &paging.filter, paging.skip, want + 1).await?
    };
    let more = found.len() > want;
    found.truncate(want);
    let next_link = more.then(|| format!("{}/api/machineactions?{}", base(&state), paging.next_query(want)));
    let value = found.into_iter().map(|r| MachineActionView::new(r, None)).collect();
    Ok(Json(Collection { context: metadata(&state, "MachineActions"), value, next_link }))
}

/// Up to `limit` releases `filter` matches, newest first, after skipping `skip` of them. The
/// machine (and a `Pending` status, the one MDE status that is one release status) narrow the
/// query; the rest is decided per release, page by page, as the status mapping is not SQL.
async fn matching(
    state: &AppState,
    p: &Principal,
    filter: &Filter,
    mut skip: usize,
    limit: usize,
) -> Result<Vec<Release>, MdeFault> {
    const SCAN_PAGE: i64 = 200;
    let mut found = Vec::new();
    let mut cursor = None;
    loop {
        let rows = reading::list(
            state,
            p,
            ListFilter {
                status: (filter.status == Some(ActionStatus::Pending)).then_some(ReleaseStatus::Pending),
                machine_id: filter.machine.clone().flatten(),
                requested_by: None,
                before_seq: cursor,
                awaiting_decision: false,
                limit: SCAN_PAGE,
            },
        )
        .await?;
        let exhausted = (rows.len() as i64) < SCAN_PAGE;
        cursor = rows.last().map(|(seq, _)| *seq);
        for (_, r) in rows {
            if !filter.matches(&r) {
                continue;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            found.push(r);
            if found.len() == limit {
                return Ok(found);
            }
        }
        if exhausted {
            return Ok(found);
        }
    }
}
