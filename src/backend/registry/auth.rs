//! Registry authentication: the `WWW-Authenticate` challenge a registry answers with, the bearer token a token
//! service hands out for one repository scope, and the credentials of a Docker config file.
//!
//! Credentials come only from the Docker config file's `auths` (`auth` as base64 `user:password`, or `username`
//! and `password`), never from Secrets Manager (mcpfleet never reads a secret's value). Credential helpers
//! (`credsStore`, `credHelpers`) are programs mcpfleet does not run; a registry that needs credentials only a
//! helper holds gets an error saying so. Passwords never appear in `Debug` output, logs or messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use crate::spec::{DOCKER_HUB, is_docker_hub};

/// How a registry asks to be authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Distribution token auth: a bearer token from the token service at `realm`, for `service`.
    Bearer { realm: String, service: Option<String> },
    /// HTTP Basic with the registry's own credentials.
    Basic,
}

/// The challenge among a response's `WWW-Authenticate` values: the first Bearer one, else Basic; `None` when
/// there is neither (or the header does not parse).
pub fn parse_challenge<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
    let mut basic = false;
    for value in values {
        let Ok(challenges) = http_auth::parse_challenges(value) else { continue };
        for c in challenges {
            let param =
                |name: &str| c.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_unescaped());
            if c.scheme.eq_ignore_ascii_case("bearer") {
                if let Some(realm) = param("realm").filter(|r| !r.is_empty()) {
                    return Some(Challenge::Bearer { realm, service: param("service") });
                }
            } else if c.scheme.eq_ignore_ascii_case("basic") {
                basic = true;
            }
        }
    }
    basic.then_some(Challenge::Basic)
}

/// A bearer token and how long it may be used.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub value: String,
    pub lifetime: Duration,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("value", &"<redacted>").field("lifetime", &self.lifetime).finish()
    }
}

/// A token's lifetime when the token service does not say (the distribution spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// The token in a token service's answer (`token`, or OAuth2's `access_token`) and its `expires_in`.
pub fn parse_token(body: &[u8]) -> Result<Token, String> {
    #[derive(Deserialize)]
    struct Answer {
        token: Option<String>,
        access_token: Option<String>,
        expires_in: Option<u64>,
    }
    let a: Answer = serde_json::from_slice(body).map_err(|e| format!("the token service's answer is not JSON: {e}"))?;
    let value =
        a.token.or(a.access_token).filter(|t| !t.is_empty()).ok_or("the token service's answer has no token")?;
    let lifetime = a.expires_in.filter(|s| *s > 0).map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
    Ok(Token { value, lifetime })
}

/// A username and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    password: String,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials { username: username.into(), password: password.into() }
    }

    pub fn password(&self) -> &str {
        &self.password
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

/// What a Docker config file holds for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Credentials in `auths`.
    Credentials(Credentials),
    /// No usable `auths` entry, but a credential helper (`docker-credential-NAME`) is configured for it.
    Helper(String),
    /// An `auths` entry mcpfleet cannot use, and why (an error when the registry asks for credentials; other
    /// registries are not held back by it).
    Unusable(String),
    /// Nothing.
    Nothing,
}

/// The `auths`, `credHelpers` and `credsStore` of a Docker config file.
#[derive(Debug, Clone, Default)]
pub struct DockerConfig {
    /// The file they were read from (or would have been: it may not exist).
    pub path: PathBuf,
    /// Whether the file exists.
    pub exists: bool,
    auths: BTreeMap<String, Stored>,
    helpers: BTreeMap<String, String>,
    store: Option<String>,
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

/// A registry as a Docker config file keys it (`https://index.docker.io/v1/`, `ghcr.io`, `http://host:5000`):
/// the host[:port], lowercased, with Docker Hub's names as `docker.io`.
pub fn config_key(key: &str) -> String {
    let key = key.trim().to_ascii_lowercase();
    let key = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(&key);
    let host = key.split('/').next().unwrap_or_default().to_string();
    if is_docker_hub(&host) { DOCKER_HUB.to_string() } else { host }
}

impl DockerConfig {
    /// Reads the file at `path`; a missing file is an empty config. An unreadable file, or one that is not a
    /// Docker config file, is an error naming it (never quoting a credential).
    pub fn load(path: &Path) -> Result<DockerConfig, String> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(DockerConfig { path: path.to_path_buf(), ..DockerConfig::default() });
            }
            Err(e) => return Err(format!("cannot read the Docker config file {}: {e}", path.display())),
        };
        DockerConfig::parse(path, &text)
    }

    /// Parses a Docker config file's text (`path` names it in messages). An entry that cannot be used is kept as
    /// [`Stored::Unusable`], reported only if its registry asks for credentials.
    pub fn parse(path: &Path, text: &[u8]) -> Result<DockerConfig, String> {
        let shown = path.display();
        let file: ConfigFile = serde_json::from_slice(text)
            .map_err(|e| format!("{shown}: not a Docker config file (line {}, column {})", e.line(), e.column()))?;
        let mut auths = BTreeMap::new();
        for (key, entry) in file.auths {
            let stored = match (&entry.auth, &entry.username, &entry.password) {
                (Some(auth), _, _) if !auth.is_empty() => match decode_auth(auth) {
                    Some(c) => Stored::Credentials(c),
                    None => Stored::Unusable(format!(
                        "{shown}: auths.\"{key}\".auth is not the base64 of `username:password`"
                    )),
                },
                (_, Some(u), Some(p)) if !u.is_empty() => Stored::Credentials(Credentials::new(u, p)),
                _ if entry.identitytoken.is_some() => Stored::Unusable(format!(
                    "{shown}: auths.\"{key}\" holds an identity token, which mcpfleet does not use; write a \
                     username and password (or `auth`) for that registry"
                )),
                // `{}`: written by `docker login` when a credential helper keeps the secret.
                _ => Stored::Nothing,
            };
            auths.insert(config_key(&key), stored);
        }
        Ok(DockerConfig {
            path: path.to_path_buf(),
            exists: true,
            auths,
            helpers: file.cred_helpers.into_iter().map(|(k, v)| (config_key(&k), v)).collect(),
            store: file.creds_store.filter(|s| !s.is_empty()),
        })
    }

    /// What the file holds for the registry `host` (as [`config_key`] writes it).
    pub fn lookup(&self, host: &str) -> Stored {
        match self.auths.get(host) {
            Some(found @ (Stored::Credentials(_) | Stored::Unusable(_))) => found.clone(),
            _ => match self.helpers.get(host).or(self.store.as_ref()) {
                Some(helper) => Stored::Helper(helper.clone()),
                None => Stored::Nothing,
            },
        }
    }
}

/// `auth`: base64 of `username:password`.
fn decode_auth(auth: &str) -> Option<Credentials> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(auth.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    (!user.is_empty()).then(|| Credentials::new(user, password))
}

/// The Docker config file: `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`; `None` without either
/// variable.
pub fn docker_config_path(docker_config: Option<&std::ffi::OsStr>, home: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    match (docker_config.filter(|d| !d.is_empty()), home.filter(|h| !h.is_empty())) {
        (Some(dir), _) => Some(Path::new(dir).join("config.json")),
        (None, Some(home)) => Some(Path::new(home).join(".docker").join("config.json")),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_of_docker_hub_ghcr_and_basic_registries() {
        let hub = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/python:pull""#;
        assert_eq!(
            parse_challenge([hub]),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            })
        );
        assert_eq!(
            parse_challenge([r#"bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull""#]),
            Some(Challenge::Bearer { realm: "https://ghcr.io/token".into(), service: Some("ghcr.io".into()) })
        );
        assert_eq!(parse_challenge([r#"Basic realm="Registry Realm""#]), Some(Challenge::Basic));
        // Bearer wins over Basic wherever it comes.
        let both = [r#"Basic realm="x""#, r#"Bearer realm="https://t/token""#];
        assert_eq!(parse_challenge(both), Some(Challenge::Bearer { realm: "https://t/token".into(), service: None }));
        assert_eq!(parse_challenge([r#"Bearer service="no-realm""#]), None);
        assert_eq!(parse_challenge(["garbage ,,, =="]), None);
        assert_eq!(parse_challenge([]), None);
    }

    #[test]
    fn tokens_and_their_lifetimes() {
        let t = parse_token(br#"{"token":"abc","expires_in":300,"issued_at":"2026-01-01T00:00:00Z"}"#).unwrap();
        assert_eq!((t.value.as_str(), t.lifetime), ("abc", Duration::from_secs(300)));
        let t = parse_token(br#"{"access_token":"xyz"}"#).unwrap();
        assert_eq!((t.value.as_str(), t.lifetime), ("xyz", Duration::from_secs(60)));
        assert!(parse_token(br#"{"token":""}"#).unwrap_err().contains("no token"));
        assert!(parse_token(b"<html>").unwrap_err().contains("not JSON"));
        assert!(!format!("{t:?}").contains("xyz"), "Debug shows no token");
    }

    #[test]
    fn docker_config_auths_in_both_forms_keyed_as_docker_keys_them() {
        let path = Path::new("/home/u/.docker/config.json");
        let text = br#"{
            "auths": {
                "https://index.docker.io/v1/": {"auth": "aHViLXVzZXI6aHViOnBhc3M="},
                "ghcr.io": {"username": "octo", "password": "ghp_x"},
                "http://127.0.0.1:5000": {"auth": "bGFiOnNlY3JldA=="},
                "quay.io": {}
            },
            "credHelpers": {"123456789012.dkr.ecr.us-east-1.amazonaws.com": "ecr-login"},
            "psFormat": "table"
        }"#;
        let c = DockerConfig::parse(path, text).unwrap();
        assert_eq!(c.lookup("docker.io"), Stored::Credentials(Credentials::new("hub-user", "hub:pass")));
        assert_eq!(c.lookup("ghcr.io"), Stored::Credentials(Credentials::new("octo", "ghp_x")));
        assert_eq!(c.lookup("127.0.0.1:5000"), Stored::Credentials(Credentials::new("lab", "secret")));
        assert_eq!(c.lookup("quay.io"), Stored::Nothing);
        assert_eq!(c.lookup("123456789012.dkr.ecr.us-east-1.amazonaws.com"), Stored::Helper("ecr-login".into()));
        assert!(!format!("{c:?}").contains("ghp_x"), "Debug shows no password");

        let with_store = DockerConfig::parse(path, br#"{"auths": {"ghcr.io": {}}, "credsStore": "desktop"}"#).unwrap();
        assert_eq!(with_store.lookup("ghcr.io"), Stored::Helper("desktop".into()));
        assert_eq!(with_store.lookup("quay.io"), Stored::Helper("desktop".into()));
    }

    #[test]
    fn a_broken_docker_config_or_entry_is_an_error_that_quotes_no_secret() {
        let path = Path::new("/c/config.json");
        let unusable = |text: &[u8], host: &str| match DockerConfig::parse(path, text).unwrap().lookup(host) {
            Stored::Unusable(why) => why,
            other => panic!("{other:?}"),
        };
        let text =
            br#"{"auths": {"ghcr.io": {"auth": "bm90LWEtcGFpcg=="}, "quay.io": {"username": "u", "password": "p"}}}"#;
        assert_eq!(
            unusable(text, "ghcr.io"),
            "/c/config.json: auths.\"ghcr.io\".auth is not the base64 of `username:password`"
        );
        let other = DockerConfig::parse(path, text).unwrap().lookup("quay.io");
        assert_eq!(other, Stored::Credentials(Credentials::new("u", "p")), "other registries are not held back");
        assert!(unusable(br#"{"auths": {"ghcr.io": {"auth": "%%%"}}}"#, "ghcr.io").contains("not the base64"));
        let why = unusable(br#"{"auths": {"x.io": {"identitytoken": "tok-123"}}}"#, "x.io");
        assert!(why.contains("identity token") && !why.contains("tok-123"), "{why}");
        let err = DockerConfig::parse(path, b"{\"auths\": [").unwrap_err();
        assert!(err.starts_with("/c/config.json: not a Docker config file"), "{err}");
        let missing = DockerConfig::load(Path::new("/nonexistent/dir/config.json")).unwrap();
        assert!(!missing.exists);
        assert_eq!(missing.lookup("ghcr.io"), Stored::Nothing);
    }

    #[test]
    fn the_config_file_is_found_as_docker_finds_it() {
        use std::ffi::OsStr;
        let (dc, home) = (Some(OsStr::new("/etc/dc")), Some(OsStr::new("/home/u")));
        assert_eq!(docker_config_path(dc, home), Some(PathBuf::from("/etc/dc/config.json")));
        assert_eq!(docker_config_path(None, home), Some(PathBuf::from("/home/u/.docker/config.json")));
        assert_eq!(docker_config_path(Some(OsStr::new("")), home), Some(PathBuf::from("/home/u/.docker/config.json")));
        assert_eq!(docker_config_path(None, None), None);
        assert_eq!(config_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(config_key("HTTP://Registry.Example.com:5000/v2/"), "registry.example.com:5000");
    }
}
