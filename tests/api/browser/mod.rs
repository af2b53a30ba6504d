//! Browser tests: headless Debian Chromium driven through chromedriver (W3C WebDriver), one
//! session per person. Without Chromium installed they print a skip line, except under `CI=true`.

pub mod driver;
pub mod webdriver;

mod smoke;

pub use driver::chromedriver_or_skip;
pub use webdriver::{Browser, By, Cookie, WdError};
