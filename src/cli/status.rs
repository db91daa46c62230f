//! `mcpfleet status`: per service, the revision, image, architecture, counts (with the autoscaling bounds of a
//! service that autoscales), rollout state, last good one, its last MCP verification (result, time, tools) and
//! where agents reach it (its load balancers' DNS names, then its Service Connect aliases), and with the manifests
//! the secrets whose version changed since its tasks started.

use std::collections::BTreeMap;
use std::io::Write;

use super::backend::ApiCalls;
use mcpfleet::backend::{Autoscaling, BackendError, Ecs, SCALABLE_TARGETS_BATCH, ServiceState};
use mcpfleet::reconcile;
use mcpfleet::reconcile::endpoints::{Endpoint, endpoints, load_balancer_dns};
use mcpfleet::reconcile::rollout::RevisionImage;
use mcpfleet::render::autoscaling::{owned_metric, resource_id, target_json};
use mcpfleet::state::secrets::{self, Rotated};
use mcpfleet::state::{self, ServiceTags, TaskDefArn, Verification, is_managed, short as short_td};
use serde::Serialize;

use super::table::{self, Cell, Column, Layout, Tone};
use super::{Cli, EXIT_ERROR, EXIT_OK, Output};

#[derive(Debug, clap::Args)]
// One of the two, named as such in the usage line (`<--file <PATH>...|--cluster <CLUSTER>>`).
#[command(group(clap::ArgGroup::new("services").required(true).args(["paths", "source", "cluster"])))]
pub struct Args {
    /// The services of these manifests.
    #[arg(short = 'f', long = "file", value_name = "PATH", num_args = 1..)]
    pub paths: Vec<std::path::PathBuf>,
    /// The services of the fleet `mcpfleet publish` wrote.
    #[arg(long, value_name = "s3://BUCKET/KEY", value_parser = mcpfleet::backend::store::ObjectUrl::parse)]
    pub source: Option<mcpfleet::backend::store::ObjectUrl>,
    /// Every service mcpfleet manages in this cluster.
    #[arg(long)]
    pub cluster: Option<String>,
    /// `json` prints {"services": [...]}.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Print every value in full (whole digests, every endpoint), however wide the terminal.
    #[arg(long)]
    pub wide: bool,
}

/// `status -o json`'s document.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusDoc<'a> {
    services: &'a [Row],
    api_calls: ApiCalls,
}

/// One row of the status table.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub name: String,
    pub cluster: String,
    pub task_definition: Option<String>,
    pub revision: Option<u32>,
    pub image: Option<String>,
    pub digest: Option<String>,
    pub architecture: Option<String>,
    pub desired: u32,
    pub running: u32,
    pub rollout_state: String,
    pub last_good: Option<String>,
    /// The service runs another revision than the one mcpfleet applied (changed outside mcpfleet); image, digest
    /// and architecture then describe the revision it runs.
    pub drift: bool,
    /// The spec the service was applied with failed its rollout and is held back until the manifest changes
    /// (what runs then differs from it without being drift).
    pub held: bool,
    /// The revision mcpfleet applied, when it is not the one running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_task_definition: Option<String>,
    /// Where agents reach the service, as ECS reports it.
    pub endpoints: Vec<Endpoint>,
    /// The tools the service offered at its last MCP verification that listed them.
    pub tools: Option<usize>,
    /// The last MCP verification (rollout gate or the controller's re-probe); None when it was never verified.
    pub verification: Option<VerificationRow>,
    /// With `-f` and `-o json`: the secrets the service reads whose version changed since its tasks started (as
    /// its `mcpfleet.io/secret-versions` tag records them); None without the manifests, which name the references.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_secrets: Option<Vec<Rotated>>,
    /// The bounds Application Auto Scaling keeps `desired` in, and (with `-o json`) the targets of mcpfleet's
    /// policies, by the manifest's field; only for a service whose autoscaling mcpfleet applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Scaling>,
}

/// A service's autoscaling as Application Auto Scaling has it.
#[derive(Debug, Serialize)]
pub struct Scaling {
    pub min: u32,
    pub max: u32,
    pub targets: BTreeMap<&'static str, serde_json::Value>,
}

impl Row {
    /// The DESIRED column: the count, and `(min–max)` when it autoscales.
    fn desired_shown(&self) -> String {
        match &self.autoscaling {
            Some(a) => format!("{} ({}–{})", self.desired, a.min, a.max),
            None => self.desired.to_string(),
        }
    }
}

/// The autoscaling of the services whose autoscaling mcpfleet applied (the `mcpfleet.io/autoscaling` tag), by
/// resource id: one DescribeScalableTargets per 50 of them and, with `targets`, one DescribeScalingPolicies each.
async fn scaling_of<'a>(
    services: impl Iterator<Item = &'a ServiceState>,
    autoscaling: &dyn Autoscaling,
    targets: bool,
) -> Result<BTreeMap<String, Scaling>, BackendError> {
    let scaled: Vec<(&str, String)> = services
        .filter(|s| ServiceTags::of(s).autoscaling.is_some())
        .map(|s| (s.name.as_str(), resource_id(&s.cluster, &s.name)))
        .collect();
    let ids: Vec<String> = scaled.iter().map(|(_, id)| id.clone()).collect();
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(SCALABLE_TARGETS_BATCH) {
        for t in autoscaling.scalable_targets(chunk).await? {
            out.insert(t.resource_id, Scaling { min: t.min_capacity, max: t.max_capacity, targets: BTreeMap::new() });
        }
    }
    for (name, id) in scaled.iter().filter(|_| targets) {
        let Some(scaling) = out.get_mut(id) else { continue };
        for p in autoscaling.scaling_policies(id).await? {
            if let (Some(metric), Some(tt)) = (owned_metric(name, &p.policy_name), &p.target_tracking) {
                scaling.targets.insert(metric.field(), target_json(tt.target_value));
            }
        }
    }
    Ok(out)
}

/// The last MCP verification of a service.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationRow {
    /// `passed` or `failed`.
    pub result: &'static str,
    /// When (RFC 3339): the first time this result was seen for this revision.
    pub at: String,
    /// The revision verified (`family:revision`).
    pub revision: String,
    /// Why it failed.
    pub reason: Option<String>,
}

impl VerificationRow {
    fn of(v: Verification) -> VerificationRow {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(v.at_ms);
        VerificationRow {
            result: if v.passed { "passed" } else { "failed" },
            at: humantime::format_rfc3339_seconds(at).to_string(),
            revision: v.revision,
            reason: Some(v.reason).filter(|r| !r.is_empty()),
        }
    }
}

pub async fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut fleet = None;
    if !args.paths.is_empty() || args.source.is_some() {
        let source = super::Source { paths: args.paths.clone(), source: args.source.clone() };
        let loaded = source.load(cli).await?;
        for s in &loaded.services {
            wanted.entry(s.cluster.clone()).or_default().push(s.name.clone());
        }
        fleet = Some(loaded);
    }
    let conn = super::backend::connect(cli).await?;
    // Only `-o json` shows the secrets that rotated since the tasks started: one secret call per 10 secrets the
    // manifests name. One that cannot be made (a role without secretsmanager:ListSecrets) leaves them unknown.
    let mut versions = match fleet.as_ref().filter(|_| args.output == Output::Json) {
        Some(f) => match reconcile::resolve::secret_versions(f, conn.backend.secrets.as_ref()).await {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("warning: the secrets' versions could not be read, staleSecrets is null: {e}");
                None
            }
        },
        None => None,
    };
    let ecs = conn.backend.ecs.as_ref();
    if let Some(cluster) = &args.cluster {
        wanted.insert(cluster.clone(), ecs.list_services(cluster).await?);
    }
    let found = reconcile::describe_all(ecs, &wanted).await?;
    let by_key: BTreeMap<(&str, &str), &ServiceState> =
        found.iter().filter(|s| s.is_active()).map(|s| ((s.cluster.as_str(), s.name.as_str()), s)).collect();
    // With --cluster, services mcpfleet does not manage are not shown.
    let shown = |s: &ServiceState| args.cluster.is_none() || is_managed(s);
    let dns =
        load_balancer_dns(by_key.values().copied().filter(|s| shown(s)), conn.backend.target_groups.as_ref()).await?;
    let json = args.output == Output::Json;
    let mut scaling =
        scaling_of(by_key.values().copied().filter(|s| shown(s)), conn.backend.autoscaling.as_ref(), json).await?;
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for (cluster, names) in &wanted {
        for name in names {
            match by_key.get(&(cluster.as_str(), name.as_str())) {
                Some(s) if !shown(s) => {}
                Some(s) => {
                    let mut r = row(s, ecs, &dns).await?;
                    r.autoscaling = scaling.remove(&resource_id(&s.cluster, &s.name));
                    r.stale_secrets = versions.as_mut().map(|v| {
                        let used = v.remove(&(cluster.clone(), name.clone())).unwrap_or_default();
                        secrets::rotated_on(&used, s)
                    });
                    rows.push(r);
                }
                None => {
                    missing.push(format!("service `{name}` is not running in cluster `{cluster}`"));
                    rows.push(Row {
                        name: name.clone(),
                        cluster: cluster.clone(),
                        task_definition: None,
                        revision: None,
                        image: None,
                        digest: None,
                        architecture: None,
                        desired: 0,
                        running: 0,
                        rollout_state: "MISSING".into(),
                        last_good: None,
                        drift: false,
                        held: false,
                        applied_task_definition: None,
                        endpoints: vec![],
                        tools: None,
                        verification: None,
                        stale_secrets: None,
                        autoscaling: None,
                    });
                }
            }
        }
    }
    match args.output {
        Output::Json => {
            // Written out as it is serialized: a `serde_json::Value` of the rows and the text made from it were two
            // more copies of them in memory (at 10,000 services, tens of megabytes).
            let doc = StatusDoc { services: &rows, api_calls: conn.api_calls() };
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
            out.flush()?;
        }
        Output::Text => {
            print!("{}", render_rows(&rows, args.wide, Layout::stdout(args.wide)));
            for (r, v) in rows.iter().filter_map(|r| Some((r, r.verification.as_ref()?))) {
                if let Some(reason) = &v.reason {
                    println!("verification: {} failed on {} at {}: {reason}", r.name, v.revision, v.at);
                }
            }
            for r in rows.iter().filter(|r| r.held) {
                println!(
                    "held: the rollout of {} to {} failed; it is not deployed again until the spec changes (plan shows it)",
                    r.name,
                    r.applied_task_definition.as_deref().or(r.task_definition.as_deref()).map(short_td).unwrap_or("-"),
                );
            }
            for r in rows.iter().filter(|r| r.drift) {
                println!(
                    "drift: {} runs {}, not {} that mcpfleet applied (changed outside mcpfleet; apply corrects it)",
                    r.name,
                    r.task_definition.as_deref().map(short_td).unwrap_or("-"),
                    r.applied_task_definition.as_deref().map(short_td).unwrap_or("-")
                );
            }
        }
    }
    if args.cluster.is_some() || missing.is_empty() {
        return Ok(EXIT_OK);
    }
    for m in &missing {
        eprintln!("error: {m} (no active ECS service by that name; `apply` creates it)");
    }
    Ok(EXIT_ERROR)
}

/// A digest as tables show it: `sha256:` and the first 12 hex digits, unless `wide`.
pub fn digest_shown(digest: Option<&str>, wide: bool) -> String {
    match digest {
        Some(d) if wide => d.to_string(),
        Some(d) => d.chars().take(19).collect(),
        None => "-".into(),
    }
}

/// The status table; with `wide`, whole digests and every endpoint of a service (comma-separated).
fn render_rows(rows: &[Row], wide: bool, layout: Layout) -> String {
    const COLUMNS: [Column; 13] = [
        Column::left("NAME").kept(),
        Column::left("CLUSTER"),
        Column::left("TASK DEFINITION"),
        Column::left("IMAGE"),
        Column::left("DIGEST"),
        Column::left("ARCH"),
        Column::right("DESIRED").kept(),
        Column::right("RUNNING").kept(),
        Column::left("ROLLOUT"),
        Column::left("LAST GOOD"),
        Column::right("TOOLS").kept(),
        Column::left("VERIFIED"),
        Column::left("ENDPOINT"),
    ];
    let cells = rows.iter().map(|r| {
        let dash = |v: Option<&str>| v.unwrap_or("-").to_string();
        let verified = r.verification.as_ref().map(|v| {
            let tone = if v.result == "passed" { Tone::Good } else { Tone::Bad };
            Cell::toned(format!("{} {}", v.result, v.at), tone)
        });
        let rollout = match r.rollout_state.as_str() {
            "COMPLETED" => Tone::Good,
            "IN_PROGRESS" => Tone::Change,
            "FAILED" | "MISSING" => Tone::Bad,
            _ => Tone::Plain,
        };
        let shown: Vec<&str> = r.endpoints.iter().map(Endpoint::shown).collect();
        let endpoint = match (wide, shown.first()) {
            (_, None) => "-".to_string(),
            (true, Some(_)) => shown.join(", "),
            (false, Some(first)) => first.to_string(),
        };
        vec![
            r.name.as_str().into(),
            r.cluster.as_str().into(),
            dash(r.task_definition.as_deref().map(short_td)).into(),
            dash(r.image.as_deref()).into(),
            digest_shown(r.digest.as_deref(), wide).into(),
            dash(r.architecture.as_deref()).into(),
            r.desired_shown().into(),
            r.running.to_string().into(),
            Cell::toned(r.rollout_state.as_str(), rollout),
            dash(r.last_good.as_deref().map(short_td)).into(),
            r.tools.map_or_else(|| "-".to_string(), |n| n.to_string()).into(),
            verified.unwrap_or_else(|| "-".into()),
            endpoint.into(),
        ]
    });
    table::render(layout, &COLUMNS, cells.collect())
}

/// A service's row. Image, digest and architecture come from its tags, which describe the revision mcpfleet
/// applied; when the service runs another one (an out-of-band change), that revision alone is described and
/// its values are shown instead, so a converged fleet costs no DescribeTaskDefinition.
async fn row(s: &ServiceState, ecs: &dyn Ecs, dns: &BTreeMap<String, String>) -> Result<Row, BackendError> {
    let tags = ServiceTags::of(s);
    // status does not resolve the manifests, so the applied spec's networking is not at hand: a spec that changed
    // only the networking shows held once its failure is recorded (plan, which has the spec, says so at once).
    let held = state::applied_spec_held(s, None);
    let owned = |v: Option<&str>| v.map(String::from);
    let applied = tags.applied.filter(|td| *td != s.task_definition).map(String::from);
    let (image, digest, architecture) = match &applied {
        None => (owned(tags.image.tag), owned(tags.image.digest), owned(tags.image.architecture)),
        Some(_) => match ecs.describe_task_definition(&s.task_definition).await {
            Ok(td) => {
                let RevisionImage { tag, digest, architecture } = RevisionImage::of(&td);
                (tag, digest, architecture)
            }
            Err(BackendError::NotFound { .. } | BackendError::Invalid { .. }) => (None, None, None),
            Err(e) => return Err(e),
        },
    };
    Ok(Row {
        name: s.name.clone(),
        cluster: s.cluster.clone(),
        task_definition: Some(s.task_definition.clone()),
        revision: TaskDefArn(&s.task_definition).revision(),
        image,
        digest,
        architecture,
        desired: s.desired_count,
        running: s.running_count,
        rollout_state: s
            .primary()
            .map(|p| {
                serde_json::to_value(p.rollout_state)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            })
            .unwrap_or_else(|| "NONE".into()),
        last_good: owned(tags.last_good),
        drift: applied.is_some() && !held,
        held,
        applied_task_definition: applied,
        endpoints: endpoints(s, dns),
        tools: Verification::parse(&s.tags).and_then(|v| v.tools),
        verification: Verification::parse(&s.tags).map(VerificationRow::of),
        stale_secrets: None,
        autoscaling: None,
    })
}
