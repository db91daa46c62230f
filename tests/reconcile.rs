//! Reconcile through the library on an in-memory sim: the API requests a no-op apply costs, the virtual time a
//! large change takes under ECS's rate limits, and the property that apply-then-plan is all no-op.

use std::sync::Arc;

use mcpfleet::backend::limits::Limited;
use mcpfleet::backend::sim::Sim;
use mcpfleet::backend::{
    Backend, BackendError, Clock, ImageCommand, ImageInfo, ImageSelector, Images, ServiceState, ServiceUpdate, Tags,
    TaskDefinition, TaskInfo, TaskPage, TdStatus,
};
use mcpfleet::plan::Action;
use mcpfleet::reconcile::{self, ApplyOptions, Outcome};
use mcpfleet::render::ecs::{ServiceInput, TaskDefinitionInput};
use mcpfleet::spec::load_str;
use mcpfleet::testkit::{fleet_yaml, seeded_world};
use proptest::prelude::*;

fn limited(sim: &Arc<Sim>) -> Backend {
    let mut b = sim.backend();
    b.ecs = Arc::new(Limited::new(b.ecs.clone(), b.clock.clone()));
    b
}

async fn apply_once(text: &str, backend: &Backend) -> Vec<reconcile::ServiceOutcome> {
    let fleet = load_str("fleet.yaml", text).unwrap();
    let desired = reconcile::desired_state(&fleet, backend).await.unwrap();
    let observed = reconcile::observe(&desired, backend.ecs.as_ref(), true).await.unwrap();
    let plan = reconcile::plan_fleet(&desired, &observed, backend.ecs.as_ref()).await.unwrap();
    reconcile::apply(&desired, &plan, &observed, backend.ecs.as_ref(), &ApplyOptions::default(), &|_, _| {}).await
}

#[tokio::test]
async fn a_noop_apply_costs_batched_reads_and_no_write() {
    for n in [10usize, 100, 1000] {
        let (repos, secrets) = (5, 3);
        let sim = Sim::in_memory(seeded_world(repos, secrets));
        let backend = limited(&sim);
        let text = fleet_yaml(n, repos, secrets);
        let first = apply_once(&text, &backend).await;
        assert!(first.iter().all(|o| o.outcome == Outcome::Created));
        sim.reset_stats();
        let second = apply_once(&text, &backend).await;
        assert!(second.iter().all(|o| o.outcome == Outcome::Unchanged));
        let stats = sim.stats();
        println!("no-op apply of {n} services: {:?}", stats.calls);
        assert_eq!(stats.writes(), 0);
        assert_eq!(stats.get("DescribeServices"), n.div_ceil(10) as u64);
        assert_eq!(stats.get("BatchGetImage"), repos as u64, "one image lookup per repository");
        assert_eq!(stats.get("ListSecrets"), 1, "{secrets} secrets resolve in one call");
        assert_eq!(stats.get("ListServices"), 1, "one cluster");
        assert_eq!(stats.get("DescribeTaskDefinition"), 0);
        assert!(stats.throttled.is_empty());
    }
}

#[tokio::test]
async fn a_hundred_service_change_waits_for_tokens_instead_of_failing() {
    let sim = Sim::in_memory(seeded_world(5, 3));
    let backend = limited(&sim);
    let text = fleet_yaml(100, 5, 3);
    apply_once(&text, &backend).await;
    // Give every repository a new tag and every service its image: 100 new revisions.
    sim.with_world(false, |w| {
        for r in 0..5 {
            w.push_image(
                &format!("{}/mcp/repo-{r}", mcpfleet::testkit::REGISTRY),
                "v2",
                vec!["linux/amd64".into(), "linux/arm64".into()],
                false,
            );
        }
    })
    .unwrap();
    // Let both sides' token buckets refill, as between two real applies.
    sim.sleep(std::time::Duration::from_secs(120)).await;
    sim.reset_stats();
    let start = sim.now_ms();
    let outcomes = apply_once(&text.replace(":v1\n", ":v2\n"), &backend).await;
    let elapsed = (sim.now_ms() - start) as f64 / 1000.0;
    assert!(outcomes.iter().all(|o| o.outcome == Outcome::Updated), "{outcomes:?}");
    let stats = sim.stats();
    assert_eq!(stats.get("RegisterTaskDefinition"), 100);
    assert!(stats.throttled.is_empty(), "throttling reached the API: {:?}", stats.throttled);
    // RegisterTaskDefinition allows a burst of 20 then 1/s: the floor is 80 s of virtual time.
    println!("100-service change: {elapsed:.1} s virtual (floor 80 s), calls {:?}", stats.calls);
    assert!((80.0..=88.0).contains(&elapsed), "took {elapsed} s");
}

fn fleet_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["auto", "arm64", "x86_64"]),
            0u32..4,
            prop::collection::btree_map("[A-Z]{1,6}", "[a-z0-9]{0,8}", 0..3),
            prop::bool::ANY,
            0usize..3,
        ),
        1..8,
    )
    .prop_map(|services| {
        let mut text = String::from(
            "apiVersion: mcpfleet.io/v1alpha1\nkind: FleetDefaults\nspec:\n  cluster: prop\n  network: { subnets: [subnet-0abc1234] }\n  executionRoleArn: arn:aws:iam::123456789012:role/exec\n",
        );
        for (i, (arch, replicas, env, health, repo)) in services.into_iter().enumerate() {
            text.push_str(&format!(
                "---\napiVersion: mcpfleet.io/v1alpha1\nkind: McpService\nmetadata: {{ name: s{i} }}\nspec:\n  image: {}/mcp/repo-{repo}:v1\n  architecture: {arch}\n  cpu: 512\n  memory: 2048\n  replicas: {replicas}\n  port: 8080\n  secrets: {{ TOKEN: bench/secret-{} }}\n",
                mcpfleet::testkit::REGISTRY,
                i % 2
            ));
            if !env.is_empty() {
                text.push_str("  env:\n");
                for (k, v) in env {
                    text.push_str(&format!("    {k}: '{v}'\n"));
                }
            }
            if health {
                text.push_str("  healthCheck: { command: [CMD, /bin/true], interval: 20s }\n");
            }
        }
        text
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn apply_then_plan_is_all_noop(text in fleet_strategy()) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let sim = Sim::in_memory(seeded_world(3, 2));
            let backend = limited(&sim);
            let outcomes = apply_once(&text, &backend).await;
            prop_assert!(outcomes.iter().all(|o| o.outcome == Outcome::Created), "{:?}", outcomes);
            let fleet = load_str("fleet.yaml", &text).unwrap();
            let desired = reconcile::desired_state(&fleet, &backend).await.unwrap();
            let observed = reconcile::observe(&desired, backend.ecs.as_ref(), true).await.unwrap();
            let plan = reconcile::plan_fleet(&desired, &observed, backend.ecs.as_ref()).await.unwrap();
            prop_assert!(plan.services.iter().all(|s| s.action == Action::Noop), "{:?}", plan);
            Ok(())
        })?;
    }
}

/// Records the batch size of every DescribeServices call, and poll boundaries (each sleep of the watcher).
struct Recorder {
    inner: Arc<dyn mcpfleet::backend::Ecs>,
    clock: Arc<dyn Clock>,
    log: std::sync::Mutex<Vec<Option<usize>>>,
}

#[async_trait::async_trait]
impl Clock for Recorder {
    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
    async fn sleep(&self, d: std::time::Duration) {
        self.log.lock().unwrap().push(None);
        self.clock.sleep(d).await;
    }
}

#[tokio::test]
async fn the_watcher_describes_services_in_flight_ten_at_a_time() {
    use mcpfleet::reconcile::watch::{RolloutResult, Target, watch};
    let sim = Sim::in_memory(seeded_world(1, 1));
    sim.set_throttling(false);
    let backend = sim.backend();
    let text = fleet_yaml(25, 1, 1);
    let outcomes = apply_once(&text, &backend).await;
    let recorder =
        Arc::new(Recorder { inner: backend.ecs.clone(), clock: backend.clock.clone(), log: Default::default() });
    struct Counting(Arc<Recorder>);
    #[async_trait::async_trait]
    impl mcpfleet::backend::Ecs for Counting {
        async fn describe_services(
            &self,
            c: &str,
            n: &[String],
        ) -> Result<mcpfleet::backend::Described, mcpfleet::backend::BackendError> {
            self.0.log.lock().unwrap().push(Some(n.len()));
            self.0.inner.describe_services(c, n).await
        }
        async fn list_services(&self, c: &str) -> Result<Vec<String>, mcpfleet::backend::BackendError> {
            self.0.inner.list_services(c).await
        }
        async fn list_clusters(&self) -> Result<Vec<String>, mcpfleet::backend::BackendError> {
            self.0.inner.list_clusters().await
        }
        async fn untag_resource(&self, a: &str, k: &[String]) -> Result<(), mcpfleet::backend::BackendError> {
            self.0.inner.untag_resource(a, k).await
        }
        async fn register_task_definition(
            &self,
            i: &mcpfleet::render::ecs::TaskDefinitionInput,
        ) -> Result<mcpfleet::backend::TaskDefinition, mcpfleet::backend::BackendError> {
            self.0.inner.register_task_definition(i).await
        }
        async fn describe_task_definition(
            &self,
            i: &str,
        ) -> Result<mcpfleet::backend::TaskDefinition, mcpfleet::backend::BackendError> {
            self.0.inner.describe_task_definition(i).await
        }
        async fn list_task_definitions(
            &self,
            f: &str,
            s: mcpfleet::backend::TdStatus,
        ) -> Result<Vec<String>, mcpfleet::backend::BackendError> {
            self.0.inner.list_task_definitions(f, s).await
        }
        async fn deregister_task_definition(&self, a: &str) -> Result<(), mcpfleet::backend::BackendError> {
            self.0.inner.deregister_task_definition(a).await
        }
        async fn create_service(
            &self,
            i: &mcpfleet::render::ecs::ServiceInput,
            t: Option<&str>,
        ) -> Result<mcpfleet::backend::ServiceState, mcpfleet::backend::BackendError> {
            self.0.inner.create_service(i, t).await
        }
        async fn update_service(
            &self,
            u: &mcpfleet::backend::ServiceUpdate,
        ) -> Result<mcpfleet::backend::ServiceState, mcpfleet::backend::BackendError> {
            self.0.inner.update_service(u).await
        }
        async fn delete_service(&self, c: &str, n: &str) -> Result<(), mcpfleet::backend::BackendError> {
            self.0.inner.delete_service(c, n).await
        }
        async fn tag_resource(
            &self,
            a: &str,
            t: &mcpfleet::backend::Tags,
        ) -> Result<(), mcpfleet::backend::BackendError> {
            self.0.inner.tag_resource(a, t).await
        }
        async fn stopped_task_reasons(
            &self,
            c: &str,
            s: &str,
            t: &str,
        ) -> Result<Vec<String>, mcpfleet::backend::BackendError> {
            self.0.inner.stopped_task_reasons(c, s, t).await
        }
        async fn list_tasks(
            &self,
            c: &str,
            s: &str,
            t: Option<&str>,
        ) -> Result<mcpfleet::backend::TaskPage, mcpfleet::backend::BackendError> {
            self.0.inner.list_tasks(c, s, t).await
        }
        async fn describe_tasks(
            &self,
            c: &str,
            a: &[String],
        ) -> Result<Vec<mcpfleet::backend::TaskInfo>, mcpfleet::backend::BackendError> {
            self.0.inner.describe_tasks(c, a).await
        }
    }
    let targets: Vec<Target> = outcomes
        .iter()
        .map(|o| Target {
            cluster: o.cluster.clone(),
            name: o.name.clone(),
            task_definition: o.task_definition.clone().unwrap(),
            networking: None,
            deadline_ms: u64::MAX,
            restart: None,
        })
        .collect();
    let counting = Counting(recorder.clone());
    let results = watch(&counting, recorder.as_ref(), &targets, std::time::Duration::from_secs(3600), &|_, _| {}).await;
    assert!(results.values().all(|r| *r == RolloutResult::Completed));
    let log = recorder.log.lock().unwrap().clone();
    let polls: Vec<Vec<usize>> = log.split(|e| e.is_none()).map(|p| p.iter().flatten().copied().collect()).collect();
    println!("DescribeServices batch sizes per poll: {polls:?}");
    assert!(polls.len() > 1, "the rollouts take several polls");
    for poll in &polls {
        assert_eq!(poll, &[10, 10, 5], "25 services in flight: ⌈25/10⌉ = 3 calls per poll");
    }
}

/// [`apply_once`] with Application Auto Scaling read and written, as the binary and the controller do.
async fn apply_scaled(text: &str, backend: &Backend) -> Vec<reconcile::ServiceOutcome> {
    let fleet = load_str("fleet.yaml", text).unwrap();
    let desired = reconcile::desired_state(&fleet, backend).await.unwrap();
    let mut observed = reconcile::observe(&desired, backend.ecs.as_ref(), true).await.unwrap();
    reconcile::scaling::observe(&desired, &mut observed, backend.autoscaling.as_ref()).await.unwrap();
    let plan = reconcile::plan_fleet(&desired, &observed, backend.ecs.as_ref()).await.unwrap();
    let opts = ApplyOptions { autoscaling: Some(backend.autoscaling.clone()), ..ApplyOptions::default() };
    reconcile::apply(&desired, &plan, &observed, backend.ecs.as_ref(), &opts, &|_, _| {}).await
}

#[tokio::test]
async fn a_noop_apply_of_autoscaled_services_reads_one_target_batch_per_50_services_and_no_policy() {
    for n in [10usize, 50, 51, 120] {
        let sim = Sim::in_memory(seeded_world(5, 3));
        let backend = limited(&sim);
        let text = fleet_yaml(n, 5, 3).replace(
            "  stopTimeout: 20s\n",
            "  stopTimeout: 20s\n  autoscaling: { min: 1, max: 4, targetCpu: 60, targetMemory: 75 }\n",
        );
        let first = apply_scaled(&text, &backend).await;
        assert!(first.iter().all(|o| o.outcome == Outcome::Created), "{first:?}");
        let stats = sim.stats();
        assert_eq!((stats.get("RegisterScalableTarget"), stats.get("PutScalingPolicy")), (n as u64, 2 * n as u64));
        assert_eq!(sim.snapshot().scalable_targets.len(), n);
        sim.reset_stats();
        let second = apply_scaled(&text, &backend).await;
        assert!(second.iter().all(|o| o.outcome == Outcome::Unchanged), "{second:?}");
        let stats = sim.stats();
        println!("no-op apply of {n} autoscaled services: {:?}", stats.calls);
        assert_eq!(stats.writes(), 0, "{:?}", stats.calls);
        assert_eq!(stats.get("DescribeScalableTargets"), n.div_ceil(50) as u64);
        assert_eq!(stats.get("DescribeScalingPolicies"), 0, "a converged service's policies are not read");
        assert_eq!(stats.get("DescribeServices"), n.div_ceil(10) as u64);
    }
}

/// Counts the calls of one kind in flight at once: each call yields once before it is answered, so every call the
/// caller has started by then is seen together (no timing involved).
#[derive(Default)]
struct Gauge {
    now: std::sync::atomic::AtomicUsize,
    max: std::sync::atomic::AtomicUsize,
    calls: std::sync::atomic::AtomicUsize,
}

impl Gauge {
    async fn hold<T>(&self, call: impl std::future::Future<Output = T>) -> T {
        use std::sync::atomic::Ordering::SeqCst;
        self.calls.fetch_add(1, SeqCst);
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.max.fetch_max(now, SeqCst);
        tokio::task::yield_now().await;
        let answer = call.await;
        self.now.fetch_sub(1, SeqCst);
        answer
    }

    fn seen(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::SeqCst;
        (self.calls.load(SeqCst), self.max.load(SeqCst))
    }
}

/// An ECS whose DescribeServices calls go through a [`Gauge`]; every other call goes straight through.
struct GaugedEcs(Arc<dyn mcpfleet::backend::Ecs>, Gauge);

#[async_trait::async_trait]
impl mcpfleet::backend::Ecs for GaugedEcs {
    async fn describe_services(&self, c: &str, n: &[String]) -> Result<mcpfleet::backend::Described, BackendError> {
        self.1.hold(self.0.describe_services(c, n)).await
    }
    async fn list_services(&self, c: &str) -> Result<Vec<String>, BackendError> {
        self.0.list_services(c).await
    }
    async fn list_clusters(&self) -> Result<Vec<String>, BackendError> {
        self.0.list_clusters().await
    }
    async fn register_task_definition(&self, i: &TaskDefinitionInput) -> Result<TaskDefinition, BackendError> {
        self.0.register_task_definition(i).await
    }
    async fn describe_task_definition(&self, i: &str) -> Result<TaskDefinition, BackendError> {
        self.0.describe_task_definition(i).await
    }
    async fn list_task_definitions(&self, f: &str, s: TdStatus) -> Result<Vec<String>, BackendError> {
        self.0.list_task_definitions(f, s).await
    }
    async fn deregister_task_definition(&self, a: &str) -> Result<(), BackendError> {
        self.0.deregister_task_definition(a).await
    }
    async fn create_service(&self, i: &ServiceInput, t: Option<&str>) -> Result<ServiceState, BackendError> {
        self.0.create_service(i, t).await
    }
    async fn update_service(&self, u: &ServiceUpdate) -> Result<ServiceState, BackendError> {
        self.0.update_service(u).await
    }
    async fn delete_service(&self, c: &str, n: &str) -> Result<(), BackendError> {
        self.0.delete_service(c, n).await
    }
    async fn tag_resource(&self, a: &str, t: &Tags) -> Result<(), BackendError> {
        self.0.tag_resource(a, t).await
    }
    async fn untag_resource(&self, a: &str, k: &[String]) -> Result<(), BackendError> {
        self.0.untag_resource(a, k).await
    }
    async fn stopped_task_reasons(&self, c: &str, s: &str, t: &str) -> Result<Vec<String>, BackendError> {
        self.0.stopped_task_reasons(c, s, t).await
    }
    async fn list_tasks(&self, c: &str, s: &str, t: Option<&str>) -> Result<TaskPage, BackendError> {
        self.0.list_tasks(c, s, t).await
    }
    async fn describe_tasks(&self, c: &str, a: &[String]) -> Result<Vec<TaskInfo>, BackendError> {
        self.0.describe_tasks(c, a).await
    }
}

/// An image registry whose lookups go through a [`Gauge`].
struct GaugedImages(Arc<dyn Images>, Gauge);

#[async_trait::async_trait]
impl Images for GaugedImages {
    async fn lookup(
        &self,
        r: &str,
        s: &[ImageSelector],
    ) -> Result<std::collections::BTreeMap<ImageSelector, ImageInfo>, BackendError> {
        self.1.hold(self.0.lookup(r, s)).await
    }
    async fn image_command(&self, r: &str, d: &str, p: &str) -> Result<ImageCommand, BackendError> {
        self.0.image_command(r, d, p).await
    }
}

#[tokio::test]
async fn describes_of_several_clusters_go_eight_batches_at_a_time_and_keep_their_order() {
    let sim = Sim::in_memory(seeded_world(1, 1));
    sim.set_throttling(false);
    // Four clusters, 12 batches of up to ten names: more than the limit, so the limit is what stops them.
    let mut wanted = std::collections::BTreeMap::new();
    for (cluster, n) in [("alpha", 40usize), ("beta", 25), ("gamma", 1), ("delta", 37)] {
        let body = fleet_yaml(n, 1, 1).replace("cluster: bench", &format!("cluster: {cluster}"));
        let body = body.replace("name: svc-", &format!("name: {cluster}-"));
        apply_once(&body, &sim.backend()).await;
        wanted.insert(cluster.to_string(), (0..n).map(|i| format!("{cluster}-{i:05}")).collect::<Vec<_>>());
    }
    let ecs = GaugedEcs(sim.backend().ecs.clone(), Gauge::default());
    let described = reconcile::describe_all(&ecs, &wanted).await.unwrap();
    let (calls, max) = ecs.1.seen();
    assert_eq!(calls, 4 + 3 + 1 + 4, "ten names a call, per cluster");
    assert_eq!(max, reconcile::DESCRIBES_AT_ONCE, "batches of every cluster in flight together, up to the limit");
    assert_eq!(max, 8);
    let order: Vec<String> = described.iter().map(|s| format!("{}/{}", s.cluster, s.name)).collect();
    let expected: Vec<String> =
        wanted.iter().flat_map(|(c, names)| names.iter().map(move |n| format!("{c}/{n}"))).collect();
    assert_eq!(order, expected, "the answer keeps the clusters' and batches' order");
}

#[tokio::test]
async fn lookups_of_many_repositories_go_eight_at_a_time() {
    let (repos, n) = (30, 90);
    let sim = Sim::in_memory(seeded_world(repos, 1));
    sim.set_throttling(false);
    let mut backend = sim.backend();
    let images = Arc::new(GaugedImages(backend.images.clone(), Gauge::default()));
    backend.images = images.clone();
    let fleet = load_str("fleet.yaml", &fleet_yaml(n, repos, 1)).unwrap();
    let desired = reconcile::desired_state(&fleet, &backend).await.unwrap();
    assert_eq!(desired.len(), n);
    let (calls, max) = images.1.seen();
    assert_eq!(calls, repos, "one lookup per repository");
    assert_eq!(max, reconcile::resolve::REPOSITORIES_AT_ONCE, "repositories looked up together, up to the limit");
    assert_eq!(max, 8);
}
