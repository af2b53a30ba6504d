//! Browser tests: headless Debian Chromium driven through chromedriver (W3C WebDriver), one
//! session per person. Without Chromium installed they print a skip line, except under `CI=true`.

mod driver;
mod element;
mod locate;
mod webdriver;

mod console;
mod smoke;

pub use driver::{ChromeDriver, chromedriver_or_skip};
pub use locate::By;
pub use webdriver::{Browser, Cookie, WdError};
