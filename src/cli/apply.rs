//! `mcpfleet apply`: plan, then converge; with `--wait`, watch the rollouts.

use std::collections::BTreeSet;
use std::time::Duration;

use mcpfleet::plan::{Plan, PlanReason};
use mcpfleet::reconcile::verify::{GatePorts, McpProber};
use mcpfleet::reconcile::{self, ApplyOptions, Outcome, ServiceOutcome, settle};
use mcpfleet::state::short as short_td;

use super::table::{self, Cell, Column, Layout, Tone};
use super::{Cli, EXIT_ERROR, EXIT_OK, Files, Output};

/// Exit code when a rollout failed.
pub const EXIT_ROLLOUT_FAILED: u8 = 3;
/// Exit code when `--timeout` ran out while rollouts were still in progress (they go on; nothing was decided).
pub const EXIT_STILL_ROLLING_OUT: u8 = 4;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub files: Files,
    /// Wait for every rollout to complete; a failed rollout exits 3.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: stop waiting after this long and exit 4; the rollouts go on, only their progressDeadline
    /// decides failure (default: the longest progressDeadline plus 2m, at least 10m).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Deploy specs whose rollout failed and was rolled back (normally held back until the spec changes).
    #[arg(long)]
    pub retry_failed: bool,
    /// Delete managed services that are no longer in the manifests.
    #[arg(long)]
    pub prune: bool,
    /// Services converged at the same time (at least 1).
    #[arg(long, default_value_t = 8, value_parser = super::parse_concurrency)]
    pub concurrency: usize,
    /// Restarts for rotated secrets in flight at once (at least 1); with --wait, the next ones start once earlier
    /// ones completed, without --wait they are left to the next apply (or the controller).
    #[arg(long, default_value_t = reconcile::rotation::DEFAULT_CONCURRENCY, value_parser = super::parse_concurrency)]
    pub rotation_concurrency: usize,
    /// Write even to services a controller owns while its lease is live (it converges them back to the
    /// published fleet at its next pass).
    #[arg(long)]
    pub force: bool,
    /// `json` prints {"services": [{name, cluster, outcome, taskDefinition, message}], "warnings": [...]}.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Print every value of the result table in full, however wide the terminal.
    #[arg(long)]
    pub wide: bool,
}

pub async fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let prepared = super::Prepared::new(cli, &args.files).await?;
    let (conn, desired) = (&prepared.conn, &prepared.desired);
    let ecs = conn.backend.ecs.as_ref();
    let clock = conn.backend.clock.as_ref();
    let timeout = args
        .timeout
        .unwrap_or_else(|| settle::default_timeout(desired.iter().map(|d| d.rollout.progress_deadline_secs)));
    let wait = args.wait.then_some(timeout);
    let reporter = super::progress::Reporter::new(0, args.output == Output::Json);
    let progress = |service: &str, what: &str| reporter.report(service, what);
    let mut observed = prepared.observe().await?;
    let targets = observed.services.values().chain(observed.unlisted.iter().filter(|_| args.prune));
    if !super::owner::may_write(cli, conn, targets, args.force, super::owner::Command::Apply).await? {
        return Ok(EXIT_ERROR);
    }
    // Rollouts of earlier applies that finished unwatched (or, with --wait, are still in flight) first.
    let prober = McpProber;
    let gate = GatePorts { prober: &prober, target_groups: conn.backend.target_groups.as_ref() };
    let ports = settle::Ports { ecs, clock, gate: Some(gate) };
    let found = settle::settle_found(ports, desired, &observed, wait, &progress).await?;
    if found.changed {
        observed = prepared.observe().await?;
    }
    let opts = reconcile::PlanOptions { retry_failed: args.retry_failed, changes: false };
    let plan_opts = reconcile::PlanOptions { retry_failed: args.retry_failed, changes: false };
    let mut plan = reconcile::plan_fleet_with(desired, &observed, ecs, opts).await?;
    let room = args.rotation_concurrency.saturating_sub(reconcile::rotation::in_flight(&observed));
    reconcile::rotation::spread(&mut plan, room);
    // The summary's total: the services this apply changes (rollouts found in flight add themselves as they report).
    reporter.expect(plan.services.iter().filter(|p| p.action != mcpfleet::plan::Action::Noop).count());
    let opts = ApplyOptions {
        prune: args.prune,
        concurrency: args.concurrency,
        stop: None,
        autoscaling: Some(conn.backend.autoscaling.clone()),
    };
    let mut outcomes = reconcile::apply(desired, &plan, &observed, ecs, &opts, &progress).await;
    let found_failed = settle::report_found(&found, &mut outcomes);

    let started = clock.now_ms();
    let mut waited = match wait {
        Some(timeout) => settle::settle_apply(ports, desired, &found, &mut outcomes, timeout, &progress).await?,
        None => settle::Waited::default(),
    };
    // Restarts beyond --rotation-concurrency: each wave once the one before completed; none after a failure.
    let mut deferred = deferred_restarts(&plan);
    while let Some(timeout) = wait
        && !deferred.is_empty()
    {
        if waited.failed || waited.timed_out {
            for o in outcomes.iter_mut().filter(|o| deferred.contains(&(o.cluster.clone(), o.name.clone()))) {
                o.message = "a secret it reads rotated; restart not started: an earlier restart failed or is still \
                             in flight (the next apply or the controller starts it)"
                    .into();
            }
            break;
        }
        let left = timeout.saturating_sub(Duration::from_millis(clock.now_ms().saturating_sub(started)));
        observed = prepared.observe().await?;
        let mut next = reconcile::plan_fleet_with(desired, &observed, ecs, plan_opts).await?;
        next.services.retain(|p| deferred.contains(&(p.cluster.clone(), p.name.clone())));
        reconcile::rotation::spread(&mut next, args.rotation_concurrency);
        deferred = deferred_restarts(&next);
        let mut wave = reconcile::apply(desired, &next, &observed, ecs, &opts, &progress).await;
        let more = settle::settle_apply(ports, desired, &Default::default(), &mut wave, left, &progress).await?;
        waited.failed |= more.failed;
        waited.timed_out |= more.timed_out;
        waited.warnings.extend(more.warnings);
        for w in wave {
            if let Some(o) = outcomes.iter_mut().find(|o| o.cluster == w.cluster && o.name == w.name) {
                *o = w;
            }
        }
    }
    if args.wait && args.prune {
        reconcile::delete_replaced(ecs, &plan, &mut outcomes, &opts, &progress).await?;
    }

    for o in &outcomes {
        if o.outcome != Outcome::Unchanged {
            let failed = matches!(o.outcome, Outcome::Failed | Outcome::RolledBack);
            reporter.finish(&o.name, &format!("done: {}", o.outcome.as_str()), failed);
        }
    }
    reporter.close();
    // What the MCP gate saw in the rollouts it passed: printed as resolution's warnings are, and listed with them.
    let gate_warnings: Vec<&str> = found.warnings.iter().chain(&waited.warnings).map(String::as_str).collect();
    for w in &gate_warnings {
        eprintln!("warning: {w}");
    }
    match args.output {
        Output::Json => {
            let warnings: Vec<&str> = prepared.warnings().into_iter().chain(gate_warnings).collect();
            let mut doc = serde_json::json!({ "services": outcomes, "warnings": warnings });
            doc["apiCalls"] = serde_json::to_value(conn.api_calls())?;
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Output::Text => print!("{}", render_outcomes(&outcomes, Layout::stdout(args.wide))),
    }
    let rollout_failed = |m: &str| m.starts_with("rollout failed") || m.starts_with(settle::RESTART_FAILED);
    if outcomes.iter().any(|o| o.outcome == Outcome::Failed && !rollout_failed(&o.message)) {
        return Ok(EXIT_ERROR);
    }
    Ok(if waited.failed || found_failed {
        EXIT_ROLLOUT_FAILED
    } else if waited.timed_out {
        EXIT_STILL_ROLLING_OUT
    } else {
        EXIT_OK
    })
}

/// The result table (one row per service) and the summary line under it.
pub fn render_outcomes(outcomes: &[ServiceOutcome], layout: Layout) -> String {
    const COLUMNS: [Column; 5] = [
        Column::left("SERVICE").kept(),
        Column::left("CLUSTER"),
        Column::left("OUTCOME").kept(),
        Column::left("TASK DEFINITION"),
        Column::left("MESSAGE"),
    ];
    let rows = outcomes
        .iter()
        .map(|o| {
            vec![
                o.name.as_str().into(),
                o.cluster.as_str().into(),
                Cell::toned(o.outcome.as_str(), outcome_tone(o.outcome)),
                o.task_definition.as_deref().map(short_td).unwrap_or("-").into(),
                o.message.as_str().into(),
            ]
        })
        .collect();
    let mut out = table::render(layout, &COLUMNS, rows);
    let count = |which: Outcome| outcomes.iter().filter(|o| o.outcome == which).count();
    out.push_str(&format!(
        "Apply: {} created, {} updated, {} deleted, {} unchanged, {} rolled back, {} failed.\n",
        count(Outcome::Created),
        count(Outcome::Updated),
        count(Outcome::Deleted),
        count(Outcome::Unchanged),
        count(Outcome::RolledBack),
        count(Outcome::Failed)
    ));
    out
}

/// Terraform's colours: created green, updated yellow, deleted and failed red.
pub fn outcome_tone(outcome: Outcome) -> Tone {
    match outcome {
        Outcome::Created => Tone::Good,
        Outcome::Updated => Tone::Change,
        Outcome::Deleted | Outcome::RolledBack | Outcome::Failed => Tone::Bad,
        Outcome::Unchanged => Tone::Quiet,
    }
}

/// The services a plan defers the restart of (see [`reconcile::rotation::spread`]).
fn deferred_restarts(plan: &Plan) -> BTreeSet<(String, String)> {
    let deferred = plan.services.iter().filter(|p| p.reason == Some(PlanReason::RestartDeferred));
    deferred.map(|p| (p.cluster.clone(), p.name.clone())).collect()
}
