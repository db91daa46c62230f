//! Caches in front of the registry and the secret store, for the controller: a digest or secret ARN resolved in
//! one pass is reused until its TTL runs out, so a steady-state pass over a converged fleet costs only the
//! batched DescribeServices calls. A tag that moves is picked up within the TTL, or at once when the manifests
//! change: the controller makes both caches forget everything then, so an edited manifest is resolved against the
//! registry as it is now, never against a digest remembered from before the edit.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{BackendError, Clock, ImageInfo, ImageSelector, Images, Secrets};

struct Entry<T> {
    value: T,
    expires_ms: u64,
}

/// Values by key, each fresh until its TTL runs out. Misses are not stored: a thing created later is found on the
/// next lookup.
struct TtlMap<K, V> {
    ttl: Duration,
    entries: Mutex<BTreeMap<K, Entry<V>>>,
}

impl<K: Ord, V: Clone> TtlMap<K, V> {
    fn new(ttl: Duration) -> Self {
        TtlMap { ttl, entries: Mutex::new(BTreeMap::new()) }
    }

    /// The wanted items fresh at `now` with their values, and those that need a lookup.
    fn split<I: Ord + Clone>(&self, now: u64, wanted: &[I], key: impl Fn(&I) -> K) -> (BTreeMap<I, V>, Vec<I>) {
        let entries = super::lock(&self.entries);
        let mut out = BTreeMap::new();
        let mut missing = Vec::new();
        for item in wanted {
            match entries.get(&key(item)) {
                Some(e) if e.expires_ms > now => {
                    out.insert(item.clone(), e.value.clone());
                }
                _ => missing.push(item.clone()),
            }
        }
        (out, missing)
    }

    /// Empties the map.
    fn clear(&self) {
        super::lock(&self.entries).clear();
    }

    /// Stores values looked up at `now`.
    fn store(&self, now: u64, found: impl IntoIterator<Item = (K, V)>) {
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let expires_ms = now.saturating_add(ttl_ms);
        let mut entries = super::lock(&self.entries);
        entries.extend(found.into_iter().map(|(k, value)| (k, Entry { value, expires_ms })));
    }
}

/// [`Images`] with a TTL cache per (repository, tag or digest).
pub struct CachedImages {
    inner: Arc<dyn Images>,
    clock: Arc<dyn Clock>,
    cache: TtlMap<(String, ImageSelector), ImageInfo>,
}

impl CachedImages {
    pub fn new(inner: Arc<dyn Images>, clock: Arc<dyn Clock>, ttl: Duration) -> CachedImages {
        CachedImages { inner, clock, cache: TtlMap::new(ttl) }
    }

    /// Forgets every digest: the next lookups ask the registry.
    pub fn forget(&self) {
        self.cache.clear();
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
        let (mut out, missing) = self.cache.split(now, selectors, |sel| (repository.to_string(), sel.clone()));
        if !missing.is_empty() {
            let found = self.inner.lookup(repository, &missing).await?;
            self.cache
                .store(now, found.iter().map(|(sel, info)| ((repository.to_string(), sel.clone()), info.clone())));
            out.extend(found);
        }
        Ok(out)
    }
}

/// [`Secrets`] with a TTL cache per name or ARN.
pub struct CachedSecrets {
    inner: Arc<dyn Secrets>,
    clock: Arc<dyn Clock>,
    cache: TtlMap<String, String>,
}

impl CachedSecrets {
    pub fn new(inner: Arc<dyn Secrets>, clock: Arc<dyn Clock>, ttl: Duration) -> CachedSecrets {
        CachedSecrets { inner, clock, cache: TtlMap::new(ttl) }
    }

    /// Forgets every secret ARN: the next lookups ask the secret store.
    pub fn forget(&self) {
        self.cache.clear();
    }
}

#[async_trait]
impl Secrets for CachedSecrets {
    async fn resolve(&self, ids: &[String]) -> Result<BTreeMap<String, String>, BackendError> {
        let now = self.clock.now_ms();
        let (mut out, missing) = self.cache.split(now, ids, String::clone);
        if !missing.is_empty() {
            let found = self.inner.resolve(&missing).await?;
            self.cache.store(now, found.iter().map(|(id, arn)| (id.clone(), arn.clone())));
            out.extend(found);
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
