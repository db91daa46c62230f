//! Where the controller's fleet comes from: the manifest files under `-f` ([`Manifests`]), or the fleet
//! `mcpfleet publish` wrote to S3 (`--source s3://BUCKET/KEY`, [`Published`]).
//!
//! A published fleet is polled with one HeadObject per `--source-interval` and downloaded only when its ETag
//! changed. What was downloaded is validated exactly as files are: an invalid bundle, or one that cannot be read,
//! keeps the last valid fleet and is reported (on `/readyz`), never acted on; an invalid bundle is not downloaded
//! again until it changes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::backend::store::{ObjectStore, ObjectUrl, ReadError, read_bundle};
use crate::spec::{self, ValidFleet};

use super::manifests::{Manifests, Reload, changed_services};

/// The version of the fleet in use, as `/readyz` and the logs name it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetVersion {
    /// `s3://BUCKET/KEY`.
    pub source: String,
    /// The object's ETag.
    pub etag: String,
    /// The object's version id, in a versioned bucket.
    pub version_id: Option<String>,
    /// Who published it, the commit and the message, as `publish` recorded them.
    pub published_by: Option<String>,
}

/// The fleet `publish` wrote, as the controller follows it.
pub struct Published {
    store: Arc<dyn ObjectStore>,
    url: ObjectUrl,
    options: spec::LoadOptions,
    poll: Duration,
    last_poll: Option<Instant>,
    /// The ETag the last HeadObject saw (`None`: no object, or not polled yet).
    latest: Option<String>,
    /// The ETag of the content last downloaded, valid or not.
    fetched: Option<String>,
    fleet: Option<ValidFleet>,
    version: Option<FleetVersion>,
}

impl Published {
    /// Follows `url` in `store`, one HeadObject per `poll`.
    pub fn new(store: Arc<dyn ObjectStore>, url: ObjectUrl, options: spec::LoadOptions, poll: Duration) -> Published {
        Published {
            store,
            url,
            options,
            poll,
            last_poll: None,
            latest: None,
            fetched: None,
            fleet: None,
            version: None,
        }
    }

    fn due(&self) -> bool {
        self.last_poll.is_none_or(|at| at.elapsed() >= self.poll)
    }

    /// One HeadObject: the ETag of the current version.
    async fn poll(&mut self) -> Result<(), String> {
        self.last_poll = Some(Instant::now());
        match self.store.head(&self.url).await {
            Ok(head) => {
                self.latest = head.map(|h| h.etag);
                Ok(())
            }
            Err(e) => Err(format!("{}: cannot be read: {e}", self.url)),
        }
    }

    /// Whether a poll (when one is due) found a version other than the one last downloaded.
    async fn changed(&mut self) -> bool {
        if self.due()
            && let Err(e) = self.poll().await
        {
            warn!(error = %e, "cannot poll the published fleet; keeping the last valid fleet");
            return false;
        }
        self.latest.is_some() && self.latest != self.fetched
    }

    async fn reload(&mut self) -> Reload {
        if (self.due() || self.fleet.is_none())
            && let Err(e) = self.poll().await
        {
            return Reload::Invalid(vec![e]);
        }
        if self.latest == self.fetched && self.fleet.is_some() {
            return Reload::Unchanged;
        }
        let (bundle, head) = match read_bundle(self.store.as_ref(), &self.url).await {
            Ok(read) => read,
            Err(ReadError::Invalid(d)) => {
                // Nothing there: looked for again at every poll.
                self.fetched = None;
                return Reload::Invalid(vec![d.to_string()]);
            }
            Err(e @ ReadError::Store(_)) => return Reload::Invalid(vec![format!("{}: {e}", self.url)]),
        };
        self.fetched = Some(head.etag.clone());
        self.latest = Some(head.etag.clone());
        match spec::load_sources_with(&bundle.files, &self.options) {
            Ok(fleet) => {
                let changed = changed_services(self.fleet.as_ref(), &fleet);
                self.fleet = Some(fleet);
                let publication = crate::spec::bundle::Publication::from_metadata(&head.metadata);
                self.version = Some(FleetVersion {
                    source: self.url.to_string(),
                    etag: head.etag,
                    version_id: head.version_id,
                    published_by: publication.map(|p| p.describe()),
                });
                Reload::Loaded { changed }
            }
            Err(diags) => Reload::Invalid(diags.0.iter().map(ToString::to_string).collect()),
        }
    }
}

/// The controller's source of desired state.
pub enum FleetSource {
    Files(Manifests),
    Published(Box<Published>),
}

impl FleetSource {
    /// The last valid fleet.
    pub fn fleet(&self) -> Option<&ValidFleet> {
        match self {
            FleetSource::Files(m) => m.fleet(),
            FleetSource::Published(p) => p.fleet.as_ref(),
        }
    }

    /// The version of the published fleet in use (`None` for files).
    pub fn version(&self) -> Option<&FleetVersion> {
        match self {
            FleetSource::Files(_) => None,
            FleetSource::Published(p) => p.version.as_ref(),
        }
    }

    /// Whether the source changed since it was last loaded (files: on disk; published: at the last poll, one
    /// HeadObject when a poll is due).
    pub async fn changed(&mut self) -> bool {
        match self {
            FleetSource::Files(m) => m.changed_on_disk(),
            FleetSource::Published(p) => p.changed().await,
        }
    }

    /// Reloads when the source changed, or when no valid fleet was ever loaded.
    pub async fn reload(&mut self) -> Reload {
        match self {
            FleetSource::Files(m) => m.reload(),
            FleetSource::Published(p) => p.reload().await,
        }
    }
}
