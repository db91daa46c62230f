//! Container image references: parsing, where each is resolved (Amazon ECR or a registry's distribution API, with
//! Docker Hub's short names normalised) and digest pinning.
//!
//! The grammar is the distribution project's reference grammar (the one Docker and ECS accept), restricted to
//! `sha256` digests. Parsing lives in the spec layer because a malformed reference is a validation error, but the
//! types are shared by render (pinning) and the backends (ECR lookups, registry requests).

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

/// A parsed image reference: `[registry/]repository[:tag][@sha256:digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Registry host (with port), when the reference names one.
    pub registry: Option<String>,
    /// Repository path inside the registry.
    pub repository: String,
    /// Tag, if any.
    pub tag: Option<String>,
    /// `sha256:<64 hex>`, if pinned.
    pub digest: Option<String>,
}

/// The ECR coordinates of an image hosted in Amazon ECR.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EcrRepo {
    pub account: String,
    pub region: String,
    pub repository: String,
}

/// Where an image's tags and digests are looked up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ImageSource {
    /// A private Amazon ECR registry (`ACCOUNT.dkr.ecr.REGION.amazonaws.com`), pull-through-cache repositories
    /// included: ECR's own API (BatchGetImage) answers with the manifest.
    Ecr(EcrRepo),
    /// Any other registry: the OCI distribution API (`/v2/…`).
    Registry(RegistryRepo),
}

/// A repository of a registry spoken to through the OCI distribution API, normalised as Docker normalises it: no
/// registry (or `index.docker.io`) means Docker Hub, whose one-component names live under `library/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegistryRepo {
    /// The registry as written (`ghcr.io`, `127.0.0.1:5000`), lowercased; `docker.io` for Docker Hub.
    pub host: String,
    /// The repository path inside it (`library/python`, `org/tool`).
    pub repository: String,
}

/// Docker Hub's canonical name; the API it names lives at [`DOCKER_HUB_API`].
pub const DOCKER_HUB: &str = "docker.io";
/// Docker Hub's distribution API host.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

impl RegistryRepo {
    /// The host the distribution API is served from (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.host == DOCKER_HUB { DOCKER_HUB_API } else { &self.host }
    }
}

impl fmt::Display for RegistryRepo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.repository)
    }
}

/// The names Docker Hub is written by, in references and in Docker config files.
pub fn is_docker_hub(host: &str) -> bool {
    matches!(host.to_ascii_lowercase().as_str(), "docker.io" | "index.docker.io" | "registry-1.docker.io")
}

static DOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?$")
        .expect("static regex")
});
static PATH_COMPONENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$").expect("static regex"));
static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$").expect("static regex"));
static DIGEST: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^sha256:[a-f0-9]{64}$").expect("static regex"));
static ECR_HOST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([0-9]{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$").expect("static regex")
});

impl ImageRef {
    /// Parses a reference, explaining what is wrong when it is not one.
    pub fn parse(s: &str) -> Result<ImageRef, String> {
        if s.is_empty() {
            return Err("image is empty".into());
        }
        if s.trim() != s || s.contains(char::is_whitespace) {
            return Err(format!("`{s}` contains whitespace"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                if !DIGEST.is_match(d) {
                    return Err(format!("`{s}`: digest `{d}` is not sha256:<64 lowercase hex digits>"));
                }
                (rest, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A colon after the last slash separates the tag; a colon before it belongs to a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(rest[last_slash + i + 1..].to_string())),
            None => (rest, None),
        };
        if let Some(tag) = &tag
            && !(tag.len() <= 128 && TAG.is_match(tag))
        {
            return Err(format!(
                "`{s}`: tag `{tag}` is not valid (letters, digits, `_`, `.`, `-`; at most 128, not starting with `.` or `-`)"
            ));
        }
        let (registry, repository) = split_name(name).map_err(|e| format!("`{s}`: {e}"))?;
        if tag.is_none() && digest.is_none() {
            return Err(format!(
                "`{s}` has neither a tag nor a digest; pin a tag (resolved to its digest at deploy) or `@sha256:…`"
            ));
        }
        Ok(ImageRef { registry, repository, tag, digest })
    }

    /// Where the image is looked up: ECR's API for a private ECR registry, else the registry's distribution API.
    pub fn source(&self) -> ImageSource {
        source_of(self.registry.as_deref(), &self.repository)
    }

    /// Parses a reference that must be pinned by digest (`repo@sha256:…`, a tag beside it allowed): the bridge
    /// image, which every stdio service's task copies its executable from, must be exactly the one tested.
    pub fn parse_pinned(s: &str) -> Result<ImageRef, String> {
        let image = ImageRef::parse(s)?;
        if image.digest.is_none() {
            return Err(format!("`{s}` is not pinned by digest: write it `{}@sha256:…`", image.name()));
        }
        Ok(image)
    }

    /// The registry and repository without tag or digest.
    pub fn name(&self) -> String {
        match &self.registry {
            Some(r) => format!("{r}/{}", self.repository),
            None => self.repository.clone(),
        }
    }

    /// ECR coordinates when the registry is an ECR host.
    pub fn ecr(&self) -> Option<EcrRepo> {
        match self.source() {
            ImageSource::Ecr(ecr) => Some(ecr),
            ImageSource::Registry(_) => None,
        }
    }

    /// The reference pinned to `digest`: `name@sha256:…` (the tag is kept in mcpfleet's tags, not in the image).
    pub fn pinned(&self, digest: &str) -> String {
        format!("{}@{digest}", self.name())
    }
}

/// Where the repository `name` (`[registry/]repository`, as [`ImageRef::name`] writes it) is looked up.
pub fn source_of_name(name: &str) -> Result<ImageSource, String> {
    let (registry, repository) = split_name(name).map_err(|e| format!("`{name}`: {e}"))?;
    Ok(source_of(registry.as_deref(), &repository))
}

fn source_of(registry: Option<&str>, repository: &str) -> ImageSource {
    if let Some(caps) = registry.and_then(|r| ECR_HOST.captures(r)) {
        return ImageSource::Ecr(EcrRepo {
            account: caps[1].to_string(),
            region: caps[2].to_string(),
            repository: repository.to_string(),
        });
    }
    match registry {
        Some(host) if !is_docker_hub(host) => {
            ImageSource::Registry(RegistryRepo { host: host.to_ascii_lowercase(), repository: repository.to_string() })
        }
        // Docker Hub: official images are `library/NAME`.
        _ => ImageSource::Registry(RegistryRepo {
            host: DOCKER_HUB.to_string(),
            repository: if repository.contains('/') { repository.to_string() } else { format!("library/{repository}") },
        }),
    }
}

/// `[registry/]repository` → the registry (when the first component names a host) and the repository path.
fn split_name(name: &str) -> Result<(Option<String>, String), String> {
    let mut parts: Vec<&str> = name.split('/').collect();
    let registry = if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let host = parts.remove(0);
        if !DOMAIN.is_match(host) {
            return Err(format!("registry `{host}` is not a valid host[:port]"));
        }
        Some(host.to_string())
    } else {
        None
    };
    for part in &parts {
        if !PATH_COMPONENT.is_match(part) {
            return Err(format!(
                "repository component `{part}` must be lowercase letters and digits separated by `.`, `_`, `__` or `-`"
            ));
        }
    }
    if name.len() > 255 {
        return Err("repository name is longer than 255 characters".into());
    }
    Ok((registry, parts.join("/")))
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_ecr_tag_and_digest_forms() {
        let r = ImageRef::parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/documents:v1.4.2").unwrap();
        assert_eq!(r.registry.as_deref(), Some("123456789012.dkr.ecr.us-east-1.amazonaws.com"));
        assert_eq!(r.repository, "mcp/documents");
        assert_eq!(r.tag.as_deref(), Some("v1.4.2"));
        let ecr = r.ecr().unwrap();
        assert_eq!((ecr.account.as_str(), ecr.region.as_str()), ("123456789012", "us-east-1"));
        assert_eq!(r.pinned(D), format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/documents@{D}"));

        let r = ImageRef::parse(&format!("localhost:5000/tools/search@{D}")).unwrap();
        assert_eq!(r.registry.as_deref(), Some("localhost:5000"));
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.ecr(), None);

        let r = ImageRef::parse("python:3.12-slim").unwrap();
        assert_eq!((r.registry, r.repository.as_str()), (None, "python"));
        assert_eq!(ImageRef::parse("ghcr.io/org/img:1").unwrap().to_string(), "ghcr.io/org/img:1");
    }

    fn registry(image: &str) -> RegistryRepo {
        match ImageRef::parse(image).unwrap().source() {
            ImageSource::Registry(r) => r,
            ImageSource::Ecr(e) => panic!("{image} is in ECR: {e:?}"),
        }
    }

    #[test]
    fn docker_hub_names_are_normalised_as_docker_does() {
        for (written, repository) in [
            ("python:3.12-slim", "library/python"),
            ("docker.io/python:3.12", "library/python"),
            ("docker.io/library/python:3.12", "library/python"),
            ("index.docker.io/python:3.12", "library/python"),
            ("registry-1.docker.io/library/python:3.12", "library/python"),
            ("mcp/fetch:latest", "mcp/fetch"),
            ("docker.io/mcp/fetch:latest", "mcp/fetch"),
            (&format!("mcp/fetch@{D}"), "mcp/fetch"),
        ] {
            let r = registry(written);
            assert_eq!((r.host.as_str(), r.repository.as_str()), (DOCKER_HUB, repository), "{written}");
            assert_eq!(r.api_host(), "registry-1.docker.io");
        }
        // Pinning keeps the reference as written: ECS normalises it the same way.
        let r = ImageRef::parse("mcp/fetch:latest").unwrap();
        assert_eq!(r.pinned(D), format!("mcp/fetch@{D}"));
    }

    #[test]
    fn other_registries_keep_their_host_and_path() {
        for (written, host, repository) in [
            ("ghcr.io/github/github-mcp-server:v0.4", "ghcr.io", "github/github-mcp-server"),
            ("public.ecr.aws/acme/tools:1", "public.ecr.aws", "acme/tools"),
            ("quay.io/org/img:1", "quay.io", "org/img"),
            ("GHCR.io/org/img:1", "ghcr.io", "org/img"),
            ("localhost:5000/single:1", "localhost:5000", "single"),
            ("127.0.0.1:5000/a/b/c:1", "127.0.0.1:5000", "a/b/c"),
            ("registry.example.com/tool:1", "registry.example.com", "tool"),
        ] {
            let r = registry(written);
            assert_eq!((r.host.as_str(), r.repository.as_str()), (host, repository), "{written}");
            assert_eq!(r.api_host(), host);
        }
        // `localhost` alone is a repository name on Docker Hub, as Docker reads it.
        assert_eq!(registry("localhost:1").repository, "library/localhost");
    }

    #[test]
    fn private_ecr_and_its_pull_through_cache_keep_the_ecr_path() {
        for image in [
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/documents:v1",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/docker-hub/library/python:3.12",
            "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/x:1",
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/x:1",
        ] {
            assert!(matches!(ImageRef::parse(image).unwrap().source(), ImageSource::Ecr(_)), "{image}");
        }
        let name = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/docker-hub/library/python";
        let ImageSource::Ecr(ecr) = source_of_name(name).unwrap() else { panic!("{name}") };
        assert_eq!((ecr.region.as_str(), ecr.repository.as_str()), ("eu-west-1", "docker-hub/library/python"));
        assert_eq!(
            source_of_name("public.ecr.aws/acme/x").unwrap(),
            ImageSource::Registry(registry("public.ecr.aws/acme/x:1"))
        );
        assert!(source_of_name("bad_host.example.com/x").is_err());
    }

    #[test]
    fn rejects_malformed_references_with_a_reason() {
        for (bad, why) in [
            ("", "empty"),
            ("mcp/Documents:v1", "lowercase"),
            ("mcp/documents", "neither a tag nor a digest"),
            ("mcp/documents:", "tag ``"),
            ("mcp/documents:-x", "tag `-x`"),
            ("mcp/documents@sha256:abc", "digest"),
            ("mcp/doc uments:v1", "whitespace"),
            ("bad_host.example.com/x:1", "registry"),
        ] {
            let err = ImageRef::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
