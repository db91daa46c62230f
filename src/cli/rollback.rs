//! `mcpfleet rollback`: put a service back on its last known-good (or a named) revision.

use std::time::Duration;

use mcpfleet::reconcile::rollout::{self, check_rollbackable};
use mcpfleet::reconcile::watch::RolloutResult;
use mcpfleet::render::ecs::TAG_SPEC_HASH;

use super::apply::{EXIT_ROLLOUT_FAILED, short_td};
use super::{Cli, EXIT_OK};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service (its ECS name).
    pub service: String,
    /// Its cluster.
    #[arg(long)]
    pub cluster: String,
    /// A revision of the service's own family: N, family:N or a task-definition ARN (default: the last good one).
    #[arg(long, value_name = "N")]
    pub to_revision: Option<String>,
    /// Wait for the rollback's rollout; exit 3 if it fails.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

pub async fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let conn = super::backend::connect(cli).await?;
    let ecs = conn.backend.ecs.as_ref();
    let described = ecs.describe_services(&args.cluster, std::slice::from_ref(&args.service)).await?;
    let state = described.services.into_iter().find(|s| s.name == args.service);
    let state = check_rollbackable(state, &args.service, &args.cluster)?;
    let target = rollout::rollback_target(ecs, &state, args.to_revision.as_deref()).await?;
    if target.arn == state.task_definition {
        println!("{} is already on {}", state.name, short_td(&target.arn));
        return Ok(EXIT_OK);
    }
    // The spec running now is marked failed, so apply and the controller leave the operator's choice alone
    // until the manifests change.
    let abandoned = state.tags.get(TAG_SPEC_HASH).cloned().unwrap_or_default();
    let reporter = super::progress::Reporter::new();
    let progress = |service: &str, what: &str| reporter.report(service, what);
    let timeout = if args.wait { args.timeout } else { Duration::ZERO };
    let result =
        rollout::rollback_to(ecs, conn.backend.clock.as_ref(), &state, &target.arn, &abandoned, timeout, &progress)
            .await?;
    rollout::mark_abandoned(ecs, &state.task_definition).await?;
    match (args.wait, result) {
        (false, _) => {
            println!(
                "{}: rolling back from {} to {}",
                state.name,
                short_td(&state.task_definition),
                short_td(&target.arn)
            );
            Ok(EXIT_OK)
        }
        (true, RolloutResult::Completed) => {
            println!(
                "{}: rolled back from {} to {}",
                state.name,
                short_td(&state.task_definition),
                short_td(&target.arn)
            );
            Ok(EXIT_OK)
        }
        (true, RolloutResult::Failed { reason }) => {
            println!("{}: the rollback to {} failed: {reason}", state.name, short_td(&target.arn));
            Ok(EXIT_ROLLOUT_FAILED)
        }
    }
}
