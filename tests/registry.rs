//! Images outside Amazon ECR, resolved through the OCI distribution API against the real CNCF distribution
//! registry (`docker-registry`, started by each test on a loopback port; see `common::registry`): every kind of
//! manifest, unknown tags, token auth with and without a Docker config, a registry that omits
//! `Docker-Content-Digest`, one that answers 429 first, the limit on requests in flight, the binary planning
//! and applying a fleet that mixes ECR and registry images on the sim, and stdio services without `command`
//! running their image's own `Entrypoint` + `Cmd` for the platform chosen.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::lab::{ECR, Lab, entry};
use common::registry::{PASSWORD, RegistryLab, USER, http_json};
use mcpfleet::backend::registry::{Registries, RegistryConfig};
use mcpfleet::backend::{BackendError, ImageCommand, ImageInfo, ImageSelector, Images};
use mcpfleet::reconcile::resolve::pick_architecture;
use mcpfleet::render::CpuArch;
use mcpfleet::spec::Architecture;
use serde_json::Value;

fn client(insecure: &[&str], docker_config: Option<PathBuf>) -> Registries {
    Registries::new(RegistryConfig { insecure: insecure.iter().map(|h| h.to_string()).collect(), docker_config })
        .unwrap()
}

fn tag(t: &str) -> ImageSelector {
    ImageSelector::Tag(t.into())
}

/// Requests the client sent, by operation name.
fn calls(r: &Registries) -> BTreeMap<String, u64> {
    r.stats().calls.into_iter().map(|(op, n)| (op.as_str().to_string(), n)).collect()
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

async fn one(r: &Registries, repository: &str, selector: ImageSelector) -> Result<Option<ImageInfo>, BackendError> {
    Ok(r.lookup(repository, std::slice::from_ref(&selector)).await?.remove(&selector))
}

#[tokio::test]
async fn an_oci_index_with_both_platforms_is_pinned_to_its_digest_and_runs_on_arm64() {
    let lab = RegistryLab::open();
    let pushed = lab.push("mcp/fetch", "latest", "oci-index", &["linux/amd64", "linux/arm64"]);
    let r = client(&[&lab.host], None);
    let repo = format!("{}/mcp/fetch", lab.host);
    let info = one(&r, &repo, tag("latest")).await.unwrap().unwrap();
    assert_eq!(info.digest, pushed);
    assert_eq!(info.platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(pick_architecture(Architecture::Auto, &info.platforms), Ok(CpuArch::Arm64));
    assert_eq!(calls(&r), counts(&[("GetManifest", 1), ("HeadManifest", 1)]), "HEAD for the digest, GET for the index");

    // A digest's content never changes: the next resolution of the tag is one HEAD.
    assert_eq!(one(&r, &repo, tag("latest")).await.unwrap().unwrap(), info);
    assert_eq!(calls(&r), counts(&[("GetManifest", 1), ("HeadManifest", 2)]));
    // The digest itself resolves too (a HEAD, already read), and a digest the repository lacks is absent.
    let by_digest = one(&r, &repo, ImageSelector::Digest(pushed.clone())).await.unwrap().unwrap();
    assert_eq!(by_digest, info);
    let unknown = format!("sha256:{}", "0".repeat(64));
    assert_eq!(one(&r, &repo, ImageSelector::Digest(unknown)).await.unwrap(), None);
}

#[tokio::test]
async fn an_amd64_only_index_runs_on_x86_64_and_an_explicit_arm64_is_refused() {
    let lab = RegistryLab::open();
    let pushed = lab.push("mcp/time", "1.0", "oci-index", &["linux/amd64"]);
    let r = client(&[&lab.host], None);
    let info = one(&r, &format!("{}/mcp/time", lab.host), tag("1.0")).await.unwrap().unwrap();
    assert_eq!((info.digest.as_str(), info.platforms.as_slice()), (pushed.as_str(), &["linux/amd64".to_string()][..]));
    assert_eq!(pick_architecture(Architecture::Auto, &info.platforms), Ok(CpuArch::X86_64));
    assert_eq!(
        pick_architecture(Architecture::Arm64, &info.platforms),
        Err("arm64 requested but the image has only linux/amd64".into())
    );
}

#[tokio::test]
async fn a_docker_manifest_list_is_read_like_an_index() {
    let lab = RegistryLab::open();
    let pushed = lab.push("mcp/git", "v2", "docker-list", &["linux/arm64", "linux/amd64"]);
    let r = client(&[&lab.host], None);
    let info = one(&r, &format!("{}/mcp/git", lab.host), tag("v2")).await.unwrap().unwrap();
    assert_eq!(info.digest, pushed);
    assert_eq!(info.platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(calls(&r), counts(&[("GetManifest", 1), ("HeadManifest", 1)]));
}

#[tokio::test]
async fn a_single_platform_manifest_takes_its_architecture_from_its_config_blob() {
    let lab = RegistryLab::open();
    let arm = lab.push("mcp/arm-only", "v1", "oci-manifest", &["linux/arm64"]);
    let amd = lab.push("mcp/amd-only", "v1", "docker-manifest", &["linux/amd64"]);
    let r = client(&[&lab.host], None);
    let info = one(&r, &format!("{}/mcp/arm-only", lab.host), tag("v1")).await.unwrap().unwrap();
    assert_eq!((info.digest.as_str(), info.platforms.as_slice()), (arm.as_str(), &["linux/arm64".to_string()][..]));
    assert_eq!(
        pick_architecture(Architecture::Auto, &info.platforms),
        Ok(CpuArch::Arm64),
        "an arm64-only image runs on ARM64"
    );
    assert_eq!(
        pick_architecture(Architecture::X86_64, &info.platforms),
        Err("x86_64 requested but the image has only linux/arm64".into())
    );
    assert_eq!(
        calls(&r),
        counts(&[("GetBlob", 1), ("GetManifest", 1), ("HeadManifest", 1)]),
        "one small GET of the config"
    );
    let info = one(&r, &format!("{}/mcp/amd-only", lab.host), tag("v1")).await.unwrap().unwrap();
    assert_eq!((info.digest.as_str(), info.platforms.as_slice()), (amd.as_str(), &["linux/amd64".to_string()][..]));
}

#[tokio::test]
async fn an_unknown_tag_is_absent_for_resolution_to_report_and_asks_with_get_for_the_reason() {
    let lab = RegistryLab::open();
    lab.push("mcp/fetch", "latest", "oci-index", &[]);
    let r = client(&[&lab.host], None);
    let repo = format!("{}/mcp/fetch", lab.host);
    let found = r.lookup(&repo, &[tag("latest"), tag("v404")]).await.unwrap();
    assert_eq!(found.keys().collect::<Vec<_>>(), [&tag("latest")]);
    // HEAD answers 404 without a body; one GET of the same tag reads the registry's MANIFEST_UNKNOWN.
    assert_eq!(calls(&r), counts(&[("GetManifest", 2), ("HeadManifest", 2)]));
}

#[tokio::test]
async fn token_auth_refuses_anonymous_pulls_with_the_registry_words_and_admits_docker_config_credentials() {
    let lab = RegistryLab::token_auth();
    let pushed = lab.push("private/fetch", "v1", "oci-index", &["linux/arm64"]);
    lab.push("private/time", "v1", "oci-index", &["linux/amd64"]);
    let repo = format!("{}/private/fetch", lab.host);

    // No Docker config file: an anonymous token grants nothing, and the registry says so.
    let nowhere = lab.dir.path().join("none/config.json");
    let r = client(&[&lab.host], Some(nowhere.clone()));
    let err = one(&r, &repo, tag("v1")).await.unwrap_err();
    let BackendError::Invalid { message, .. } = &err else { panic!("{err:?}") };
    assert_eq!(
        message,
        &format!(
            "{repo}:v1: 401 Unauthorized: UNAUTHORIZED: authentication required; no credentials for {} in {} (the \
             repository may be private, or not exist)",
            lab.host,
            nowhere.display()
        )
    );
    // HEAD (401, the challenge), the anonymous token, HEAD (401), GET for the registry's message.
    assert_eq!(calls(&r), counts(&[("GetManifest", 1), ("HeadManifest", 2), ("RegistryToken", 1)]));

    // Credentials in the Docker config file: the token service grants the pull.
    let config = lab.docker_config("good", &lab.host, USER, PASSWORD);
    let r = client(&[&lab.host], Some(config));
    let info = one(&r, &repo, tag("v1")).await.unwrap().unwrap();
    assert_eq!((info.digest.as_str(), info.platforms.as_slice()), (pushed.as_str(), &["linux/arm64".to_string()][..]));
    assert_eq!(calls(&r), counts(&[("GetManifest", 1), ("HeadManifest", 2), ("RegistryToken", 1)]));
    // The challenge is remembered: the next repository asks for its own token first, with no 401.
    one(&r, &format!("{}/private/time", lab.host), tag("v1")).await.unwrap().unwrap();
    assert_eq!(calls(&r), counts(&[("GetManifest", 2), ("HeadManifest", 3), ("RegistryToken", 2)]));
    // The token is cached per repository scope.
    one(&r, &repo, tag("v1")).await.unwrap().unwrap();
    assert_eq!(calls(&r)["RegistryToken"], 2);

    // Wrong credentials: the token service's words, and which file they came from.
    let config = lab.docker_config("wrong", &lab.host, USER, "not-the-password");
    let err = one(&client(&[&lab.host], Some(config.clone())), &repo, tag("v1")).await.unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("RegistryToken: http://"), "{text}");
    assert!(
        text.ends_with(&format!(
            "the token service refused the credentials of `{USER}` for {} from {}: 401 Unauthorized: incorrect username \
             or password",
            lab.host,
            config.display()
        )),
        "{text}"
    );
    assert!(!text.contains("not-the-password"));
}

#[tokio::test]
async fn a_basic_auth_registry_gets_the_docker_config_credentials_with_each_request() {
    let mut lab = RegistryLab::open();
    let stub = lab.proxy(&["--basic-auth", "lab:basic-secret"]);
    let pushed = lab.push("mcp/fetch", "latest", "oci-manifest", &["linux/arm64"]);
    let repo = format!("{stub}/mcp/fetch");
    let err = one(&client(&[&stub], None), &repo, tag("latest")).await.unwrap_err().to_string();
    assert!(
        err.contains(":latest: 401 Unauthorized: UNAUTHORIZED: authentication required; no credentials for"),
        "{err}"
    );

    let config = lab.docker_config("basic", &stub, "lab", "basic-secret");
    let r = client(&[&stub], Some(config));
    let info = one(&r, &repo, tag("latest")).await.unwrap().unwrap();
    assert_eq!((info.digest.as_str(), info.platforms.as_slice()), (pushed.as_str(), &["linux/arm64".to_string()][..]));
    // The first HEAD learns the scheme; every later request carries the credentials at once, no token involved.
    assert_eq!(calls(&r), counts(&[("GetBlob", 1), ("GetManifest", 1), ("HeadManifest", 2)]));
    let seen: Vec<(String, String)> = http_json(&stub, "/_lab/requests")["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["path"].as_str().unwrap().starts_with("/v2/mcp/"))
        .map(|q| (q["status"].to_string(), q["auth"].as_str().unwrap().to_string()))
        .collect();
    let expected = [("401", ""), ("401", ""), ("401", ""), ("200", "Basic"), ("200", "Basic"), ("200", "Basic")];
    assert_eq!(
        seen,
        expected.map(|(s, a)| (s.to_string(), a.to_string())),
        "anonymous refused (HEAD, GET), then Basic"
    );
}

#[tokio::test]
async fn credentials_kept_by_a_credential_helper_are_named_in_the_refusal() {
    let lab = RegistryLab::token_auth();
    lab.push("private/fetch", "v1", "oci-index", &[]);
    let dir = lab.dir.path().join("helper");
    std::fs::create_dir(&dir).unwrap();
    let config = dir.join("config.json");
    std::fs::write(&config, format!(r#"{{"auths": {{"{}": {{}}}}, "credsStore": "desktop"}}"#, lab.host)).unwrap();
    let r = client(&[&lab.host], Some(config.clone()));
    let err = one(&r, &format!("{}/private/fetch", lab.host), tag("v1")).await.unwrap_err().to_string();
    assert!(err.contains("401 Unauthorized: UNAUTHORIZED: authentication required"), "{err}");
    assert!(
        err.ends_with(&format!(
            "the credentials for {host} are kept by the credential helper `docker-credential-desktop`, which mcpfleet \
             does not run: add a username and password for {host} to `auths` in {}",
            config.display(),
            host = lab.host
        )),
        "{err}"
    );
}

#[tokio::test]
async fn a_registry_that_omits_the_digest_header_is_read_with_get_and_the_digest_is_the_sha256_of_the_bytes() {
    let mut lab = RegistryLab::open();
    let stub = lab.proxy(&["--strip-digest"]);
    let pushed = lab.push("mcp/fetch", "latest", "oci-index", &[]);
    let single = lab.push("mcp/arm-only", "v1", "oci-manifest", &["linux/arm64"]);
    let r = client(&[&stub], None);
    let info = one(&r, &format!("{stub}/mcp/fetch"), tag("latest")).await.unwrap().unwrap();
    assert_eq!(info.digest, pushed, "the sha256 of the exact bytes served is the registry's digest");
    assert_eq!(info.platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(calls(&r), counts(&[("GetManifest", 1), ("HeadManifest", 1)]), "GET by tag instead of by digest");
    let info = one(&r, &format!("{stub}/mcp/arm-only"), tag("v1")).await.unwrap().unwrap();
    assert_eq!((info.digest.as_str(), info.platforms.as_slice()), (single.as_str(), &["linux/arm64".to_string()][..]));
    let seen = http_json(&stub, "/_lab/requests");
    let gets: Vec<&str> = seen["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["method"] == "GET" && q["path"].as_str().unwrap().contains("/manifests/"))
        .map(|q| q["path"].as_str().unwrap())
        .collect();
    assert_eq!(gets, ["/v2/mcp/fetch/manifests/latest", "/v2/mcp/arm-only/manifests/v1"]);
}

#[tokio::test]
async fn a_429_is_retried_after_the_wait_the_registry_asks_for() {
    let mut lab = RegistryLab::open();
    let stub = lab.proxy(&["--throttle", "1", "--retry-after", "1"]);
    let pushed = lab.push("mcp/fetch", "latest", "oci-index", &[]);
    let r = client(&[&stub], None);
    let started = Instant::now();
    let info = one(&r, &format!("{stub}/mcp/fetch"), tag("latest")).await.unwrap().unwrap();
    assert_eq!(info.digest, pushed);
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 waited out ({:?})", started.elapsed());
    assert_eq!(calls(&r), counts(&[("GetManifest", 1), ("HeadManifest", 2)]));
    assert_eq!(r.stats().throttled.get("HeadManifest"), Some(&1));
    assert_eq!(r.retries().get("HeadManifest"), Some(&1));
    let statuses: Vec<(String, u64)> = http_json(&stub, "/_lab/requests")["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["path"].as_str().unwrap().contains("/manifests/"))
        .map(|q| (q["method"].as_str().unwrap().to_string(), q["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(statuses, [("HEAD".into(), 429), ("HEAD".into(), 200), ("GET".into(), 200)]);
}

#[tokio::test]
async fn a_registry_that_asks_for_a_long_wait_fails_at_once_with_its_words() {
    let mut lab = RegistryLab::open();
    let stub = lab.proxy(&["--throttle", "1", "--retry-after", "3600"]);
    lab.push("mcp/fetch", "latest", "oci-index", &[]);
    let r = client(&[&stub], None);
    let err = one(&r, &format!("{stub}/mcp/fetch"), tag("latest")).await.unwrap_err();
    assert!(err.is_throttling(), "{err:?}");
    let text = err.to_string();
    assert!(text.ends_with("/mcp/fetch:latest: 429 Too Many Requests (it asks to retry after 3600 s)"), "{text}");
    assert_eq!(calls(&r), counts(&[("HeadManifest", 1)]), "neither a retry nor a GET");
}

#[tokio::test]
async fn at_most_four_requests_are_in_flight_per_registry() {
    let mut lab = RegistryLab::open();
    // Each answer takes half a second, so requests the client sends together overlap at the proxy even on a
    // loaded machine.
    let stub = lab.proxy(&["--delay-ms", "500"]);
    let tags: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
    for t in &tags {
        lab.push("mcp/fetch", t, "oci-index", &[]);
    }
    let r = client(&[&stub], None);
    let selectors: Vec<ImageSelector> = tags.iter().map(|t| tag(t)).collect();
    let found = r.lookup(&format!("{stub}/mcp/fetch"), &selectors).await.unwrap();
    assert_eq!(found.len(), 10);
    let seen = http_json(&stub, "/_lab/requests");
    let max = seen["maxInFlight"].as_u64().unwrap();
    assert!((2..=4).contains(&max), "requests in flight at once: {max}; the proxy saw {:#}", seen["requests"]);
}

/// A lab on the sim with two more services whose images live in a local registry.
struct Mixed {
    lab: Lab,
    registry: RegistryLab,
    fetch: String,
    time: String,
}

fn registry_service(name: &str, image: &str, extra: &str) -> String {
    format!(
        "apiVersion: mcpfleet.io/v1alpha1\nkind: McpService\nmetadata:\n  name: {name}\nspec:\n  image: {image}\n  cpu: 256\n  memory: 512\n  port: 8000\n  logging:\n    region: us-east-1\n{extra}"
    )
}

impl Mixed {
    fn new(extra_fetch: &str) -> Mixed {
        let lab = Lab::new();
        let registry = RegistryLab::open();
        let fetch = registry.push("mcp/fetch", "latest", "oci-index", &["linux/amd64", "linux/arm64"]);
        let time = registry.push("mcp/time", "1.0", "oci-manifest", &["linux/amd64"]);
        let host = &registry.host;
        std::fs::write(
            lab.manifests().join("fetch.yaml"),
            registry_service("fetch", &format!("{host}/mcp/fetch:latest"), extra_fetch),
        )
        .unwrap();
        std::fs::write(
            lab.manifests().join("time.yaml"),
            registry_service("time", &format!("{host}/mcp/time:1.0"), ""),
        )
        .unwrap();
        Mixed { lab, registry, fetch, time }
    }

    fn insecure(&self) -> [&str; 2] {
        ["--insecure-registry", &self.registry.host]
    }
}

fn container(lab: &Lab, family: &str) -> Value {
    let world = serde_json::to_value(lab.world()).unwrap();
    let revisions = world["families"][family].as_array().unwrap_or_else(|| panic!("no family {family}: {world:#}"));
    revisions.last().unwrap()["spec"]["containerDefinitions"][0].clone()
}

fn architecture(lab: &Lab, family: &str) -> String {
    let world = serde_json::to_value(lab.world()).unwrap();
    world["families"][family].as_array().unwrap().last().unwrap()["spec"]["runtimePlatform"]["cpuArchitecture"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn plan_and_apply_on_the_sim_pin_registry_images_beside_ecr_ones() {
    let m = Mixed::new("");
    let (lab, host) = (&m.lab, m.registry.host.clone());
    let (code, plan) = lab.plan_with(&m.insecure());
    assert_eq!(code, 2, "{plan:#}");
    for name in ["documents", "database", "search", "fetch", "time"] {
        assert_eq!(entry(&plan, "mcp-prod", name)["action"], "create", "{plan:#}");
    }
    let calls = &plan["apiCalls"]["calls"];
    assert_eq!(calls["BatchGetImage"], 3, "the ECR images still through BatchGetImage: {plan:#}");
    assert_eq!(
        (&calls["HeadManifest"], &calls["GetManifest"], &calls["GetBlob"]),
        (&2.into(), &2.into(), &1.into()),
        "{plan:#}"
    );
    assert!(calls.get("RegistryToken").is_none(), "an open registry needs no token: {plan:#}");

    let m_path = lab.manifests();
    let mut args = vec!["apply", "-f", m_path.to_str().unwrap(), "-o", "json", "--wait"];
    args.extend(m.insecure());
    let (code, applied) = lab.json(&args);
    assert_eq!(code, 0, "{applied:#}");
    assert_eq!(entry(&applied, "mcp-prod", "fetch")["outcome"], "created", "{applied:#}");
    assert_eq!(container(lab, "fetch")["image"], format!("{host}/mcp/fetch@{}", m.fetch));
    assert_eq!(architecture(lab, "fetch"), "ARM64", "the index has linux/arm64");
    assert_eq!(container(lab, "time")["image"], format!("{host}/mcp/time@{}", m.time));
    assert_eq!(architecture(lab, "time"), "X86_64", "the config blob says linux/amd64");
    assert_eq!(
        container(lab, "documents")["image"].as_str().unwrap().split('@').next(),
        Some(format!("{ECR}/documents").as_str())
    );

    // status and history show the registry image's tag and digest as they do ECR's.
    let (code, status) = lab.json(&["status", "-f", m_path.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code, 0, "{status:#}");
    let row = entry(&status, "mcp-prod", "fetch");
    assert_eq!(
        (&row["image"], &row["digest"], &row["architecture"]),
        (&"latest".into(), &m.fetch.clone().into(), &"ARM64".into())
    );
    assert_eq!(entry(&status, "mcp-prod", "time")["digest"], m.time.as_str());
    let text = lab.ok(&["status", "-f", m_path.to_str().unwrap()]);
    let line = text.lines().find(|l| l.starts_with("fetch ")).unwrap();
    assert!(line.contains(" latest ") && line.contains(&m.fetch[..19]), "{text}");
    let (_, history) = lab.json(&["history", "fetch", "--cluster", "mcp-prod", "-o", "json"]);
    let rev = &history["revisions"][0];
    assert_eq!(
        (&rev["imageTag"], &rev["digest"], &rev["outcome"]),
        (&"latest".into(), &m.fetch.clone().into(), &"running".into())
    );

    // Converged: nothing to do. Then the tag moves in the registry, and plan sees it.
    assert_eq!(lab.plan_with(&m.insecure()).0, 0);
    let moved = m.registry.push("mcp/fetch", "latest", "oci-index", &["linux/amd64"]);
    let (code, plan) = lab.plan_with(&m.insecure());
    assert_eq!(code, 2, "{plan:#}");
    let fetch = entry(&plan, "mcp-prod", "fetch");
    assert_eq!(fetch["action"], "update", "{plan:#}");
    assert!(fetch.to_string().contains(&moved), "{fetch:#}");
    assert_eq!(entry(&plan, "mcp-prod", "time")["action"], "noop");
}

#[test]
fn a_registry_refusal_is_reported_per_image_before_any_write() {
    let m = Mixed::new("");
    let lab = &m.lab;
    let before = std::fs::read(lab.state()).unwrap();
    // Without --insecure-registry the local registry is asked over HTTPS, which it does not speak.
    let (code, doc) = lab.plan();
    assert_eq!(code, 1, "{doc:#}");
    let err = doc["error"].as_str().unwrap();
    let host = &m.registry.host;
    assert!(
        err.contains(&format!("fetch.yaml:6): spec.image: HeadManifest: https://{host}/v2/mcp/fetch/manifests/latest")),
        "{err}"
    );
    assert!(
        err.contains(&format!("time.yaml:6): spec.image: HeadManifest: https://{host}/v2/mcp/time/manifests/1.0")),
        "{err}"
    );
    // An unknown tag, beside an unknown ECR tag: every problem at once, and nothing written.
    lab.edit_manifest("fetch.yaml", "fetch:latest", "fetch:v404");
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v404");
    let m_path = lab.manifests();
    let mut args = vec!["apply", "-f", m_path.to_str().unwrap(), "-o", "json"];
    args.extend(m.insecure());
    let (code, doc) = lab.json(&args);
    assert_eq!(code, 1, "{doc:#}");
    let err = doc["error"].as_str().unwrap();
    assert!(err.contains(&format!("fetch.yaml:6): spec.image: tag `v404` not found in {host}/mcp/fetch")), "{err}");
    assert!(err.contains(&format!("search.yaml:10): spec.image: tag `v404` not found in {ECR}/search")), "{err}");
    assert_eq!(std::fs::read(lab.state()).unwrap(), before, "nothing written");
}

#[test]
fn registry_credentials_become_the_containers_repository_credentials() {
    let m = Mixed::new("  registryCredentials: prod/registry/lab\n");
    let lab = &m.lab;
    let arn = lab.ok(&["sim", "secret", "prod/registry/lab"]).trim().to_string();
    let m_path = lab.manifests();
    let mut args = vec!["apply", "-f", m_path.to_str().unwrap(), "-o", "json"];
    args.extend(m.insecure());
    let (code, doc) = lab.json(&args);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(container(lab, "fetch")["repositoryCredentials"], serde_json::json!({ "credentialsParameter": arn }));
    assert!(container(lab, "time").get("repositoryCredentials").is_none());

    // A secret that does not exist: located, and nothing written.
    lab.edit_manifest("fetch.yaml", "prod/registry/lab", "prod/registry/missing");
    let before = std::fs::read(lab.state()).unwrap();
    let (code, doc) = lab.json(&args);
    assert_eq!(code, 1, "{doc:#}");
    let err = doc["error"].as_str().unwrap();
    assert!(
        err.contains("fetch.yaml:12): spec.registryCredentials: secret `prod/registry/missing` not found"),
        "{err}"
    );
    assert_eq!(std::fs::read(lab.state()).unwrap(), before, "nothing written");
}

#[test]
fn the_binary_takes_registry_credentials_from_docker_config_and_insecure_registries_from_the_environment() {
    let lab = Lab::new();
    let registry = RegistryLab::token_auth();
    registry.push("private/fetch", "v1", "oci-manifest", &["linux/arm64"]);
    let host = &registry.host;
    std::fs::write(
        lab.manifests().join("fetch.yaml"),
        registry_service("fetch", &format!("{host}/private/fetch:v1"), ""),
    )
    .unwrap();
    let config = registry.docker_config("docker", &registry.host, USER, PASSWORD);
    let plan = |docker_config: &std::path::Path| {
        let out = common::mcpfleet()
            .args(["--backend", "sim", "--sim-state", lab.state().to_str().unwrap()])
            .args(["plan", "-f", lab.manifests().to_str().unwrap(), "-o", "json"])
            .env("MCPFLEET_INSECURE_REGISTRIES", format!("registry.invalid:1,{host}"))
            .env("DOCKER_CONFIG", docker_config)
            .output()
            .unwrap();
        common::json_output(&["plan"], &out)
    };
    let (code, doc) = plan(config.parent().unwrap());
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["apiCalls"]["calls"]["RegistryToken"], 1, "{doc:#}");
    let (code, doc) = plan(&registry.dir.path().join("empty"));
    assert_eq!(code, 1, "{doc:#}");
    let err = doc["error"].as_str().unwrap();
    assert!(err.contains("spec.image: HeadManifest: ") || err.contains("spec.image: GetManifest: "), "{err}");
    assert!(err.contains("401 Unauthorized: UNAUTHORIZED: authentication required; no credentials for"), "{err}");
}

/// A node server's config on arm64, and a Python one's (Cmd only) on amd64: the two platforms of one index differ.
const ARM_EXEC: &str = r#"{"Entrypoint": ["node", "/app/dist/index.js"], "Cmd": ["--transport", "stdio"]}"#;
const AMD_EXEC: &str = r#"{"Entrypoint": null, "Cmd": ["python", "-m", "server_amd64"]}"#;

fn command(c: &ImageCommand) -> Vec<String> {
    c.command()
}

#[tokio::test]
async fn a_single_manifest_gives_its_entrypoint_and_cmd_from_the_config_already_read() {
    let lab = RegistryLab::open();
    let pushed =
        lab.push_with(&lab.host, "mcp/node", "v1", "oci-manifest", &["linux/arm64"], &[("linux/arm64", ARM_EXEC)]);
    let digest = pushed["digest"].as_str().unwrap();
    let r = client(&[&lab.host], None);
    let repo = format!("{}/mcp/node", lab.host);
    let info = one(&r, &repo, tag("v1")).await.unwrap().unwrap();
    assert_eq!((info.digest.as_str(), info.platforms.as_slice()), (digest, &["linux/arm64".to_string()][..]));
    let resolved = counts(&[("GetBlob", 1), ("GetManifest", 1), ("HeadManifest", 1)]);
    assert_eq!(calls(&r), resolved, "resolution's requests are those of any image");
    let c = r.image_command(&repo, digest, "linux/arm64").await.unwrap();
    assert_eq!(command(&c), ["node", "/app/dist/index.js", "--transport", "stdio"], "Entrypoint, then Cmd");
    assert_eq!(calls(&r), resolved, "the config was read with the platform: no request more");
    // The image is for arm64 only: no other platform's command is made up.
    let err = r.image_command(&repo, digest, "linux/amd64").await.unwrap_err();
    assert!(err.to_string().contains("the image is for linux/arm64, not linux/amd64"), "{err}");
}

#[tokio::test]
async fn an_index_gives_the_command_of_the_platform_asked_with_its_manifest_and_config() {
    let lab = RegistryLab::open();
    let execs = [("linux/arm64", ARM_EXEC), ("linux/amd64", AMD_EXEC)];
    let pushed = lab.push_with(&lab.host, "mcp/multi", "v1", "oci-index", &["linux/amd64", "linux/arm64"], &execs);
    let digest = pushed["digest"].as_str().unwrap();
    let r = client(&[&lab.host], None);
    let repo = format!("{}/mcp/multi", lab.host);
    one(&r, &repo, tag("v1")).await.unwrap().unwrap();
    assert_eq!(calls(&r), counts(&[("GetManifest", 1), ("HeadManifest", 1)]), "resolution alone reads no config");
    let arm = r.image_command(&repo, digest, "linux/arm64").await.unwrap();
    assert_eq!(command(&arm), ["node", "/app/dist/index.js", "--transport", "stdio"]);
    assert_eq!(
        calls(&r),
        counts(&[("GetBlob", 1), ("GetManifest", 2), ("HeadManifest", 1)]),
        "the arm64 manifest, then its config"
    );
    let again = r.image_command(&repo, digest, "linux/arm64").await.unwrap();
    assert_eq!(
        (again, calls(&r).get("GetManifest").copied()),
        (arm, Some(2)),
        "kept: a controller's next pass asks nothing"
    );
    let amd = r.image_command(&repo, digest, "linux/amd64").await.unwrap();
    assert_eq!(command(&amd), ["python", "-m", "server_amd64"], "no Entrypoint: Cmd alone");
    let err = r.image_command(&repo, digest, "linux/s390x").await.unwrap_err();
    assert!(err.to_string().contains("the index lists no manifest for linux/s390x"), "{err}");
}

/// A stdio service without `command` on a registry image (FleetDefaults names the bridge image).
fn stdio_service(name: &str, image: &str, extra: &str) -> String {
    registry_service(name, image, &format!("  transport: stdio\n{extra}"))
}

/// The changes of `name` in a plan, by path.
fn changes(plan: &Value, name: &str) -> BTreeMap<String, Value> {
    let entry = entry(plan, "mcp-prod", name);
    let list = entry["changes"].as_array().unwrap_or_else(|| panic!("{entry:#}"));
    list.iter().map(|c| (c["path"].as_str().unwrap().to_string(), c["to"].clone())).collect()
}

#[test]
fn plan_and_apply_run_a_stdio_servers_image_entrypoint_and_cmd_for_the_chosen_architecture() {
    let lab = Lab::new();
    let registry = RegistryLab::open();
    let host = &registry.host;
    let execs = [("linux/arm64", ARM_EXEC), ("linux/amd64", AMD_EXEC)];
    registry.push_with(host, "mcp/multi", "v1", "oci-index", &["linux/amd64", "linux/arm64"], &execs);
    let single = r#"{"Entrypoint": ["/usr/local/bin/mcp-time"], "Cmd": ["--local-timezone", "UTC"]}"#;
    registry.push_with(host, "mcp/time", "v1", "docker-manifest", &["linux/amd64"], &[("linux/amd64", single)]);
    let write = |file: &str, text: String| std::fs::write(lab.manifests().join(file), text).unwrap();
    // `multi` first runs a command written by hand; `multi-amd` (x86_64) takes the amd64 manifest's config.
    let written = "  command: [node, /app/old.js]\n";
    write("multi.yaml", stdio_service("multi", &format!("{host}/mcp/multi:v1"), written));
    write("multi-amd.yaml", stdio_service("multi-amd", &format!("{host}/mcp/multi:v1"), "  architecture: x86_64\n"));
    write("time.yaml", stdio_service("time", &format!("{host}/mcp/time:v1"), ""));
    let insecure = ["--insecure-registry", host.as_str()];

    let (code, plan) = lab.plan_with(&insecure);
    assert_eq!(code, 2, "{plan:#}");
    // The index (HEAD, GET) once for both services and the amd64 manifest and its config for `multi-amd`; the
    // single manifest (HEAD, GET, config), whose config was read for its platform anyway.
    let calls = &plan["apiCalls"]["calls"];
    assert_eq!(
        (&calls["HeadManifest"], &calls["GetManifest"], &calls["GetBlob"]),
        (&2.into(), &3.into(), &2.into()),
        "{plan:#}"
    );
    let (code, applied) = lab.apply(&insecure);
    assert_eq!(code, 0, "{applied:#}");
    let server = |family: &str| {
        let c = container(&lab, family);
        let entry_point: Vec<String> = serde_json::from_value(c["entryPoint"].clone()).unwrap();
        assert_eq!(entry_point.last().map(String::as_str), Some("--"), "the bridge runs the command: {c:#}");
        serde_json::from_value::<Vec<String>>(c["command"].clone()).unwrap()
    };
    assert_eq!(server("multi"), ["node", "/app/old.js"]);
    assert_eq!(server("multi-amd"), ["python", "-m", "server_amd64"], "no Entrypoint: Cmd alone");
    assert_eq!(architecture(&lab, "multi-amd"), "X86_64");
    assert_eq!(server("time"), ["/usr/local/bin/mcp-time", "--local-timezone", "UTC"], "Entrypoint, then Cmd");
    assert_eq!(lab.plan_with(&insecure).0, 0, "converged: the commands read again are the same");

    // Without its command, `multi` runs the arm64 config's (auto picks arm64 from the index), and plan shows it.
    write("multi.yaml", stdio_service("multi", &format!("{host}/mcp/multi:v1"), ""));
    let (code, plan) = lab.plan_with(&insecure);
    assert_eq!(code, 2, "{plan:#}");
    let path = "taskDefinition.containerDefinitions.multi.command";
    assert_eq!(
        changes(&plan, "multi").get(path),
        Some(&serde_json::json!(["node", "/app/dist/index.js", "--transport", "stdio"])),
        "{plan:#}"
    );
    assert_eq!(entry(&plan, "mcp-prod", "time")["action"], "noop");
    let (code, applied) = lab.apply(&insecure);
    assert_eq!(code, 0, "{applied:#}");
    assert_eq!(server("multi"), ["node", "/app/dist/index.js", "--transport", "stdio"]);
    assert_eq!(architecture(&lab, "multi"), "ARM64");

    // `render` asks no registry: it cannot know an image's command, and says where to write one.
    let out = lab.run(&["render", "-f", lab.manifests().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(".yaml:12: spec.command: service `"), "{err}");
    assert!(err.contains("runs its image's Entrypoint + Cmd, which only plan and apply read"), "{err}");
}

#[test]
fn an_image_with_neither_entrypoint_nor_cmd_fails_its_stdio_service_before_any_write() {
    let lab = Lab::new();
    let registry = RegistryLab::open();
    let host = &registry.host;
    let pushed = registry.push_with(host, "mcp/bare", "v1", "oci-manifest", &["linux/amd64"], &[("linux/amd64", "{}")]);
    let digest = pushed["digest"].as_str().unwrap();
    let text = stdio_service("bare", &format!("{host}/mcp/bare:v1"), "");
    let line = text.lines().position(|l| l == "  transport: stdio").unwrap() + 1;
    std::fs::write(lab.manifests().join("bare.yaml"), text).unwrap();
    // A config whose Cmd is a string, not a list: the image resolves, but its command cannot be read.
    let odd = r#"{"Cmd": "/bin/sh -c server"}"#;
    registry.push_with(host, "mcp/odd", "v1", "oci-index", &["linux/arm64"], &[("linux/arm64", odd)]);
    std::fs::write(lab.manifests().join("odd.yaml"), stdio_service("odd", &format!("{host}/mcp/odd:v1"), "")).unwrap();
    // A hostile registry's command longer than a whole task definition may be.
    let long = format!(r#"{{"Cmd": ["/server", "{}"]}}"#, "x".repeat(70 * 1024));
    registry.push_with(host, "mcp/long", "v1", "oci-manifest", &["linux/amd64"], &[("linux/amd64", &long)]);
    std::fs::write(lab.manifests().join("long.yaml"), stdio_service("long", &format!("{host}/mcp/long:v1"), ""))
        .unwrap();
    let before = std::fs::read(lab.state()).unwrap();
    let m = lab.manifests();
    for verb in ["plan", "apply"] {
        let (code, doc) =
            lab.json(&[verb, "-f", m.to_str().unwrap(), "-o", "json", "--insecure-registry", host.as_str()]);
        assert_eq!(code, 1, "{doc:#}");
        let err = doc["error"].as_str().unwrap();
        let want = format!(
            "/bare.yaml:{line}): spec.command: image `{host}/mcp/bare@{digest}` (linux/amd64) names \
             neither Entrypoint nor Cmd in its config; write `command`"
        );
        assert!(err.contains(&want) && err.contains("service `bare` ("), "{err}");
        let odd = format!("/odd.yaml:{line}): spec.command: the config of image `{host}/mcp/odd@sha256:");
        assert!(err.contains(&odd), "{err}");
        assert!(err.contains("(linux/arm64) gives no command to run: GetBlob: "), "{err}");
        assert!(err.contains("the image config's Entrypoint and Cmd are not lists of strings"), "{err}");
        assert!(err.contains("/long.yaml:"), "{err}");
        assert!(
            err.contains("Entrypoint and Cmd hold more than 64 KiB, more than ECS takes for a whole task"),
            "{err}"
        );
        assert_eq!(err.matches("[E1810]").count(), 3, "all at once: {err}");
        assert_eq!(std::fs::read(lab.state()).unwrap(), before, "{verb}: nothing written");
    }
}

#[tokio::test]
async fn a_config_that_cannot_give_a_command_still_resolves_its_image() {
    let lab = RegistryLab::open();
    let odd = r#"{"Entrypoint": {"not": "a list"}}"#;
    let pushed =
        lab.push_with(&lab.host, "mcp/odd", "v1", "docker-manifest", &["linux/amd64"], &[("linux/amd64", odd)]);
    let r = client(&[&lab.host], None);
    let repo = format!("{}/mcp/odd", lab.host);
    let info = one(&r, &repo, tag("v1")).await.unwrap().unwrap();
    assert_eq!(info.platforms, ["linux/amd64"], "a service that runs its own command is not concerned");
    let err = r.image_command(&repo, pushed["digest"].as_str().unwrap(), "linux/amd64").await.unwrap_err();
    assert!(err.to_string().contains("the image config's Entrypoint and Cmd are not lists of strings"), "{err}");
}

#[test]
fn a_stdio_image_in_ecr_still_needs_its_command() {
    let lab = Lab::new();
    std::fs::write(lab.manifests().join("docs.yaml"), stdio_service("docs", &format!("{ECR}/documents:v1.4.2"), ""))
        .unwrap();
    let (code, doc) = lab.plan();
    assert_eq!(code, 1, "{doc:#}");
    let err = doc.to_string();
    assert!(err.contains("a stdio server needs `command` when its image is in Amazon ECR"), "{err}");
    assert!(err.contains("E1801"), "{err}");
}
