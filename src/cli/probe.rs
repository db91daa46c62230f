//! `mcpfleet probe`: does an MCP server answer as MCP clients need? One URL, or every RUNNING task of an ECS
//! service (at its private IPv4 address) and the service's endpoints where they can be reached from here.
//!
//! The probe itself is `mcpfleet::probe`; this file finds the targets, runs the probes (a few at a time) and
//! prints what they found. Exit 0 when every probed target passed, 1 otherwise.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use mcpfleet::backend::{Ecs, TaskInfo, TaskStatus};
use mcpfleet::probe::{ProbeFailure, ProbeOptions, ProbeReport, ProbeTransport, probe};
use mcpfleet::render::ecs::transport_of;
use mcpfleet::state::ImageTags;
use serde::Serialize;

use super::{Backend, Cli, EXIT_ERROR, EXIT_OK, Output};
use mcpfleet::reconcile::endpoints::{Endpoint, endpoints, load_balancer_dns};

/// Probes run at the same time for a service's targets.
const CONCURRENCY: usize = 8;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The MCP endpoint (http://127.0.0.1:8081/mcp); with --cluster, the name of an ECS service whose RUNNING
    /// tasks and endpoints are probed.
    #[arg(value_name = "URL|SERVICE")]
    pub target: String,
    /// Probe the service TARGET of this cluster.
    #[arg(long)]
    pub cluster: Option<String>,
    /// The MCP transport (default: streamable-http for a URL; for a service, the transport its task definition
    /// is tagged with).
    #[arg(long, value_enum)]
    pub transport: Option<TransportArg>,
    /// A tool the server must offer; repeatable. A missing one fails the probe.
    #[arg(long = "expect-tool", value_name = "NAME")]
    pub expect_tools: Vec<String>,
    /// Time allowed for each probe (connection, handshake and every tools/list page), e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// With --cluster: the path the tasks serve MCP on (default /mcp, or /sse for the sse transport).
    #[arg(long, value_name = "PATH", requires = "cluster", value_parser = parse_path)]
    pub path: Option<String>,
    /// `json` prints {"targets": [...]}.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// `--transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportArg {
    StreamableHttp,
    Sse,
}

impl From<TransportArg> for ProbeTransport {
    fn from(t: TransportArg) -> ProbeTransport {
        match t {
            TransportArg::StreamableHttp => ProbeTransport::StreamableHttp,
            TransportArg::Sse => ProbeTransport::Sse,
        }
    }
}

/// `--timeout`: more than nothing, at most ten minutes.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration (e.g. 10s, 1m): {e}"))?;
    if d.is_zero() || d > Duration::from_secs(600) {
        return Err(format!("must be more than 0s and at most 10m (got {s})"));
    }
    Ok(d)
}

/// `--path`: an absolute URL path.
fn parse_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/') || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{s}` must be a URL path starting with `/`, without spaces"));
    }
    Ok(s.to_string())
}

/// What a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TargetKind {
    /// The URL given on the command line.
    Url,
    /// A RUNNING task, at its private IPv4 address.
    Task,
    /// The DNS name of a load balancer routing to the service (HTTP, port 80).
    LoadBalancer,
    /// A Service Connect client alias.
    ServiceConnect,
}

/// One probed target: the probe's report and what was probed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    #[serde(flatten)]
    pub report: ProbeReport,
    pub kind: TargetKind,
    /// The transport it was probed with (`streamable-http`, `sse`).
    pub transport: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
}

/// An endpoint that was not probed, and why.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotProbed {
    pub url: String,
    pub kind: TargetKind,
    pub reason: String,
}

pub async fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let (targets, not_probed) = match &args.cluster {
        None => (vec![probe_url(args).await?], Vec::new()),
        Some(cluster) => probe_service(cli, args, cluster).await?,
    };
    let passed = targets.iter().filter(|t| t.report.ok).count();
    match args.output {
        Output::Json => {
            let mut doc = serde_json::json!({ "targets": targets });
            if let Some(cluster) = &args.cluster {
                doc["service"] = serde_json::json!(args.target);
                doc["cluster"] = serde_json::json!(cluster);
                doc["notProbed"] = serde_json::json!(not_probed);
            }
            println!("{}", serde_json::to_string_pretty(&doc)?);
            for t in targets.iter().filter(|t| !t.report.ok) {
                if let Some(e) = &t.report.error {
                    eprintln!("error: {}: {e}", t.report.url);
                }
            }
        }
        Output::Text => {
            for (i, t) in targets.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                print_target(t, args.timeout);
            }
            for n in &not_probed {
                println!("\nnot probed: {} ({}): {}", n.url, kind_name(n.kind), n.reason);
            }
            if args.cluster.is_some() {
                println!("\n{passed} of {} targets passed", targets.len());
            }
        }
    }
    if targets.is_empty() {
        eprintln!("error: service `{}` has no RUNNING task and no endpoint that could be probed", args.target);
        return Ok(EXIT_ERROR);
    }
    Ok(if passed == targets.len() { EXIT_OK } else { EXIT_ERROR })
}

fn options(args: &Args, transport: ProbeTransport) -> ProbeOptions {
    ProbeOptions { transport, expect_tools: args.expect_tools.clone(), timeout: args.timeout }
}

async fn probe_url(args: &Args) -> anyhow::Result<Target> {
    if !args.target.contains("://") {
        anyhow::bail!(
            "`{}` is not a URL (e.g. http://127.0.0.1:8081/mcp); to probe the tasks of an ECS service, add --cluster",
            args.target
        );
    }
    let transport = args.transport.map_or(ProbeTransport::StreamableHttp, ProbeTransport::from);
    let report = probe(&args.target, &options(args, transport)).await;
    Ok(Target { report, kind: TargetKind::Url, transport: transport.as_str(), task: None, task_definition: None })
}

/// What a task definition says about reaching its tasks: the first container's first port, and the transport.
struct Serving {
    port: Option<u16>,
    transport: ProbeTransport,
}

async fn probe_service(cli: &Cli, args: &Args, cluster: &str) -> anyhow::Result<(Vec<Target>, Vec<NotProbed>)> {
    let conn = super::backend::connect(cli).await?;
    let ecs = conn.backend.ecs.as_ref();
    let described = ecs.describe_services(cluster, std::slice::from_ref(&args.target)).await?;
    let Some(service) = described.services.into_iter().find(|s| s.is_active()) else {
        anyhow::bail!("service `{}` is not running in cluster `{cluster}`", args.target);
    };
    let tasks: Vec<TaskInfo> = ecs
        .service_tasks(cluster, &service.name)
        .await?
        .into_iter()
        .filter(|t| t.last_status == TaskStatus::Running)
        .collect();
    let mut serving: BTreeMap<String, Serving> = BTreeMap::new();
    for td in tasks.iter().map(|t| &t.task_definition).chain([&service.task_definition]) {
        if !serving.contains_key(td) {
            serving.insert(td.clone(), serving_of(ecs, td, args).await?);
        }
    }
    let service_transport =
        serving.get(&service.task_definition).map_or(ProbeTransport::StreamableHttp, |s| s.transport);
    let path_of = |t: ProbeTransport| args.path.clone().unwrap_or_else(|| t.default_path().to_string());

    let mut jobs: Vec<(TargetKind, Option<&TaskInfo>, String, ProbeTransport)> = Vec::new();
    let mut unaddressed = Vec::new();
    for task in &tasks {
        let s = &serving[&task.task_definition];
        match (&task.private_ipv4, task.port.or(s.port)) {
            (Some(ip), Some(port)) => {
                jobs.push((
                    TargetKind::Task,
                    Some(task),
                    format!("http://{ip}:{port}{}", path_of(s.transport)),
                    s.transport,
                ));
            }
            (ip, port) => unaddressed.push(unaddressed_task(cli, task, s.transport, ip.is_some(), port.is_some())),
        }
    }
    let mut not_probed = Vec::new();
    let dns = load_balancer_dns(std::iter::once(&service), conn.backend.target_groups.as_ref()).await?;
    for endpoint in endpoints(&service, &dns) {
        let found = if cli.backend == Backend::Sim {
            Err(sim_endpoint(&endpoint, &path_of(service_transport)))
        } else {
            endpoint_target(&endpoint, &path_of(service_transport)).await
        };
        match found {
            Ok((kind, url)) => jobs.push((kind, None, url, service_transport)),
            Err(n) => not_probed.push(n),
        }
    }
    let mut targets: Vec<Target> = futures::stream::iter(jobs)
        .map(|(kind, task, url, transport)| async move {
            let report = probe(&url, &options(args, transport)).await;
            Target {
                report,
                kind,
                transport: transport.as_str(),
                task: task.map(|t| t.arn.clone()),
                task_definition: task.map(|t| t.task_definition.clone()),
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    targets.extend(unaddressed);
    if tasks.is_empty() {
        not_probed.insert(
            0,
            NotProbed {
                url: service.name.clone(),
                kind: TargetKind::Task,
                reason: format!(
                    "no RUNNING task (desired {}, running {}, pending {})",
                    service.desired_count, service.running_count, service.pending_count
                ),
            },
        );
    }
    Ok((targets, not_probed))
}

/// The port and transport of a task definition's tasks; `--transport` wins over the tag.
async fn serving_of(ecs: &dyn Ecs, td: &str, args: &Args) -> anyhow::Result<Serving> {
    let found = ecs.describe_task_definition(td).await?;
    let port = found.spec.container_definitions.first().and_then(|c| c.port_mappings.first()).map(|p| p.container_port);
    let tagged = match transport_of(ImageTags::parse(&found.tags).transport) {
        "sse" => ProbeTransport::Sse,
        _ => ProbeTransport::StreamableHttp,
    };
    Ok(Serving { port, transport: args.transport.map_or(tagged, ProbeTransport::from) })
}

/// A RUNNING task without an address or port: a failed target, since the task cannot be reached.
fn unaddressed_task(cli: &Cli, task: &TaskInfo, transport: ProbeTransport, has_ip: bool, has_port: bool) -> Target {
    let reason = if !has_ip {
        let hint = if cli.backend == Backend::Sim {
            " (the sim gives an address only to tasks of images pushed with `sim push --serves URL`)"
        } else {
            ""
        };
        format!("ECS reports no private IPv4 address for the task{hint}")
    } else {
        debug_assert!(!has_port);
        "its task definition maps no container port".to_string()
    };
    Target {
        report: ProbeReport::failed(&task.arn, ProbeFailure::Unreachable { reason }),
        kind: TargetKind::Task,
        transport: transport.as_str(),
        task: Some(task.arn.clone()),
        task_definition: Some(task.task_definition.clone()),
    }
}

/// The URL to probe an endpoint at, or why it is not probed. A load balancer is probed at its DNS name over HTTP
/// (port 80); a Service Connect alias only where its name resolves (inside the namespace's tasks, usually).
async fn endpoint_target(endpoint: &Endpoint, path: &str) -> Result<(TargetKind, String), NotProbed> {
    match endpoint {
        Endpoint::LoadBalancer { dns_name: Some(dns), .. } => {
            Ok((TargetKind::LoadBalancer, format!("http://{dns}{path}")))
        }
        Endpoint::LoadBalancer { target_group_arn, dns_name: None } => Err(NotProbed {
            url: target_group_arn.clone(),
            kind: TargetKind::LoadBalancer,
            reason: "no load balancer routes to this target group".into(),
        }),
        Endpoint::ServiceConnect { url } => {
            let host = url.trim_start_matches("http://").to_string();
            let resolves = tokio::net::lookup_host(host.as_str()).await.is_ok_and(|mut a| a.next().is_some());
            match resolves {
                true => Ok((TargetKind::ServiceConnect, format!("{url}{path}"))),
                false => Err(NotProbed {
                    url: format!("{url}{path}"),
                    kind: TargetKind::ServiceConnect,
                    reason: "the Service Connect name does not resolve here (it does inside the namespace's tasks)"
                        .into(),
                }),
            }
        }
    }
}

/// The sim's load balancers and Service Connect names exist only in its state file: nothing answers there, so
/// they are listed, not probed (its tasks are reached at the address of the URL their image `--serves`).
fn sim_endpoint(endpoint: &Endpoint, path: &str) -> NotProbed {
    let (url, kind) = match endpoint {
        Endpoint::LoadBalancer { dns_name: Some(dns), .. } => (format!("http://{dns}{path}"), TargetKind::LoadBalancer),
        Endpoint::LoadBalancer { target_group_arn, dns_name: None } => {
            (target_group_arn.clone(), TargetKind::LoadBalancer)
        }
        Endpoint::ServiceConnect { url } => (format!("{url}{path}"), TargetKind::ServiceConnect),
    };
    NotProbed {
        url,
        kind,
        reason: "the sim's endpoints are not reachable: only its tasks serve (sim push --serves)".into(),
    }
}

fn kind_name(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Url => "url",
        TargetKind::Task => "task",
        TargetKind::LoadBalancer => "load balancer",
        TargetKind::ServiceConnect => "Service Connect",
    }
}

fn print_target(t: &Target, timeout: Duration) {
    let r = &t.report;
    let verdict = match &r.error {
        None => "ok".to_string(),
        Some(e @ ProbeFailure::Timeout { .. }) => {
            format!("FAILED: {e} (--timeout {})", humantime::format_duration(timeout))
        }
        Some(e) => format!("FAILED: {e}"),
    };
    match (&t.task, t.kind) {
        (Some(task), _) => {
            let id = task.rsplit('/').next().unwrap_or(task);
            let td = t.task_definition.as_deref().map(|td| td.rsplit('/').next().unwrap_or(td)).unwrap_or("-");
            println!("task {id} ({td})");
            if r.url != *task {
                println!("  url        {}", r.url);
            }
        }
        (None, TargetKind::Url) => println!("{}", r.url),
        (None, kind) => println!("{} {}", kind_name(kind), r.url),
    }
    println!("  result     {verdict}");
    if let Some(v) = &r.protocol_version {
        println!("  protocol   {v}");
    }
    if let Some(s) = &r.server {
        println!("  server     {} {}", s.name, s.version);
    }
    if r.protocol_version.is_some() {
        let stateful = match (r.stateful, t.transport) {
            (true, "sse") => "yes (the sse transport ties a session to one event stream)",
            (true, _) => "yes (the server issued a session id)",
            (false, _) => "no",
        };
        println!("  stateful   {stateful}");
    }
    if r.error.is_none() || !r.tools.is_empty() {
        let line = format!("  {:<10} {}", format!("tools ({})", r.tools.len()), r.tools.join(", "));
        println!("{}", line.trim_end());
    }
    let mut timings: Vec<String> =
        r.timings_ms.iter().filter(|(k, _)| *k != "total").map(|(k, ms)| format!("{k} {ms}ms")).collect();
    if let Some(total) = r.timings_ms.get("total") {
        timings.push(format!("total {total}ms"));
    }
    if !timings.is_empty() {
        println!("  timings    {}", timings.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn endpoints_are_probed_where_they_can_be_reached() {
        let lb = Endpoint::LoadBalancer { target_group_arn: "arn:tg".into(), dns_name: Some("lb.example".into()) };
        assert_eq!(
            endpoint_target(&lb, "/mcp").await.map_err(|n| n.reason),
            Ok((TargetKind::LoadBalancer, "http://lb.example/mcp".to_string()))
        );
        let orphan = Endpoint::LoadBalancer { target_group_arn: "arn:tg".into(), dns_name: None };
        let n = endpoint_target(&orphan, "/mcp").await.unwrap_err();
        assert_eq!((n.url.as_str(), n.kind), ("arn:tg", TargetKind::LoadBalancer));
        // A Service Connect name that resolves here (as it does inside the namespace's tasks) is probed.
        let here = Endpoint::ServiceConnect { url: "http://localhost:8080".into() };
        assert_eq!(
            endpoint_target(&here, "/sse").await.map_err(|n| n.reason),
            Ok((TargetKind::ServiceConnect, "http://localhost:8080/sse".to_string()))
        );
        // The sim's endpoints are listed, never looked up.
        let n = sim_endpoint(&lb, "/mcp");
        assert_eq!((n.url.as_str(), n.kind), ("http://lb.example/mcp", TargetKind::LoadBalancer));
        assert!(n.reason.contains("sim push --serves"));
    }
}
