//! `spec.autoscaling`: target tracking on the service's desired count. At least one target; bounds within ECS's
//! 5000 tasks per service; `replicas`, the count a new service starts with, within them; a requests target only
//! where a load balancer's target group can count the requests (which one is judged at resolution, where the
//! load balancers routing to it are known); cooldowns as whole seconds.

use super::{DocCtx, p, seconds, with};
use crate::backend::MAX_DESIRED_COUNT;
use crate::render::autoscaling::{MAX_POLICY_NAME, policy_name, targets_of};
use crate::spec::code::Code;
use crate::spec::types::{Autoscaling, DurationStr};
use crate::spec::valid::ValidAutoscaling;

/// The longest cooldown mcpfleet accepts: a service that may not scale for more than an hour after scaling cannot
/// follow its load. (Application Auto Scaling takes whole seconds and publishes no bound of its own.)
const MAX_COOLDOWN_SECS: u64 = 3600;

/// What the rest of the service's validation knows that autoscaling depends on.
pub(super) struct Context<'a> {
    pub name: &'a str,
    /// `spec.replicas` as written.
    pub replicas: Option<u32>,
    /// Whether `spec.expose.loadBalancers` lists a target group; None when it could not be judged (it did not
    /// parse), so a requests target is not refused for it.
    pub load_balanced: Option<bool>,
    /// How many labels the service has.
    pub labels: usize,
    /// Whether its rollouts are MCP-verified (its last verification takes a tag too); None when `mcp` had a
    /// problem of its own, so the labels are not judged against it.
    pub verified: Option<bool>,
}

/// Labels an autoscaled service may carry: the record of its autoscaling takes one of the tags beside mcpfleet's
/// own (see `labels::MAX_LABELS`), and a verified service's last verification one more.
pub const MAX_AUTOSCALED_LABELS: usize = 38;

/// Checks `spec.autoscaling`. `Err(())` when a problem was reported.
pub(super) fn check_autoscaling(ctx: &mut DocCtx, a: &Autoscaling, around: &Context) -> Result<ValidAutoscaling, ()> {
    let base = p(&["spec", "autoscaling"]);
    let before = ctx.diags.len();
    let max_tasks = MAX_DESIRED_COUNT;
    for (field, v) in [("min", a.min), ("max", a.max)] {
        if !(1..=max_tasks).contains(&v) {
            ctx.err(
                Code::AutoscalingBounds,
                &with(&base, field),
                format!("{v} is outside 1..{max_tasks} (ECS runs at most {max_tasks} tasks per service)"),
            );
        }
    }
    let bounds_ok = ctx.diags.len() == before;
    if bounds_ok && a.min > a.max {
        ctx.err(Code::AutoscalingBounds, &with(&base, "min"), format!("min {} is above max {}", a.min, a.max));
    }
    if let Some(r) = around.replicas
        && bounds_ok
        && a.min <= a.max
        && !(a.min..=a.max).contains(&r)
    {
        ctx.err(
            Code::AutoscalingReplicas,
            &p(&["spec", "replicas"]),
            format!(
                "{r} is outside the autoscaling bounds {}..{}; with autoscaling, replicas is the count a new \
                 service starts with (default: min)",
                a.min, a.max
            ),
        );
    }
    if a.target_cpu.is_none() && a.target_memory.is_none() && a.requests_per_target.is_none() {
        ctx.err(
            Code::AutoscalingNoTarget,
            &base,
            "no target to track: set targetCpu, targetMemory or requestsPerTarget (or remove autoscaling)",
        );
    }
    for (field, v) in [("targetCpu", a.target_cpu), ("targetMemory", a.target_memory)] {
        if let Some(v) = v.filter(|v| !(1..=100).contains(v)) {
            ctx.err(Code::AutoscalingTarget, &with(&base, field), format!("{v} is not a utilisation percent (1..100)"));
        }
    }
    if let Some(n) = a.requests_per_target {
        if n == 0 {
            ctx.err(
                Code::AutoscalingTarget,
                &with(&base, "requestsPerTarget"),
                "0 requests per target: the target must be at least 1",
            );
        }
        if around.load_balanced == Some(false) {
            ctx.err(
                Code::AutoscalingNoLoadBalancer,
                &with(&base, "requestsPerTarget"),
                "requests are counted by an Application Load Balancer's target group: list one in \
                 spec.expose.loadBalancers (the first one is followed)",
            );
        }
    }
    let cooldown = |ctx: &mut DocCtx, field: &'static str, v: &Option<DurationStr>, default: u32| match v {
        None => Some(default),
        Some(d) => seconds(ctx, Code::AutoscalingCooldown, &with(&base, field), d, 0, MAX_COOLDOWN_SECS, "mcpfleet")
            .and_then(|s| u32::try_from(s).ok()),
    };
    let scale_in =
        cooldown(ctx, "scaleInCooldown", &a.scale_in_cooldown, ValidAutoscaling::DEFAULT_SCALE_IN_COOLDOWN_SECS);
    let scale_out =
        cooldown(ctx, "scaleOutCooldown", &a.scale_out_cooldown, ValidAutoscaling::DEFAULT_SCALE_OUT_COOLDOWN_SECS);
    let longest = targets_of(a.target_cpu, a.target_memory, a.requests_per_target)
        .map(|(m, _)| policy_name(around.name, m))
        .max_by_key(String::len);
    if let Some(long) = longest.filter(|n| n.len() > MAX_POLICY_NAME) {
        ctx.err(
            Code::AutoscalingName,
            &p(&["metadata", "name"]),
            format!(
                "the name is too long for its scaling policies: `{}…` has {} characters, Application Auto Scaling \
                 takes at most {MAX_POLICY_NAME}",
                long.chars().take(32).collect::<String>(),
                long.len()
            ),
        );
    }
    // More than 39 labels, or more than 38 on a verified service, are told by their own rules already.
    let verified = around.verified.unwrap_or(false);
    let limit = MAX_AUTOSCALED_LABELS - usize::from(verified);
    let told = if verified { super::mcp::MAX_VERIFIED_LABELS } else { super::labels::MAX_LABELS };
    if around.verified.is_some() && around.labels > limit && around.labels <= told {
        ctx.err(
            Code::AutoscalingLabels,
            &p(&["metadata", "labels"]),
            format!(
                "{} labels given; an autoscaled service records its autoscaling in a tag of its own, so at most \
                 {limit} fit beside mcpfleet's tags{}",
                around.labels,
                if verified { " and its last verification" } else { "" }
            ),
        );
    }
    match (scale_in, scale_out) {
        (Some(scale_in_cooldown_secs), Some(scale_out_cooldown_secs)) if ctx.diags.len() == before => {
            Ok(ValidAutoscaling {
                min: a.min,
                max: a.max,
                target_cpu: a.target_cpu,
                target_memory: a.target_memory,
                requests_per_target: a.requests_per_target,
                scale_in_cooldown_secs,
                scale_out_cooldown_secs,
            })
        }
        _ => Err(()),
    }
}
