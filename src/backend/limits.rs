//! API rate limits, enforced on our side of the wire, and the one retry policy of every backend call.
//!
//! ECS meters each account and region with token buckets per API category. [`Limited`] wraps any [`Ecs`] with the
//! same buckets, so a large apply waits for a token instead of being throttled, and retries what is throttled or
//! unavailable anyway (another client may share the account) with jittered exponential backoff from the `backoff`
//! crate. [`Limited::images`] and [`Limited::secrets`] put image and secret resolution behind the same buckets
//! and retries. Waiting goes through the backend's [`Clock`], so on the sim it costs virtual time only.
//!
//! The buckets are sized as each service publishes its defaults ([`ecs_bucket`], [`bucket`]: sources and dates
//! there), `--api-rate` resizes them for an account's raised quotas, and adaptive pacing (AIMD, see `Bucket`)
//! halves a bucket's rate when AWS throttles it anyway (other clients share the account's buckets) and lets it
//! recover additively. [`Limited::pacing`] reports what the limits did (the time waited for tokens, the rates
//! buckets were cut to) for `-o json`'s `apiCalls`.
//!
//! # Retry policy
//!
//! This is the only retry layer: the aws adapters make one attempt per request (the SDK's own retries are
//! disabled in `aws::connect`), so the bound below is the bound on the wire. A throttled or unavailable call
//! (throttling, 5xx, I/O or timeout; see [`BackendError::is_retryable`]) is retried up to [`MAX_RETRIES`] = 8
//! times — at most 9 attempts — after waits of 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10 and 10 s (doubling from 200 ms,
//! capped at 10 s), each jittered by ±50 %: about 33 s of waiting in all, never more than 49 s. Errors that
//! retrying cannot fix (4xx, missing credentials) are returned at once.
//!
//! Writes are retried only where a repeat is safe. CreateService sends one `clientToken` made before the first
//! attempt, so a retry after a lost answer gets the service the first attempt created. RegisterTaskDefinition has
//! no token: after a throttling error (refused before it was processed) it is simply retried; after a 5xx or a
//! transport failure (it may have been processed) the family's latest revision is described first and reused when
//! its `mcpfleet.io/task-hash` matches, so a retry never registers a duplicate revision. UpdateService and
//! TagResource converge to the same state when repeated; DeleteService treats "not found / not active" on a retry
//! as done.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use backoff::backoff::Backoff;

use super::op::Counts;
use super::{
    Autoscaling, BackendError, Clock, Described, Ecs, ImageCommand, ImageInfo, ImageSelector, Images, LoadBalancer, Op,
    SecretInfo, Secrets, ServiceState, ServiceUpdate, Tags, TargetGroup, TargetGroups, TaskDefinition, TaskInfo,
    TaskPage, TdStatus,
};
use super::{ScalableTarget, ScalingPolicy};
use crate::render::autoscaling::{ScalableTargetInput, ScalingPolicyInput};
use crate::render::ecs::{ServiceInput, TaskDefinitionInput};
use crate::state::{self, RevisionTags};

/// One token bucket: `burst` tokens, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketSpec {
    pub category: &'static str,
    pub burst: u32,
    pub per_second: f64,
}

/// The bucket an ECS operation draws from: ECS's published default per account and region
/// (<https://docs.aws.amazon.com/AmazonECS/latest/developerguide/request-throttling.html>, checked 2026-12-01;
/// accounts raise them through Service Quotas, and `--api-rate` sets what an account has). The benchmark's
/// throttling proxy (`scripts/ecs_throttle_proxy.py`) carries the same table; keep the two in step. (ECS meters
/// UntagResource with TagResource.)
pub fn ecs_bucket(op: Op) -> Option<BucketSpec> {
    let (category, burst, per_second) = match op {
        Op::DescribeServices => ("DescribeServices", 100, 20.0),
        Op::ListServices => ("ListServices", 100, 20.0),
        // Cluster reads are metered like the other list-style reads.
        Op::ListClusters => ("ListClusters", 100, 20.0),
        Op::CreateService | Op::UpdateService | Op::DeleteService => ("ServiceWrite", 50, 5.0),
        Op::RegisterTaskDefinition | Op::DeregisterTaskDefinition => ("TaskDefinitionWrite", 20, 1.0),
        Op::DescribeTaskDefinition | Op::ListTaskDefinitions => ("TaskDefinitionRead", 50, 20.0),
        Op::TagResource | Op::UntagResource => ("TagResource", 20, 10.0),
        // Task reads are metered like the other describe-style reads (DescribeServices): 100 burst, 20/s.
        Op::ListTasks | Op::DescribeTasks => ("TaskRead", 100, 20.0),
        Op::BatchGetImage
        | Op::ListSecrets
        | Op::DescribeSecret
        | Op::ResolveSecrets
        | Op::RegistryToken
        | Op::HeadManifest
        | Op::GetManifest
        | Op::GetBlob
        | Op::DescribeTargetGroups
        | Op::DescribeTargetGroupAttributes
        | Op::DescribeLoadBalancers
        | Op::DescribeLoadBalancerAttributes
        | Op::DescribeScalableTargets
        | Op::DescribeScalingPolicies
        | Op::RegisterScalableTarget
        | Op::PutScalingPolicy
        | Op::DeleteScalingPolicy
        | Op::DeregisterScalableTarget
        | Op::HeadObject
        | Op::GetObject
        | Op::PutObject
        | Op::ListObjectVersions
        | Op::GetItem
        | Op::PutItem
        | Op::CreateTable
        | Op::GetProducts => {
            return None;
        }
    };
    Some(BucketSpec { category, burst, per_second })
}

/// The bucket of a call of another service: [`ecs_bucket`]'s, or ECR's, Secrets Manager's, ELBv2's or
/// Application Auto Scaling's. Each is the service's published default (checked 2026-12-01; the README's
/// "API rate limits" table lists the same numbers and pages); accounts raise some through Service Quotas, and
/// `--api-rate` sets what an account has.
///
/// - ECR (<https://docs.aws.amazon.com/AmazonECR/latest/userguide/service-quotas.html>): BatchGetImage, 2,000
///   requests per second per account and region (adjustable), shared with every image pull of the account's
///   tasks. ECR publishes no burst; the bucket holds one second's worth.
/// - Secrets Manager (<https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html>, and the
///   raises announced 2022-11-11 and 2025-03-04): DescribeSecret 40,000/s, ListSecrets 100/s. One resolution call
///   (up to 10 secrets: a ListSecrets page or more, DescribeSecret per ARN) takes one token, metered at the lower,
///   ListSecrets, rate.
/// - Elastic Load Balancing v2 (<https://docs.aws.amazon.com/elasticloadbalancing/latest/userguide/elb-api-throttling.html>):
///   its non-mutating actions (`Describe*`) share one bucket of 40 tokens refilled at 10 per second; every ELBv2
///   request draws from it, one token each.
/// - Application Auto Scaling publishes no request rates: its quotas are resource counts (3,000 ECS scalable
///   targets per region, 50 scaling policies per target). Its buckets here are therefore mcpfleet's own, modest
///   and in ELB's proportions: reads (DescribeScalableTargets, DescribeScalingPolicies) 40 burst and 10/s, writes
///   (RegisterScalableTarget, PutScalingPolicy, DeleteScalingPolicy, DeregisterScalableTarget) 20 burst and 5/s.
/// - S3 and DynamoDB (the published fleet and the lease) are not metered: a command makes a handful of those
///   requests, far below their per-prefix and per-table rates.
pub fn bucket(op: Op) -> Option<BucketSpec> {
    ecs_bucket(op).or(match op {
        Op::BatchGetImage => Some(BucketSpec { category: "BatchGetImage", burst: 2_000, per_second: 2_000.0 }),
        Op::ResolveSecrets => Some(BucketSpec { category: "ResolveSecrets", burst: 100, per_second: 100.0 }),
        Op::DescribeTargetGroups
        | Op::DescribeTargetGroupAttributes
        | Op::DescribeLoadBalancers
        | Op::DescribeLoadBalancerAttributes => {
            Some(BucketSpec { category: "Elbv2Describe", burst: 40, per_second: 10.0 })
        }
        Op::DescribeScalableTargets | Op::DescribeScalingPolicies => {
            Some(BucketSpec { category: "AutoscalingRead", burst: 40, per_second: 10.0 })
        }
        Op::RegisterScalableTarget | Op::PutScalingPolicy | Op::DeleteScalingPolicy | Op::DeregisterScalableTarget => {
            Some(BucketSpec { category: "AutoscalingWrite", burst: 20, per_second: 5.0 })
        }
        _ => None,
    })
}

/// `--api-rate OPERATION=BURST/RATE`: the bucket of an operation (and of the operations metered with it, such
/// as CreateService's with UpdateService's) sized for what the account has.
#[derive(Debug, Clone, PartialEq)]
pub struct RateOverride {
    /// The bucket it sets.
    pub category: &'static str,
    pub burst: u32,
    pub per_second: f64,
}

/// The largest burst or rate `--api-rate` takes: more than any AWS quota, so a typo is caught.
const MAX_RATE: u32 = 1_000_000;

impl RateOverride {
    /// Parses `OPERATION=BURST/RATE`, where OPERATION is an operation's AWS name (`DescribeServices`) or a
    /// bucket's (`ServiceWrite`), BURST a whole number of tokens and RATE tokens per second, both above zero.
    pub fn parse(text: &str) -> Result<RateOverride, String> {
        let usage = "write OPERATION=BURST/RATE, for example DescribeServices=100/20";
        let (name, value) = text.split_once('=').ok_or_else(|| format!("`{text}`: {usage}"))?;
        let category = Op::from_name(name)
            .and_then(bucket)
            .or_else(|| Op::ALL.into_iter().filter_map(bucket).find(|b| b.category == name))
            .map(|b| b.category)
            .ok_or_else(|| {
                let mut known: Vec<&str> = Op::ALL.into_iter().filter_map(bucket).map(|b| b.category).collect();
                known.sort_unstable();
                known.dedup();
                format!("`{name}` is not a metered operation or bucket (one of: {})", known.join(", "))
            })?;
        let (burst, rate) = value.split_once('/').ok_or_else(|| format!("`{text}`: {usage}"))?;
        let burst = burst
            .parse::<u32>()
            .ok()
            .filter(|b| (1..=MAX_RATE).contains(b))
            .ok_or_else(|| format!("`{text}`: the burst `{burst}` must be a whole number from 1 to {MAX_RATE}"))?;
        let per_second = rate
            .parse::<f64>()
            .ok()
            .filter(|r| r.is_finite() && *r > 0.0 && *r <= f64::from(MAX_RATE))
            .ok_or_else(|| {
                format!(
                    "`{text}`: the rate `{rate}` must be a number of requests per second above 0, at most {MAX_RATE}"
                )
            })?;
        Ok(RateOverride { category, burst, per_second })
    }
}

/// The name retries and throttles of secret resolution are counted under ([`Op::ResolveSecrets`]).
pub const OP_RESOLVE_SECRETS: &str = Op::ResolveSecrets.as_str();

/// Retries per call before a retryable error is given up on (so at most `MAX_RETRIES + 1` attempts).
pub const MAX_RETRIES: u32 = 8;
/// The first backoff wait; each next one doubles, up to [`MAX_BACKOFF`], each jittered by ±50 %.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// The longest backoff wait before jitter.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The waits between attempts of one call: [`INITIAL_BACKOFF`] doubling to [`MAX_BACKOFF`], each jittered by
/// ±50 %, with no bound on the total (the bound is [`MAX_RETRIES`]). Shared with the registry client's retries.
pub fn backoff_policy() -> backoff::ExponentialBackoff {
    backoff::ExponentialBackoffBuilder::new()
        .with_initial_interval(INITIAL_BACKOFF)
        .with_max_interval(MAX_BACKOFF)
        .with_multiplier(2.0)
        .with_randomization_factor(0.5)
        .with_max_elapsed_time(None)
        .build()
}

/// A CreateService `clientToken`: unique per logical create, ≤ 36 printable ASCII characters.
fn client_token(name: &str) -> String {
    use sha2::{Digest, Sha256};
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(now.as_nanos().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(SEQ.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(name.as_bytes());
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("mcpfleet-{}", &hex[..27])
}

/// How long a bucket's rate stays cut after a throttling error before it starts to recover.
pub const PACING_HOLD: Duration = Duration::from_secs(10);
/// How much of its full rate a cut bucket gets back per second once the hold is over (additive increase).
pub const PACING_RECOVERY_PER_SECOND: f64 = 0.05;
/// The lowest share of its full rate a bucket is cut to.
const PACING_FLOOR: f64 = 1.0 / 64.0;

/// What the client-side limits did during a command, by operation: the `waitedMs` and `pacedTo` of `-o json`'s
/// `apiCalls`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pacing {
    /// Milliseconds spent waiting for a token of the operation's own bucket, summed over its calls (concurrent
    /// waits add up), for every metered operation called: 0 means no call of it ever waited on our side. Backoff
    /// after an error is not counted.
    pub waited_ms: BTreeMap<Op, u64>,
    /// The lowest rate (requests per second) adaptive pacing cut the operation's bucket to, for the operations
    /// called whose bucket AWS throttled.
    pub paced_to: BTreeMap<Op, f64>,
}

/// One bucket's tokens, and its pace: AIMD. A throttling error from AWS means other clients draw from the same
/// account's bucket, so ours is halved (once per hold: the errors of one burst are one signal) and, after
/// [`PACING_HOLD`] without another, grows back by [`PACING_RECOVERY_PER_SECOND`] of its full rate each second.
struct Bucket {
    tokens: f64,
    updated_ms: u64,
    /// The rate when it was last cut, and when; `None` at the full rate.
    cut: Option<(f64, u64)>,
    /// The lowest rate it was ever cut to.
    lowest: Option<f64>,
}

impl Bucket {
    /// The rate at `now`, of a bucket whose full rate is `full`.
    fn rate(&self, full: f64, now: u64) -> f64 {
        let Some((cut_to, at)) = self.cut else { return full };
        let hold_ms = PACING_HOLD.as_millis() as u64;
        let recovering = now.saturating_sub(at.saturating_add(hold_ms)) as f64 / 1000.0;
        (cut_to + recovering * PACING_RECOVERY_PER_SECOND * full).min(full)
    }

    /// Halves the rate for a throttling error at `now` (unless it was already cut within the hold).
    fn throttled(&mut self, full: f64, now: u64) {
        let hold_ms = PACING_HOLD.as_millis() as u64;
        if self.cut.is_some_and(|(_, at)| now < at.saturating_add(hold_ms)) {
            return;
        }
        let halved = (self.rate(full, now) / 2.0).max(full * PACING_FLOOR);
        self.cut = Some((halved, now));
        self.lowest = Some(self.lowest.map_or(halved, |l| l.min(halved)));
        self.tokens = self.tokens.min(0.0);
        self.updated_ms = self.updated_ms.max(now);
    }
}

/// An [`Ecs`] that waits for ECS's token buckets and retries throttling and transient failures.
pub struct Limited {
    inner: Arc<dyn Ecs>,
    clock: Arc<dyn Clock>,
    buckets: Mutex<BTreeMap<&'static str, Bucket>>,
    /// `--api-rate`'s sizes, by bucket.
    overrides: BTreeMap<&'static str, (u32, f64)>,
    retries: Counts,
    throttles: Counts,
    /// Tokens taken, and milliseconds waited for them, by operation.
    acquired: Counts,
    waited_ms: Counts,
}

impl Limited {
    pub fn new(inner: Arc<dyn Ecs>, clock: Arc<dyn Clock>) -> Limited {
        Limited {
            inner,
            clock,
            buckets: Mutex::new(BTreeMap::new()),
            overrides: BTreeMap::new(),
            retries: Counts::default(),
            throttles: Counts::default(),
            acquired: Counts::default(),
            waited_ms: Counts::default(),
        }
    }

    /// The same, with `--api-rate`'s bucket sizes (a later override of a bucket wins).
    pub fn with_rates(mut self, overrides: &[RateOverride]) -> Limited {
        self.overrides = overrides.iter().map(|o| (o.category, (o.burst, o.per_second))).collect();
        self
    }

    /// The bucket `op` draws from, as configured (before pacing).
    fn spec(&self, op: Op) -> Option<BucketSpec> {
        let spec = bucket(op)?;
        Some(match self.overrides.get(spec.category) {
            Some(&(burst, per_second)) => BucketSpec { burst, per_second, ..spec },
            None => spec,
        })
    }

    /// The current rate (requests per second) of every metered operation's bucket: its configured rate, or
    /// less while adaptive pacing holds it down.
    pub fn rates(&self) -> BTreeMap<Op, f64> {
        let now = self.clock.now_ms();
        let buckets = super::lock(&self.buckets);
        Op::ALL
            .into_iter()
            .filter_map(|op| {
                let spec = self.spec(op)?;
                let rate = buckets.get(spec.category).map_or(spec.per_second, |b| b.rate(spec.per_second, now));
                Some((op, rate))
            })
            .collect()
    }

    /// Cuts `op`'s bucket after AWS refused a call of it for rate.
    fn slow_down(&self, op: Op) {
        let Some(spec) = self.spec(op) else { return };
        let now = self.clock.now_ms();
        let mut buckets = super::lock(&self.buckets);
        let b =
            buckets.entry(spec.category).or_insert(Bucket { tokens: 0.0, updated_ms: now, cut: None, lowest: None });
        b.throttled(spec.per_second, now);
        tracing::info!(
            operation = op.as_str(),
            bucket = spec.category,
            rate = b.rate(spec.per_second, now),
            "throttled by AWS: pacing this bucket down"
        );
    }

    /// Retries made so far, by operation.
    pub fn retries(&self) -> BTreeMap<Op, u64> {
        self.retries.snapshot()
    }

    /// Calls refused for rate so far (each was retried), by operation.
    pub fn throttles(&self) -> BTreeMap<Op, u64> {
        self.throttles.snapshot()
    }

    /// The waits for tokens and the pacing of every metered operation called so far.
    pub fn pacing(&self) -> Pacing {
        let acquired = self.acquired.snapshot();
        let waited = self.waited_ms.snapshot();
        let buckets = super::lock(&self.buckets);
        let paced_to =
            acquired.keys().filter_map(|&op| Some((op, buckets.get(self.spec(op)?.category)?.lowest?))).collect();
        let waited_ms = acquired.keys().map(|&op| (op, waited.get(&op).copied().unwrap_or(0))).collect();
        Pacing { waited_ms, paced_to }
    }

    /// Waits until the operation's bucket has a token and takes it.
    async fn acquire(&self, op: Op) {
        let Some(spec) = self.spec(op) else { return };
        self.acquired.add(op);
        loop {
            let wait = {
                let now = self.clock.now_ms();
                let mut buckets = super::lock(&self.buckets);
                let b = buckets.entry(spec.category).or_insert(Bucket {
                    tokens: f64::from(spec.burst),
                    updated_ms: now,
                    cut: None,
                    lowest: None,
                });
                // Refilled at the paced rate; the part of the refill since the cut is approximated by the rate
                // now, which only errs on the slow side while the rate recovers.
                let rate = b.rate(spec.per_second, now);
                let elapsed = now.saturating_sub(b.updated_ms) as f64 / 1000.0;
                b.tokens = (b.tokens + elapsed * rate).min(f64::from(spec.burst));
                b.updated_ms = now;
                if b.rate(spec.per_second, now) >= spec.per_second {
                    b.cut = None;
                }
                if b.tokens >= 1.0 {
                    b.tokens -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - b.tokens) / rate)
            };
            // Round up to whole milliseconds so the refill is never a hair short.
            let wait_ms = wait.as_millis() as u64 + 1;
            self.waited_ms.add_n(op, wait_ms);
            self.clock.wait_for_rate(Duration::from_millis(wait_ms)).await;
        }
    }

    /// The family's latest ACTIVE revision when its task-hash is the one `input` carries.
    async fn registered_revision(&self, input: &TaskDefinitionInput) -> Result<Option<TaskDefinition>, BackendError> {
        let Some(want) = state::desired_task_hash(input) else { return Ok(None) };
        self.acquire(Op::DescribeTaskDefinition).await;
        match self.inner.describe_task_definition(&input.family).await {
            Ok(td) if td.status == TdStatus::Active && RevisionTags::parse(&td.tags).task_hash == Some(want) => {
                Ok(Some(td))
            }
            Ok(_) | Err(BackendError::NotFound { .. } | BackendError::Invalid { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `inner` behind the BatchGetImage bucket and the retry policy (counted with this wrapper's retries).
    pub fn images(self: &Arc<Self>, inner: Arc<dyn Images>) -> Arc<dyn Images> {
        Arc::new(LimitedImages { limits: self.clone(), inner })
    }

    /// `inner` behind ELBv2's `Describe*` bucket and the retry policy (counted with this wrapper's retries).
    pub fn target_groups(self: &Arc<Self>, inner: Arc<dyn TargetGroups>) -> Arc<dyn TargetGroups> {
        Arc::new(LimitedTargetGroups { limits: self.clone(), inner })
    }

    /// `inner` behind Application Auto Scaling's buckets and the retry policy (counted with this wrapper's retries).
    pub fn autoscaling(self: &Arc<Self>, inner: Arc<dyn Autoscaling>) -> Arc<dyn Autoscaling> {
        Arc::new(LimitedAutoscaling { limits: self.clone(), inner })
    }

    /// `inner` behind the secret-resolution bucket and the retry policy (counted with this wrapper's retries).
    pub fn secrets(self: &Arc<Self>, inner: Arc<dyn Secrets>) -> Arc<dyn Secrets> {
        Arc::new(LimitedSecrets { limits: self.clone(), inner })
    }

    /// A removal behind the bucket and the retries: an error that `gone` recognises on a retry means the first
    /// attempt did it (its answer was lost), so the retry counts as done.
    async fn run_removal<F, Fut>(&self, op: Op, gone: fn(&BackendError) -> bool, call: F) -> Result<(), BackendError>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: std::future::Future<Output = Result<(), BackendError>> + Send,
    {
        let retried = AtomicBool::new(false);
        self.run(op, || async {
            match call().await {
                Err(e) if retried.load(Ordering::SeqCst) && gone(&e) => Ok(()),
                other => {
                    retried.store(true, Ordering::SeqCst);
                    other
                }
            }
        })
        .await
    }

    async fn run<T, F, Fut>(&self, op: Op, f: F) -> Result<T, BackendError>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: std::future::Future<Output = Result<T, BackendError>> + Send,
        T: Send,
    {
        let mut policy = backoff_policy();
        let mut attempt = 0;
        loop {
            self.acquire(op).await;
            match f().await {
                Err(e) if e.is_retryable() && attempt < MAX_RETRIES => {
                    attempt += 1;
                    if e.is_throttling() {
                        self.throttles.add(op);
                        self.slow_down(op);
                    }
                    self.retries.add(op);
                    let wait = policy.next_backoff().unwrap_or(MAX_BACKOFF);
                    tracing::debug!(operation = op.as_str(), attempt, wait_ms = wait.as_millis() as u64, error = %e, "retrying");
                    self.clock.wait_for_rate(wait).await;
                }
                other => return other,
            }
        }
    }
}

#[async_trait]
impl Ecs for Limited {
    async fn describe_services(&self, cluster: &str, names: &[String]) -> Result<Described, BackendError> {
        self.run(Op::DescribeServices, || self.inner.describe_services(cluster, names)).await
    }
    async fn list_services(&self, cluster: &str) -> Result<Vec<String>, BackendError> {
        self.run(Op::ListServices, || self.inner.list_services(cluster)).await
    }
    async fn list_clusters(&self) -> Result<Vec<String>, BackendError> {
        self.run(Op::ListClusters, || self.inner.list_clusters()).await
    }
    async fn register_task_definition(&self, input: &TaskDefinitionInput) -> Result<TaskDefinition, BackendError> {
        // Set when an attempt failed in a way that does not prove the revision was not registered.
        let maybe_registered = AtomicBool::new(false);
        self.run(Op::RegisterTaskDefinition, || async {
            if maybe_registered.load(Ordering::SeqCst)
                && let Some(td) = self.registered_revision(input).await?
            {
                return Ok(td);
            }
            let out = self.inner.register_task_definition(input).await;
            maybe_registered.store(matches!(out, Err(BackendError::Unavailable { .. })), Ordering::SeqCst);
            out
        })
        .await
    }
    async fn describe_task_definition(&self, id: &str) -> Result<TaskDefinition, BackendError> {
        self.run(Op::DescribeTaskDefinition, || self.inner.describe_task_definition(id)).await
    }
    async fn list_task_definitions(&self, family: &str, status: TdStatus) -> Result<Vec<String>, BackendError> {
        self.run(Op::ListTaskDefinitions, || self.inner.list_task_definitions(family, status)).await
    }
    async fn deregister_task_definition(&self, arn: &str) -> Result<(), BackendError> {
        self.run(Op::DeregisterTaskDefinition, || self.inner.deregister_task_definition(arn)).await
    }
    async fn create_service(&self, input: &ServiceInput, token: Option<&str>) -> Result<ServiceState, BackendError> {
        // One token for every attempt of this create, so a retry after a lost answer is idempotent.
        let token = token.map_or_else(|| client_token(&input.service_name), str::to_string);
        self.run(Op::CreateService, || self.inner.create_service(input, Some(&token))).await
    }
    async fn update_service(&self, update: &ServiceUpdate) -> Result<ServiceState, BackendError> {
        self.run(Op::UpdateService, || self.inner.update_service(update)).await
    }
    async fn delete_service(&self, cluster: &str, name: &str) -> Result<(), BackendError> {
        let gone = |e: &BackendError| match e {
            BackendError::NotFound { .. } => true,
            BackendError::Invalid { message, .. } => message.starts_with("ServiceNotActiveException"),
            _ => false,
        };
        self.run_removal(Op::DeleteService, gone, || self.inner.delete_service(cluster, name)).await
    }
    async fn tag_resource(&self, arn: &str, tags: &Tags) -> Result<(), BackendError> {
        self.run(Op::TagResource, || self.inner.tag_resource(arn, tags)).await
    }
    async fn untag_resource(&self, arn: &str, keys: &[String]) -> Result<(), BackendError> {
        self.run(Op::UntagResource, || self.inner.untag_resource(arn, keys)).await
    }
    /// One ListTasks and (when tasks stopped) one DescribeTasks: a token of each is taken per attempt.
    async fn stopped_task_reasons(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> Result<Vec<String>, BackendError> {
        self.run(Op::ListTasks, || async {
            self.acquire(Op::DescribeTasks).await;
            self.inner.stopped_task_reasons(cluster, service, task_definition).await
        })
        .await
    }
    async fn list_tasks(&self, cluster: &str, service: &str, token: Option<&str>) -> Result<TaskPage, BackendError> {
        self.run(Op::ListTasks, || self.inner.list_tasks(cluster, service, token)).await
    }
    async fn describe_tasks(&self, cluster: &str, arns: &[String]) -> Result<Vec<TaskInfo>, BackendError> {
        self.run(Op::DescribeTasks, || self.inner.describe_tasks(cluster, arns)).await
    }
}

/// Image resolution behind [`Limited`]'s bucket and retries (read-only, so always safe to repeat).
struct LimitedImages {
    limits: Arc<Limited>,
    inner: Arc<dyn Images>,
}

#[async_trait]
impl Images for LimitedImages {
    async fn lookup(
        &self,
        repository: &str,
        selectors: &[ImageSelector],
    ) -> Result<BTreeMap<ImageSelector, ImageInfo>, BackendError> {
        self.limits.run(Op::BatchGetImage, || self.inner.lookup(repository, selectors)).await
    }

    /// ECR answers it without a request (see [`crate::backend::ecr_command_unreadable`]): nothing to limit.
    async fn image_command(&self, repo: &str, digest: &str, platform: &str) -> Result<ImageCommand, BackendError> {
        self.inner.image_command(repo, digest, platform).await
    }
}

/// Secret resolution behind [`Limited`]'s bucket and retries (metadata reads only, so always safe to repeat). A
/// retry repeats the whole call (up to 10 secrets), including the requests of it that had succeeded.
struct LimitedSecrets {
    limits: Arc<Limited>,
    inner: Arc<dyn Secrets>,
}

#[async_trait]
impl Secrets for LimitedSecrets {
    async fn resolve(&self, ids: &[String]) -> Result<BTreeMap<String, SecretInfo>, BackendError> {
        self.limits.run(Op::ResolveSecrets, || self.inner.resolve(ids)).await
    }
}

/// Target-group reads behind ELBv2's `Describe*` bucket and [`Limited`]'s retries (read-only, so always safe to
/// repeat). Each attempt takes a token for the describe request and one per id for the attribute requests that
/// follow it (one per target group or load balancer found; an unknown id costs its token without a request). A
/// retry repeats the whole call.
struct LimitedTargetGroups {
    limits: Arc<Limited>,
    inner: Arc<dyn TargetGroups>,
}

impl LimitedTargetGroups {
    /// `describe` (of `ids`) behind the bucket and the retries, with a token per id for its attribute requests.
    async fn run<T, F, Fut>(&self, describe: Op, attributes: Op, ids: &[String], call: F) -> Result<T, BackendError>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: std::future::Future<Output = Result<T, BackendError>> + Send,
        T: Send,
    {
        self.limits
            .run(describe, || async {
                for _ in ids {
                    self.limits.acquire(attributes).await;
                }
                call().await
            })
            .await
    }
}

#[async_trait]
impl TargetGroups for LimitedTargetGroups {
    async fn target_groups(&self, ids: &[String]) -> Result<Vec<TargetGroup>, BackendError> {
        let (describe, attributes) = (Op::DescribeTargetGroups, Op::DescribeTargetGroupAttributes);
        self.run(describe, attributes, ids, || self.inner.target_groups(ids)).await
    }
    async fn load_balancers(&self, arns: &[String]) -> Result<Vec<LoadBalancer>, BackendError> {
        let (describe, attributes) = (Op::DescribeLoadBalancers, Op::DescribeLoadBalancerAttributes);
        self.run(describe, attributes, arns, || self.inner.load_balancers(arns)).await
    }
}

/// Application Auto Scaling behind [`Limited`]'s buckets and retries. Reads are safe to repeat; so are
/// RegisterScalableTarget and PutScalingPolicy, which converge to the same target and policy. A delete or
/// deregistration repeated after an answer was lost finds the thing gone: that retry counts as done.
struct LimitedAutoscaling {
    limits: Arc<Limited>,
    inner: Arc<dyn Autoscaling>,
}

/// A deletion or deregistration whose target is gone.
fn not_found(e: &BackendError) -> bool {
    matches!(e, BackendError::NotFound { .. })
}

#[async_trait]
impl Autoscaling for LimitedAutoscaling {
    async fn scalable_targets(&self, resource_ids: &[String]) -> Result<Vec<ScalableTarget>, BackendError> {
        self.limits.run(Op::DescribeScalableTargets, || self.inner.scalable_targets(resource_ids)).await
    }
    async fn scaling_policies(&self, resource_id: &str) -> Result<Vec<ScalingPolicy>, BackendError> {
        self.limits.run(Op::DescribeScalingPolicies, || self.inner.scaling_policies(resource_id)).await
    }
    async fn register_scalable_target(&self, input: &ScalableTargetInput) -> Result<(), BackendError> {
        self.limits.run(Op::RegisterScalableTarget, || self.inner.register_scalable_target(input)).await
    }
    async fn put_scaling_policy(&self, input: &ScalingPolicyInput) -> Result<(), BackendError> {
        self.limits.run(Op::PutScalingPolicy, || self.inner.put_scaling_policy(input)).await
    }
    async fn delete_scaling_policy(&self, resource_id: &str, policy_name: &str) -> Result<(), BackendError> {
        let call = || self.inner.delete_scaling_policy(resource_id, policy_name);
        self.limits.run_removal(Op::DeleteScalingPolicy, not_found, call).await
    }
    async fn deregister_scalable_target(&self, resource_id: &str) -> Result<(), BackendError> {
        let call = || self.inner.deregister_scalable_target(resource_id);
        self.limits.run_removal(Op::DeregisterScalableTarget, not_found, call).await
    }
}
