//! `spec.local`: how a service runs in the local stack (`render --format compose`); ECS ignores it. A pinned host
//! port must be one Docker can publish without root and belongs to one service of the fleet.

use std::collections::BTreeMap;

use super::{DocCtx, p};
use crate::spec::code::Code;
use crate::spec::types::McpServiceDoc;

/// Host ports `spec.local.port` may name: unprivileged, so `docker compose up` needs no root.
pub const LOCAL_PORTS: std::ops::RangeInclusive<u32> = 1024..=65535;

/// Checks the pinned host port is one the local stack can publish.
pub(super) fn check_local_port(ctx: &mut DocCtx, port: Option<u32>) {
    if let Some(port) = port.filter(|port| !LOCAL_PORTS.contains(port)) {
        ctx.err(
            Code::LocalPortRange,
            &p(&["spec", "local", "port"]),
            format!(
                "{port} is not a host port the local stack can publish ({}..{})",
                LOCAL_PORTS.start(),
                LOCAL_PORTS.end()
            ),
        );
    }
}

/// A host port of the local stack belongs to one service: the first to name it (in file order) keeps it, a later
/// one is told where. `seen` maps each port to its owner's name and place.
pub(in crate::spec) fn check_unique_local_port(
    ctx: &mut DocCtx,
    doc: &McpServiceDoc,
    seen: &mut BTreeMap<u32, String>,
) {
    let Some(port) = doc.spec.local.as_ref().and_then(|l| l.port) else { return };
    let path = p(&["spec", "local", "port"]);
    let here = format!("`{}` at {}:{}", doc.metadata.name, ctx.file, ctx.root.line_of(&path));
    match seen.get(&port) {
        Some(owner) => ctx.err(
            Code::LocalPortTaken,
            &path,
            format!("host port {port} is already taken by service {owner}; local ports must be unique"),
        ),
        None => {
            seen.insert(port, here);
        }
    }
}
