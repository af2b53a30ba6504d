//! Browser tests: headless Debian Chromium driven through chromedriver (W3C WebDriver), one
//! session per person. Without Chromium installed they print a skip line, except under `CI=true`.

pub mod driver;
pub mod webdriver;

mod console;
mod smoke;

pub use driver::{ChromeDriver, chromedriver_or_skip};
pub use webdriver::{Browser, By, Cookie, WdError};
