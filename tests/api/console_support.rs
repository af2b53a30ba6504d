//! A person at a browser, over plain HTTP: follows the console's sign-in through the
//! simulator's development identity provider, keeps the console's cookies, posts forms.

use crate::helpers::TestApp;
use reqwest::{Response, StatusCode, header};
use std::collections::BTreeMap;
use std::sync::Mutex;

pub struct Person {
    base: String,
    http: reqwest::Client,
    /// The console's cookies (name -> value); the identity provider sets none.
    cookies: Mutex<BTreeMap<String, String>>,
    /// Every `Set-Cookie` the console sent, as sent.
    pub set_cookies: Mutex<Vec<String>>,
}

impl Person {
    pub fn new(app: &TestApp) -> Self {
        Self::at(&app.base)
    }

    /// A person at the console of the daemon at `base` (e.g. another process).
    pub fn at(base: &str) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { base: base.to_string(), http, cookies: Mutex::default(), set_cookies: Mutex::default() }
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") { path_or_url.to_string() } else { format!("{}{}", self.base, path_or_url) }
    }

    fn with_cookies(&self, req: reqwest::RequestBuilder, url: &str) -> reqwest::RequestBuilder {
        let jar = self.cookies.lock().unwrap();
        if !url.starts_with(&self.base) || jar.is_empty() {
            return req;
        }
        let cookie: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        req.header(header::COOKIE, cookie.join("; "))
    }

    fn keep(&self, url: &str, r: &Response) {
        if !url.starts_with(&self.base) {
            return;
        }
        for v in r.headers().get_all(header::SET_COOKIE) {
            let v = v.to_str().unwrap().to_string();
            let (pair, attrs) = v.split_once(';').unwrap_or((&v, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.lock().unwrap().remove(name);
            } else {
                self.cookies.lock().unwrap().insert(name.to_string(), value.to_string());
            }
            self.set_cookies.lock().unwrap().push(v.clone());
        }
    }

    pub async fn get(&self, path_or_url: &str) -> Response {
        let url = self.url(path_or_url);
        let r = self.with_cookies(self.http.get(&url), &url).send().await.unwrap();
        self.keep(&url, &r);
        r
    }

    pub async fn post(&self, path_or_url: &str, form: &[(&str, &str)]) -> Response {
        let url = self.url(path_or_url);
        let r = self.with_cookies(self.http.post(&url).form(form), &url).send().await.unwrap();
        self.keep(&url, &r);
        r
    }

    /// A page's status and HTML.
    pub async fn page(&self, path: &str) -> (StatusCode, String) {
        let r = self.get(path).await;
        (r.status(), r.text().await.unwrap())
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.cookies.lock().unwrap().insert(name.to_string(), value.to_string());
    }

    /// Starts a sign-in at `/ui/login` and returns the identity provider's authorize URL.
    pub async fn start_sign_in(&self, query: &str) -> String {
        let r = self.get(&format!("/ui/login{query}")).await;
        assert_eq!(r.status(), StatusCode::FOUND, "{}", r.text().await.unwrap_or_default());
        location(&r)
    }

    /// At the identity provider's page for `authorize`, presses `user`'s button; returns the
    /// redirect back to the console (`/ui/callback?code&state`).
    pub async fn press_user(&self, authorize: &str, user: &str) -> String {
        let page = self.get(authorize).await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(html.contains(&format!("value=\"{user}\"")), "no button for {user}: {html}");
        let url = reqwest::Url::parse(authorize).unwrap();
        let mut form: Vec<(String, String)> =
            url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        form.push(("user".into(), user.into()));
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let r = self.post(authorize, &form).await;
        assert_eq!(r.status(), StatusCode::FOUND, "{}", r.text().await.unwrap_or_default());
        location(&r)
    }

    /// Signs in as `user` and lands on `return_to`; returns the callback's answer.
    pub async fn sign_in(&self, user: &str, return_to: &str) -> Response {
        let authorize = self.start_sign_in(&format!("?return_to={return_to}")).await;
        let callback = self.press_user(&authorize, user).await;
        self.get(&callback).await
    }

    /// Signs in as `user`, checking it worked.
    pub async fn signed_in(app: &TestApp, user: &str) -> Self {
        let p = Self::new(app);
        let r = p.sign_in(user, "/ui/").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap_or_default());
        assert_eq!(location(&r), "/ui/");
        p
    }

    /// The CSRF token in the forms of `path`.
    pub async fn csrf(&self, path: &str) -> String {
        let (_, html) = self.page(path).await;
        csrf_in(&html).unwrap_or_else(|| panic!("no csrf token on {path}: {html}"))
    }
}

pub fn location(r: &Response) -> String {
    r.headers().get(header::LOCATION).expect("a Location header").to_str().unwrap().to_string()
}

/// The value of the first `name="csrf"` hidden input.
pub fn csrf_in(html: &str) -> Option<String> {
    let at = html.find(r#"name="csrf" value=""#)?;
    let rest = &html[at + r#"name="csrf" value=""#.len()..];
    Some(rest[..rest.find('"')?].to_string())
}
