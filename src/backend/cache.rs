//! Caches in front of the registry and the secret store, for the controller: a digest or secret ARN resolved in
//! one pass is reused until its TTL runs out, so a steady-state pass over a converged fleet costs only the
//! batched DescribeServices calls. A tag that moves is picked up within the TTL, or at once when the manifests
//! change: the controller makes both caches forget everything then, so an edited manifest is resolved against the registry as it
//! is now, never against a digest remembered from before the edit.

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

    /// Forgets every digest: the next lookups ask the registry.
    pub fn forget(&self) {
        forget(&self.entries);
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

    /// Forgets every secret ARN: the next lookups ask the secret store.
    pub fn forget(&self) {
        forget(&self.entries);
    }
}

/// Empties a cache (a poisoned lock only means another thread panicked mid-insert: the map is still a map).
fn forget<K, V>(entries: &Mutex<BTreeMap<K, Entry<V>>>) {
    entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::sim::{Sim, World};

    #[tokio::test]
    async fn lookups_are_served_from_the_cache_until_the_ttl_runs_out() {
        let mut world = World::default();
        world.push_image("r/x", "v1", vec!["linux/amd64".into()], false);
        world.create_secret("s");
        let sim = Sim::in_memory(world);
        let b = sim.backend();
        let images = CachedImages::new(b.images.clone(), b.clock.clone(), Duration::from_secs(60));
        let secrets = CachedSecrets::new(b.secrets.clone(), b.clock.clone(), Duration::from_secs(60));
        let tag = [ImageSelector::Tag("v1".into())];
        for _ in 0..3 {
            assert_eq!(images.lookup("r/x", &tag).await.unwrap().len(), 1);
            assert_eq!(secrets.resolve(&["s".into()]).await.unwrap().len(), 1);
        }
        assert_eq!((sim.stats().get("BatchGetImage"), sim.stats().get("ListSecrets")), (1, 1));
        // A tag that moves is seen once the entry expires.
        sim.with_world(false, |w| w.push_image("r/x", "v1", vec!["linux/arm64".into()], false)).unwrap();
        assert_eq!(images.lookup("r/x", &tag).await.unwrap()[&tag[0]].platforms, ["linux/amd64"]);
        b.clock.sleep(Duration::from_secs(61)).await;
        assert_eq!(images.lookup("r/x", &tag).await.unwrap()[&tag[0]].platforms, ["linux/arm64"]);
        assert_eq!(sim.stats().get("BatchGetImage"), 2);
        // Misses are not cached: a secret created later is found on the next pass.
        assert!(secrets.resolve(&["later".into()]).await.unwrap().is_empty());
        sim.with_world(false, |w| w.create_secret("later")).unwrap();
        assert_eq!(secrets.resolve(&["later".into()]).await.unwrap().len(), 1);
    }
}
