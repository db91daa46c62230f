//! Image manifests as registries serve them: the media types mcpfleet accepts and what it reads from them (an
//! index's platforms and the manifest it lists for each, a single manifest's config blob, the config's platform
//! and its `Entrypoint` and `Cmd`). Shared by ECR's BatchGetImage
//! path and the distribution-API client, so both decide an architecture from the same reading.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ImageCommand;

/// An OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// A Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// An OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// A Docker image manifest (schema 2).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Manifest media types we accept: an index lists platforms, a single manifest does not.
pub const MEDIA_TYPES: [&str; 4] = [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

/// What a manifest document is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestKind {
    /// An OCI index or Docker manifest list, with the `os/architecture` platforms it lists (sorted, distinct,
    /// attestation entries left out).
    Index { platforms: Vec<String> },
    /// A single-platform manifest, whose platform is recorded in its config blob.
    Image { config_digest: String },
}

#[derive(Deserialize)]
struct Doc {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<Vec<Entry>>,
    config: Option<Descriptor>,
}

#[derive(Deserialize)]
struct Entry {
    digest: Option<String>,
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
}

#[derive(Deserialize)]
struct Platform {
    os: Option<String>,
    architecture: Option<String>,
}

impl Platform {
    /// `os/architecture`; `None` for the `unknown/unknown` entries that carry attestations.
    fn name(&self) -> Option<String> {
        let (os, arch) = (self.os.as_deref()?, self.architecture.as_deref()?);
        (os != "unknown" && arch != "unknown" && !os.is_empty() && !arch.is_empty()).then(|| format!("{os}/{arch}"))
    }
}

/// Reads a manifest served as `content_type` (the response's `Content-Type`, or none): an index or a single
/// image manifest, by the content type, else by the document's own `mediaType`, else by its shape (an OCI
/// manifest may omit `mediaType`). Anything else is refused with the reason.
pub fn classify(content_type: Option<&str>, body: &[u8]) -> Result<ManifestKind, String> {
    let doc: Doc = serde_json::from_slice(body).map_err(|e| format!("the manifest is not valid JSON: {e}"))?;
    // `application/json` or no header says nothing; parameters (`; charset=…`) are not part of the type.
    let declared = content_type
        .map(|c| c.split(';').next().unwrap_or_default().trim())
        .filter(|c| !c.is_empty() && *c != "application/json")
        .or(doc.media_type.as_deref());
    let index = match declared {
        Some(OCI_INDEX | DOCKER_LIST) => true,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
        Some(other) => {
            return Err(format!(
                "the manifest's media type `{other}` is not an image index or image manifest (accepted: {})",
                MEDIA_TYPES.join(", ")
            ));
        }
        None => doc.manifests.is_some(),
    };
    if index {
        let mut platforms: Vec<String> =
            doc.manifests.unwrap_or_default().iter().filter_map(|e| e.platform.as_ref()?.name()).collect();
        platforms.sort();
        platforms.dedup();
        Ok(ManifestKind::Index { platforms })
    } else {
        match doc.config {
            Some(c) => Ok(ManifestKind::Image { config_digest: c.digest }),
            None => Err("the image manifest names no config blob".into()),
        }
    }
}

/// The `os/architecture` platforms an image index lists (attestation entries excluded); empty for a single
/// manifest, whose platform is recorded only in its config blob, or for a document that is neither.
pub fn platforms_of_manifest(manifest: &str) -> Vec<String> {
    match classify(None, manifest.as_bytes()) {
        Ok(ManifestKind::Index { platforms }) => platforms,
        _ => vec![],
    }
}

/// The manifest an index lists for each `os/architecture` (the first one, when variants share it); empty for a
/// document that is not an index.
pub fn index_manifests(body: &[u8]) -> BTreeMap<String, String> {
    let Ok(doc) = serde_json::from_slice::<Doc>(body) else { return BTreeMap::new() };
    let mut out = BTreeMap::new();
    for e in doc.manifests.unwrap_or_default() {
        if let (Some(platform), Some(digest)) = (e.platform.as_ref().and_then(Platform::name), e.digest) {
            out.entry(platform).or_insert(digest);
        }
    }
    out
}

/// The `os/architecture` an image config blob records.
pub fn platform_of_config(body: &[u8]) -> Result<String, String> {
    let p: Platform = serde_json::from_slice(body).map_err(|e| format!("the image config is not valid JSON: {e}"))?;
    p.name().ok_or_else(|| "the image config records no os and architecture".into())
}

/// The most text an image's `Entrypoint` + `Cmd` may hold: ECS takes at most 64 KiB for a whole task definition
/// (a written `command` is bounded the same way by the YAML reader), and a registry's configs may be 8 MiB.
pub const MAX_IMAGE_COMMAND: usize = 64 * 1024;

/// The `config.Entrypoint` and `config.Cmd` an image config blob records (`null` or absent: empty); refused when
/// longer than [`MAX_IMAGE_COMMAND`].
pub fn command_of_config(body: &[u8]) -> Result<ImageCommand, String> {
    #[derive(Deserialize)]
    struct Blob {
        config: Option<Exec>,
    }
    #[derive(Deserialize)]
    struct Exec {
        #[serde(rename = "Entrypoint")]
        entrypoint: Option<Vec<String>>,
        #[serde(rename = "Cmd")]
        cmd: Option<Vec<String>>,
    }
    let blob: Blob = serde_json::from_slice(body)
        .map_err(|e| format!("the image config's Entrypoint and Cmd are not lists of strings: {e}"))?;
    let exec = blob.config.unwrap_or(Exec { entrypoint: None, cmd: None });
    let command = ImageCommand { entrypoint: exec.entrypoint.unwrap_or_default(), cmd: exec.cmd.unwrap_or_default() };
    if command.entrypoint.iter().chain(&command.cmd).map(String::len).sum::<usize>() > MAX_IMAGE_COMMAND {
        return Err(format!(
            "the image config's Entrypoint and Cmd hold more than {} KiB, more than ECS takes for a whole task \
             definition",
            MAX_IMAGE_COMMAND / 1024
        ));
    }
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_platforms_skip_attestations() {
        let index = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"digest":"sha256:a","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
            {"digest":"sha256:b","platform":{"os":"linux","architecture":"amd64"}},
            {"digest":"sha256:c","platform":{"os":"unknown","architecture":"unknown"}}]}"#;
        assert_eq!(platforms_of_manifest(index), ["linux/amd64", "linux/arm64"]);
        assert!(platforms_of_manifest(r#"{"schemaVersion":2,"config":{"digest":"sha256:c"},"layers":[]}"#).is_empty());
        assert!(platforms_of_manifest("not json").is_empty());
    }

    #[test]
    fn kinds_follow_the_content_type_then_the_document() {
        let list = br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:a","platform":{"os":"linux","architecture":"amd64"}}]}"#;
        assert_eq!(
            classify(Some("application/vnd.docker.distribution.manifest.list.v2+json"), list),
            Ok(ManifestKind::Index { platforms: vec!["linux/amd64".into()] })
        );
        // No mediaType and a generic content type: the shape decides.
        assert!(matches!(classify(Some("application/json"), list), Ok(ManifestKind::Index { .. })));
        let image = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:cfg","size":2},"layers":[]}"#;
        assert_eq!(
            classify(Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"), image),
            Ok(ManifestKind::Image { config_digest: "sha256:cfg".into() })
        );
        let err = classify(Some("application/vnd.docker.distribution.manifest.v1+prettyjws"), image).unwrap_err();
        assert!(err.contains("is not an image index or image manifest"), "{err}");
        assert!(classify(Some(OCI_MANIFEST), br#"{"schemaVersion":2}"#).unwrap_err().contains("no config blob"));
        assert!(classify(None, b"<html>").unwrap_err().contains("not valid JSON"));
    }

    #[test]
    fn a_config_names_its_platform() {
        assert_eq!(
            platform_of_config(br#"{"architecture":"arm64","os":"linux","variant":"v8","rootfs":{}}"#).unwrap(),
            "linux/arm64"
        );
        assert!(platform_of_config(br#"{"rootfs":{}}"#).is_err());
        assert!(platform_of_config(b"[]").is_err());
    }

    #[test]
    fn an_index_names_the_manifest_of_each_platform() {
        let index = br#"{"schemaVersion":2,"manifests":[
            {"digest":"sha256:a","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
            {"digest":"sha256:a2","platform":{"os":"linux","architecture":"arm64"}},
            {"digest":"sha256:b","platform":{"os":"linux","architecture":"amd64"}},
            {"digest":"sha256:c","platform":{"os":"unknown","architecture":"unknown"}}]}"#;
        let m = index_manifests(index);
        assert_eq!(
            m.into_iter().collect::<Vec<_>>(),
            [("linux/amd64".to_string(), "sha256:b".to_string()), ("linux/arm64".to_string(), "sha256:a".to_string())]
        );
        assert!(index_manifests(b"not json").is_empty());
    }

    #[test]
    fn a_config_names_its_entrypoint_and_cmd() {
        let c = command_of_config(br#"{"config":{"Entrypoint":["node","dist/index.js"],"Cmd":["stdio"]}}"#).unwrap();
        assert_eq!(c.command(), ["node", "dist/index.js", "stdio"]);
        let c = command_of_config(br#"{"config":{"Entrypoint":null,"Cmd":["python","-m","server"]}}"#).unwrap();
        assert_eq!(c.command(), ["python", "-m", "server"]);
        assert!(command_of_config(br#"{"architecture":"amd64"}"#).unwrap().command().is_empty());
        assert!(command_of_config(br#"{"config":{"Cmd":"/bin/sh -c server"}}"#).is_err());
        let long = format!(r#"{{"config":{{"Cmd":["/server","{}"]}}}}"#, "x".repeat(MAX_IMAGE_COMMAND));
        assert!(command_of_config(long.as_bytes()).unwrap_err().contains("more than 64 KiB"));
    }
}
