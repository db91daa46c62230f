//! `mcpfleet apply`: plan, then converge; with `--wait`, watch the rollouts.

use std::collections::BTreeMap;
use std::time::Duration;

use mcpfleet::reconcile::watch::{self, RolloutResult, Target};
use mcpfleet::reconcile::{self, ApplyOptions, Outcome};
use mcpfleet::render::ecs::TAG_LAST_GOOD;

use super::{Cli, EXIT_ERROR, EXIT_OK, Files, Output};

/// Exit code when a rollout failed.
pub const EXIT_ROLLOUT_FAILED: u8 = 3;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub files: Files,
    /// Wait for every rollout to complete; a failed rollout exits 3.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up waiting after this long (e.g. 10m).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Delete managed services that are no longer in the manifests.
    #[arg(long)]
    pub prune: bool,
    /// Services converged at the same time.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// `json` prints {"services": [{name, cluster, outcome, taskDefinition, message}]}.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

pub async fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let fleet = super::load_fleet(&args.files)?;
    let conn = super::backend::connect(cli).await?;
    let ecs = conn.backend.ecs.as_ref();
    let desired = reconcile::desired_state(&fleet, &conn.backend).await?;
    let observed = reconcile::observe(&desired, ecs, true).await?;
    let plan = reconcile::plan_fleet(&desired, &observed, ecs).await?;
    let reporter = super::progress::Reporter::new();
    let progress = |service: &str, what: &str| reporter.report(service, what);
    let opts = ApplyOptions { prune: args.prune, concurrency: args.concurrency };
    let mut outcomes = reconcile::apply(&desired, &plan, &observed, ecs, &opts, &progress).await;

    let mut rollout_failed = false;
    if args.wait {
        let deadlines: BTreeMap<&str, u64> =
            desired.iter().map(|d| (d.ecs.name.as_str(), d.service.rollout.progress_deadline_secs)).collect();
        let now = conn.backend.clock.now_ms();
        let targets: Vec<Target> = outcomes
            .iter()
            .filter(|o| matches!(o.outcome, Outcome::Created | Outcome::Updated))
            .filter_map(|o| {
                Some(Target {
                    cluster: o.cluster.clone(),
                    name: o.name.clone(),
                    task_definition: o.task_definition.clone()?,
                    deadline_ms: now + 1000 * deadlines.get(o.name.as_str()).copied().unwrap_or(600),
                })
            })
            .collect();
        let results = watch::watch(ecs, conn.backend.clock.as_ref(), &targets, args.timeout, &progress).await;
        let observed_after = reconcile::describe_all(ecs, &group(&targets)).await?;
        for o in &mut outcomes {
            match results.get(&(o.cluster.clone(), o.name.clone())) {
                Some(RolloutResult::Completed) => {
                    if let (Some(td), Some(s)) =
                        (&o.task_definition, observed_after.iter().find(|s| s.name == o.name && s.cluster == o.cluster))
                    {
                        let tags = BTreeMap::from([(TAG_LAST_GOOD.to_string(), td.clone())]);
                        ecs.tag_resource(&s.arn, &tags).await?;
                    }
                    o.message = format!("{}; rollout completed", o.message);
                }
                Some(RolloutResult::Failed { reason }) => {
                    rollout_failed = true;
                    o.outcome = Outcome::Failed;
                    o.message = format!("rollout failed: {reason}");
                }
                None => {}
            }
        }
    }

    for o in &outcomes {
        if o.outcome != Outcome::Unchanged {
            progress(&o.name, &format!("done: {}", word(o.outcome)));
        }
    }
    match args.output {
        Output::Json => {
            let mut doc = serde_json::json!({ "services": outcomes });
            doc["apiCalls"] = serde_json::to_value(conn.api_calls())?;
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Output::Text => {
            for o in &outcomes {
                let td = o.task_definition.as_deref().map(short_td).unwrap_or("-");
                println!("{:<24} {:<12} {:<10} {td:<28} {}", o.name, o.cluster, word(o.outcome), o.message);
            }
        }
    }
    if outcomes.iter().any(|o| o.outcome == Outcome::Failed && !o.message.starts_with("rollout failed")) {
        return Ok(EXIT_ERROR);
    }
    Ok(if rollout_failed { EXIT_ROLLOUT_FAILED } else { EXIT_OK })
}

fn group(targets: &[Target]) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in targets {
        m.entry(t.cluster.clone()).or_default().push(t.name.clone());
    }
    m
}

fn word(o: Outcome) -> &'static str {
    match o {
        Outcome::Unchanged => "unchanged",
        Outcome::Created => "created",
        Outcome::Updated => "updated",
        Outcome::Deleted => "deleted",
        Outcome::RolledBack => "rolled_back",
        Outcome::Failed => "failed",
    }
}

/// `family:revision` of a task-definition ARN.
pub fn short_td(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}
