//! The subset of OData the simulator's lists support: `$filter` on the fields MDE documents as
//! filterable (see [`ActionFilter`] and [`MachineFilter`]), `$top` (at most 10,000, the page
//! size) and `$skip`, and `@odata.nextLink` to the next page while more results remain.

mod actions;
mod machines;
mod parse;

use std::collections::HashMap;

use axum::http::StatusCode;

pub(crate) use actions::ActionFilter;
pub(crate) use machines::MachineFilter;

use super::wire::{Reject, reject};
use crate::mde::query::percent_encode;

/// Most entities one page may hold (`$top` max and page size in MDE).
const MAX_TOP: usize = 10_000;

/// A list request's `$filter` text, `$top` and `$skip`.
#[derive(Debug)]
pub(crate) struct Paging {
    pub filter: Option<String>,
    pub top: usize,
    pub skip: usize,
}

impl Paging {
    /// Reads the query; a bad `$top`/`$skip` is a 400 `ODataError`.
    pub(crate) fn from_query(query: &HashMap<String, String>) -> Result<Self, Reject> {
        let number = |key: &str, default: usize| match query.get(key) {
            None => Ok(default),
            Some(v) => v.trim().parse::<usize>().map_err(|_| odata_error(&format!("Invalid value for {key}: '{v}'."))),
        };
        let top = number("$top", MAX_TOP)?;
        if top > MAX_TOP {
            return Err(odata_error("The limit of '10000' for Top query has been exceeded."));
        }
        Ok(Self { filter: query.get("$filter").cloned(), top, skip: number("$skip", 0)? })
    }

    /// This page of the `matching` entities (in list order), and whether more follow it.
    pub(crate) fn page<T>(&self, matching: impl Iterator<Item = T>) -> (Vec<T>, bool) {
        let mut rest = matching.skip(self.skip);
        let page: Vec<T> = rest.by_ref().take(self.top).collect();
        // A `$top=0` page never advances, so it links nowhere.
        let more = self.top > 0 && rest.next().is_some();
        (page, more)
    }

    /// The absolute URL of the page after this one: the same `$filter` and `$top`, `$skip`
    /// advanced by a page.
    pub(crate) fn next_link(&self, base_url: &str, path: &str) -> String {
        let mut link = format!("{base_url}{path}?");
        if let Some(filter) = &self.filter {
            link.push_str(&format!("$filter={}&", percent_encode(filter)));
        }
        link.push_str(&format!("$top={}&$skip={}", self.top, self.skip + self.top));
        link
    }
}

fn odata_error(message: &str) -> Reject {
    reject(StatusCode::BAD_REQUEST, "ODataError", message)
}

/// The 400 for a `$filter` outside what the simulator (and MDE) supports.
fn invalid_filter(text: &str) -> Reject {
    odata_error(&format!("Invalid filter clause: '{text}'."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paging(pairs: &[(&str, &str)]) -> Paging {
        let query = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Paging::from_query(&query).unwrap_or_else(|_| panic!("valid paging"))
    }

    #[test]
    fn a_page_says_whether_more_follow_and_links_to_the_next() {
        let p = paging(&[("$top", "10"), ("$skip", "10"), ("$filter", "type eq 'Isolate'")]);
        assert_eq!(p.page(0..25), ((10..20).collect::<Vec<_>>(), true));
        assert_eq!(p.page(0..20), ((10..20).collect::<Vec<_>>(), false));
        assert_eq!(
            p.next_link("http://127.0.0.1:1", "/api/machineactions"),
            "http://127.0.0.1:1/api/machineactions?$filter=type%20eq%20'Isolate'&$top=10&$skip=20"
        );
        assert_eq!(paging(&[("$top", "0")]).page(0..5), (vec![], false));
        assert_eq!(paging(&[]).top, MAX_TOP);
    }

    #[test]
    fn a_top_over_ten_thousand_or_a_non_number_is_refused() {
        let query = |k: &str, v: &str| [(k.to_string(), v.to_string())].into_iter().collect();
        assert!(Paging::from_query(&query("$top", "10001")).is_err());
        assert!(Paging::from_query(&query("$skip", "-1")).is_err());
    }
}
