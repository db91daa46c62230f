//! Image resolution through Amazon ECR: one BatchGetImage per repository per 100 references returns both the
//! digest and the manifest, and an image index's manifest lists its platforms. Images of other registries are
//! resolved by `backend::registry` (the OCI distribution API); `backend::route` sends each repository to one or
//! the other.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_ecr::types::ImageIdentifier;

use super::map_err;
use crate::backend::manifest::{MEDIA_TYPES, platforms_of_manifest};
use crate::backend::{BackendError, ImageCommand, ImageInfo, ImageSelector, Images, Op};
use crate::spec::{ImageSource, source_of_name};

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

#[async_trait]
impl Images for Ecr {
    async fn lookup(
        &self,
        repository: &str,
        selectors: &[ImageSelector],
    ) -> Result<BTreeMap<ImageSelector, ImageInfo>, BackendError> {
        const OP: Op = Op::BatchGetImage;
        let ecr = match source_of_name(repository) {
            Ok(ImageSource::Ecr(ecr)) => ecr,
            Ok(ImageSource::Registry(_)) => {
                return Err(BackendError::Invalid {
                    operation: OP,
                    message: format!("{repository} is not an Amazon ECR repository"),
                });
            }
            Err(e) => return Err(BackendError::Invalid { operation: OP, message: e }),
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

    /// BatchGetImage has no config blob, and mcpfleet does not fetch ECR layers (GetDownloadUrlForLayer).
    async fn image_command(&self, repository: &str, _: &str, _: &str) -> Result<ImageCommand, BackendError> {
        Err(crate::backend::ecr_command_unreadable(repository))
    }
}
