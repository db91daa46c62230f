//! `spec.rollout`: deployment bounds, the progress deadline and history, merged field by field with
//! FleetDefaults, and the one relation between them that would leave a deployment unable to start.

use super::{Defaults, DocCtx, Seg, p, seconds, with};
use crate::spec::code::Code;
use crate::spec::types::Rollout;
use crate::spec::valid::ValidRollout;

/// Checks the rollout fields that are set; returns the parsed progress deadline.
pub(super) fn check_rollout(ctx: &mut DocCtx, path: &[Seg], r: &Rollout) -> Option<u64> {
    if let Some(max) = r.max_percent
        && !(100..=200).contains(&max)
    {
        ctx.err(Code::MaxPercent, &with(path, "maxPercent"), format!("{max} is outside 100..200"));
    }
    if let Some(min) = r.min_healthy_percent
        && min > 100
    {
        ctx.err(Code::MinHealthyPercent, &with(path, "minHealthyPercent"), format!("{min} is above 100"));
    }
    if let Some(limit) = r.history_limit
        && !(1..=100).contains(&limit)
    {
        ctx.err(Code::HistoryLimit, &with(path, "historyLimit"), format!("{limit} is outside 1..100"));
    }
    r.progress_deadline.as_ref().and_then(|d| {
        seconds(ctx, Code::ProgressDeadline, &with(path, "progressDeadline"), d, 60, 24 * 3600, "mcpfleet")
    })
}

pub(super) fn merge_rollout(
    ctx: &mut DocCtx,
    own: Option<&Rollout>,
    d: &Defaults,
    replicas: u32,
) -> Option<ValidRollout> {
    let at = p(&["spec", "rollout"]);
    let before = ctx.diags.len();
    let own_deadline = own.and_then(|r| check_rollout(ctx, &at, r));
    if ctx.diags.len() > before {
        return None;
    }
    let dflt = d.spec.rollout.clone().unwrap_or_default();
    let own = own.cloned().unwrap_or_default();
    let r = ValidRollout {
        max_percent: own.max_percent.or(dflt.max_percent).unwrap_or(200),
        min_healthy_percent: own.min_healthy_percent.or(dflt.min_healthy_percent).unwrap_or(100),
        progress_deadline_secs: own_deadline
            .or(d.progress_deadline_secs)
            .unwrap_or(ValidRollout::DEFAULT_PROGRESS_DEADLINE_SECS),
        auto_rollback: own.auto_rollback.or(dflt.auto_rollback).unwrap_or(ValidRollout::DEFAULT_AUTO_ROLLBACK),
        history_limit: own.history_limit.or(dflt.history_limit).unwrap_or(ValidRollout::DEFAULT_HISTORY_LIMIT),
    };
    // A bound that is already out of range (here, in FleetDefaults, or too many replicas) has its own diagnostic;
    // the relation between them would only add noise, and its arithmetic is meaningless on such values.
    let bounds_ok = (100..=200).contains(&r.max_percent) && r.min_healthy_percent <= 100 && replicas <= 5000;
    if !bounds_ok {
        return None;
    }
    // ECS rounds the upper bound down and the lower bound up; when they meet, no task can ever be replaced.
    // u64: the product of a task count and a percentage must not wrap whatever the inputs.
    if replicas > 0 {
        let replicas64 = u64::from(replicas);
        let max_tasks = replicas64 * u64::from(r.max_percent) / 100;
        let min_tasks = (replicas64 * u64::from(r.min_healthy_percent)).div_ceil(100);
        if max_tasks <= min_tasks {
            ctx.err(
                Code::RolloutStuck,
                &at,
                format!(
                    "with {replicas} replica(s), maxPercent {} allows {max_tasks} task(s) and minHealthyPercent {} keeps {min_tasks}: a deployment could never start a new task",
                    r.max_percent, r.min_healthy_percent
                ),
            );
            return None;
        }
    }
    Some(r)
}
