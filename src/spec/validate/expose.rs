//! `spec.readiness` and `spec.expose`: the readiness path, and ECS Service Connect (a Cloud Map namespace, the
//! client alias agents resolve and its port). The namespace is checked for form only; it is not looked up, since
//! ECS accepts a namespace name or ARN and reports one that does not exist at CreateService/UpdateService.
//! Load balancers' target groups are checked for form here and looked up in the resolve phase, where what they
//! are (type, protocol, load balancer) can be judged.

use super::health::HEALTH_PATH;
use super::{DocCtx, fits, p, with, with_index};
use crate::spec::code::Code;
use crate::spec::types::{DurationStr, McpServiceSpec, Readiness};
use crate::spec::valid::{ValidLoadBalancer, ValidServiceConnect};

// A namespace name is a DNS domain name (Cloud Map's rule for DNS namespaces; HTTP namespaces allow more, but the
// client alias is qualified with the name, so only names that work as a DNS suffix are accepted). Lengths are
// checked apart (see `fits`).
re!(NAMESPACE_NAME, r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$");
re!(NAMESPACE_ARN, r"^arn:aws[a-z-]*:servicediscovery:[a-z0-9-]+:[0-9]{12}:namespace/ns-[a-z0-9]+$");
// ELBv2's rule for target group names: letters, digits and `-`, not at either end.
re!(TARGET_GROUP_NAME, r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$");
re!(
    TARGET_GROUP_ARN,
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:[0-9]{12}:targetgroup/[A-Za-z0-9-]{1,32}/[0-9a-f]+$"
);
re!(DNS_LABEL, r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$");

/// Longest DNS domain name (Cloud Map's limit for DNS namespace names).
const MAX_NAMESPACE: usize = 253;
/// Longest DNS label.
const MAX_LABEL: usize = 63;

/// Checks a namespace written at `path` (a service's or FleetDefaults'): a name, or a full ARN once it starts
/// with `arn:`.
pub(super) fn check_namespace(ctx: &mut DocCtx, path: &[super::Seg], namespace: &str) {
    let ok = if namespace.starts_with("arn:") {
        fits(&NAMESPACE_ARN, namespace, 2048)
    } else {
        fits(&NAMESPACE_NAME, namespace, MAX_NAMESPACE) && namespace.split('.').all(|l| l.len() <= MAX_LABEL)
    };
    if !ok {
        ctx.err(
            Code::ServiceConnectNamespace,
            path,
            format!(
                "`{namespace}` is neither a Cloud Map namespace name (a DNS domain name such as `mcp.internal`, at \
                 most {MAX_NAMESPACE} characters) nor a namespace ARN (arn:aws:servicediscovery:REGION:ACCOUNT:namespace/ns-…)"
            ),
        );
    }
}

/// `spec.readiness.path`, with the health check's rule for HTTP paths.
pub(super) fn check_readiness(ctx: &mut DocCtx, readiness: &Readiness) -> Option<String> {
    if HEALTH_PATH.is_match(&readiness.path) {
        return Some(readiness.path.clone());
    }
    ctx.err(
        Code::ReadinessPath,
        &p(&["spec", "readiness", "path"]),
        format!("`{}` must start with `/` and contain no spaces or quotes", readiness.path),
    );
    None
}

/// Service Connect merged with FleetDefaults' namespace. The service takes part when it writes
/// `expose.serviceConnect` or FleetDefaults names a namespace. `Err(())` when a problem was reported (or cannot
/// be judged because FleetDefaults' `expose` did not parse: `namespace_lost`).
pub(super) fn merge_service_connect(
    ctx: &mut DocCtx,
    s: &McpServiceSpec,
    name: &str,
    default_namespace: Option<&str>,
    namespace_lost: bool,
) -> Result<Option<ValidServiceConnect>, ()> {
    let own = s.expose.as_ref().and_then(|e| e.service_connect.as_ref());
    if own.is_none() && default_namespace.is_none() {
        return Ok(None);
    }
    let base = p(&["spec", "expose", "serviceConnect"]);
    let before = ctx.diags.len();
    let namespace = match own.and_then(|sc| sc.namespace.as_deref()) {
        Some(ns) => {
            check_namespace(ctx, &with(&base, "namespace"), ns);
            Some(ns)
        }
        None => default_namespace,
    };
    if namespace.is_none() && !namespace_lost {
        ctx.err(
            Code::ServiceConnectNamespaceMissing,
            &with(&base, "namespace"),
            "required: name the Cloud Map namespace here or in FleetDefaults' expose.serviceConnect",
        );
    }
    let dns_name = match own.and_then(|sc| sc.dns_name.as_deref()) {
        Some(dns) => {
            if !fits(&DNS_LABEL, dns, MAX_LABEL) {
                ctx.err(
                    Code::ServiceConnectDnsName,
                    &with(&base, "dnsName"),
                    format!("`{dns}` is not a DNS label (1-{MAX_LABEL} lowercase letters, digits and `-`, not at either end)"),
                );
            }
            dns
        }
        None => {
            if !fits(&DNS_LABEL, name, MAX_LABEL) {
                ctx.err(
                    Code::ServiceConnectDnsName,
                    &with(&base, "dnsName"),
                    format!(
                        "the service name `{name}` is not a DNS label (1-{MAX_LABEL} lowercase letters, digits and \
                         `-`), so it cannot be the client alias: set dnsName"
                    ),
                );
            }
            name
        }
    };
    let port = own.and_then(|sc| sc.port).unwrap_or(s.port);
    if !(1..=65535).contains(&port) {
        ctx.err(Code::ServiceConnectPort, &with(&base, "port"), format!("{port} is not a TCP port (1..65535)"));
    }
    if ctx.diags.len() > before {
        return Err(());
    }
    let (Some(namespace), Ok(port)) = (namespace, u16::try_from(port)) else { return Err(()) };
    Ok(Some(ValidServiceConnect { namespace: namespace.to_string(), dns_name: dns_name.to_string(), port }))
}

/// Most load balancers ECS attaches to one service.
pub const MAX_LOAD_BALANCERS: usize = 5;
/// Longest target group name.
const MAX_TARGET_GROUP_NAME: usize = 32;
/// Largest `healthCheckGracePeriodSeconds` ECS accepts.
const MAX_GRACE_SECS: u64 = 2_147_483_647;

/// `spec.expose.loadBalancers`: 0..5 distinct target groups, each routed to the container's port. `Err(())` when a
/// problem was reported.
pub(super) fn check_load_balancers(ctx: &mut DocCtx, s: &McpServiceSpec) -> Result<Vec<ValidLoadBalancer>, ()> {
    let Some(list) = s.expose.as_ref().map(|e| &e.load_balancers).filter(|l| !l.is_empty()) else {
        return Ok(vec![]);
    };
    let base = p(&["spec", "expose", "loadBalancers"]);
    let before = ctx.diags.len();
    if list.len() > MAX_LOAD_BALANCERS {
        ctx.err(
            Code::TooManyLoadBalancers,
            &base,
            format!("{} load balancers; ECS attaches at most {MAX_LOAD_BALANCERS} to a service", list.len()),
        );
    }
    let mut out: Vec<ValidLoadBalancer> = Vec::with_capacity(list.len());
    for (i, lb) in list.iter().enumerate() {
        let at = with_index(&base, i);
        let tg = lb.target_group.as_str();
        let ok = if tg.starts_with("arn:") {
            fits(&TARGET_GROUP_ARN, tg, 2048)
        } else {
            fits(&TARGET_GROUP_NAME, tg, MAX_TARGET_GROUP_NAME)
        };
        if !ok {
            ctx.err(
                Code::TargetGroup,
                &with(&at, "targetGroup"),
                format!(
                    "`{tg}` is neither a target group name (1-{MAX_TARGET_GROUP_NAME} letters, digits and `-`, not at \
                     either end) nor a target group ARN (arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID)"
                ),
            );
        } else if out.iter().any(|o| o.target_group == tg) {
            ctx.err(Code::TargetGroupTwice, &with(&at, "targetGroup"), format!("`{tg}` is listed twice"));
        }
        let port = lb.container_port.unwrap_or(s.port);
        // The task has one port mapping, spec.port: a target group can only route there.
        if port != s.port {
            ctx.err(
                Code::LoadBalancerPort,
                &with(&at, "containerPort"),
                format!("{port} is not a port the container exposes (it exposes spec.port, {})", s.port),
            );
        }
        if let Ok(container_port) = u16::try_from(port) {
            out.push(ValidLoadBalancer { target_group: tg.to_string(), container_port });
        }
    }
    if ctx.diags.len() > before { Err(()) } else { Ok(out) }
}

/// `spec.expose.healthCheckGracePeriod` in seconds, defaulting to the health check's start period when a load
/// balancer is attached (ECS's own default, 0, would let a starting task fail its target health check). `Err(())`
/// when a problem was reported.
pub(super) fn grace_period(
    ctx: &mut DocCtx,
    written: Option<&DurationStr>,
    load_balanced: bool,
    start_period_secs: Option<u32>,
) -> Result<Option<u32>, ()> {
    let Some(written) = written else {
        return Ok(if load_balanced { Some(start_period_secs.unwrap_or(0)) } else { None });
    };
    match written.parse().map(|d| (d.as_secs(), d.subsec_millis())) {
        Some((secs, 0)) if secs <= MAX_GRACE_SECS => Ok(u32::try_from(secs).ok()),
        _ => {
            ctx.err(
                Code::HealthCheckGracePeriod,
                &p(&["spec", "expose", "healthCheckGracePeriod"]),
                format!("`{}` is not a whole number of seconds in 0s..{MAX_GRACE_SECS}s", written.0),
            );
            Err(())
        }
    }
}
