//! Moves and renames: a managed service no longer in the manifests that a desired service replaces.
//!
//! Deleting the old copy of a moved (or renamed) service before the new copy serves would leave nothing serving
//! if the new copy fails, so a replaced service is deleted only once its successor is healthy: at once when it
//! already is, else after the successor's rollout completed (`apply --wait`), or by a later apply or controller
//! pass that sees it healthy. If the new copy fails, the old one keeps serving.
//!
//! A move is the same service name in another cluster. A rename is recognised, in the same cluster, as the one
//! desired service whose image digest is the one the old service runs (and no other desired or removed service of
//! that cluster shares it): names are all a rename changes, and the digest is the one identity that both sides
//! carry without another API call. A rename that also changes the image is an ordinary create and delete. A
//! wrong guess can only delay a delete, never make one.

use serde::Serialize;

use super::{Action, ServicePlan};
use crate::backend::ServiceState;
use crate::render::ecs::EcsService;
use crate::state::{self, ImageTags};

/// How a successor replaces a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Replacement {
    /// The same name in another cluster.
    Move,
    /// Another name in the same cluster, running the same image.
    Rename,
}

/// The desired service that replaces a deleted one, and whether it serves yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Successor {
    pub name: String,
    pub cluster: String,
    pub replacement: Replacement,
    /// Whether the successor runs its desired spec, rolled out: only then is the old service deleted.
    pub healthy: bool,
}

impl Successor {
    /// `search in mcp-other`.
    pub fn describe(&self) -> String {
        format!("{} in {}", self.name, self.cluster)
    }

    /// Why the replaced service is deleted now, or kept.
    pub fn reason(&self) -> String {
        let what = match self.replacement {
            Replacement::Move => format!("moved to {}", self.cluster),
            Replacement::Rename => format!("renamed to {}", self.name),
        };
        if self.healthy {
            format!("{what}; {} is healthy", self.describe())
        } else {
            format!("{what}; kept until {} is healthy", self.describe())
        }
    }
}

/// Whether a service serves what mcpfleet last applied to it: its only deployment completed on the revision
/// mcpfleet asked for, every task running, and not a spec held back as failed (as far as the service's own state
/// tells; a plan also knows the spec, see [`mark_successors`]).
pub fn is_healthy(state: &ServiceState) -> bool {
    state.is_active() && state::runs_what_was_applied(state, None)
}

/// A service that may replace a removed one: a desired service, or one observed under a desired name that this
/// plan leaves out (the controller does not plan a service whose rollout is in flight).
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub cluster: &'a str,
    pub name: &'a str,
    /// The image digest it runs or will run (`mcpfleet.io/image-digest`).
    pub digest: Option<&'a str>,
}

impl<'a> Candidate<'a> {
    pub fn desired(e: &'a EcsService) -> Self {
        let digest = state::desired_digest(e);
        Candidate { cluster: &e.cluster, name: &e.name, digest }
    }

    pub fn observed(s: &'a ServiceState) -> Self {
        Candidate { cluster: &s.cluster, name: &s.name, digest: ImageTags::parse(&s.tags).digest }
    }
}

/// Marks each delete in `plans` whose service a candidate replaces (see the module doc). A successor is healthy
/// when it is planned unchanged (not held back as failed) and `observe(cluster, name)` reports it healthy; one
/// being created, updated, held or not planned this pass (a rollout in flight) is not.
pub fn mark_successors<'a>(
    plans: &mut [ServicePlan],
    candidates: &[Candidate<'_>],
    orphans: &[ServiceState],
    observe: impl Fn(&str, &str) -> Option<&'a ServiceState>,
) {
    let unchanged = |plans: &[ServicePlan], cluster: &str, name: &str| {
        plans.iter().any(|p| {
            p.cluster == cluster
                && p.name == name
                && p.action == Action::Noop
                && p.reason != Some(super::PlanReason::Held)
        })
    };
    let mut found = Vec::new();
    for (i, p) in plans.iter().enumerate().filter(|(_, p)| p.action == Action::Delete) {
        let Some(orphan) = orphans.iter().find(|o| o.cluster == p.cluster && o.name == p.name) else { continue };
        let Some((c, replacement)) = successor_of(orphan, candidates, orphans) else { continue };
        let healthy = unchanged(plans, c.cluster, c.name) && observe(c.cluster, c.name).is_some_and(is_healthy);
        let (name, cluster) = (c.name.to_string(), c.cluster.to_string());
        found.push((i, Successor { name, cluster, replacement, healthy }));
    }
    for (i, successor) in found {
        if let Some(p) = plans.get_mut(i) {
            p.reason = Some(super::PlanReason::Replaced(successor.clone()));
            p.replaced_by = Some(successor);
        }
    }
}

fn successor_of<'c>(
    orphan: &ServiceState,
    candidates: &'c [Candidate<'c>],
    orphans: &[ServiceState],
) -> Option<(&'c Candidate<'c>, Replacement)> {
    if let Some(c) = candidates.iter().find(|c| c.name == orphan.name && c.cluster != orphan.cluster) {
        return Some((c, Replacement::Move));
    }
    let digest = ImageTags::parse(&orphan.tags).digest?;
    let same: Vec<&Candidate> =
        candidates.iter().filter(|c| c.cluster == orphan.cluster && c.digest == Some(digest)).collect();
    let rivals =
        orphans.iter().filter(|o| o.cluster == orphan.cluster && ImageTags::parse(&o.tags).digest == Some(digest));
    match same.as_slice() {
        [only] if rivals.count() == 1 => Some((only, Replacement::Rename)),
        _ => None,
    }
}
