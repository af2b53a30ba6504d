//! An element of the current page: click, type, read.

use super::webdriver::{Browser, WdError, as_string};
use serde_json::{Value, json};

/// An element found on the current page.
pub struct Element<'b> {
    browser: &'b Browser,
    id: String,
}

impl<'b> Element<'b> {
    pub(super) fn new(browser: &'b Browser, id: String) -> Self {
        Element { browser, id }
    }

    fn path(&self, tail: &str) -> String {
        format!("/element/{}{tail}", self.id)
    }

    pub async fn click(&self) -> Result<(), WdError> {
        self.browser.post(&self.path("/click"), json!({})).await.map(drop)
    }

    /// Types `text` into the element, after what it already holds.
    pub async fn send_keys(&self, text: &str) -> Result<(), WdError> {
        self.browser.post(&self.path("/value"), json!({"text": text})).await.map(drop)
    }

    pub async fn clear(&self) -> Result<(), WdError> {
        self.browser.post(&self.path("/clear"), json!({})).await.map(drop)
    }

    /// The element's rendered text.
    pub async fn text(&self) -> Result<String, WdError> {
        as_string("element text", self.browser.get(&self.path("/text")).await?)
    }

    /// The attribute `name`, `None` when the element has none.
    pub async fn attribute(&self, name: &str) -> Result<Option<String>, WdError> {
        let v = self.browser.get(&self.path(&format!("/attribute/{name}"))).await?;
        Ok(v.as_str().map(str::to_string))
    }

    /// The DOM property `name` (e.g. `value` of an input as typed so far).
    pub async fn property(&self, name: &str) -> Result<Value, WdError> {
        self.browser.get(&self.path(&format!("/property/{name}"))).await
    }
}
