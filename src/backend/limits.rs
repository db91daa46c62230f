//! ECS's API rate limits, enforced on our side of the wire.
//!
//! ECS meters each account and region with token buckets per API category. [`Limited`] wraps any [`Ecs`] with the
//! same buckets, so a large apply waits for a token instead of being throttled, and retries what is throttled or
//! unavailable anyway (another client may share the account) with jittered exponential backoff from the `backoff`
//! crate. Waiting goes through the backend's [`Clock`], so on the sim it costs virtual time only.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use backoff::backoff::Backoff;

use super::{BackendError, Clock, Described, Ecs, ServiceState, ServiceUpdate, Tags, TaskDefinition, TdStatus};
use crate::render::ecs::{ServiceInput, TaskDefinitionInput};

/// One token bucket: `burst` tokens, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketSpec {
    pub category: &'static str,
    pub burst: u32,
    pub per_second: f64,
}

/// The bucket an ECS operation draws from (numbers from ECS's documented request throttling).
pub fn ecs_bucket(op: &str) -> Option<BucketSpec> {
    let (category, burst, per_second) = match op {
        "DescribeServices" => ("DescribeServices", 100, 20.0),
        "ListServices" => ("ListServices", 100, 20.0),
        "CreateService" | "UpdateService" | "DeleteService" => ("ServiceWrite", 50, 5.0),
        "RegisterTaskDefinition" | "DeregisterTaskDefinition" => ("TaskDefinitionWrite", 20, 1.0),
        "DescribeTaskDefinition" | "ListTaskDefinitions" => ("TaskDefinitionRead", 50, 20.0),
        "TagResource" | "UntagResource" => ("TagResource", 20, 10.0),
        // Task reads are metered like the other describe-style reads (DescribeServices): 100 burst, 20/s.
        "ListTasks" | "DescribeTasks" => ("TaskRead", 100, 20.0),
        _ => return None,
    };
    Some(BucketSpec { category, burst, per_second })
}

/// Retries per call before a retryable error is given up on.
const MAX_RETRIES: u32 = 8;

struct Bucket {
    tokens: f64,
    updated_ms: u64,
}

/// An [`Ecs`] that waits for ECS's token buckets and retries throttling and transient failures.
pub struct Limited {
    inner: Arc<dyn Ecs>,
    clock: Arc<dyn Clock>,
    buckets: Mutex<BTreeMap<&'static str, Bucket>>,
    retries: Mutex<BTreeMap<String, u64>>,
    throttles: Mutex<BTreeMap<String, u64>>,
}

impl Limited {
    pub fn new(inner: Arc<dyn Ecs>, clock: Arc<dyn Clock>) -> Limited {
        Limited {
            inner,
            clock,
            buckets: Mutex::new(BTreeMap::new()),
            retries: Mutex::new(BTreeMap::new()),
            throttles: Mutex::new(BTreeMap::new()),
        }
    }

    /// Retries made so far, by operation.
    pub fn retries(&self) -> BTreeMap<String, u64> {
        self.retries.lock().expect("limits lock").clone()
    }

    /// Calls refused for rate so far (each was retried), by operation.
    pub fn throttles(&self) -> BTreeMap<String, u64> {
        self.throttles.lock().expect("limits lock").clone()
    }

    /// Waits until the operation's bucket has a token and takes it.
    async fn acquire(&self, op: &str) {
        let Some(spec) = ecs_bucket(op) else { return };
        loop {
            let wait = {
                let now = self.clock.now_ms();
                let mut buckets = self.buckets.lock().expect("limits lock");
                let b =
                    buckets.entry(spec.category).or_insert(Bucket { tokens: f64::from(spec.burst), updated_ms: now });
                let elapsed = now.saturating_sub(b.updated_ms) as f64 / 1000.0;
                b.tokens = (b.tokens + elapsed * spec.per_second).min(f64::from(spec.burst));
                b.updated_ms = now;
                if b.tokens >= 1.0 {
                    b.tokens -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - b.tokens) / spec.per_second)
            };
            // Round up to whole milliseconds so the refill is never a hair short.
            self.clock.sleep(Duration::from_millis(wait.as_millis() as u64 + 1)).await;
        }
    }

    async fn run<T, F, Fut>(&self, op: &str, f: F) -> Result<T, BackendError>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: std::future::Future<Output = Result<T, BackendError>> + Send,
        T: Send,
    {
        let mut policy = backoff::ExponentialBackoffBuilder::new()
            .with_initial_interval(Duration::from_millis(200))
            .with_max_interval(Duration::from_secs(10))
            .with_multiplier(2.0)
            .with_randomization_factor(0.5)
            .with_max_elapsed_time(None)
            .build();
        let mut attempt = 0;
        loop {
            self.acquire(op).await;
            match f().await {
                Err(e) if e.is_retryable() && attempt < MAX_RETRIES => {
                    attempt += 1;
                    if e.is_throttling() {
                        *self.throttles.lock().expect("limits lock").entry(op.to_string()).or_default() += 1;
                    }
                    *self.retries.lock().expect("limits lock").entry(op.to_string()).or_default() += 1;
                    let wait = policy.next_backoff().unwrap_or(Duration::from_secs(10));
                    tracing::debug!(operation = op, attempt, wait_ms = wait.as_millis() as u64, error = %e, "retrying");
                    self.clock.sleep(wait).await;
                }
                other => return other,
            }
        }
    }
}

#[async_trait]
impl Ecs for Limited {
    async fn describe_services(&self, cluster: &str, names: &[String]) -> Result<Described, BackendError> {
        self.run("DescribeServices", || self.inner.describe_services(cluster, names)).await
    }
    async fn list_services(&self, cluster: &str) -> Result<Vec<String>, BackendError> {
        self.run("ListServices", || self.inner.list_services(cluster)).await
    }
    async fn register_task_definition(&self, input: &TaskDefinitionInput) -> Result<TaskDefinition, BackendError> {
        self.run("RegisterTaskDefinition", || self.inner.register_task_definition(input)).await
    }
    async fn describe_task_definition(&self, id: &str) -> Result<TaskDefinition, BackendError> {
        self.run("DescribeTaskDefinition", || self.inner.describe_task_definition(id)).await
    }
    async fn list_task_definitions(&self, family: &str, status: TdStatus) -> Result<Vec<String>, BackendError> {
        self.run("ListTaskDefinitions", || self.inner.list_task_definitions(family, status)).await
    }
    async fn deregister_task_definition(&self, arn: &str) -> Result<(), BackendError> {
        self.run("DeregisterTaskDefinition", || self.inner.deregister_task_definition(arn)).await
    }
    async fn create_service(&self, input: &ServiceInput) -> Result<ServiceState, BackendError> {
        self.run("CreateService", || self.inner.create_service(input)).await
    }
    async fn update_service(&self, update: &ServiceUpdate) -> Result<ServiceState, BackendError> {
        self.run("UpdateService", || self.inner.update_service(update)).await
    }
    async fn delete_service(&self, cluster: &str, name: &str) -> Result<(), BackendError> {
        self.run("DeleteService", || self.inner.delete_service(cluster, name)).await
    }
    async fn tag_resource(&self, arn: &str, tags: &Tags) -> Result<(), BackendError> {
        self.run("TagResource", || self.inner.tag_resource(arn, tags)).await
    }
    /// One ListTasks and (when tasks stopped) one DescribeTasks: a token of each is taken per attempt.
    async fn stopped_task_reasons(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> Result<Vec<String>, BackendError> {
        self.run("ListTasks", || async {
            self.acquire("DescribeTasks").await;
            self.inner.stopped_task_reasons(cluster, service, task_definition).await
        })
        .await
    }
}
