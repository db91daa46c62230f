//! `spec.healthCheck`: an HTTP path probed from inside the container or an ECS command, with ECS's ranges for
//! interval, timeout, start period and retries.

use super::{DocCtx, fmt_secs, p, seconds, with};
use crate::spec::code::Code;
use crate::spec::types::{DurationStr, HealthCheck, Probe};
use crate::spec::valid::{HealthProbe, ValidHealthCheck};

// Shared with `expose` (readiness paths follow the same rule).
re!(pub(super) HEALTH_PATH, r"^/[A-Za-z0-9._~!$&()*+,;=:@%/?-]*$");

/// `stdio`: the service runs behind the bridge, whose own `/health` is the check unless a `command` is written (its
/// `path` and `probe` are judged by `validate::stdio`).
pub(super) fn check_health(ctx: &mut DocCtx, h: &HealthCheck, stdio: bool) -> Option<ValidHealthCheck> {
    let base = p(&["spec", "healthCheck"]);
    let before = ctx.diags.len();
    let probe = match (&h.path, &h.command) {
        (Some(_), Some(_)) => {
            ctx.err(Code::HealthPathAndCommand, &base, "set either `path` or `command`, not both");
            None
        }
        (_, None) if stdio => Some(HealthProbe::Bridge),
        (None, None) => {
            ctx.err(Code::HealthNoProbe, &base, "set `path` (an HTTP probe) or `command`");
            None
        }
        (Some(path), None) => {
            if !HEALTH_PATH.is_match(path) {
                ctx.err(
                    Code::HealthPath,
                    &with(&base, "path"),
                    format!("`{path}` must start with `/` and contain no spaces or quotes"),
                );
            }
            Some(HealthProbe::Http { path: path.clone(), probe: h.probe.unwrap_or(Probe::Python) })
        }
        (None, Some(cmd)) => {
            if h.probe.is_some() {
                ctx.err(Code::HealthProbeWithCommand, &with(&base, "probe"), "only applies with `path`");
            }
            let at = with(&base, "command");
            match cmd.first().map(String::as_str) {
                Some("CMD" | "CMD-SHELL") if cmd.len() >= 2 && cmd[1..].iter().all(|c| !c.is_empty()) => {}
                Some("CMD" | "CMD-SHELL") => {
                    ctx.err(Code::HealthCommandProgram, &at, "needs a program after CMD/CMD-SHELL")
                }
                _ => ctx.err(
                    Code::HealthCommandForm,
                    &at,
                    "must start with \"CMD\" or \"CMD-SHELL\" as in ECS, e.g. [\"CMD\", \"/bin/check\"]",
                ),
            }
            Some(HealthProbe::Command(cmd.clone()))
        }
    };
    let dur = |ctx: &mut DocCtx,
               code: Code,
               field: &'static str,
               v: &Option<DurationStr>,
               default: u64,
               min: u64,
               max: u64| match v {
        Some(v) => seconds(ctx, code, &with(&base, field), v, min, max, "ECS"),
        None => Some(default),
    };
    let interval = dur(ctx, Code::HealthInterval, "interval", &h.interval, 30, 5, 300);
    let timeout = dur(ctx, Code::HealthTimeout, "timeout", &h.timeout, 5, 2, 60);
    let start_period = dur(ctx, Code::HealthStartPeriod, "startPeriod", &h.start_period, 0, 0, 300);
    let retries = h.retries.unwrap_or(3);
    if !(1..=10).contains(&retries) {
        ctx.err(Code::HealthRetries, &with(&base, "retries"), format!("{retries} is outside ECS's 1..10"));
    }
    if let (Some(i), Some(t)) = (interval, timeout)
        && t >= i
    {
        ctx.err(
            Code::HealthTimeoutVsInterval,
            &with(&base, "timeout"),
            format!("{} must be shorter than the interval ({})", fmt_secs(t), fmt_secs(i)),
        );
    }
    if ctx.diags.len() > before {
        return None;
    }
    Some(ValidHealthCheck {
        probe: probe?,
        interval_secs: interval? as u32,
        timeout_secs: timeout? as u32,
        retries,
        start_period_secs: start_period? as u32,
    })
}
