//! Image resolution through Amazon ECR: one BatchGetImage per repository per 100 references returns both the
//! digest and the manifest, and an image index's manifest lists its platforms. Images outside ECR are used only
//! when pinned by digest; resolving a tag on another registry (the OCI distribution API) is not done here.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_ecr::types::ImageIdentifier;

use super::map_err;
use crate::backend::{BackendError, ImageInfo, ImageSelector, Images, Op};
use crate::spec::ImageRef;

/// Manifest media types we accept: an index lists platforms, a single manifest does not.
const MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// The [`Images`] port over ECR, with one client per registry region.
pub struct Ecr {
    config: aws_sdk_ecr::Config,
    clients: Mutex<BTreeMap<String, aws_sdk_ecr::Client>>,
}

impl Ecr {
    /// ECR clients made from `config` (credentials, endpoint, interceptors), each with its registry's region.
    pub fn new(config: aws_sdk_ecr::Config) -> Ecr {
        Ecr { config, clients: Mutex::new(BTreeMap::new()) }
    }

    fn client(&self, region: &str) -> aws_sdk_ecr::Client {
        let mut clients = crate::backend::lock(&self.clients);
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                aws_sdk_ecr::Client::from_conf(
                    self.config.to_builder().region(aws_config::Region::new(region.to_string())).build(),
                )
            })
            .clone()
    }
}

/// The failure code of a reference that simply does not exist (left out of the answer).
const ABSENT: &str = "ImageNotFound";

/// The `os/architecture` platforms an image index lists (attestation entries excluded); empty for a single
/// manifest, whose platform is recorded only in its config blob.
pub fn platforms_of_manifest(manifest: &str) -> Vec<String> {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(manifest) else { return vec![] };
    let mut out: Vec<String> = doc
        .get("manifests")
        .and_then(|m| m.as_array())
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| {
                    let p = e.get("platform")?;
                    let os = p.get("os")?.as_str()?;
                    let arch = p.get("architecture")?.as_str()?;
                    (os != "unknown" && arch != "unknown").then(|| format!("{os}/{arch}"))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.dedup();
    out
}

#[async_trait]
impl Images for Ecr {
    async fn lookup(
        &self,
        repository: &str,
        selectors: &[ImageSelector],
    ) -> Result<BTreeMap<ImageSelector, ImageInfo>, BackendError> {
        const OP: Op = Op::BatchGetImage;
        // Any tag makes a reference parse; only the registry and repository matter here.
        let parsed = ImageRef::parse(&format!("{repository}:x"))
            .map_err(|e| BackendError::Invalid { operation: OP, message: e })?;
        let Some(ecr) = parsed.ecr() else {
            // Outside ECR: a digest is used as is (its platforms unknown); a tag cannot be pinned here.
            let mut out = BTreeMap::new();
            for sel in selectors {
                match sel {
                    ImageSelector::Digest(d) => {
                        out.insert(sel.clone(), ImageInfo { digest: d.clone(), platforms: vec![] });
                    }
                    ImageSelector::Tag(t) => {
                        return Err(BackendError::Invalid {
                            operation: Op::ResolveImage,
                            message: format!(
                                "{repository}:{t} is not in Amazon ECR; mcpfleet resolves tags only in ECR, so pin this image by digest (@sha256:…)"
                            ),
                        });
                    }
                }
            }
            return Ok(out);
        };
        let ids: Vec<ImageIdentifier> = selectors
            .iter()
            .map(|s| match s {
                ImageSelector::Tag(t) => ImageIdentifier::builder().image_tag(t).build(),
                ImageSelector::Digest(d) => ImageIdentifier::builder().image_digest(d).build(),
            })
            .collect();
        let out = self
            .client(&ecr.region)
            .batch_get_image()
            .registry_id(&ecr.account)
            .repository_name(&ecr.repository)
            .set_image_ids(Some(ids))
            .set_accepted_media_types(Some(MEDIA_TYPES.iter().map(|m| m.to_string()).collect()))
            .send()
            .await
            .map_err(|e| map_err(OP, e))?;
        // A reference that does not exist is left out (reported per service by resolution); any other failure
        // (access denied, a manifest in a media type we did not accept, …) fails the lookup with ECR's reason.
        // A pull-through cache's upstream being busy or down is transient, and retried as such.
        let mut transient = None;
        let failures: Vec<String> = out
            .failures()
            .iter()
            .filter(|f| f.failure_code().is_none_or(|c| c.as_str() != ABSENT))
            .map(|f| {
                let id = f.image_id();
                let what = match (id.and_then(|i| i.image_tag()), id.and_then(|i| i.image_digest())) {
                    (Some(t), _) => format!("{repository}:{t}"),
                    (None, Some(d)) => format!("{repository}@{d}"),
                    (None, None) => repository.to_string(),
                };
                let code = f.failure_code().map_or("Unknown", |c| c.as_str());
                match code {
                    "UpstreamTooManyRequests" => transient = Some(true),
                    "UpstreamUnavailable" => transient = transient.or(Some(false)),
                    _ => {}
                }
                format!("{what}: {code}: {}", f.failure_reason().unwrap_or("(no reason given)"))
            })
            .collect();
        if !failures.is_empty() {
            let (operation, message) = (OP, failures.join("; "));
            return Err(match transient {
                Some(true) => BackendError::Throttled { operation, message },
                Some(false) => BackendError::Unavailable { operation, message },
                None => BackendError::Invalid { operation, message },
            });
        }
        let mut found = BTreeMap::new();
        for image in out.images() {
            let Some(id) = image.image_id() else { continue };
            let Some(digest) = id.image_digest() else { continue };
            let info = ImageInfo {
                digest: digest.to_string(),
                platforms: image.image_manifest().map(platforms_of_manifest).unwrap_or_default(),
            };
            for sel in selectors {
                let hit = match sel {
                    ImageSelector::Tag(t) => id.image_tag() == Some(t.as_str()),
                    ImageSelector::Digest(d) => d == digest,
                };
                if hit {
                    found.insert(sel.clone(), info.clone());
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::platforms_of_manifest;

    #[test]
    fn index_platforms_skip_attestations() {
        let index = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"digest":"sha256:a","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
            {"digest":"sha256:b","platform":{"os":"linux","architecture":"amd64"}},
            {"digest":"sha256:c","platform":{"os":"unknown","architecture":"unknown"}}]}"#;
        assert_eq!(platforms_of_manifest(index), ["linux/amd64", "linux/arm64"]);
        assert!(platforms_of_manifest(r#"{"schemaVersion":2,"config":{},"layers":[]}"#).is_empty());
        assert!(platforms_of_manifest("not json").is_empty());
    }
}
