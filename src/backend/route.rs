//! Which registry answers for an image: private Amazon ECR repositories (pull-through caches included) through
//! the backend's own image port (ECR's BatchGetImage, or the sim's ECR), every other repository through the
//! distribution-API client (`backend::registry`). Resolution sees one [`Images`] port either way.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::{BackendError, ImageCommand, ImageInfo, ImageSelector, Images};
use crate::spec::{ImageSource, source_of_name};

/// Sends each repository's lookup to `ecr` or to `registry`.
pub struct ByRegistry {
    pub ecr: Arc<dyn Images>,
    pub registry: Arc<dyn Images>,
}

#[async_trait]
impl Images for ByRegistry {
    async fn lookup(
        &self,
        repository: &str,
        selectors: &[ImageSelector],
    ) -> Result<BTreeMap<ImageSelector, ImageInfo>, BackendError> {
        match source_of_name(repository) {
            Ok(ImageSource::Registry(_)) => self.registry.lookup(repository, selectors).await,
            // A name that does not parse gets the ECR side's own answer about it.
            Ok(ImageSource::Ecr(_)) | Err(_) => self.ecr.lookup(repository, selectors).await,
        }
    }

    async fn image_command(&self, repo: &str, digest: &str, platform: &str) -> Result<ImageCommand, BackendError> {
        match source_of_name(repo) {
            Ok(ImageSource::Registry(_)) => self.registry.image_command(repo, digest, platform).await,
            Ok(ImageSource::Ecr(_)) | Err(_) => self.ecr.image_command(repo, digest, platform).await,
        }
    }
}
