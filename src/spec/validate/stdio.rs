//! `transport: stdio`: a server that speaks MCP on stdin/stdout, run behind mcpfleet's bridge. Checked here: its
//! `command`, the `bridge` settings, the bridge image (FleetDefaults' `bridgeImage` or `--bridge-image`, pinned by
//! digest), and the paths the bridge serves itself (`/health`, `/ready`), which the health check, readiness and
//! MCP path must agree with.
//!
//! `command` defaults to the image's own `Entrypoint` + `Cmd`, which only the registry knows: resolution
//! (`reconcile::resolve`) reads them from the image config for the platform the service runs on, before render,
//! and refuses an image that names neither ([`Code::StdioImageCommand`]). Amazon ECR cannot answer that question
//! (BatchGetImage returns manifests without their config blobs), so an image in ECR still needs `command`
//! ([`Code::StdioCommandMissing`]), refused here, before any request.

use super::{DocCtx, p, seconds, with};
use crate::spec::code::Code;
use crate::spec::image::ImageRef;
use crate::spec::types::{Bridge, BridgeMode, McpServiceSpec, Transport};
use crate::spec::valid::ValidStdio;

/// `bridge.maxSessions` bounds.
const MAX_SESSIONS: (u32, u32) = (1, 10_000);
/// `bridge.idleTimeout` bounds, in seconds.
const IDLE_TIMEOUT_SECS: (u64, u64) = (10, 24 * 3600);
/// The bridge's own endpoints.
pub(super) const HEALTH: &str = "/health";
pub(super) const READY: &str = "/ready";

/// FleetDefaults' `bridgeImage`: a reference pinned by digest.
pub(super) fn check_bridge_image(ctx: &mut DocCtx, image: &str) -> Option<ImageRef> {
    super::image::reference(ctx, Code::BridgeImage, &["spec", "bridgeImage"], ImageRef::parse_pinned(image))
}

/// Where the bridge image of the fleet comes from.
pub(super) enum BridgeImage<'a> {
    Known(&'a ImageRef),
    /// FleetDefaults names one that did not parse (reported there).
    Broken,
    None,
}

/// A stdio service's `command`, `bridge` and paths; `command` and `bridge` on any other service. `Ok(None)` for a
/// service that is not stdio, `Err(())` when a problem was reported.
pub(super) fn check(
    ctx: &mut DocCtx,
    s: &McpServiceSpec,
    transport: Transport,
    service_image: Option<&ImageRef>,
    image: BridgeImage,
    mcp_path: Option<&str>,
) -> Result<Option<ValidStdio>, ()> {
    let before = ctx.diags.len();
    if transport != Transport::Stdio {
        for (field, set) in [("command", s.command.is_some()), ("bridge", s.bridge.is_some())] {
            if set {
                let why =
                    format!("{field} applies to `transport: stdio` only (the transport is {})", transport.as_str());
                ctx.err(Code::StdioOnly, &p(&["spec", field]), why);
            }
        }
        return if ctx.diags.len() > before { Err(()) } else { Ok(None) };
    }
    let command = match &s.command {
        None if service_image.is_some_and(|i| i.ecr().is_some()) => {
            ctx.err(
                Code::StdioCommandMissing,
                &p(&["spec", "transport"]),
                "a stdio server needs `command` when its image is in Amazon ECR: the program and arguments that \
                 start it in its image, e.g. [\"npx\", \"-y\", \"@modelcontextprotocol/server-everything\"] (ECR's \
                 BatchGetImage answers without the image config, so its Entrypoint and Cmd cannot be read)",
            );
            None
        }
        // The image's Entrypoint + Cmd, read at resolution.
        None => Some(None),
        Some(c) if c.first().is_none_or(|program| program.trim().is_empty()) => {
            ctx.err(Code::StdioCommandEmpty, &p(&["spec", "command"]), "needs a program as its first word");
            None
        }
        Some(c) => Some(Some(c.clone())),
    };
    let bridge = s.bridge.clone().unwrap_or_default();
    let (mode, max_sessions, idle_timeout_secs) = check_bridge(ctx, &bridge);
    let bridge_image = match image {
        BridgeImage::Known(i) => Some(i.clone()),
        BridgeImage::Broken => None,
        BridgeImage::None => {
            ctx.err(
                Code::BridgeImageMissing,
                &p(&["spec", "transport"]),
                "a stdio server runs behind the bridge from mcpfleet's image: set FleetDefaults' spec.bridgeImage \
                 (pinned by digest) or pass --bridge-image",
            );
            None
        }
    };
    check_paths(ctx, s, mcp_path);
    if ctx.diags.len() > before {
        return Err(());
    }
    match (command, bridge_image, max_sessions, idle_timeout_secs) {
        (Some(command), Some(bridge_image), Some(max_sessions), Some(idle_timeout_secs)) => {
            Ok(Some(ValidStdio { command, bridge_image, mode, max_sessions, idle_timeout_secs }))
        }
        // A FleetDefaults problem, reported where it is written.
        _ => Err(()),
    }
}

/// `bridge`: the mode and the bounds of its numbers, with their defaults.
fn check_bridge(ctx: &mut DocCtx, b: &Bridge) -> (BridgeMode, Option<u32>, Option<u32>) {
    let base = p(&["spec", "bridge"]);
    let mode = b.mode.unwrap_or(BridgeMode::Shared);
    let max_sessions = b.max_sessions.unwrap_or(ValidStdio::default_max_sessions(mode));
    let max_sessions = if (MAX_SESSIONS.0..=MAX_SESSIONS.1).contains(&max_sessions) {
        Some(max_sessions)
    } else {
        let why = format!("{max_sessions} is outside {}..{}", MAX_SESSIONS.0, MAX_SESSIONS.1);
        ctx.err(Code::BridgeMaxSessions, &with(&base, "maxSessions"), why);
        None
    };
    let idle = match &b.idle_timeout {
        Some(t) => {
            let (min, max) = IDLE_TIMEOUT_SECS;
            seconds(ctx, Code::BridgeIdleTimeout, &with(&base, "idleTimeout"), t, min, max, "bridge")
                .and_then(|s| u32::try_from(s).ok())
        }
        None => Some(ValidStdio::DEFAULT_IDLE_TIMEOUT_SECS),
    };
    (mode, max_sessions, idle)
}

/// The bridge answers `/health` and `/ready` itself: a health check or readiness path must be those, and the MCP
/// endpoint must be elsewhere.
fn check_paths(ctx: &mut DocCtx, s: &McpServiceSpec, mcp_path: Option<&str>) {
    if let Some(h) = &s.health_check {
        if let Some(path) = h.path.as_deref().filter(|path| *path != HEALTH) {
            let why = format!(
                "`{path}`: the bridge answers a stdio server's health check at {HEALTH}; write that, or leave `path` out"
            );
            ctx.err(Code::StdioPath, &p(&["spec", "healthCheck", "path"]), why);
        }
        if h.probe.is_some() {
            let why =
                "the bridge probes its own /health with its own executable: no probe program is needed in the image";
            ctx.err(Code::StdioHealthProbe, &p(&["spec", "healthCheck", "probe"]), why);
        }
    }
    if let Some(path) = s.readiness.as_ref().map(|r| r.path.as_str()).filter(|path| *path != READY) {
        let why = format!(
            "`{path}`: the bridge answers a stdio server's readiness at {READY}; write that, or leave `readiness` out"
        );
        ctx.err(Code::StdioPath, &p(&["spec", "readiness", "path"]), why);
    }
    if let Some(path) = mcp_path.filter(|path| [HEALTH, READY].contains(path)) {
        let why = format!("`{path}` is the bridge's own endpoint; serve MCP on another path (default /mcp)");
        ctx.err(Code::StdioPath, &p(&["spec", "mcp", "path"]), why);
    }
}
