//! The `sim` backend: the ports implemented over a [`World`], optionally persisted in the `--sim-state` file
//! (Application Auto Scaling's in `scaling`).
//!
//! A file-backed sim holds an exclusive lock on `<state>.lock` for its whole life, so two commands never
//! interleave. Each write call is appended to the state's journal before it returns (see `journal`), and the
//! journal is folded into the state file when the command ends: a command that crashes leaves exactly the writes
//! it made, like a real API would, and persistence costs what changed, not the size of the world. A command that
//! only reads leaves the files byte-identical: the virtual time it spends waiting for tokens (or backing off) and
//! the token buckets it drains are not persisted unless it also writes. Every port call is counted, which is how
//! tests and benchmarks measure API requests.

mod journal;
mod scaling;
mod world;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

pub use scaling::{EVALUATION_MS, Load, LoadSpec, SimScalableTarget};
pub use world::{
    BucketState, Repository, SIM_LOAD_BALANCER, ServedUrl, SimImage, SimService, StoppedTask, TASK_SETTLE_MS, TICK_MS,
    TargetGroupSpec, World, breaker_threshold,
};

use super::limits::{self, BucketSpec};
use super::lock;
use super::{
    Backend, BackendError, Clock, DESCRIBE_TARGET_GROUPS_BATCH, Described, Ecs, ImageCommand, ImageInfo, ImageSelector,
    Images, LoadBalancer, Op, SecretInfo, Secrets, ServiceState, ServiceUpdate, TargetGroup, TargetGroups,
    TaskDefinition, TaskInfo, TaskPage, TdStatus,
};
use crate::render::ecs::{ServiceInput, TaskDefinitionInput};
use journal::Record;
pub use journal::path_of as journal_path;

/// Environment variable naming an operation after which a file-backed sim exits abruptly (crash-safety tests).
pub const CRASH_AFTER_ENV: &str = "MCPFLEET_SIM_CRASH_AFTER";

/// Calls made to the sim (or requests the aws adapters sent), by operation, and how many were throttled.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CallStats {
    pub calls: BTreeMap<Op, u64>,
    pub throttled: BTreeMap<Op, u64>,
}

impl CallStats {
    /// Calls that change state.
    pub fn writes(&self) -> u64 {
        self.calls.iter().filter(|(op, _)| op.is_write()).map(|(_, n)| n).sum()
    }

    /// Calls of `op`, given as an [`Op`] or by its name.
    pub fn get<Q: Ord + ?Sized>(&self, op: &Q) -> u64
    where
        Op: std::borrow::Borrow<Q>,
    {
        self.calls.get(op).copied().unwrap_or(0)
    }
}

struct Inner {
    world: World,
    stats: CallStats,
    /// Whether ECS's token buckets are enforced (they are for the CLI; unit tests of other behaviour may turn
    /// them off).
    throttling: bool,
    /// What is persisted of this command's changes so far.
    log: Log,
}

/// A command's journal: open once it first writes.
#[derive(Default)]
struct Log {
    writer: Option<journal::Writer>,
    /// Records in the journal (they must be folded into the snapshot when the command ends).
    records: u64,
    /// Clock moves made while waiting for tokens or backing off, not yet journaled: a command that writes
    /// journals them before its next record (replay must move the clock the same way); one that only reads
    /// never does.
    unjournaled: Vec<u64>,
}

impl Inner {
    fn fresh(world: World) -> Inner {
        Inner { world, stats: CallStats::default(), throttling: true, log: Log::default() }
    }
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

/// Takes the exclusive lock of a state file (`<state>.lock`), waiting while another command holds it; `waiting`
/// is told once when it has to wait, so a command never looks hung without saying why.
fn lock_state(path: &Path, waiting: fn(&Path)) -> Result<File, BackendError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| state_err(path, "cannot create the directory of", e))?;
    }
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.with_extension("lock"))
        .map_err(|e| state_err(path, "cannot open the lock of", e))?;
    match lock.try_lock() {
        Ok(()) => return Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => waiting(path),
        Err(std::fs::TryLockError::Error(e)) => return Err(state_err(path, "cannot lock", e)),
    }
    lock.lock().map_err(|e| state_err(path, "cannot lock", e))?;
    Ok(lock)
}

/// Reads a state file, streamed so the file's bytes and the parsed world are never both in memory. The file is
/// the user's to edit, so anything it holds gets an error naming it, the position and the field, never a panic.
fn read_world(path: &Path) -> Result<World, BackendError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(World::default()),
        Err(e) => return Err(state_err(path, "cannot read", e)),
    };
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(file));
    let world =
        serde_path_to_error::deserialize(&mut de).map_err(|e| bad_state_file(path, e.path().to_string(), e.inner()))?;
    de.end().map_err(|e| bad_state_file(path, String::new(), &e))?;
    Ok(world)
}

/// The world a state file holds: its snapshot with its journal's records replayed (a torn last record, from a
/// command that crashed while writing it, is left out). Whether there is a journal to fold in is returned too.
fn load(path: &Path) -> Result<(World, bool), BackendError> {
    let mut world = read_world(path)?;
    let found = journal::read(path, world.journal_generation)?;
    for record in &found.records {
        record.replay(&mut world);
    }
    world.shrink_to_fit();
    Ok((world, found.exists))
}

/// The world the state file `path` holds now, journal included, read without taking the lock or changing the
/// files (tests and tools that inspect a state while no command runs).
pub fn read_state(path: &Path) -> Result<World, BackendError> {
    load(path).map(|(world, _)| world)
}

/// [`BackendError::StateFile`] for a parse error at `field` (`.` or empty for the document itself).
fn bad_state_file(path: &Path, field: String, e: &serde_json::Error) -> BackendError {
    if e.is_io() {
        return BackendError::State(format!("cannot read {}: {e}", path.display()));
    }
    // serde_json's message ends with the position, which goes in front instead.
    let text = e.to_string();
    let what = text.strip_suffix(&format!(" at line {} column {}", e.line(), e.column())).unwrap_or(&text);
    let what = match (e.classify(), e.line(), e.column()) {
        (serde_json::error::Category::Eof, 1, 0) => "the file is empty".to_string(),
        (serde_json::error::Category::Eof, ..) => format!("{what} (is the file truncated?)"),
        _ => what.to_string(),
    };
    let at = match (e.line(), e.column()) {
        (line, column) if line > 0 && column > 0 => format!("{}:{line}:{column}", path.display()),
        _ => path.display().to_string(),
    };
    let message = match field.as_str() {
        // `?`: serde_path_to_error could not name the field (the document ended inside it).
        "" | "." | "?" => what,
        field => format!("{field}: {what}"),
    };
    BackendError::StateFile { at, message }
}

impl Sim {
    /// An in-memory sim (tests and benchmarks).
    pub fn in_memory(world: World) -> Arc<Sim> {
        Arc::new(Sim { inner: Mutex::new(Inner::fresh(world)), store: None })
    }

    /// Opens (or creates) the state file, taking its lock; waits while another command holds it, saying so once
    /// on stderr.
    pub fn open(path: &Path) -> Result<Arc<Sim>, BackendError> {
        let lock = lock_state(path, |path| {
            eprintln!(
                "waiting for the sim state lock held by another mcpfleet command ({})…",
                path.with_extension("lock").display()
            );
        })?;
        let sim = Arc::new(Sim {
            inner: Mutex::new(Inner::fresh(World::default())),
            store: Some(Store { path: path.to_path_buf(), lock: Mutex::new(Some(lock)) }),
        });
        sim.reload()?;
        Ok(sim)
    }

    /// Reads the world from the files (the lock held), folding in a journal a crashed command left.
    fn reload(&self) -> Result<(), BackendError> {
        let Some(store) = &self.store else { return Ok(()) };
        let (world, journaled) = load(&store.path)?;
        let mut inner = lock(&self.inner);
        inner.world = world;
        inner.log = Log::default();
        if journaled {
            compact(&store.path, &mut inner, true)?;
        }
        Ok(())
    }

    /// Folds this command's journal into the state file, when it wrote anything.
    fn fold(&self) -> Result<(), BackendError> {
        let Some(store) = &self.store else { return Ok(()) };
        let mut inner = lock(&self.inner);
        if inner.log.writer.is_some() { compact(&store.path, &mut inner, true) } else { Ok(()) }
    }

    /// Lets other commands use the state file until [`Sim::reacquire`] (a long-running controller between passes).
    pub fn release(&self) {
        if let Some(store) = &self.store {
            if let Err(e) = self.fold() {
                // The journal keeps the changes; the next command to open the state folds them in.
                tracing::warn!(error = %e, "could not fold the sim journal into the state file");
            }
            lock(&store.lock).take();
        }
    }

    /// Takes the lock again and reloads the world, which other commands may have changed meanwhile. The call
    /// counts carry on.
    pub fn reacquire(&self) -> Result<(), BackendError> {
        let Some(store) = &self.store else { return Ok(()) };
        let mut held = lock(&store.lock);
        if held.is_none() {
            *held = Some(lock_state(&store.path, |path| {
                tracing::info!(state = %path.display(), "waiting for the sim state lock held by another mcpfleet command");
            })?);
            drop(held);
            self.reload()?;
        }
        Ok(())
    }

    /// The ports over this sim.
    pub fn backend(self: &Arc<Self>) -> Backend {
        Backend {
            ecs: self.clone(),
            images: self.clone(),
            secrets: self.clone(),
            target_groups: self.clone(),
            autoscaling: self.clone(),
            clock: self.clone(),
        }
    }

    /// Runs `f` on the world; `write` says whether it changed and must be persisted (the whole world is then
    /// written: these are the sim's own seeding and editing commands, not API calls).
    pub fn with_world<T>(&self, write: bool, f: impl FnOnce(&mut World) -> T) -> Result<T, BackendError> {
        let mut inner = lock(&self.inner);
        let out = f(&mut inner.world);
        if write && let Some(store) = &self.store {
            let folds = inner.log.writer.is_some();
            compact(&store.path, &mut inner, folds)?;
        }
        Ok(out)
    }

    /// A copy of the world.
    pub fn snapshot(&self) -> World {
        lock(&self.inner).world.clone()
    }

    /// Calls made so far.
    pub fn stats(&self) -> CallStats {
        lock(&self.inner).stats.clone()
    }

    pub fn reset_stats(&self) {
        lock(&self.inner).stats = CallStats::default();
    }

    /// Turns ECS's server-side token buckets on or off.
    pub fn set_throttling(&self, on: bool) {
        lock(&self.inner).throttling = on;
    }

    /// Persists `record` (a file-backed sim journals it, with the clock moves it has not journaled yet) before
    /// the call that made it returns.
    fn journal(&self, inner: &mut Inner, record: Record) -> Result<(), BackendError> {
        let Some(store) = &self.store else { return Ok(()) };
        let log = &mut inner.log;
        let writer = match &mut log.writer {
            Some(w) => w,
            None => log.writer.insert(journal::Writer::create(&store.path, inner.world.journal_generation)?),
        };
        for t in std::mem::take(&mut log.unjournaled) {
            writer.append(&Record::Advance(t))?;
            log.records += 1;
        }
        writer.append(&record)?;
        log.records += 1;
        Ok(())
    }

    /// Counts the call, applies ECS's token bucket and runs it (a read).
    fn call<T>(&self, op: Op, f: impl FnOnce(&mut World) -> Result<T, BackendError>) -> Result<T, BackendError> {
        let mut inner = self.admit(op)?;
        f(&mut inner.world)
    }

    /// Counts the call and applies ECS's token bucket: the world, locked, when the call may proceed.
    fn admit(&self, op: Op) -> Result<std::sync::MutexGuard<'_, Inner>, BackendError> {
        let mut inner = lock(&self.inner);
        *inner.stats.calls.entry(op).or_default() += 1;
        if inner.throttling
            && let Some(spec) = limits::ecs_bucket(op)
            && !take_token(&mut inner.world, spec)
        {
            *inner.stats.throttled.entry(op).or_default() += 1;
            return Err(BackendError::Throttled { operation: op, message: "Rate exceeded".into() });
        }
        Ok(inner)
    }

    /// A write call: admitted like [`Sim::call`], run, and journaled (failed or not: replay fails it the same
    /// way), honouring crash injection once it is persisted.
    fn write<T>(
        &self,
        record: Record,
        f: impl FnOnce(&mut World) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let Some(op) = record.op() else { return Err(BackendError::State("a clock move is not a call".into())) };
        let mut inner = self.admit(op)?;
        let out = f(&mut inner.world);
        self.journal(&mut inner, record)?;
        if self.store.is_some() && std::env::var(CRASH_AFTER_ENV).is_ok_and(|v| v == op.as_str()) {
            eprintln!("sim: crash injected after {op}");
            std::process::exit(137);
        }
        out
    }

    /// Moves the clock to `t`; `journal` says whether the move is persisted now (a plain sleep) or only with
    /// the command's next write (waiting for tokens or backing off).
    fn advance(&self, d: Duration, journal: bool) {
        let mut inner = lock(&self.inner);
        let t = inner.world.now_ms.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        inner.world.advance_to(t);
        if self.store.is_none() {
            return;
        }
        if journal {
            if let Err(e) = self.journal(&mut inner, Record::Advance(t)) {
                tracing::warn!(error = %e, "could not persist the sim clock");
            }
        } else {
            inner.log.unjournaled.push(t);
        }
    }
}

impl Drop for Sim {
    /// Folds the command's journal into the state file, so the next command opens a single file.
    fn drop(&mut self) {
        let held = self.store.as_ref().is_some_and(|s| lock(&s.lock).is_some());
        if held && let Err(e) = self.fold() {
            eprintln!("sim: could not fold the journal into the state file ({e}); the next command will");
        }
    }
}

/// Writes the whole world (atomically: temp file + rename), then removes the journal it folds in. When there is
/// a journal (`folds`), the snapshot is the next generation: a crash before the removal leaves a journal of the
/// older one, which `load` discards. Without one the generation stays, so rewriting an unchanged world leaves
/// the file byte-identical.
fn compact(path: &Path, inner: &mut Inner, folds: bool) -> Result<(), BackendError> {
    if folds {
        inner.world.journal_generation += 1;
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| BackendError::State(e.to_string()))?;
    let mut out = std::io::BufWriter::new(tmp);
    serde_json::to_writer(&mut out, &inner.world).map_err(|e| BackendError::State(e.to_string()))?;
    let tmp = out.into_inner().map_err(|e| BackendError::State(e.to_string()))?;
    tmp.persist(path).map_err(|e| BackendError::State(e.to_string()))?;
    inner.log = Log::default();
    journal::remove(path)
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
        self.call(Op::DescribeServices, |w| {
            let (services, missing) = w.describe_services(cluster, names)?;
            Ok(Described { services, missing })
        })
    }
    async fn list_services(&self, cluster: &str) -> Result<Vec<String>, BackendError> {
        self.call(Op::ListServices, |w| Ok(w.list_services(cluster)))
    }
    async fn list_clusters(&self) -> Result<Vec<String>, BackendError> {
        self.call(Op::ListClusters, |w| Ok(w.list_clusters()))
    }
    async fn register_task_definition(&self, input: &TaskDefinitionInput) -> Result<TaskDefinition, BackendError> {
        self.write(Record::RegisterTaskDefinition(Box::new(input.clone())), |w| Ok(w.register_task_definition(input)))
    }
    async fn describe_task_definition(&self, id: &str) -> Result<TaskDefinition, BackendError> {
        self.call(Op::DescribeTaskDefinition, |w| w.describe_task_definition(id))
    }
    async fn list_task_definitions(&self, family: &str, status: TdStatus) -> Result<Vec<String>, BackendError> {
        self.call(Op::ListTaskDefinitions, |w| Ok(w.list_task_definitions(family, status)))
    }
    async fn deregister_task_definition(&self, arn: &str) -> Result<(), BackendError> {
        self.write(Record::DeregisterTaskDefinition(arn.to_string()), |w| w.deregister_task_definition(arn))
    }
    async fn create_service(
        &self,
        input: &ServiceInput,
        client_token: Option<&str>,
    ) -> Result<ServiceState, BackendError> {
        let record = Record::CreateService(Box::new(input.clone()), client_token.map(str::to_string));
        self.write(record, |w| w.create_service_with_token(input, client_token))
    }
    async fn update_service(&self, update: &ServiceUpdate) -> Result<ServiceState, BackendError> {
        // ECS's enum; the sim keeps no tasks to tag, so a valid value is all there is to check.
        if let Some(tagging) = &update.tagging
            && !matches!(tagging.propagate_tags.as_str(), "SERVICE" | "TASK_DEFINITION" | "NONE")
        {
            return Err(BackendError::Invalid {
                operation: Op::UpdateService,
                message: format!("InvalidParameterException: invalid propagateTags `{}`", tagging.propagate_tags),
            });
        }
        self.write(Record::UpdateService(Box::new(update.clone())), |w| w.update_service(update))
    }
    async fn delete_service(&self, cluster: &str, name: &str) -> Result<(), BackendError> {
        self.write(Record::DeleteService(cluster.to_string(), name.to_string()), |w| w.delete_service(cluster, name))
    }
    async fn tag_resource(&self, arn: &str, tags: &super::Tags) -> Result<(), BackendError> {
        self.write(Record::TagResource(arn.to_string(), tags.clone()), |w| w.tag_resource(arn, tags))
    }
    async fn untag_resource(&self, arn: &str, keys: &[String]) -> Result<(), BackendError> {
        self.write(Record::UntagResource(arn.to_string(), keys.to_vec()), |w| w.untag_resource(arn, keys))
    }
    async fn stopped_task_reasons(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> Result<Vec<String>, BackendError> {
        let arns = self.call(Op::ListTasks, |w| Ok(w.list_stopped_tasks(cluster, service)))?;
        if arns.is_empty() {
            return Ok(Vec::new());
        }
        self.call(Op::DescribeTasks, |w| Ok(w.stopped_task_reasons(cluster, service, &arns, task_definition)))
    }
    async fn list_tasks(&self, cluster: &str, service: &str, token: Option<&str>) -> Result<TaskPage, BackendError> {
        let start = match token {
            None => 0,
            Some(t) => t.parse::<usize>().map_err(|_| BackendError::Invalid {
                operation: Op::ListTasks,
                message: format!("InvalidParameterException: invalid nextToken `{t}`"),
            })?,
        };
        self.call(Op::ListTasks, |w| {
            let arns: Vec<String> = w.service_tasks(cluster, service).into_iter().map(|t| t.arn).collect();
            let end = start.saturating_add(super::STOPPED_TASKS_BATCH).min(arns.len());
            let next_token = (end < arns.len()).then(|| end.to_string());
            Ok(TaskPage { arns: arns.get(start..end).map(<[String]>::to_vec).unwrap_or_default(), next_token })
        })
    }
    async fn describe_tasks(&self, cluster: &str, arns: &[String]) -> Result<Vec<TaskInfo>, BackendError> {
        if arns.len() > super::STOPPED_TASKS_BATCH {
            return Err(BackendError::Invalid {
                operation: Op::DescribeTasks,
                message: "InvalidParameterException: tasks can have at most 100 items".into(),
            });
        }
        self.call(Op::DescribeTasks, |w| Ok(w.describe_tasks(cluster, arns)))
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
                operation: Op::BatchGetImage,
                message: "imageIds can have at most 100 items".into(),
            });
        }
        self.call(Op::BatchGetImage, |w| w.lookup_images(repository, selectors))
    }

    /// The sim models ECR, whose BatchGetImage has no image config: as unreadable as there.
    async fn image_command(&self, repository: &str, _: &str, _: &str) -> Result<ImageCommand, BackendError> {
        Err(super::ecr_command_unreadable(repository))
    }
}

#[async_trait]
impl Secrets for Sim {
    async fn resolve(&self, ids: &[String]) -> Result<BTreeMap<String, SecretInfo>, BackendError> {
        self.call(Op::ListSecrets, |w| Ok(w.resolve_secrets(ids)))
    }
}

impl Sim {
    /// One ELBv2 describe request of up to [`DESCRIBE_TARGET_GROUPS_BATCH`] ids, then, counted as ELBv2 would be
    /// asked, one attributes request per resource found.
    fn elb_describe<T>(
        &self,
        (describe, attributes): (Op, Op),
        ids: &[String],
        find: impl FnOnce(&World) -> Vec<T>,
    ) -> Result<Vec<T>, BackendError> {
        if ids.len() > DESCRIBE_TARGET_GROUPS_BATCH {
            return Err(BackendError::Invalid {
                operation: describe,
                message: format!("ValidationError: at most {DESCRIBE_TARGET_GROUPS_BATCH} names or ARNs per request"),
            });
        }
        let found = self.call(describe, |w| Ok(find(w)))?;
        for _ in &found {
            self.call(attributes, |_| Ok(()))?;
        }
        Ok(found)
    }
}

#[async_trait]
impl TargetGroups for Sim {
    async fn target_groups(&self, ids: &[String]) -> Result<Vec<TargetGroup>, BackendError> {
        let ops = (Op::DescribeTargetGroups, Op::DescribeTargetGroupAttributes);
        self.elb_describe(ops, ids, |w| w.describe_target_groups(ids))
    }
    async fn load_balancers(&self, arns: &[String]) -> Result<Vec<LoadBalancer>, BackendError> {
        self.elb_describe((Op::DescribeLoadBalancers, Op::DescribeLoadBalancerAttributes), arns, |w| {
            w.describe_load_balancers(arns)
        })
    }
}

#[async_trait]
impl Clock for Sim {
    fn now_ms(&self) -> u64 {
        lock(&self.inner).world.now_ms
    }

    fn is_virtual(&self) -> bool {
        true
    }

    /// Sleeping moves the virtual clock, progressing deployments; the new time is persisted.
    async fn sleep(&self, d: Duration) {
        self.advance(d, true);
    }

    /// Waiting for rate moves the clock too, but is persisted only if the command writes.
    async fn wait_for_rate(&self, d: Duration) {
        self.advance(d, false);
    }
}
