//! The task's size and lifecycle as Fargate bounds them: cpu/memory pairs, replica count, port, stop timeout.

use super::{DocCtx, p, seconds};
use crate::spec::code::Code;
use crate::spec::types::DurationStr;
use crate::spec::valid::{FARGATE_SIZES, fargate_pair_ok};

pub(super) fn check_fargate_size(ctx: &mut DocCtx, cpu: u32, memory: u32) {
    match FARGATE_SIZES.iter().find(|(c, ..)| *c == cpu) {
        None => {
            let sizes: Vec<String> = FARGATE_SIZES.iter().map(|(c, ..)| c.to_string()).collect();
            ctx.err(
                Code::FargateCpu,
                &p(&["spec", "cpu"]),
                format!("{cpu} is not a Fargate CPU size ({})", sizes.join(", ")),
            );
        }
        Some((c, min, max, step)) if !fargate_pair_ok(cpu, memory) => {
            let allowed =
                if *step == 0 { "512, 1024 or 2048".to_string() } else { format!("{min}..{max} in steps of {step}") };
            ctx.err(
                Code::FargateMemory,
                &p(&["spec", "memory"]),
                format!("{memory} MiB is not a valid Fargate size for cpu {c} (allowed: {allowed})"),
            );
        }
        Some(_) => {}
    }
}

pub(super) fn check_replicas(ctx: &mut DocCtx, replicas: u32) {
    if replicas > 5000 {
        ctx.err(Code::Replicas, &p(&["spec", "replicas"]), format!("{replicas} is above ECS's 5000 tasks per service"));
    }
}

pub(super) fn check_port(ctx: &mut DocCtx, port: u32) {
    if !(1..=65535).contains(&port) {
        ctx.err(Code::Port, &p(&["spec", "port"]), format!("{port} is not a TCP port (1..65535)"));
    }
}

/// `spec.stopTimeout` in seconds, within Fargate's 2s..120s.
pub(super) fn stop_timeout(ctx: &mut DocCtx, value: &DurationStr) -> Option<u64> {
    seconds(ctx, Code::StopTimeout, &p(&["spec", "stopTimeout"]), value, 2, 120, "Fargate")
}
