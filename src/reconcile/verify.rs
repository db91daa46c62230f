//! The MCP rollout gate: whether what a rollout put in place works for MCP clients. ECS knows whether a container
//! answers its health check; the gate probes, as an MCP client, every RUNNING task of the new revision
//! (`verify: tasks`) or the service's endpoint (`verify: endpoint`): the handshake works, `tools/list` answers,
//! every `expectTools` name is offered, and — the tool contract — no tool the last good revision offered is gone
//! (unless `allowToolRemoval`). The settle path ([`super::settle`]) calls [`verify`] before it calls a completed
//! rollout good, and treats a failed verification as a failed rollout; the controller re-probes running services
//! with the same [`verify`] and only reports.
//!
//! The probe itself is a port, [`Prober`], so these decisions are tested without a network; the binary plugs in
//! the real MCP client. What a verification found is recorded in AWS (see [`record`]): the tools on the revision
//! (the contract the next revision is held to) and the result on the service.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;

use crate::backend::{BackendError, Clock, Ecs, ServiceState, TargetGroups, TaskStatus};
use crate::spec::{Transport, ValidMcp, Verify};
use crate::state::{self, ToolRecord, Verification, short};

/// What one probe of an MCP endpoint found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    /// Every tool `tools/list` returned, or why the server could not be probed (unreachable, HTTP status,
    /// protocol error, timeout, `tools/list` failing).
    pub tools: Result<Vec<String>, String>,
    /// The server issued a session id: a session's requests must reach the task that holds it.
    pub stateful: bool,
    /// How long the probe took.
    pub latency: Duration,
}

/// Probes an MCP endpoint as a client would: connect, negotiate, list every tool.
#[async_trait]
pub trait Prober: Send + Sync {
    /// Probes `url` with `transport`, giving up after `timeout`. Never fails: a failure is in [`Probed::tools`].
    async fn probe(&self, url: &str, transport: Transport, timeout: Duration) -> Probed;
}

/// What verifying needs besides ECS and the clock: the prober, and the target groups (a load balancer's DNS
/// name, for `verify: endpoint`).
#[derive(Clone, Copy)]
pub struct GatePorts<'a> {
    pub prober: &'a dyn Prober,
    pub target_groups: &'a dyn TargetGroups,
}

/// One service's gate: its verification settings and the ports.
#[derive(Clone, Copy)]
pub struct Gate<'a> {
    pub mcp: &'a ValidMcp,
    pub ports: GatePorts<'a>,
}

impl std::fmt::Debug for Gate<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").field("mcp", self.mcp).finish_non_exhaustive()
    }
}

impl<'a> Gate<'a> {
    /// The gate of a service with these settings; None when its rollouts are not verified.
    pub fn of(mcp: &'a ValidMcp, ports: Option<GatePorts<'a>>) -> Option<Gate<'a>> {
        Some(Gate { mcp, ports: ports? }).filter(|g| g.mcp.verified())
    }
}

/// Attempts per target: a probe that could not list tools is repeated (a task that just turned healthy may not
/// serve yet, a connection may drop) before the target counts as failed.
pub const ATTEMPTS: u32 = 3;
/// The pause between attempts.
pub const RETRY_PAUSE: Duration = Duration::from_secs(2);
/// Targets probed at the same time.
const CONCURRENCY: usize = 8;

/// What the gate probes: a task, or the service's endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// How messages name it: `<task id> at <ip>:<port>`, or `endpoint <url>`.
    pub name: String,
    /// None for a task ECS gives no address: it fails without a probe.
    pub url: Option<String>,
}

/// What verifying a revision found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Why it failed (`<target>: <why>`); None when it passed.
    pub failure: Option<String>,
    /// The tools every target offered (sorted), when every target listed its tools.
    pub tools: Option<Vec<String>>,
    /// A target issued a session id.
    pub stateful: bool,
    /// The slowest probe that listed tools.
    pub latency: Option<Duration>,
}

/// What a verification that passed found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passed {
    /// The tools every target offered, when each listed them.
    pub tools: Option<usize>,
    /// The slowest probe's time.
    pub latency: Option<Duration>,
    /// What works but may not work well (a stateful server behind a load balancer; see [`session_warning`]).
    pub warning: Option<String>,
}

/// The tool contract: the tools a revision must keep offering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contract {
    /// The revision the tools were recorded on (`family:revision`), for messages.
    pub revision: String,
    pub record: ToolRecord,
}

/// What `offered` breaks of the contract, as a reason; None when it keeps it. With the names recorded, the ones
/// gone are named; with only their count (too many to record), offering fewer tools breaks it.
pub fn breach(contract: &Contract, offered: &[String]) -> Option<String> {
    match &contract.record {
        ToolRecord::Names(before) => {
            let gone: Vec<&str> = before.iter().filter(|t| !offered.contains(t)).map(String::as_str).collect();
            (!gone.is_empty()).then(|| {
                format!(
                    "no longer offers {} that {} offered: {} (set mcp.allowToolRemoval: true to accept)",
                    if gone.len() == 1 { "a tool" } else { "tools" },
                    contract.revision,
                    gone.join(", ")
                )
            })
        }
        ToolRecord::Count(before) => (offered.len() < *before).then(|| {
            format!(
                "offers {} tools, fewer than the {before} that {} offered (too many to record by name; set \
                 mcp.allowToolRemoval: true to accept)",
                offered.len(),
                contract.revision
            )
        }),
    }
}

/// Judges what each target's probe found, in target order: the first problem fails the verification. The tools
/// of the revision are those every target offered.
pub fn judge(mcp: &ValidMcp, contract: Option<&Contract>, probed: &[(Target, Probed)]) -> Verdict {
    let mut verdict = Verdict {
        stateful: probed.iter().any(|(_, p)| p.stateful),
        latency: probed.iter().filter(|(_, p)| p.tools.is_ok()).map(|(_, p)| p.latency).max(),
        ..Verdict::default()
    };
    let mut common: Option<BTreeSet<&String>> = None;
    let mut all_listed = true;
    for (target, p) in probed {
        let why = match &p.tools {
            Err(e) => {
                all_listed = false;
                Some(e.clone())
            }
            Ok(offered) => {
                let set: BTreeSet<&String> = offered.iter().collect();
                common = Some(match common.take() {
                    Some(c) => c.intersection(&set).copied().collect(),
                    None => set,
                });
                let missing = crate::probe::missing_tools(&mcp.expect_tools, offered);
                if !missing.is_empty() {
                    Some(format!("missing expected tools: {}", missing.join(", ")))
                } else if mcp.allow_tool_removal {
                    None
                } else {
                    contract.and_then(|c| breach(c, offered))
                }
            }
        };
        if let (None, Some(why)) = (&verdict.failure, why) {
            verdict.failure = Some(format!("{}: {why}", target.name));
        }
    }
    if all_listed && let Some(c) = common {
        verdict.tools = Some(c.into_iter().cloned().collect());
    }
    verdict
}

/// Probes `target`, repeating a probe that could not list tools up to [`ATTEMPTS`] times.
async fn probe_target(prober: &dyn Prober, clock: &dyn Clock, mcp: &ValidMcp, target: &Target) -> Probed {
    let Some(url) = &target.url else {
        let why = "unreachable: ECS reports no private IPv4 address for the task".to_string();
        return Probed { tools: Err(why), stateful: false, latency: Duration::ZERO };
    };
    let timeout = Duration::from_secs(u64::from(mcp.timeout_secs));
    let mut attempt = 1;
    loop {
        let p = prober.probe(url, mcp.transport, timeout).await;
        if p.tools.is_ok() || attempt >= ATTEMPTS {
            return p;
        }
        tracing::debug!(target = %target.name, error = ?p.tools, attempt, "MCP probe failed; trying again");
        clock.sleep(RETRY_PAUSE).await;
        attempt += 1;
    }
}

/// Probes every target, [`CONCURRENCY`] at a time; results in target order.
pub async fn probe_all(
    prober: &dyn Prober,
    clock: &dyn Clock,
    mcp: &ValidMcp,
    targets: Vec<Target>,
) -> Vec<(Target, Probed)> {
    let probes = targets.into_iter().map(|t| async move {
        let p = probe_target(prober, clock, mcp, &t).await;
        (t, p)
    });
    futures::stream::iter(probes).buffered(CONCURRENCY).collect().await
}

/// The URL of the MCP endpoint at `base` (`http://host:port`).
fn at(base: &str, mcp: &ValidMcp) -> String {
    format!("{}{}", base.trim_end_matches('/'), mcp.path)
}

/// What `verify: endpoint` probes: the service's first endpoint (as `status` shows it), or why there is none.
async fn endpoint_target(ports: GatePorts<'_>, mcp: &ValidMcp, s: &ServiceState) -> Result<Target, String> {
    let dns = super::endpoints::load_balancer_dns(std::iter::once(s), ports.target_groups)
        .await
        .map_err(|e| format!("the load balancer's DNS name could not be read: {e}"))?;
    let first = super::endpoints::endpoints(s, &dns).into_iter().next();
    match first.as_ref().map(|e| (e, e.base_url())) {
        Some((_, Some(base))) => {
            let url = at(&base, mcp);
            Ok(Target { name: format!("endpoint {url}"), url: Some(url) })
        }
        Some((e, None)) => Err(format!("no load balancer routes to target group {} (no DNS name to probe)", e.shown())),
        None => Err("the service reports no load balancer or Service Connect endpoint".into()),
    }
}

/// What `verify: tasks` probes: every RUNNING task of `td`, at its private IPv4 address and the container's port
/// (or the port the backend reports for it: the sim's tasks of images pushed with `--serves`). A RUNNING task
/// without an address is a target that fails: it cannot be reached, so it cannot be verified.
async fn task_targets(ecs: &dyn Ecs, mcp: &ValidMcp, s: &ServiceState, td: &str) -> Result<Vec<Target>, BackendError> {
    let tasks = ecs.service_tasks(&s.cluster, &s.name).await?;
    let running = tasks.iter().filter(|t| t.task_definition == td && t.last_status == TaskStatus::Running);
    Ok(running
        .map(|t| {
            let id = t.arn.rsplit('/').next().unwrap_or(&t.arn);
            match &t.private_ipv4 {
                Some(ip) => {
                    let address = format!("{ip}:{}", t.port.unwrap_or(mcp.port));
                    Target { name: format!("{id} at {address}"), url: Some(at(&format!("http://{address}"), mcp)) }
                }
                None => Target { name: id.to_string(), url: None },
            }
        })
        .collect())
}

/// What to probe for a service running `td`, or why nothing can be: the RUNNING tasks of that revision, or its
/// endpoint.
async fn targets(
    ecs: &dyn Ecs,
    gate: Gate<'_>,
    s: &ServiceState,
    td: &str,
) -> Result<Result<Vec<Target>, String>, BackendError> {
    match gate.mcp.verify {
        Verify::None => Ok(Ok(vec![])),
        Verify::Endpoint => Ok(endpoint_target(gate.ports, gate.mcp, s).await.map(|t| vec![t])),
        Verify::Tasks => Ok(Ok(task_targets(ecs, gate.mcp, s, td).await?)),
    }
}

/// The contract a new revision of `s` is held to: the tools its last good revision recorded (none when there is
/// no last good revision other than `td`, or it recorded none).
async fn contract(ecs: &dyn Ecs, s: &ServiceState, td: &str) -> Result<Option<Contract>, BackendError> {
    let Some(lg) = state::ServiceTags::of(s).last_good.filter(|lg| *lg != td) else { return Ok(None) };
    let revision = match ecs.describe_task_definition(lg).await {
        Ok(r) => r,
        // Deregistered and forgotten: there is nothing left to hold the new revision to.
        Err(BackendError::NotFound { .. } | BackendError::Invalid { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(ToolRecord::parse(&revision.tags).map(|record| Contract { revision: short(lg).to_string(), record }))
}

/// Verifies the rollout of `td` on `s` (observed with ECS reporting it complete): probes every target and
/// judges them against the settings and the last good revision's tools. A backend call that fails is an error
/// (the settle is tried again), never a verdict.
pub async fn verify(
    ecs: &dyn Ecs,
    clock: &dyn Clock,
    gate: Gate<'_>,
    s: &ServiceState,
    td: &str,
) -> Result<Verdict, BackendError> {
    // Scaled to zero, nothing serves and nothing can break an agent: there is nothing to verify.
    if s.desired_count == 0 {
        return Ok(Verdict::default());
    }
    let targets = match targets(ecs, gate, s, td).await? {
        Ok(t) if t.is_empty() => {
            return Ok(Verdict {
                failure: Some(format!("{}: no RUNNING task to probe", short(td))),
                ..Verdict::default()
            });
        }
        Ok(t) => t,
        Err(why) => return Ok(Verdict { failure: Some(format!("{}: {why}", short(td))), ..Verdict::default() }),
    };
    let contract = contract(ecs, s, td).await?;
    let probed = probe_all(gate.ports.prober, clock, gate.mcp, targets).await;
    Ok(judge(gate.mcp, contract.as_ref(), &probed))
}

/// The warning for a stateful server that a load balancer spreads over several tasks, when `verdict` saw one.
pub fn session_warning(s: &ServiceState, verdict: &Verdict) -> Option<String> {
    (verdict.stateful && s.desired_count > 1 && !s.load_balancers.is_empty()).then(|| {
        format!(
            "{}: the MCP server is stateful (it issued a session id) and {} tasks share a load balancer: requests of \
             one session can reach another task unless sessions are shared (a session store) or the target group \
             is sticky",
            s.name, s.desired_count
        )
    })
}

/// Records what verifying `td` found: the tools on the revision (when they were listed: the contract the next
/// revision is held to, and `history`'s record), and the result on the service.
pub async fn record(
    ecs: &dyn Ecs,
    clock: &dyn Clock,
    s: &ServiceState,
    td: &str,
    verdict: &Verdict,
) -> Result<(), BackendError> {
    if let Some(tools) = &verdict.tools {
        let revision = ecs.describe_task_definition(td).await?;
        // The revision's outcome is tagged once it is settled: room is kept for it.
        let outcome = usize::from(!revision.tags.contains_key(state::TAG_OUTCOME));
        let others = revision.tags.keys().filter(|k| !state::is_tool_tag(k)).count() + outcome;
        let tags = state::tool_tags(tools, others);
        if !tags.is_empty() && ToolRecord::parse(&revision.tags) != ToolRecord::parse(&tags) {
            ecs.tag_resource(&revision.arn, &tags).await?;
            let stale = state::stale_tool_parts(&revision.tags, &tags);
            if !stale.is_empty() {
                ecs.untag_resource(&revision.arn, &stale).await?;
            }
        }
    }
    let verification = Verification {
        passed: verdict.failure.is_none(),
        at_ms: clock.now_ms() / 1000 * 1000,
        revision: td.to_string(),
        tools: verdict.tools.as_ref().map(Vec::len),
        reason: verdict.failure.clone().unwrap_or_default(),
    };
    // The same result for the same revision is not written again: the record says since when it holds, and a
    // fleet whose servers keep passing costs no write.
    let unchanged = Verification::parse(&s.tags)
        .is_some_and(|before| Verification { at_ms: before.at_ms, ..verification.clone() }.tags() == before.tags());
    if unchanged {
        return Ok(());
    }
    ecs.tag_resource(&s.arn, &verification.tags()).await
}

/// Makes room on revision `arn` for `adding` (labels added to the revision a service runs): a tool record that
/// would take it past ECS's 50 tags shrinks to its count (the contract then holds the next revision to that many
/// tools, not to their names). One DescribeTaskDefinition; a write only when room is needed.
pub async fn make_room(ecs: &dyn Ecs, arn: &str, adding: &crate::backend::Tags) -> Result<(), BackendError> {
    let revision = ecs.describe_task_definition(arn).await?;
    if let Some((header, parts)) = state::shrink_tool_record(&revision.tags, adding) {
        ecs.untag_resource(&revision.arn, &parts).await?;
        ecs.tag_resource(&revision.arn, &header).await?;
    }
    Ok(())
}

/// The MCP client ([`crate::probe::probe`]) as the gate's prober.
pub struct McpProber;

#[async_trait]
impl Prober for McpProber {
    async fn probe(&self, url: &str, transport: Transport, timeout: Duration) -> Probed {
        // Expected tools are the gate's to judge (with the contract), so the probe only lists.
        let opts = crate::probe::ProbeOptions { transport: transport.into(), expect_tools: vec![], timeout };
        let report = crate::probe::probe(url, &opts).await;
        let latency = Duration::from_millis(report.timings_ms.get("total").copied().unwrap_or_default());
        let tools = match report.error {
            Some(e) => Err(e.to_string()),
            None => Ok(report.tools),
        };
        Probed { tools, stateful: report.stateful, latency }
    }
}

#[cfg(test)]
mod tests;
