//! The gate's decisions on what probes found (expected tools, the tool contract, which target is blamed), the
//! endpoint it probes, and what it records, with a scripted prober and an in-memory sim.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::*;
use crate::backend::sim::{Sim, TargetGroupSpec, World};
use crate::backend::{Tags, TargetType};
use crate::spec::load_str;
use crate::state::{TAG_TOOLS, TAG_VERIFICATION};

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn mcp(expect: &[&str], allow_removal: bool) -> ValidMcp {
    ValidMcp {
        expect_tools: names(expect),
        allow_tool_removal: allow_removal,
        verify: Verify::Tasks,
        ..ValidMcp::unverified(Transport::StreamableHttp, 8080)
    }
}

fn target(name: &str) -> Target {
    Target { name: name.into(), url: Some(format!("http://{name}/mcp")) }
}

fn listed(tools: &[&str]) -> Probed {
    Probed { tools: Ok(names(tools)), stateful: false, latency: Duration::from_millis(20) }
}

fn contract(tools: &[&str]) -> Contract {
    Contract { revision: "docs:1".into(), record: ToolRecord::Names(names(tools)) }
}

#[test]
fn every_target_must_list_the_expected_tools_and_the_first_failure_is_named() {
    let m = mcp(&["search", "fetch"], false);
    let v = judge(&m, None, &[(target("10.0.0.1:8080"), listed(&["fetch", "search", "extra"]))]);
    assert_eq!(v.failure, None);
    assert_eq!(v.tools, Some(names(&["extra", "fetch", "search"])));

    let v = judge(
        &m,
        None,
        &[
            (target("10.0.0.1:8080"), listed(&["fetch", "search"])),
            (target("10.0.0.2:8080"), listed(&["search"])),
            (target("10.0.0.3:8080"), Probed { tools: Err("unreachable: connection refused".into()), ..listed(&[]) }),
        ],
    );
    assert_eq!(v.failure.as_deref(), Some("10.0.0.2:8080: missing expected tools: fetch"));
    assert_eq!(v.tools, None, "a target did not list its tools: no tool set is recorded");

    let v = judge(
        &m,
        None,
        &[(
            target("10.0.0.1:8080"),
            Probed { tools: Err("timed out after 10s during tools/list".into()), ..listed(&[]) },
        )],
    );
    assert_eq!(v.failure.as_deref(), Some("10.0.0.1:8080: timed out after 10s during tools/list"));
}

#[test]
fn the_revisions_tools_are_those_every_target_offers() {
    let m = mcp(&[], true);
    let v = judge(&m, None, &[(target("a"), listed(&["x", "y", "z"])), (target("b"), listed(&["y", "z", "w"]))]);
    assert_eq!((v.failure, v.tools), (None, Some(names(&["y", "z"]))));
}

#[test]
fn a_tool_the_last_good_revision_offered_may_not_disappear_unless_allowed() {
    let before = contract(&["fetch", "search", "summarize"]);
    let offered = [(target("10.0.0.1:8080"), listed(&["search", "fetch_v2"]))];
    let v = judge(&mcp(&[], false), Some(&before), &offered);
    assert_eq!(
        v.failure.as_deref(),
        Some(
            "10.0.0.1:8080: no longer offers tools that docs:1 offered: fetch, summarize (set mcp.allowToolRemoval: \
             true to accept)"
        )
    );
    assert_eq!(v.tools, Some(names(&["fetch_v2", "search"])), "what it offered is recorded all the same");
    assert_eq!(judge(&mcp(&[], true), Some(&before), &offered).failure, None);
    // Adding tools keeps the contract.
    assert_eq!(
        judge(&mcp(&[], false), Some(&before), &[(target("a"), listed(&["fetch", "search", "summarize", "new"]))])
            .failure,
        None
    );
    // An expected tool missing is told first: it is the manifest's own demand.
    let v = judge(&mcp(&["fetch"], false), Some(&before), &offered);
    assert_eq!(v.failure.as_deref(), Some("10.0.0.1:8080: missing expected tools: fetch"));
}

#[test]
fn a_contract_recorded_only_as_a_count_holds_the_number_of_tools() {
    let before = Contract { revision: "docs:1".into(), record: ToolRecord::Count(3) };
    assert_eq!(breach(&before, &names(&["a", "b", "c"])), None);
    assert_eq!(breach(&before, &names(&["a", "b", "c", "d"])), None);
    assert_eq!(
        breach(&before, &names(&["a", "b"])).as_deref(),
        Some(
            "offers 2 tools, fewer than the 3 that docs:1 offered (too many to record by name; set \
             mcp.allowToolRemoval: true to accept)"
        )
    );
    assert_eq!(
        breach(&contract(&["a"]), &names(&[]))
            .as_deref()
            .map(|r| r.starts_with("no longer offers a tool that docs:1 offered: a")),
        Some(true)
    );
}

/// A prober that answers from a script, by URL, and remembers what it was asked.
#[derive(Default)]
struct Scripted {
    answers: BTreeMap<String, Vec<Probed>>,
    asked: Mutex<Vec<String>>,
}

#[async_trait]
impl Prober for Scripted {
    async fn probe(&self, url: &str, _: Transport, _: Duration) -> Probed {
        let mut asked = self.asked.lock().unwrap();
        let n = asked.iter().filter(|u| *u == url).count();
        asked.push(url.to_string());
        let script = self.answers.get(url).cloned().unwrap_or_default();
        script.get(n).or(script.last()).cloned().unwrap_or(Probed {
            tools: Err(format!("unreachable: nothing scripted for {url}")),
            stateful: false,
            latency: Duration::ZERO,
        })
    }
}

#[tokio::test]
async fn a_probe_that_cannot_list_tools_is_repeated_before_the_target_fails() {
    let sim = Sim::in_memory(World::default());
    let url = "http://10.0.0.1:8080/mcp".to_string();
    let refused = Probed { tools: Err("unreachable: connection refused".into()), ..listed(&[]) };
    let prober = Scripted {
        answers: BTreeMap::from([(url.clone(), vec![refused.clone(), listed(&["a"])])]),
        ..Default::default()
    };
    let t0 = sim.now_ms();
    let probed =
        probe_all(&prober, sim.as_ref(), &mcp(&[], false), vec![Target { name: "t".into(), url: Some(url.clone()) }])
            .await;
    assert_eq!(probed[0].1.tools, Ok(names(&["a"])));
    assert_eq!(sim.now_ms() - t0, RETRY_PAUSE.as_millis() as u64, "one pause, on the sim's clock");

    let prober = Scripted { answers: BTreeMap::from([(url.clone(), vec![refused])]), ..Default::default() };
    let probed =
        probe_all(&prober, sim.as_ref(), &mcp(&[], false), vec![Target { name: "t".into(), url: Some(url) }]).await;
    assert!(probed[0].1.tools.is_err());
    assert_eq!(prober.asked.lock().unwrap().len(), ATTEMPTS as usize);
}

/// A sim with one verified service `docs` (2 replicas) behind the sim's load balancer or on Service Connect.
async fn service_with(expose: &str) -> (std::sync::Arc<Sim>, ServiceState, ValidMcp) {
    let sim = Sim::in_memory(World::default());
    sim.with_world(false, |w| {
        let spec = TargetGroupSpec {
            name: "docs".into(),
            health_check_path: "/".into(),
            target_type: TargetType::Ip,
            load_balancer: true,
        };
        w.create_target_group(&spec).unwrap();
    })
    .unwrap();
    let arn = sim.snapshot().target_groups["docs"].arn.clone();
    let text = format!(
        "apiVersion: mcpfleet.io/v1alpha1\nkind: McpService\nmetadata: {{ name: docs }}\nspec:\n  cluster: mcp\n  image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/docs@sha256:{}\n  cpu: 256\n  memory: 512\n  replicas: 2\n  port: 8080\n  executionRoleArn: arn:aws:iam::123456789012:role/exec\n  network: {{ subnets: [subnet-0abc1234] }}\n  expose: {}\n  mcp: {{ verify: endpoint, path: /v1/mcp }}\n",
        "0".repeat(64),
        expose.replace("TG", &arn)
    );
    let svc = load_str("m.yaml", &text).unwrap().services.remove(0);
    let rendered = crate::render::ecs::render(&svc, &crate::render::Resolved::unresolved(&svc));
    let ecs: &dyn Ecs = sim.as_ref();
    let td = ecs.register_task_definition(&rendered.register_task_definition).await.unwrap();
    let mut input = rendered.create_service.clone();
    input.task_definition = td.arn;
    let state = ecs.create_service(&input, None).await.unwrap();
    (sim, state, svc.mcp)
}

#[tokio::test]
async fn verify_endpoint_probes_the_load_balancer_else_the_service_connect_url() {
    let (sim, state, m) = service_with("{ loadBalancers: [{ targetGroup: 'TG' }] }").await;
    let dns = sim.snapshot().load_balancers.values().next().unwrap().dns_name.clone();
    let url = format!("http://{dns}/v1/mcp");
    let stateful = Probed { stateful: true, ..listed(&["search"]) };
    let prober = Scripted { answers: BTreeMap::from([(url.clone(), vec![stateful])]), ..Default::default() };
    let ports = GatePorts { prober: &prober, target_groups: sim.as_ref() };
    let gate = Gate::of(&m, Some(ports)).unwrap();
    let v = verify(sim.as_ref(), sim.as_ref(), gate, &state, &state.task_definition).await.unwrap();
    assert_eq!((v.failure.as_deref(), v.tools.clone()), (None, Some(names(&["search"]))));
    assert_eq!(*prober.asked.lock().unwrap(), [url]);
    let warning = session_warning(&state, &v).unwrap();
    assert!(
        warning.contains("docs: the MCP server is stateful") && warning.contains("2 tasks share a load balancer"),
        "{warning}"
    );

    let (sim, state, m) = service_with("{ serviceConnect: { namespace: mcp.internal } }").await;
    let prober = Scripted::default();
    let gate = Gate::of(&m, Some(GatePorts { prober: &prober, target_groups: sim.as_ref() })).unwrap();
    let v = verify(sim.as_ref(), sim.as_ref(), gate, &state, &state.task_definition).await.unwrap();
    assert_eq!(prober.asked.lock().unwrap()[0], "http://docs.mcp.internal:8080/v1/mcp");
    assert!(
        v.failure.unwrap().starts_with("endpoint http://docs.mcp.internal:8080/v1/mcp: unreachable: nothing scripted")
    );
    assert_eq!(session_warning(&state, &Verdict { stateful: true, ..Verdict::default() }), None, "no load balancer");
}

#[tokio::test]
async fn a_verification_records_the_tools_on_the_revision_and_its_result_on_the_service_once() {
    let (sim, state, _) = service_with("{ serviceConnect: { namespace: mcp.internal } }").await;
    let ecs: &dyn Ecs = sim.as_ref();
    let td = state.task_definition.clone();
    let passed = Verdict { tools: Some(names(&["search", "fetch"])), ..Verdict::default() };
    record(ecs, sim.as_ref(), &state, &td, &passed).await.unwrap();
    let revision = ecs.describe_task_definition(&td).await.unwrap();
    assert_eq!(ToolRecord::parse(&revision.tags), Some(ToolRecord::Names(names(&["fetch", "search"]))));
    let service = |sim: &Sim| sim.snapshot().services["mcp/docs"].state.clone();
    let recorded = Verification::parse(&service(&sim).tags).unwrap();
    assert_eq!((recorded.passed, recorded.revision.as_str(), recorded.tools), (true, "docs:1", Some(2)));

    // The same result again writes nothing, however much later.
    sim.sleep(Duration::from_secs(600)).await;
    sim.reset_stats();
    record(ecs, sim.as_ref(), &service(&sim), &td, &passed).await.unwrap();
    assert_eq!(sim.stats().writes(), 0, "{:?}", sim.stats().calls);

    // A failure is recorded, with its reason; the tools are kept as they were listed.
    let failed = Verdict { failure: Some("10.0.0.1:8080: missing expected tools: summarize".into()), ..passed.clone() };
    record(ecs, sim.as_ref(), &service(&sim), &td, &failed).await.unwrap();
    let recorded = Verification::parse(&service(&sim).tags).unwrap();
    assert_eq!(
        (recorded.passed, recorded.reason.as_str()),
        (false, "10.0.0.1:8080: missing expected tools: summarize")
    );
    let tags: &Tags = &service(&sim).tags;
    assert!(tags[TAG_VERIFICATION].starts_with("failed/2026-01-01T00:10:00Z/docs:1/2/"), "{tags:?}");

    // A longer list, then a shorter one: the parts the shorter one does not use are removed.
    let many: Vec<String> = (0..100).map(|i| format!("tool_{i:03}")).collect();
    record(ecs, sim.as_ref(), &service(&sim), &td, &Verdict { tools: Some(many), ..Verdict::default() }).await.unwrap();
    record(ecs, sim.as_ref(), &service(&sim), &td, &passed).await.unwrap();
    let revision = ecs.describe_task_definition(&td).await.unwrap();
    let parts: Vec<&String> = revision.tags.keys().filter(|k| state::is_tool_tag(k) && *k != TAG_TOOLS).collect();
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert_eq!(ToolRecord::parse(&revision.tags), Some(ToolRecord::Names(names(&["fetch", "search"]))));
}

#[tokio::test]
async fn a_service_scaled_to_zero_has_nothing_to_verify() {
    let (sim, mut state, m) = service_with("{ serviceConnect: { namespace: mcp.internal } }").await;
    state.desired_count = 0;
    let prober = Scripted::default();
    let gate = Gate::of(&m, Some(GatePorts { prober: &prober, target_groups: sim.as_ref() })).unwrap();
    let v = verify(sim.as_ref(), sim.as_ref(), gate, &state, &state.task_definition).await.unwrap();
    assert_eq!(v, Verdict::default());
    assert!(prober.asked.lock().unwrap().is_empty());
}
