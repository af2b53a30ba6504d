//! When each background task of this process last did its work, for `/readyz`: a task that
//! stopped succeeding shows its last success going stale, whatever it logs.

use crate::clock::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// The last outcomes of each task, by name (`worker.dispatch`, `expiry`, `delivery.<channel>`, ...).
#[derive(Debug, Default)]
pub(crate) struct Tasks {
    inner: Mutex<BTreeMap<String, TaskHealth>>,
}

/// One task's last success and last failure; either absent when it has not happened yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct TaskHealth {
    /// The end of its last pass that did what it had to (or found nothing to do).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<Timestamp>,
    /// The end of its last failed pass. Why it failed is in the log, not here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure_at: Option<Timestamp>,
}

impl Tasks {
    /// `task` is running: shown from now on, even before its first pass ends.
    pub(crate) fn started(&self, task: &str) {
        self.lock().entry(task.to_string()).or_default();
    }

    /// A pass of `task` ended at `at` with `result`: a success, or a failure.
    pub(crate) fn ended<T, E>(&self, task: &str, result: &Result<T, E>, at: Timestamp) {
        let mut all = self.lock();
        let health = all.entry(task.to_string()).or_default();
        match result {
            Ok(_) => health.last_success_at = Some(at),
            Err(_) => health.last_failure_at = Some(at),
        }
    }

    /// Every task seen, by name.
    pub(crate) fn all(&self) -> BTreeMap<String, TaskHealth> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, TaskHealth>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_keeps_its_last_success_and_last_failure_apart() {
        let tasks = Tasks::default();
        tasks.started("expiry");
        assert_eq!(tasks.all()["expiry"], TaskHealth::default());
        let (ok, failed): (Result<(), ()>, Result<(), ()>) = (Ok(()), Err(()));
        tasks.ended("expiry", &ok, Timestamp::from_unix_ms(1));
        tasks.ended("expiry", &failed, Timestamp::from_unix_ms(2));
        tasks.ended("expiry", &ok, Timestamp::from_unix_ms(3));
        let h = &tasks.all()["expiry"];
        assert_eq!(h.last_success_at, Some(Timestamp::from_unix_ms(3)));
        assert_eq!(h.last_failure_at, Some(Timestamp::from_unix_ms(2)));
    }
}
