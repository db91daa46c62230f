//! The [`Images`] port over the OCI distribution API, for every image outside Amazon ECR: Docker Hub (short
//! names and `library/` normalised in `spec::image`), ghcr.io, public.ecr.aws, Quay, self-hosted registries.
//! Both backends, `aws` and `sim`, resolve such images here (`backend::route` sends each repository to ECR or
//! to this client); HTTP types stay in `http`.
//!
//! # Requests per resolution
//!
//! A tag: `HEAD /v2/<name>/manifests/<tag>` (Accept: OCI index, Docker manifest list, OCI and Docker manifests)
//! gives the digest in `Docker-Content-Digest` without counting as a pull on Docker Hub. Its content is immutable,
//! so when this process already read that digest (a controller's later passes) nothing more is asked. Otherwise
//! `GET …/manifests/<digest>` reads it (its sha256 checked against the digest): an index's platforms decide the
//! architecture, and a single-platform manifest costs one more small `GET /v2/<name>/blobs/<config>` for the
//! platform its config records. A registry that omits `Docker-Content-Digest` is asked with `GET` by tag and
//! the digest is the sha256 of the exact bytes served. A digest: `GET` by digest (or a `HEAD` when already
//! read). A failed `HEAD` has no body, so one `GET` of the same reference reads the registry's reason.
//!
//! A stdio service without `command` runs its image's `Entrypoint` + `Cmd` ([`Images::image_command`]): a
//! single manifest's config was already read for its platform, so that costs nothing more; an index costs a
//! `GET` of the manifest it lists for the chosen platform and a `GET` of that manifest's config blob, both kept
//! with the digests already read. No other service asks for it.
//!
//! # Authentication
//!
//! A registry that answers 401 names its scheme in `WWW-Authenticate`. Bearer (distribution token auth, as
//! Docker Hub, ghcr.io, public.ecr.aws, Quay use): one token request to the realm for the scope
//! `repository:<name>:pull`, anonymous or with the Docker config file's credentials for that registry (see
//! `auth`), the token cached per registry and scope until shortly before it expires; the challenge is
//! remembered per registry, so the next repository asks for its token without a 401 first. Basic: the
//! credentials are sent with the request. 401, 403 and 404 are reported per image with the registry's words;
//! 429 and 5xx are retried (see `http`); at most [`http::IN_FLIGHT`] requests are in flight per registry.
//!
//! Plain HTTP is used only for the registries named with `--insecure-registry` (local and test registries);
//! every other registry is spoken to over HTTPS, and its token realm must be HTTPS too.

mod auth;
mod http;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use sha2::{Digest as _, Sha256};

pub use auth::{Challenge, Credentials, DockerConfig, Stored, config_key, docker_config_path, parse_challenge};
pub use http::{IN_FLIGHT, RETRY_AFTER_LIMIT};

use self::auth::Token;
use self::http::{Answer, Authorization, Http, MAX_BODY, MAX_CONFIG, Method, Request};
use super::manifest::{ManifestKind, classify, command_of_config, index_manifests, platform_of_config};
use super::op::Counts;
use super::sim::CallStats;
use super::{BackendError, ImageCommand, ImageInfo, ImageSelector, Images, Op, lock};
use crate::spec::{ImageSource, RegistryRepo, source_of_name};

/// Where the client looks for credentials and which registries it speaks plain HTTP to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Registries (`HOST:PORT` as references write them, lowercased) spoken to over plain HTTP.
    pub insecure: BTreeSet<String>,
    /// The Docker config file credentials come from; `None`: no credentials.
    pub docker_config: Option<PathBuf>,
}

impl RegistryConfig {
    /// `insecure` registries, and the Docker config file the environment names (`DOCKER_CONFIG`, else
    /// `~/.docker/config.json`).
    pub fn from_env(insecure: impl IntoIterator<Item = String>) -> RegistryConfig {
        RegistryConfig {
            insecure: insecure.into_iter().map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect(),
            docker_config: docker_config_path(
                std::env::var_os("DOCKER_CONFIG").as_deref(),
                std::env::var_os("HOME").as_deref(),
            ),
        }
    }
}

/// Checks an `--insecure-registry` value: a registry host, with its port when it has one, as image references
/// write it (no scheme, no path).
pub fn parse_insecure_registry(s: &str) -> Result<String, String> {
    let host = s.trim();
    let ok = !host.is_empty()
        && !crate::spec::is_docker_hub(host)
        && !host.contains("://")
        && !host.contains('/')
        && matches!(source_of_name(&format!("{host}/x")), Ok(ImageSource::Registry(r)) if r.host == host.to_ascii_lowercase());
    if ok {
        Ok(host.to_ascii_lowercase())
    } else {
        Err(format!("`{s}` is not a registry HOST:PORT as image references write it (e.g. 127.0.0.1:5000)"))
    }
}

/// Requests sent to registries, by operation; those answered 429; and the retries made.
#[derive(Debug, Default)]
pub struct RegistryStats {
    pub calls: Counts,
    pub throttled: Counts,
    pub retries: Counts,
}

/// Digests whose platforms this process read, per repository: at most this many are kept.
const KNOWN_DIGESTS: usize = 4096;

/// What was read of a digest: its platforms, and where its `Entrypoint` and `Cmd` are.
#[derive(Clone)]
struct Known {
    platforms: Vec<String>,
    content: Content,
}

#[derive(Clone)]
enum Content {
    /// An index: the manifest it lists for each platform.
    Index(BTreeMap<String, String>),
    /// A single manifest: what its config says (or why it cannot be read, for a stdio service that asks).
    Image(Result<ImageCommand, String>),
}

/// A token, when it was obtained and when to stop using it.
struct CachedToken {
    token: Token,
    fetched_at: Instant,
    renew_at: Instant,
}

/// What the client keeps per registry.
struct Host {
    permits: tokio::sync::Semaphore,
    challenge: Mutex<Option<Challenge>>,
    /// One slot per repository scope; a slot's lock is held while its token is fetched, so concurrent lookups of
    /// one repository ask the token service once.
    tokens: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<Option<CachedToken>>>>>,
}

/// The distribution-API client.
pub struct Registries {
    http: Http,
    config: RegistryConfig,
    hosts: Mutex<BTreeMap<String, Arc<Host>>>,
    docker: OnceLock<Result<DockerConfig, String>>,
    /// `(registry/repository, digest)` → what was read of it: a digest's content never changes.
    known: Mutex<BTreeMap<(String, String), Known>>,
    stats: RegistryStats,
}

impl Registries {
    pub fn new(config: RegistryConfig) -> Result<Registries, BackendError> {
        Ok(Registries {
            http: Http::new()?,
            config,
            hosts: Mutex::new(BTreeMap::new()),
            docker: OnceLock::new(),
            known: Mutex::new(BTreeMap::new()),
            stats: RegistryStats::default(),
        })
    }

    /// Requests sent so far (each attempt of a retried one counts), and those answered 429.
    pub fn stats(&self) -> CallStats {
        CallStats { calls: self.stats.calls.snapshot(), throttled: self.stats.throttled.snapshot() }
    }

    /// Retries made so far, by operation.
    pub fn retries(&self) -> BTreeMap<Op, u64> {
        self.stats.retries.snapshot()
    }

    fn host(&self, name: &str) -> Arc<Host> {
        lock(&self.hosts)
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Host {
                    permits: tokio::sync::Semaphore::new(IN_FLIGHT),
                    challenge: Mutex::new(None),
                    tokens: Mutex::new(BTreeMap::new()),
                })
            })
            .clone()
    }

    /// The Docker config file, read once, when credentials are first needed.
    fn docker(&self) -> Result<&DockerConfig, String> {
        let loaded = self.docker.get_or_init(|| match &self.config.docker_config {
            Some(path) => DockerConfig::load(path),
            None => Ok(DockerConfig::default()),
        });
        loaded.as_ref().map_err(Clone::clone)
    }

    /// What the Docker config file holds for `registry`; an entry it cannot use is an error here, where the
    /// registry asks for credentials.
    fn stored(&self, op: Op, registry: &str) -> Result<Stored, BackendError> {
        match self.docker().map(|d| d.lookup(registry)) {
            Ok(Stored::Unusable(message)) | Err(message) => Err(BackendError::Invalid { operation: op, message }),
            Ok(stored) => Ok(stored),
        }
    }

    fn known(&self, repo: &RegistryRepo, digest: &str) -> Option<Known> {
        lock(&self.known).get(&(repo.to_string(), digest.to_string())).cloned()
    }

    fn remember(&self, repo: &RegistryRepo, digest: &str, read: Known) {
        let mut known = lock(&self.known);
        if known.len() >= KNOWN_DIGESTS {
            known.clear();
        }
        known.insert((repo.to_string(), digest.to_string()), read);
    }

    /// One repository's session: its registry's state, its URLs, its pull scope.
    fn session<'a>(&'a self, repo: &'a RegistryRepo) -> Session<'a> {
        let insecure = self.config.insecure.contains(&repo.host);
        Session {
            client: self,
            host: self.host(&repo.host),
            base: format!("{}://{}/v2/{}", if insecure { "http" } else { "https" }, repo.api_host(), repo.repository),
            scope: format!("repository:{}:pull", repo.repository),
            repo,
            insecure,
            started: Instant::now(),
        }
    }
}

/// One repository being resolved: its registry's state, its URLs and its authorization.
struct Session<'a> {
    client: &'a Registries,
    repo: &'a RegistryRepo,
    host: Arc<Host>,
    /// `http(s)://<api host>/v2/<repository>`.
    base: String,
    scope: String,
    insecure: bool,
    /// When this lookup began: a token obtained since is current, and one the registry refuses means no access
    /// (not a stale token to renew).
    started: Instant,
}

/// How a request is authorized, and whether that was obtained during this lookup (a fresh token refused means no
/// access).
struct Authorized {
    auth: Authorization,
    fresh: bool,
    /// Credentials from the Docker config file were used (for the message when they are refused).
    with_credentials: bool,
}

impl Session<'_> {
    fn manifest_url(&self, reference: &str) -> String {
        format!("{}/manifests/{reference}", self.base)
    }

    /// `registry/repository:tag` or `registry/repository@digest`, as messages name an image.
    fn shown(&self, reference: &str) -> String {
        let sep = if reference.starts_with("sha256:") { '@' } else { ':' };
        format!("{}{sep}{reference}", self.repo)
    }

    /// Sends a request with the authorization the registry asks for: what is known of it first, and after a
    /// 401 with a challenge, once more with a token (or Basic credentials) obtained for it.
    async fn request(
        &self,
        op: Op,
        method: Method,
        url: &str,
        limit: usize,
    ) -> Result<(Answer, Authorized), BackendError> {
        let manifest = op != Op::GetBlob;
        let mut authorized = self.authorize(op, None).await?;
        let answer = self.send(Request { op, method, url, manifest, auth: &authorized.auth, limit }).await?;
        if answer.status != 401 || authorized.fresh {
            return Ok((answer, authorized));
        }
        let Some(challenge) = parse_challenge(answer.www_authenticate.iter().map(String::as_str)) else {
            return Ok((answer, authorized));
        };
        *lock(&self.host.challenge) = Some(challenge);
        let refused = match &authorized.auth {
            Authorization::Bearer(t) => Some(t.clone()),
            _ => None,
        };
        let retry = self.authorize(op, refused).await?;
        if matches!(retry.auth, Authorization::None) || retry.auth == authorized.auth {
            return Ok((answer, authorized));
        }
        authorized = retry;
        let answer = self.send(Request { op, method, url, manifest, auth: &authorized.auth, limit }).await?;
        Ok((answer, authorized))
    }

    async fn send(&self, req: Request<'_>) -> Result<Answer, BackendError> {
        self.client.http.send(&req, &self.host.permits, &self.client.stats).await
    }

    /// The authorization the registry's known challenge calls for: a cached or new token, Basic credentials,
    /// or none. `refused` is a token the registry just refused: it is not used again.
    async fn authorize(&self, op: Op, refused: Option<String>) -> Result<Authorized, BackendError> {
        let challenge = lock(&self.host.challenge).clone();
        match challenge {
            None => Ok(Authorized { auth: Authorization::None, fresh: false, with_credentials: false }),
            Some(Challenge::Basic) => match self.client.stored(op, &self.repo.host)? {
                Stored::Credentials(c) => Ok(Authorized {
                    auth: Authorization::Basic { username: c.username.clone(), password: c.password().to_string() },
                    fresh: false,
                    with_credentials: true,
                }),
                _ => Ok(Authorized { auth: Authorization::None, fresh: false, with_credentials: false }),
            },
            Some(Challenge::Bearer { realm, service }) => self.token(&realm, service.as_deref(), refused).await,
        }
    }

    /// A bearer token for this repository's pull scope: the cached one unless it expires soon or was refused,
    /// else one from the token service at `realm`.
    async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        refused: Option<String>,
    ) -> Result<Authorized, BackendError> {
        const OP: Op = Op::RegistryToken;
        let slot = lock(&self.host.tokens).entry(self.scope.clone()).or_default().clone();
        let mut slot = slot.lock().await;
        let stored = self.client.stored(OP, &self.repo.host)?;
        let credentials = match &stored {
            Stored::Credentials(c) => Some(c.clone()),
            _ => None,
        };
        if let Some(cached) = slot.as_ref()
            && cached.renew_at > Instant::now()
            && refused.as_deref() != Some(cached.token.value.as_str())
        {
            return Ok(Authorized {
                auth: Authorization::Bearer(cached.token.value.clone()),
                fresh: cached.fetched_at >= self.started,
                with_credentials: credentials.is_some(),
            });
        }
        let mut url = reqwest_url(realm).map_err(|e| BackendError::Invalid {
            operation: OP,
            message: format!("{}: the registry's token realm `{realm}` is not a URL: {e}", self.repo.host),
        })?;
        if url.scheme() != "https" && !(self.insecure || self.client.config.insecure.contains(&authority(&url))) {
            return Err(BackendError::Invalid {
                operation: OP,
                message: format!(
                    "{}: the registry's token service `{realm}` is not HTTPS (allowed only for a registry given \
                     with --insecure-registry)",
                    self.repo.host
                ),
            });
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = service {
                q.append_pair("service", service);
            }
            q.append_pair("scope", &self.scope);
            if let Some(c) = &credentials {
                q.append_pair("account", &c.username);
            }
        }
        let auth = match &credentials {
            Some(c) => Authorization::Basic { username: c.username.clone(), password: c.password().to_string() },
            None => Authorization::None,
        };
        let req =
            Request { op: OP, method: Method::Get, url: url.as_str(), manifest: false, auth: &auth, limit: MAX_BODY };
        let answer = self.send(req).await?;
        if !answer.ok() || answer.too_large {
            let who = match &credentials {
                Some(c) => {
                    format!("the credentials of `{}` for {} from {}", c.username, self.repo.host, self.config_file())
                }
                None => "anonymous access".to_string(),
            };
            let message = format!("{realm}: the token service refused {who}: {}", answer.message());
            return Err(status_error(OP, answer.status, message));
        }
        let token = auth::parse_token(&answer.body)
            .map_err(|e| BackendError::Invalid { operation: OP, message: format!("{realm}: {e}") })?;
        let value = token.value.clone();
        let fetched_at = Instant::now();
        // Renewed a tenth of its lifetime early, so a token is not sent just as it expires.
        let renew_at = fetched_at + token.lifetime.mul_f64(0.9);
        *slot = Some(CachedToken { token, fetched_at, renew_at });
        Ok(Authorized { auth: Authorization::Bearer(value), fresh: true, with_credentials: credentials.is_some() })
    }

    fn config_file(&self) -> String {
        match &self.client.config.docker_config {
            Some(p) => p.display().to_string(),
            None => "no Docker config file (neither DOCKER_CONFIG nor HOME is set)".into(),
        }
    }

    /// Why a request about `reference` failed, in the registry's words, with what to do about credentials.
    fn refusal(&self, op: Op, reference: &str, answer: &Answer, authorized: &Authorized) -> BackendError {
        let mut message = format!("{}: {}", self.shown(reference), answer.message());
        if matches!(answer.status, 401 | 403) {
            let hint = if authorized.with_credentials {
                format!("the credentials for {} in {} were not accepted", self.repo.host, self.config_file())
            } else {
                match self.client.docker().map(|d| d.lookup(&self.repo.host)) {
                    Ok(Stored::Helper(helper)) => format!(
                        "the credentials for {host} are kept by the credential helper `docker-credential-{helper}`, \
                         which mcpfleet does not run: add a username and password for {host} to `auths` in {file}",
                        host = self.repo.host,
                        file = self.config_file()
                    ),
                    Ok(Stored::Unusable(why)) => why,
                    Ok(_) => format!(
                        "no credentials for {} in {} (the repository may be private, or not exist)",
                        self.repo.host,
                        self.config_file()
                    ),
                    Err(e) => e,
                }
            };
            message = format!("{message}; {hint}");
        }
        status_error(op, answer.status, message)
    }

    /// The answer of a failed manifest request: absent (`Ok(None)`) for a tag or digest the repository lacks, an
    /// error for everything else.
    fn missing_or_refused(
        &self,
        op: Op,
        reference: &str,
        answer: &Answer,
        authorized: &Authorized,
    ) -> Result<Option<ImageInfo>, BackendError> {
        if answer.status == 404 {
            if answer.error_codes().iter().any(|c| c == "NAME_UNKNOWN") {
                return Err(BackendError::NotFound {
                    operation: op,
                    message: format!("{}: {}", self.repo, answer.message()),
                });
            }
            return Ok(None);
        }
        Err(self.refusal(op, reference, answer, authorized))
    }

    /// Resolves one tag or digest.
    async fn resolve(&self, selector: &ImageSelector) -> Result<Option<ImageInfo>, BackendError> {
        match selector {
            ImageSelector::Tag(tag) => {
                let (head, authorized) =
                    self.request(Op::HeadManifest, Method::Head, &self.manifest_url(tag), 0).await?;
                if head.status == 429 || head.status >= 500 {
                    // Still refused after the retries: a GET would only be refused the same way.
                    return Err(self.refusal(Op::HeadManifest, tag, &head, &authorized));
                }
                let digest = head.digest.as_ref().filter(|d| head.ok() && is_sha256(d)).cloned();
                match digest {
                    Some(digest) => match self.client.known(self.repo, &digest) {
                        Some(known) => Ok(Some(ImageInfo { digest, platforms: known.platforms })),
                        None => self.read_manifest(&digest, Some(&digest)).await,
                    },
                    // No digest, or a failed HEAD (no body to say why): the GET answers both.
                    None => self.read_manifest(tag, None).await,
                }
            }
            ImageSelector::Digest(digest) => {
                if let Some(known) = self.client.known(self.repo, digest) {
                    let (head, _) = self.request(Op::HeadManifest, Method::Head, &self.manifest_url(digest), 0).await?;
                    if head.ok() {
                        return Ok(Some(ImageInfo { digest: digest.clone(), platforms: known.platforms }));
                    }
                }
                self.read_manifest(digest, Some(digest)).await
            }
        }
    }

    /// GETs the manifest `reference` (expected to hash to `expected` when that is known) and reads its platforms.
    async fn read_manifest(&self, reference: &str, expected: Option<&str>) -> Result<Option<ImageInfo>, BackendError> {
        const OP: Op = Op::GetManifest;
        let (answer, authorized) = self.request(OP, Method::Get, &self.manifest_url(reference), MAX_BODY).await?;
        if !answer.ok() {
            return self.missing_or_refused(OP, reference, &answer, &authorized);
        }
        let (digest, kind) = self.checked_manifest(reference, expected, &answer)?;
        let known = match kind {
            ManifestKind::Index { platforms } => {
                Known { platforms, content: Content::Index(index_manifests(&answer.body)) }
            }
            ManifestKind::Image { config_digest } => {
                let (platform, command) = self.read_config(reference, &config_digest).await?;
                Known { platforms: vec![platform], content: Content::Image(command) }
            }
        };
        self.client.remember(self.repo, &digest, known.clone());
        Ok(Some(ImageInfo { digest, platforms: known.platforms }))
    }

    /// A manifest read with `GET`: its digest (the sha256 of its bytes, which must be `expected` or the
    /// registry's claim) and what kind it is.
    fn checked_manifest(
        &self,
        reference: &str,
        expected: Option<&str>,
        answer: &Answer,
    ) -> Result<(String, ManifestKind), BackendError> {
        const OP: Op = Op::GetManifest;
        let invalid = |what: String| BackendError::Invalid {
            operation: OP,
            message: format!("{}: {what}", self.shown(reference)),
        };
        if answer.too_large {
            return Err(invalid(format!("the manifest is larger than {} MiB", MAX_BODY >> 20)));
        }
        let digest = sha256_digest(&answer.body);
        let claimed = expected.or(answer.digest.as_deref().filter(|d| is_sha256(d)));
        if let Some(claimed) = claimed
            && claimed != digest
        {
            return Err(invalid(format!("the registry served a manifest whose sha256 is {digest}, not {claimed}")));
        }
        let kind = classify(answer.content_type.as_deref(), &answer.body).map_err(invalid)?;
        Ok((digest, kind))
    }

    /// The platform a single manifest's config blob records, and its `Entrypoint` and `Cmd` (or why they cannot
    /// be read: that matters only to a stdio service without `command`, so it fails nothing here).
    async fn read_config(
        &self,
        reference: &str,
        config: &str,
    ) -> Result<(String, Result<ImageCommand, String>), BackendError> {
        const OP: Op = Op::GetBlob;
        let invalid = |what: String| BackendError::Invalid {
            operation: OP,
            message: format!("{}: config blob {config}: {what}", self.shown(reference)),
        };
        if !is_sha256(config) {
            return Err(invalid("not a sha256 digest".into()));
        }
        let url = format!("{}/blobs/{config}", self.base);
        let (answer, authorized) = self.request(OP, Method::Get, &url, MAX_CONFIG).await?;
        if answer.status == 404 {
            return Err(invalid(format!("missing from the registry ({})", answer.message())));
        }
        if !answer.ok() {
            return Err(self.refusal(OP, reference, &answer, &authorized));
        }
        if answer.too_large {
            return Err(invalid(format!("larger than {} MiB", MAX_CONFIG >> 20)));
        }
        if sha256_digest(&answer.body) != config {
            return Err(invalid("the registry served other content".into()));
        }
        let platform = platform_of_config(&answer.body).map_err(invalid)?;
        let command = command_of_config(&answer.body).map_err(|e| format!("config blob {config}: {e}"));
        Ok((platform, command))
    }

    /// The `Entrypoint` and `Cmd` of `digest` on `platform`: a single manifest's were read with its platform; for
    /// an index, the manifest it lists for the platform is read (with its config) and kept like any other, so a
    /// later pass asks nothing.
    async fn image_command(&self, digest: &str, platform: &str) -> Result<ImageCommand, BackendError> {
        let invalid = |operation, reference: &str, what: String| BackendError::Invalid {
            operation,
            message: format!("{}: {what}", self.shown(reference)),
        };
        let mut reference = digest.to_string();
        // The digest, then at most the manifest an index lists.
        for _ in 0..2 {
            let known = match self.client.known(self.repo, &reference) {
                Some(known) => known,
                // Forgotten since lookup, or listed by an index: read it.
                None => {
                    self.read_manifest(&reference, Some(&reference)).await?;
                    self.client.known(self.repo, &reference).ok_or_else(|| BackendError::NotFound {
                        operation: Op::GetManifest,
                        message: format!("{}: not found", self.shown(&reference)),
                    })?
                }
            };
            match known.content {
                Content::Image(command) if known.platforms.iter().any(|p| p == platform) => {
                    return command.map_err(|e| invalid(Op::GetBlob, &reference, e));
                }
                Content::Image(_) => {
                    let what = format!("the image is for {}, not {platform}", known.platforms.join(", "));
                    return Err(invalid(Op::GetBlob, &reference, what));
                }
                Content::Index(manifests) => match manifests.get(platform) {
                    Some(manifest) => reference = manifest.clone(),
                    None => {
                        let what = format!("the index lists no manifest for {platform}");
                        return Err(invalid(Op::GetManifest, &reference, what));
                    }
                },
            }
        }
        Err(invalid(Op::GetManifest, digest, "an index inside an index is not an image".into()))
    }
}

/// The port error of a final HTTP status: 429 throttled, 5xx unavailable, anything else refused.
fn status_error(operation: Op, status: u16, message: String) -> BackendError {
    match status {
        429 => BackendError::Throttled { operation, message },
        500..=599 => BackendError::Unavailable { operation, message },
        _ => BackendError::Invalid { operation, message },
    }
}

fn reqwest_url(s: &str) -> Result<reqwest::Url, String> {
    reqwest::Url::parse(s).map_err(|e| e.to_string())
}

/// `host[:port]` of a URL, as `--insecure-registry` names it.
fn authority(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => String::new(),
    }
}

/// Whether `d` is `sha256:` and 64 lowercase hex digits (the only digests mcpfleet pins to).
fn is_sha256(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// `sha256:<hex>` of exactly these bytes.
fn sha256_digest(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[async_trait]
impl Images for Registries {
    /// Resolves the tags and digests of one repository, each on its own (at most [`IN_FLIGHT`] requests to the
    /// registry at once). The first failure, in the order asked, fails the lookup.
    async fn lookup(
        &self,
        repository: &str,
        selectors: &[ImageSelector],
    ) -> Result<BTreeMap<ImageSelector, ImageInfo>, BackendError> {
        let repo = registry_repo(repository)?;
        let session = self.session(&repo);
        let answers = futures::future::join_all(selectors.iter().map(|s| session.resolve(s))).await;
        let mut found = BTreeMap::new();
        for (selector, answer) in selectors.iter().zip(answers) {
            if let Some(info) = answer? {
                found.insert(selector.clone(), info);
            }
        }
        Ok(found)
    }

    async fn image_command(&self, repo: &str, digest: &str, platform: &str) -> Result<ImageCommand, BackendError> {
        let repo = registry_repo(repo)?;
        self.session(&repo).image_command(digest, platform).await
    }
}

/// The registry repository `repository` names; an ECR one is asked through ECR's own API.
fn registry_repo(repository: &str) -> Result<RegistryRepo, BackendError> {
    match source_of_name(repository) {
        Ok(ImageSource::Registry(r)) => Ok(r),
        Ok(ImageSource::Ecr(_)) => Err(BackendError::Invalid {
            operation: Op::HeadManifest,
            message: format!("{repository} is in Amazon ECR, which is asked through its own API"),
        }),
        Err(message) => Err(BackendError::Invalid { operation: Op::HeadManifest, message }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_registries_are_hosts_as_references_write_them() {
        assert_eq!(parse_insecure_registry("127.0.0.1:5000").unwrap(), "127.0.0.1:5000");
        assert_eq!(parse_insecure_registry("Registry.Local:5000").unwrap(), "registry.local:5000");
        assert_eq!(parse_insecure_registry("localhost:5000").unwrap(), "localhost:5000");
        for bad in ["", "http://127.0.0.1:5000", "127.0.0.1:5000/v2", "bad_host:1", "docker.io"] {
            assert!(parse_insecure_registry(bad).is_err(), "{bad}");
        }
        let c = RegistryConfig::from_env([" 127.0.0.1:5000 ".to_string(), String::new()]);
        assert_eq!(c.insecure.into_iter().collect::<Vec<_>>(), ["127.0.0.1:5000"]);
    }

    #[test]
    fn digests_are_sha256_of_the_exact_bytes() {
        assert_eq!(sha256_digest(b""), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert!(is_sha256(&sha256_digest(b"x")));
        assert!(!is_sha256("sha512:abcd"));
        assert!(!is_sha256(&sha256_digest(b"x").to_uppercase().replace("SHA256", "sha256")));
    }
}
