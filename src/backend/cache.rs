//! Caches in front of the registry and the secret store, for the controller: a digest or secret ARN resolved in
//! one pass is reused until its TTL runs out, so a steady-state pass over a converged fleet costs only the
//! batched DescribeServices calls. A tag that moves is picked up within the TTL.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{BackendError, Clock, ImageInfo, ImageSelector, Images, Secrets};

struct Entry<T> {
    value: T,
    expires_ms: u64,
}

/// [`Images`] with a TTL cache per (repository, tag or digest).
pub struct CachedImages {
    inner: Arc<dyn Images>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    entries: Mutex<BTreeMap<(String, ImageSelector), Entry<ImageInfo>>>,
}

impl CachedImages {
    pub fn new(inner: Arc<dyn Images>, clock: Arc<dyn Clock>, ttl: Duration) -> CachedImages {
        CachedImages { inner, clock, ttl, entries: Mutex::new(BTreeMap::new()) }
    }
}

#[async_trait]
impl Images for CachedImages {
    async fn lookup(
        &self,
        repository: &str,
        selectors: &[ImageSelector],
    ) -> Result<BTreeMap<ImageSelector, ImageInfo>, BackendError> {
        let now = self.clock.now_ms();
        let mut out = BTreeMap::new();
        let mut missing = Vec::new();
        {
            let entries = self.entries.lock().expect("cache lock");
            for sel in selectors {
                match entries.get(&(repository.to_string(), sel.clone())) {
                    Some(e) if e.expires_ms > now => {
                        out.insert(sel.clone(), e.value.clone());
                    }
                    _ => missing.push(sel.clone()),
                }
            }
        }
        if !missing.is_empty() {
            let found = self.inner.lookup(repository, &missing).await?;
            let mut entries = self.entries.lock().expect("cache lock");
            for (sel, info) in found {
                let expires_ms = now + self.ttl.as_millis() as u64;
                entries.insert((repository.to_string(), sel.clone()), Entry { value: info.clone(), expires_ms });
                out.insert(sel, info);
            }
        }
        Ok(out)
    }
}

/// [`Secrets`] with a TTL cache per name or ARN.
pub struct CachedSecrets {
    inner: Arc<dyn Secrets>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    entries: Mutex<BTreeMap<String, Entry<String>>>,
}

impl CachedSecrets {
    pub fn new(inner: Arc<dyn Secrets>, clock: Arc<dyn Clock>, ttl: Duration) -> CachedSecrets {
        CachedSecrets { inner, clock, ttl, entries: Mutex::new(BTreeMap::new()) }
    }
}

#[async_trait]
impl Secrets for CachedSecrets {
    async fn resolve(&self, ids: &[String]) -> Result<BTreeMap<String, String>, BackendError> {
        let now = self.clock.now_ms();
        let mut out = BTreeMap::new();
        let mut missing = Vec::new();
        {
            let entries = self.entries.lock().expect("cache lock");
            for id in ids {
                match entries.get(id) {
                    Some(e) if e.expires_ms > now => {
                        out.insert(id.clone(), e.value.clone());
                    }
                    _ => missing.push(id.clone()),
                }
            }
        }
        if !missing.is_empty() {
            let found = self.inner.resolve(&missing).await?;
            let mut entries = self.entries.lock().expect("cache lock");
            for (id, arn) in found {
                entries.insert(id.clone(), Entry { value: arn.clone(), expires_ms: now + self.ttl.as_millis() as u64 });
                out.insert(id, arn);
            }
        }
        Ok(out)
    }
}
