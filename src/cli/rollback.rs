//! `mcpfleet rollback`: put a service back on its last known-good (or a named) revision.

use std::time::Duration;

use mcpfleet::reconcile::rollout;
use mcpfleet::reconcile::settle::{self, Settled};
use mcpfleet::state::{ServiceTags, short as short_td};

use super::apply::{EXIT_ROLLOUT_FAILED, EXIT_STILL_ROLLING_OUT};
use super::{Cli, EXIT_ERROR, EXIT_OK};

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
    /// With --wait: stop waiting after this long and exit 4 (the rollback goes on; default 12m, past the default
    /// progressDeadline of 10m that decides whether it failed).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Roll back even a service a controller owns while its lease is live (the rolled-back spec is held, so
    /// the controller keeps the rollback until the published spec changes).
    #[arg(long)]
    pub force: bool,
}

pub async fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let conn = super::backend::connect(cli).await?;
    let ecs = conn.backend.ecs.as_ref();
    let state = rollout::managed_service(ecs, &args.service, &args.cluster).await?;
    if !super::owner::may_write(cli, &conn, [&state], args.force, super::owner::Command::Rollback).await? {
        return Ok(EXIT_ERROR);
    }
    let target = rollout::rollback_target(ecs, &state, args.to_revision.as_deref()).await?;
    if target.arn == state.task_definition {
        println!("{} is already on {}", state.name, short_td(&target.arn));
        return Ok(EXIT_OK);
    }
    // The spec running now is marked failed, so apply and the controller leave the operator's choice alone
    // until the manifests change.
    let abandoned = ServiceTags::of(&state).spec_hash.unwrap_or_default().to_string();
    let reporter = super::progress::Reporter::new(1, false);
    let progress = |service: &str, what: &str| reporter.report(service, what);
    let policy = settle::Policy::operator();
    let timeout = args.timeout.unwrap_or_else(|| settle::default_timeout([policy.progress_deadline_secs]));
    let wait = args.wait.then_some(timeout);
    let clock = conn.backend.clock.as_ref();
    let settled = settle::rollback_to(ecs, clock, &state, &target.arn, &abandoned, wait, &progress).await?;
    reporter.close();
    let (from, to) = (short_td(&state.task_definition), short_td(&target.arn));
    match settled {
        None => {
            println!("{}: rolling back from {from} to {to}", state.name);
            Ok(EXIT_OK)
        }
        // A rollback's target carries no restart: settling it never says restarted.
        Some(Settled::Completed { .. } | Settled::Restarted) => {
            println!("{}: rolled back from {from} to {to}", state.name);
            Ok(EXIT_OK)
        }
        Some(Settled::Waiting) => {
            println!("{}: rolling back from {from} to {to}; still in progress when --timeout ran out", state.name);
            Ok(EXIT_STILL_ROLLING_OUT)
        }
        Some(
            Settled::RollbackFailed { reason }
            | Settled::Held { reason, .. }
            | Settled::RolledBack { reason, .. }
            | Settled::RestartFailed { reason },
        ) => {
            println!("{}: the rollback to {to} failed: {reason}", state.name);
            Ok(EXIT_ROLLOUT_FAILED)
        }
    }
}
