//! The client's stored sign-ins: `$XDG_CONFIG_HOME/dualkey/credentials.json` (default
//! `~/.config/dualkey/`), a JSON object keyed by server URL.
//!
//! The file holds bearer and refresh tokens, so nobody else may ever read it: the directory is
//! created 0700 and every version of the file is written to a new file opened 0600 in the same
//! directory and renamed over the old one. There is no moment at which the tokens sit in a file
//! with wider permissions (no chmod after the fact), and a crash never leaves half a file.

use super::ClientError;
use crate::clock::Timestamp;
use crate::secret::Secret;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

const FILE_NAME: &str = "credentials.json";
const LOCK_NAME: &str = ".credentials.lock";

/// Every stored sign-in, by server URL.
#[derive(Serialize, Deserialize, Default, Debug)]
#[serde(transparent)]
pub(crate) struct Credentials(BTreeMap<String, Login>);

/// One server's sign-in: what later commands send, and what they need to refresh it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub(crate) struct Login {
    pub access_token: Token,
    pub refresh_token: Option<Token>,
    /// When the access token stops working, by this machine's clock.
    #[serde(with = "rfc3339")]
    pub expires_at: Timestamp,
    pub token_endpoint: String,
    pub issuer: String,
    pub client_id: String,
    pub scope: String,
    #[serde(with = "rfc3339")]
    pub logged_in_at: Timestamp,
}

/// A token: written to the file, redacted everywhere else (`Debug`, `Display`).
#[derive(Clone, PartialEq)]
pub(crate) struct Token(Secret);

impl Token {
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Self(Secret::new(value))
    }

    /// The plain value, for the `Authorization` header and the token endpoint only.
    pub(crate) fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token([redacted])")
    }
}

impl Serialize for Token {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.expose())
    }
}

impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Token::new)
    }
}

mod rfc3339 {
    use crate::clock::Timestamp;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        t.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(d)?;
        super::super::parse_time(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not an RFC 3339 time")))
    }
}

impl Credentials {
    pub(crate) fn get(&self, server: &str) -> Option<&Login> {
        self.0.get(server)
    }

    pub(crate) fn insert(&mut self, server: &str, login: Login) {
        self.0.insert(server.to_string(), login);
    }

    /// Removes the server's sign-in; false when there was none.
    pub(crate) fn remove(&mut self, server: &str) -> bool {
        self.0.remove(server).is_some()
    }

    /// The server signed in to most recently: where commands go when no server is named.
    pub(crate) fn latest_server(&self) -> Option<&str> {
        self.0.iter().max_by_key(|(_, l)| l.logged_in_at).map(|(s, _)| s.as_str())
    }
}

/// Where the credentials file lives, and reading and replacing it.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store in `dir` (which holds `credentials.json`).
    pub(crate) fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The store named by the environment: `$XDG_CONFIG_HOME/dualkey`, or `$HOME/.config/dualkey`
    /// when that is unset, empty or relative (relative paths are invalid per the XDG spec).
    pub(crate) fn from_env(var: impl Fn(&str) -> Option<OsString>) -> Result<Self, ClientError> {
        let absolute = |name: &str| var(name).map(PathBuf::from).filter(|p| p.is_absolute());
        let config = match absolute("XDG_CONFIG_HOME") {
            Some(dir) => dir,
            None => absolute("HOME").map(|home| home.join(".config")).ok_or_else(|| {
                ClientError::Usage("cannot find where to keep credentials: set XDG_CONFIG_HOME or HOME".into())
            })?,
        };
        Ok(Self::in_dir(config.join("dualkey")))
    }

    /// The credentials file's path.
    pub(crate) fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Every stored sign-in; none when the file does not exist yet.
    pub(crate) fn load(&self) -> Result<Credentials, ClientError> {
        let path = self.path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Credentials::default()),
            Err(e) => return Err(ClientError::other(format!("cannot read {}: {e}", path.display()))),
        };
        // serde_json's message names a line and column, never the values around it.
        serde_json::from_str(&text).map_err(|e| {
            ClientError::other(format!(
                "{} is not a credentials file ({e}); remove it and log in again",
                path.display()
            ))
        })
    }

    /// Reads the file, lets `change` edit it, and writes it back, holding the lock throughout
    /// so that another dualkey command's change made meanwhile is not lost.
    pub(crate) fn update<T>(&self, change: impl FnOnce(&mut Credentials) -> T) -> Result<T, ClientError> {
        let locked = self.lock()?;
        let mut creds = locked.load()?;
        let out = change(&mut creds);
        locked.save(&creds)?;
        Ok(out)
    }

    /// Takes the store's lock (an exclusive lock on `.credentials.lock` beside the file), for a
    /// change that spans more than a read and a write, such as a refresh: refresh tokens are
    /// single use, so two commands must never spend the same one.
    pub(crate) fn lock(&self) -> Result<Locked<'_>, ClientError> {
        self.make_dir()?;
        let path = self.dir.join(LOCK_NAME);
        let file = private(std::fs::OpenOptions::new().create(true).truncate(false).write(true))
            .open(&path)
            .and_then(|f| f.lock().map(|()| f))
            .map_err(|e| ClientError::other(format!("cannot lock {}: {e}", path.display())))?;
        Ok(Locked { store: self, _file: file })
    }

    fn make_dir(&self) -> Result<(), ClientError> {
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .recursive(true)
            .create(&self.dir)
            .map_err(|e| ClientError::other(format!("cannot create {}: {e}", self.dir.display())))
    }
}

/// The store while this command holds its lock; dropping it lets the next command in.
pub(crate) struct Locked<'a> {
    store: &'a Store,
    _file: std::fs::File,
}

impl Locked<'_> {
    /// Every stored sign-in, as of now.
    pub(crate) fn load(&self) -> Result<Credentials, ClientError> {
        self.store.load()
    }

    /// Replaces the file with `creds`: a new 0600 file in the same directory, renamed over it.
    pub(crate) fn save(&self, creds: &Credentials) -> Result<(), ClientError> {
        let path = self.store.path();
        let json = serde_json::to_vec_pretty(creds).map_err(|e| ClientError::other(e.to_string()))?;
        let tmp = self.store.dir.join(format!(".{FILE_NAME}.{:016x}.tmp", rand::random::<u64>()));
        let written = (|| {
            let mut file = private(std::fs::OpenOptions::new().write(true).create_new(true)).open(&tmp)?;
            file.write_all(&json)?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        written.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            ClientError::other(format!("cannot write {}: {e}", path.display()))
        })
    }
}

/// Opens only for this user: mode 0600 on Unix, set when the file is created. (Elsewhere the
/// file inherits the ACL of the user's own config directory.)
fn private(options: &mut std::fs::OpenOptions) -> &mut std::fs::OpenOptions {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(options, 0o600);
    options
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn login(token: &str, at_ms: i64) -> Login {
        Login {
            access_token: Token::new(token),
            refresh_token: Some(Token::new(format!("refresh-{token}"))),
            expires_at: Timestamp::from_unix_ms(at_ms + 3_600_000),
            token_endpoint: "https://login.example/tenant/oauth2/v2.0/token".into(),
            issuer: "https://login.example/tenant/v2.0".into(),
            client_id: "dualkey-cli".into(),
            scope: "api://dualkey/.default offline_access".into(),
            logged_in_at: Timestamp::from_unix_ms(at_ms),
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_saved_login_reads_back_the_same_in_a_0600_file_in_a_0700_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::in_dir(tmp.path().join("config/dualkey"));
        store.update(|c| c.insert("https://a.example", login("tok-a", 1_700_000_000_000))).unwrap();
        let back = store.load().unwrap();
        assert_eq!(back.get("https://a.example"), Some(&login("tok-a", 1_700_000_000_000)));
        assert_eq!(mode(&store.path()), 0o600);
        assert_eq!(mode(&tmp.path().join("config/dualkey")), 0o700);
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(store.path()).unwrap()).unwrap();
        assert_eq!(json["https://a.example"]["refresh_token"], "refresh-tok-a");
        assert_eq!(json["https://a.example"]["expires_at"], "2023-11-14T23:13:20.000Z");
        let mut names: Vec<_> = std::fs::read_dir(&store.dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, [".credentials.lock", "credentials.json"], "no temporary file is left behind");
        assert_eq!(mode(&store.dir.join(".credentials.lock")), 0o600);
    }

    #[test]
    fn each_server_keeps_its_own_login_and_logout_removes_only_its_own() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::in_dir(tmp.path());
        store.update(|c| c.insert("https://a.example", login("tok-a", 1_000))).unwrap();
        store.update(|c| c.insert("https://b.example", login("tok-b", 2_000))).unwrap();
        assert_eq!(store.load().unwrap().latest_server(), Some("https://b.example"));
        assert!(store.update(|c| c.remove("https://b.example")).unwrap());
        assert!(!store.update(|c| c.remove("https://b.example")).unwrap());
        let left = store.load().unwrap();
        assert_eq!(left.get("https://a.example").unwrap().access_token.expose(), "tok-a");
        assert_eq!(left.latest_server(), Some("https://a.example"));
        assert_eq!(mode(&store.path()), 0o600, "a rewrite keeps the mode");
    }

    #[test]
    fn a_missing_file_is_no_login_and_a_damaged_one_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::in_dir(tmp.path());
        assert!(store.load().unwrap().latest_server().is_none());
        std::fs::write(store.path(), "{\"https://a.example\": {\"access_token\": \"secret-value\"").unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("credentials.json"), "{err}");
        assert!(!err.contains("secret-value"), "{err}");
    }

    #[test]
    fn tokens_never_show_in_debug_output() {
        let text = format!("{:?}", login("tok-a", 0));
        assert!(!text.contains("tok-a"), "{text}");
    }

    #[test]
    fn the_file_lives_under_xdg_config_home_or_else_home_dot_config() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| OsString::from(v))
        };
        let path = |pairs| Store::from_env(env(pairs)).map(|s| s.path());
        assert_eq!(
            path(&[("XDG_CONFIG_HOME", "/x/conf"), ("HOME", "/home/u")]).unwrap(),
            Path::new("/x/conf/dualkey/credentials.json")
        );
        assert_eq!(path(&[("HOME", "/home/u")]).unwrap(), Path::new("/home/u/.config/dualkey/credentials.json"));
        assert_eq!(
            path(&[("XDG_CONFIG_HOME", "relative"), ("HOME", "/home/u")]).unwrap(),
            Path::new("/home/u/.config/dualkey/credentials.json")
        );
        assert!(path(&[]).is_err());
    }
}
