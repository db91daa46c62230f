//! Container image references: parsing, ECR recognition and digest pinning.
//!
//! The grammar is the distribution project's reference grammar (the one Docker and ECS accept), restricted to
//! `sha256` digests. Parsing lives in the spec layer because a malformed reference is a validation error, but the
//! type is shared by render (pinning) and the backends (ECR lookups).

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
        let mut parts: Vec<&str> = name.split('/').collect();
        let registry = if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
            let host = parts.remove(0);
            if !DOMAIN.is_match(host) {
                return Err(format!("`{s}`: registry `{host}` is not a valid host[:port]"));
            }
            Some(host.to_string())
        } else {
            None
        };
        for part in &parts {
            if !PATH_COMPONENT.is_match(part) {
                return Err(format!(
                    "`{s}`: repository component `{part}` must be lowercase letters and digits separated by `.`, `_`, `__` or `-`"
                ));
            }
        }
        if name.len() > 255 {
            return Err(format!("`{s}`: repository name is longer than 255 characters"));
        }
        if tag.is_none() && digest.is_none() {
            return Err(format!(
                "`{s}` has neither a tag nor a digest; pin a tag (resolved to its digest at deploy) or `@sha256:…`"
            ));
        }
        Ok(ImageRef { registry, repository: parts.join("/"), tag, digest })
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
        let caps = ECR_HOST.captures(self.registry.as_deref()?)?;
        Some(EcrRepo { account: caps[1].to_string(), region: caps[2].to_string(), repository: self.repository.clone() })
    }

    /// The reference pinned to `digest`: `name@sha256:…` (the tag is kept in mcpfleet's tags, not in the image).
    pub fn pinned(&self, digest: &str) -> String {
        format!("{}@{digest}", self.name())
    }
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
