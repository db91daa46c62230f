//! `spec.mcp`: the MCP endpoint's path and what a rollout must show MCP clients before it counts as good — where
//! it is verified (`verify`, which FleetDefaults may set with `timeout`), the tools it must offer and whether it
//! may drop tools the last good revision offered. Only form and the relations to the rest of the manifest are
//! judged here; the probing itself happens when a rollout is settled.

use std::collections::BTreeSet;

use super::health::HEALTH_PATH;
use super::{Defaults, DocCtx, Seg, fits, p, seconds, with, with_index};
use crate::spec::code::Code;
use crate::spec::types::{DefaultsMcp, DurationStr, Mcp, Transport, Verify};
use crate::spec::valid::ValidMcp;

// The characters the MCP specification (2025-11-25) allows in tool names; lengths are checked apart (see `fits`).
re!(TOOL_NAME, r"^[A-Za-z0-9_.-]+$");

/// Longest tool name the MCP specification allows.
pub const MAX_TOOL_NAME: usize = 128;
/// Shortest and longest probe timeout, in seconds.
const TIMEOUT_SECS: (u64, u64) = (1, 60);
/// Labels a verified service may carry: its last verification takes one of the tags beside mcpfleet's own (see
/// `labels::MAX_LABELS`).
pub const MAX_VERIFIED_LABELS: usize = 38;

/// `mcp.timeout` at `path`, in seconds.
fn timeout(ctx: &mut DocCtx, path: &[Seg], value: &DurationStr) -> Option<u64> {
    seconds(ctx, Code::McpTimeout, path, value, TIMEOUT_SECS.0, TIMEOUT_SECS.1, "mcpfleet")
}

/// FleetDefaults' `mcp`: its timeout is checked once, here.
pub(super) fn check_defaults(ctx: &mut DocCtx, m: &DefaultsMcp) {
    if let Some(t) = &m.timeout {
        timeout(ctx, &p(&["spec", "mcp", "timeout"]), t);
    }
}

/// FleetDefaults' timeout in seconds, when it is written and valid (a bad one was reported where it is written).
pub(super) fn default_timeout(m: Option<&DefaultsMcp>) -> Option<u64> {
    let secs = m?.timeout.as_ref()?.parse().filter(|d| d.subsec_nanos() == 0)?.as_secs();
    (TIMEOUT_SECS.0..=TIMEOUT_SECS.1).contains(&secs).then_some(secs)
}

/// What else of the service `mcp` depends on.
pub(super) struct Context {
    pub transport: Transport,
    /// `spec.port`, when it is a TCP port (else reported where it is written).
    pub port: Option<u16>,
    /// Whether the service has an endpoint (a load balancer or Service Connect); None when that could not be
    /// judged (a problem there was reported).
    pub has_endpoint: Option<bool>,
    pub labels: usize,
    /// FleetDefaults' `mcp` did not parse: whether it meant to turn verification on is unknown.
    pub defaults_lost: bool,
}

/// `spec.mcp` merged with FleetDefaults' `mcp`. None when a problem was reported.
pub(super) fn merge(ctx: &mut DocCtx, own: Option<&Mcp>, d: &Defaults, c: &Context) -> Option<ValidMcp> {
    let before = ctx.diags.len();
    let base = p(&["spec", "mcp"]);
    let dflt = d.spec.mcp.as_ref();
    let empty = Mcp::default();
    let m = own.unwrap_or(&empty);
    let path = match &m.path {
        Some(path) => {
            if !HEALTH_PATH.is_match(path) {
                ctx.err(
                    Code::McpPath,
                    &with(&base, "path"),
                    format!("`{path}` must start with `/` and contain no spaces or quotes"),
                );
            }
            path.clone()
        }
        None => ValidMcp::default_path(c.transport).to_string(),
    };
    let verify = m.verify.or(dflt.and_then(|d| d.verify)).unwrap_or(Verify::None);
    let timeout_secs = match &m.timeout {
        Some(t) => timeout(ctx, &with(&base, "timeout"), t),
        None => Some(default_timeout(dflt).unwrap_or(u64::from(ValidMcp::DEFAULT_TIMEOUT_SECS))),
    };
    let expect_tools = check_tools(ctx, &with(&base, "expectTools"), &m.expect_tools);

    let unverified_field =
        if !m.expect_tools.is_empty() { Some("expectTools") } else { m.allow_tool_removal.map(|_| "allowToolRemoval") };
    if verify == Verify::None
        && !c.defaults_lost
        && let Some(field) = unverified_field
    {
        ctx.err(
            Code::McpUnverified,
            &with(&base, field),
            format!(
                "{field} only applies to verified rollouts: set `verify: tasks` or `verify: endpoint` here or in \
                 FleetDefaults' mcp"
            ),
        );
    }
    if verify == Verify::Endpoint && c.has_endpoint == Some(false) {
        ctx.err(
            Code::McpEndpointMissing,
            &with(&base, "verify"),
            "`endpoint` verifies the service's load balancer or Service Connect URL, and `expose` has neither: add \
             one, or verify `tasks`",
        );
    }
    if verify != Verify::None && c.labels > MAX_VERIFIED_LABELS {
        ctx.err(
            Code::McpLabels,
            &p(&["metadata", "labels"]),
            format!(
                "{} labels given; a verified service records its last verification in a tag of its own, so at most \
                 {MAX_VERIFIED_LABELS} fit beside mcpfleet's tags",
                c.labels
            ),
        );
    }
    if ctx.diags.len() > before {
        return None;
    }
    Some(ValidMcp {
        transport: c.transport,
        port: c.port?,
        path,
        verify,
        expect_tools,
        allow_tool_removal: m.allow_tool_removal.unwrap_or(false),
        timeout_secs: u32::try_from(timeout_secs?).ok()?,
    })
}

/// `expectTools`: names as the MCP specification allows them, each once.
fn check_tools(ctx: &mut DocCtx, base: &[Seg], tools: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    for (i, name) in tools.iter().enumerate() {
        let at = with_index(base, i);
        if !fits(&TOOL_NAME, name, MAX_TOOL_NAME) {
            ctx.err(
                Code::McpToolName,
                &at,
                format!(
                    "`{name}` is not a tool name: 1-{MAX_TOOL_NAME} letters, digits, `_`, `-` and `.`, as the MCP \
                     specification allows"
                ),
            );
        } else if !seen.insert(name.as_str()) {
            ctx.err(Code::McpToolTwice, &at, format!("`{name}` is listed twice"));
        }
    }
    tools.to_vec()
}
