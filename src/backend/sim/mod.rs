//! The `sim` backend: the ports implemented over a [`World`], optionally persisted in the `--sim-state` file.
//!
//! A file-backed sim holds an exclusive lock on `<state>.lock` for its whole life, so two commands never
//! interleave, and writes the state atomically (temp file + rename) after every change: a command that crashes
//! leaves exactly the writes it made, like a real API would. A command that only reads leaves the file
//! byte-identical. Every port call is counted, which is how tests and benchmarks measure API requests.

mod world;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

pub use world::{
    BucketState, Repository, SimImage, SimService, StoppedTask, TASK_SETTLE_MS, TICK_MS, World, breaker_threshold,
};

use super::limits::{self, BucketSpec};
use super::{
    Backend, BackendError, Clock, Described, Ecs, ImageInfo, ImageSelector, Images, Secrets, ServiceState,
    ServiceUpdate, TaskDefinition, TdStatus,
};
use crate::render::ecs::{ServiceInput, TaskDefinitionInput};

/// Environment variable naming an operation after which a file-backed sim exits abruptly (crash-safety tests).
pub const CRASH_AFTER_ENV: &str = "MCPFLEET_SIM_CRASH_AFTER";

/// Calls made to the sim, by operation name, and how many were throttled.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CallStats {
    pub calls: BTreeMap<String, u64>,
    pub throttled: BTreeMap<String, u64>,
}

impl CallStats {
    /// Calls that change state.
    pub fn writes(&self) -> u64 {
        self.calls.iter().filter(|(op, _)| is_write(op)).map(|(_, n)| n).sum()
    }

    pub fn get(&self, op: &str) -> u64 {
        self.calls.get(op).copied().unwrap_or(0)
    }
}

/// Whether an ECS operation changes state.
pub fn is_write(op: &str) -> bool {
    matches!(
        op,
        "RegisterTaskDefinition"
            | "DeregisterTaskDefinition"
            | "CreateService"
            | "UpdateService"
            | "DeleteService"
            | "TagResource"
            | "UntagResource"
    )
}

struct Inner {
    world: World,
    stats: CallStats,
    /// Whether ECS's token buckets are enforced (they are for the CLI; unit tests of other behaviour may turn
    /// them off).
    throttling: bool,
}

/// The simulated ECS, registry, secret store and clock.
pub struct Sim {
    inner: Mutex<Inner>,
    store: Option<Store>,
}

struct Store {
    path: PathBuf,
    /// The exclusive lock on `<state>.lock` while this sim owns the state: a command's whole life, or one
    /// controller pass at a time.
    lock: Mutex<Option<File>>,
}

fn state_err(path: &Path, what: &str, e: std::io::Error) -> BackendError {
    BackendError::State(format!("{what} {}: {e}", path.display()))
}

/// Takes the exclusive lock of a state file (`<state>.lock`), waiting while another command holds it.
fn lock_state(path: &Path) -> Result<File, BackendError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| state_err(path, "cannot create the directory of", e))?;
    }
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.with_extension("lock"))
        .map_err(|e| state_err(path, "cannot open the lock of", e))?;
    lock.lock().map_err(|e| state_err(path, "cannot lock", e))?;
    Ok(lock)
}

/// Reads a state file, streamed so the file's bytes and the parsed world are never both in memory.
fn read_world(path: &Path) -> Result<World, BackendError> {
    match File::open(path) {
        Ok(f) => serde_json::from_reader(std::io::BufReader::new(f))
            .map_err(|e| BackendError::State(format!("{} is not a sim state file: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(World::default()),
        Err(e) => Err(state_err(path, "cannot read", e)),
    }
}

impl Sim {
    /// An in-memory sim (tests and benchmarks).
    pub fn in_memory(world: World) -> Arc<Sim> {
        Arc::new(Sim { inner: Mutex::new(Inner { world, stats: CallStats::default(), throttling: true }), store: None })
    }

    /// Opens (or creates) the state file, taking its lock; waits while another command holds it.
    pub fn open(path: &Path) -> Result<Arc<Sim>, BackendError> {
        let lock = lock_state(path)?;
        let world = read_world(path)?;
        Ok(Arc::new(Sim {
            inner: Mutex::new(Inner { world, stats: CallStats::default(), throttling: true }),
            store: Some(Store { path: path.to_path_buf(), lock: Mutex::new(Some(lock)) }),
        }))
    }

    /// Lets other commands use the state file until [`Sim::reacquire`] (a long-running controller between passes).
    pub fn release(&self) {
        if let Some(store) = &self.store {
            store.lock.lock().expect("sim store lock").take();
        }
    }

    /// Takes the lock again and reloads the world, which other commands may have changed meanwhile. The call
    /// counts carry on.
    pub fn reacquire(&self) -> Result<(), BackendError> {
        let Some(store) = &self.store else { return Ok(()) };
        let mut held = store.lock.lock().expect("sim store lock");
        if held.is_none() {
            *held = Some(lock_state(&store.path)?);
            let world = read_world(&store.path)?;
            self.inner.lock().expect("sim lock").world = world;
        }
        Ok(())
    }

    /// The ports over this sim.
    pub fn backend(self: &Arc<Self>) -> Backend {
        Backend { ecs: self.clone(), images: self.clone(), secrets: self.clone(), clock: self.clone() }
    }

    /// Runs `f` on the world; `write` says whether it changed and must be persisted.
    pub fn with_world<T>(&self, write: bool, f: impl FnOnce(&mut World) -> T) -> Result<T, BackendError> {
        let mut inner = self.inner.lock().expect("sim lock");
        let out = f(&mut inner.world);
        if write {
            self.save(&inner.world)?;
        }
        Ok(out)
    }

    /// A copy of the world.
    pub fn snapshot(&self) -> World {
        self.inner.lock().expect("sim lock").world.clone()
    }

    /// Calls made so far.
    pub fn stats(&self) -> CallStats {
        self.inner.lock().expect("sim lock").stats.clone()
    }

    pub fn reset_stats(&self) {
        self.inner.lock().expect("sim lock").stats = CallStats::default();
    }

    /// Turns ECS's server-side token buckets on or off.
    pub fn set_throttling(&self, on: bool) {
        self.inner.lock().expect("sim lock").throttling = on;
    }

    fn save(&self, world: &World) -> Result<(), BackendError> {
        let Some(store) = &self.store else { return Ok(()) };
        let dir = store.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| BackendError::State(e.to_string()))?;
        let mut out = std::io::BufWriter::new(tmp);
        serde_json::to_writer(&mut out, world).map_err(|e| BackendError::State(e.to_string()))?;
        let tmp = out.into_inner().map_err(|e| BackendError::State(e.to_string()))?;
        tmp.persist(&store.path).map_err(|e| BackendError::State(e.to_string()))?;
        Ok(())
    }

    /// Counts the call, applies ECS's token bucket, runs it, persists a write, and honours crash injection.
    fn call<T>(&self, op: &str, f: impl FnOnce(&mut World) -> Result<T, BackendError>) -> Result<T, BackendError> {
        let mut inner = self.inner.lock().expect("sim lock");
        *inner.stats.calls.entry(op.to_string()).or_default() += 1;
        if inner.throttling
            && let Some(spec) = limits::ecs_bucket(op)
            && !take_token(&mut inner.world, spec)
        {
            *inner.stats.throttled.entry(op.to_string()).or_default() += 1;
            return Err(BackendError::Throttled { operation: op.into(), message: "Rate exceeded".into() });
        }
        let out = f(&mut inner.world)?;
        if is_write(op) {
            self.save(&inner.world)?;
            if self.store.is_some() && std::env::var(CRASH_AFTER_ENV).is_ok_and(|v| v == op) {
                eprintln!("sim: crash injected after {op}");
                std::process::exit(137);
            }
        }
        Ok(out)
    }
}

/// Takes one token from the bucket of `spec`, refilled for the virtual time elapsed. False when empty.
fn take_token(world: &mut World, spec: BucketSpec) -> bool {
    let now = world.now_ms;
    let b = world
        .buckets
        .entry(spec.category.to_string())
        .or_insert(BucketState { tokens: f64::from(spec.burst), updated_ms: now });
    let elapsed = now.saturating_sub(b.updated_ms) as f64 / 1000.0;
    b.tokens = (b.tokens + elapsed * spec.per_second).min(f64::from(spec.burst));
    b.updated_ms = now;
    if b.tokens >= 1.0 {
        b.tokens -= 1.0;
        true
    } else {
        false
    }
}

#[async_trait]
impl Ecs for Sim {
    async fn describe_services(&self, cluster: &str, names: &[String]) -> Result<Described, BackendError> {
        self.call("DescribeServices", |w| {
            let (services, missing) = w.describe_services(cluster, names)?;
            Ok(Described { services, missing })
        })
    }
    async fn list_services(&self, cluster: &str) -> Result<Vec<String>, BackendError> {
        self.call("ListServices", |w| Ok(w.list_services(cluster)))
    }
    async fn list_clusters(&self) -> Result<Vec<String>, BackendError> {
        self.call("ListClusters", |w| Ok(w.list_clusters()))
    }
    async fn register_task_definition(&self, input: &TaskDefinitionInput) -> Result<TaskDefinition, BackendError> {
        self.call("RegisterTaskDefinition", |w| Ok(w.register_task_definition(input)))
    }
    async fn describe_task_definition(&self, id: &str) -> Result<TaskDefinition, BackendError> {
        self.call("DescribeTaskDefinition", |w| w.describe_task_definition(id))
    }
    async fn list_task_definitions(&self, family: &str, status: TdStatus) -> Result<Vec<String>, BackendError> {
        self.call("ListTaskDefinitions", |w| Ok(w.list_task_definitions(family, status)))
    }
    async fn deregister_task_definition(&self, arn: &str) -> Result<(), BackendError> {
        self.call("DeregisterTaskDefinition", |w| w.deregister_task_definition(arn))
    }
    async fn create_service(
        &self,
        input: &ServiceInput,
        client_token: Option<&str>,
    ) -> Result<ServiceState, BackendError> {
        self.call("CreateService", |w| w.create_service_with_token(input, client_token))
    }
    async fn update_service(&self, update: &ServiceUpdate) -> Result<ServiceState, BackendError> {
        // ECS's enum; the sim keeps no tasks to tag, so a valid value is all there is to check.
        if let Some(tagging) = &update.tagging
            && !matches!(tagging.propagate_tags.as_str(), "SERVICE" | "TASK_DEFINITION" | "NONE")
        {
            return Err(BackendError::Invalid {
                operation: "UpdateService".into(),
                message: format!("InvalidParameterException: invalid propagateTags `{}`", tagging.propagate_tags),
            });
        }
        self.call("UpdateService", |w| w.update_service(update))
    }
    async fn delete_service(&self, cluster: &str, name: &str) -> Result<(), BackendError> {
        self.call("DeleteService", |w| w.delete_service(cluster, name))
    }
    async fn tag_resource(&self, arn: &str, tags: &super::Tags) -> Result<(), BackendError> {
        self.call("TagResource", |w| w.tag_resource(arn, tags))
    }
    async fn untag_resource(&self, arn: &str, keys: &[String]) -> Result<(), BackendError> {
        self.call("UntagResource", |w| w.untag_resource(arn, keys))
    }
    async fn stopped_task_reasons(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> Result<Vec<String>, BackendError> {
        let arns = self.call("ListTasks", |w| Ok(w.list_stopped_tasks(cluster, service)))?;
        if arns.is_empty() {
            return Ok(Vec::new());
        }
        self.call("DescribeTasks", |w| Ok(w.stopped_task_reasons(cluster, service, &arns, task_definition)))
    }
}

#[async_trait]
impl Images for Sim {
    async fn lookup(
        &self,
        repository: &str,
        selectors: &[ImageSelector],
    ) -> Result<BTreeMap<ImageSelector, ImageInfo>, BackendError> {
        if selectors.len() > super::IMAGE_BATCH {
            return Err(BackendError::Invalid {
                operation: "BatchGetImage".into(),
                message: "imageIds can have at most 100 items".into(),
            });
        }
        self.call("BatchGetImage", |w| Ok(w.lookup_images(repository, selectors)))
    }
}

#[async_trait]
impl Secrets for Sim {
    async fn resolve(&self, ids: &[String]) -> Result<BTreeMap<String, String>, BackendError> {
        self.call("ListSecrets", |w| Ok(w.resolve_secrets(ids)))
    }
}

#[async_trait]
impl Clock for Sim {
    fn now_ms(&self) -> u64 {
        self.inner.lock().expect("sim lock").world.now_ms
    }

    fn is_virtual(&self) -> bool {
        true
    }

    /// Sleeping moves the virtual clock, progressing deployments; the new time is persisted.
    async fn sleep(&self, d: Duration) {
        let mut inner = self.inner.lock().expect("sim lock");
        let t = inner.world.now_ms + d.as_millis() as u64;
        inner.world.advance_to(t);
        if let Err(e) = self.save(&inner.world) {
            tracing::warn!(error = %e, "could not persist the sim clock");
        }
    }
}
