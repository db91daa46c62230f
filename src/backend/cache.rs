//! Caches in front of the registry, the secret store and ELBv2, for the controller: a digest, secret ARN or target
//! group (with the load balancers routing to it) resolved in one pass is reused until its TTL runs out, so a
//! steady-state pass over a converged fleet costs only the batched DescribeServices calls. A tag that moves (or a
//! target group whose health check changes) is picked up within the TTL, or at once when the manifests change: the
//! controller makes every cache forget everything then, so an edited manifest is resolved against the registry as
//! it is now, never against a digest remembered from before the edit.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{
    BackendError, Clock, ImageCommand, ImageInfo, ImageSelector, Images, LoadBalancer, SecretInfo, Secrets,
    TargetGroup, TargetGroups,
};

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

    /// The wanted items found, with their values: fresh ones from the map, the others from one call of `fetch`
    /// (only when there are any), which are stored as looked up at `now`.
    async fn through<I, F, Fut>(
        &self,
        now: u64,
        wanted: &[I],
        key: impl Fn(&I) -> K,
        fetch: F,
    ) -> Result<BTreeMap<I, V>, BackendError>
    where
        I: Ord + Clone,
        F: FnOnce(Vec<I>) -> Fut,
        Fut: Future<Output = Result<BTreeMap<I, V>, BackendError>>,
    {
        let (mut out, missing) = self.split(now, wanted, &key);
        if !missing.is_empty() {
            let found = fetch(missing).await?;
            self.store(now, found.iter().map(|(item, value)| (key(item), value.clone())));
            out.extend(found);
        }
        Ok(out)
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
        let key = |sel: &ImageSelector| (repository.to_string(), sel.clone());
        let fetch = |missing: Vec<ImageSelector>| async move { self.inner.lookup(repository, &missing).await };
        self.cache.through(self.clock.now_ms(), selectors, key, fetch).await
    }

    /// Not cached here: a digest's config never changes, and the registry client keeps what it read.
    async fn image_command(&self, repo: &str, digest: &str, platform: &str) -> Result<ImageCommand, BackendError> {
        self.inner.image_command(repo, digest, platform).await
    }
}

/// [`Secrets`] with a TTL cache per name or ARN. The versions' stages are cached with the ARN: a rotation is seen
/// at the latest `ttl` after it happened (the controller's `--cache-ttl`).
pub struct CachedSecrets {
    inner: Arc<dyn Secrets>,
    clock: Arc<dyn Clock>,
    cache: TtlMap<String, SecretInfo>,
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
    async fn resolve(&self, ids: &[String]) -> Result<BTreeMap<String, SecretInfo>, BackendError> {
        let fetch = |missing: Vec<String>| async move { self.inner.resolve(&missing).await };
        self.cache.through(self.clock.now_ms(), ids, String::clone, fetch).await
    }
}

/// [`TargetGroups`] with TTL caches of target groups per name or ARN and of load balancers per ARN.
pub struct CachedTargetGroups {
    inner: Arc<dyn TargetGroups>,
    clock: Arc<dyn Clock>,
    groups: TtlMap<String, TargetGroup>,
    balancers: TtlMap<String, LoadBalancer>,
}

impl CachedTargetGroups {
    pub fn new(inner: Arc<dyn TargetGroups>, clock: Arc<dyn Clock>, ttl: Duration) -> CachedTargetGroups {
        CachedTargetGroups { inner, clock, groups: TtlMap::new(ttl), balancers: TtlMap::new(ttl) }
    }

    /// Forgets every target group and load balancer: the next lookups ask ELBv2.
    pub fn forget(&self) {
        self.groups.clear();
        self.balancers.clear();
    }
}

#[async_trait]
impl TargetGroups for CachedTargetGroups {
    async fn target_groups(&self, ids: &[String]) -> Result<Vec<TargetGroup>, BackendError> {
        let fetch = |missing: Vec<String>| async move {
            let groups = self.inner.target_groups(&missing).await?;
            let named = |id: &String| groups.iter().find(|g| g.arn == *id || g.name == *id).cloned();
            Ok(missing.iter().filter_map(|id| Some((id.clone(), named(id)?))).collect())
        };
        let found = self.groups.through(self.clock.now_ms(), ids, String::clone, fetch).await?;
        Ok(ids.iter().filter_map(|id| found.get(id).cloned()).collect())
    }

    async fn load_balancers(&self, arns: &[String]) -> Result<Vec<LoadBalancer>, BackendError> {
        let fetch = |missing: Vec<String>| async move {
            let balancers = self.inner.load_balancers(&missing).await?;
            Ok(balancers.into_iter().map(|b| (b.arn.clone(), b)).collect())
        };
        let found = self.balancers.through(self.clock.now_ms(), arns, String::clone, fetch).await?;
        Ok(arns.iter().filter_map(|arn| found.get(arn).cloned()).collect())
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

    #[tokio::test]
    async fn target_groups_and_their_load_balancers_are_cached_until_forgotten() {
        use crate::backend::TargetType;
        use crate::backend::sim::TargetGroupSpec;
        let spec = |name: &str, path: &str| TargetGroupSpec {
            name: name.into(),
            health_check_path: path.into(),
            target_type: TargetType::Ip,
            load_balancer: true,
        };
        let mut world = World::default();
        let arn = world.create_target_group(&spec("tg", "/ready")).unwrap();
        let sim = Sim::in_memory(world);
        let b = sim.backend();
        let cached = CachedTargetGroups::new(b.target_groups.clone(), b.clock.clone(), Duration::from_secs(60));
        let ids = ["tg".to_string(), arn.clone()];
        for _ in 0..3 {
            let found = cached.describe(&ids).await.unwrap();
            let names: Vec<(&str, usize)> =
                found.iter().map(|f| (f.target_group.name.as_str(), f.load_balancers.len())).collect();
            assert_eq!(names, [("tg", 1), ("tg", 1)], "by name and by ARN");
        }
        let asked = |op: &str| sim.stats().get(op);
        assert_eq!((asked("DescribeTargetGroups"), asked("DescribeLoadBalancers")), (1, 1));
        // A miss is not cached: a target group made later is found on the next lookup, which asks only for it.
        let later = ["tg".to_string(), "later".into()];
        assert_eq!(cached.describe(&later).await.unwrap().len(), 1);
        sim.with_world(false, |w| w.create_target_group(&spec("later", "/"))).unwrap().unwrap();
        sim.reset_stats();
        assert_eq!(cached.describe(&later).await.unwrap().len(), 2);
        assert_eq!((asked("DescribeTargetGroups"), asked("DescribeTargetGroupAttributes")), (1, 1), "only `later`");
        assert_eq!(asked("DescribeLoadBalancers"), 0, "the ALB is cached");
        // Forgotten, everything is asked again.
        cached.forget();
        assert_eq!(cached.describe(&ids).await.unwrap().len(), 2);
        assert_eq!((asked("DescribeTargetGroups"), asked("DescribeLoadBalancers")), (2, 1));
    }
}
