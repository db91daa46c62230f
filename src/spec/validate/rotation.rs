//! `secretRotation` and the room its tags need: a service that reads a secret by stage (not pinned to a
//! `versionId`) records the versions its tasks read and the restarts a rotation starts in two service tags of their
//! own (see `state::secrets`), so two fewer labels fit beside mcpfleet's tags. Checked here, before any write:
//! ECS would refuse the 51st tag in the middle of an apply.

use super::{DocCtx, p};
use crate::spec::code::Code;

/// Tags a service that follows its secrets' versions needs: `secret-versions` and `restart`.
pub const ROTATION_TAGS: usize = 2;

/// What the label rule needs to know of the service.
pub(super) struct Context {
    /// How many labels the service has.
    pub labels: usize,
    /// Whether it reads a secret by stage (its versions are recorded).
    pub follows_secrets: bool,
    /// Whether its rollouts are verified (a tag of its own); None when that could not be judged.
    pub verified: Option<bool>,
    /// Whether it autoscales (a tag of its own).
    pub autoscaled: bool,
}

/// More labels than fit beside the rotation's tags. Counts that other rules refuse already (too many for any
/// service, or for a verified or autoscaled one) are told by those rules alone.
pub(super) fn check_labels(ctx: &mut DocCtx, c: &Context) {
    let Some(verified) = c.verified.filter(|_| c.follows_secrets) else { return };
    let told = super::labels::MAX_LABELS - usize::from(verified) - usize::from(c.autoscaled);
    let limit = told - ROTATION_TAGS;
    if c.labels > limit && c.labels <= told {
        ctx.err(
            Code::RotationLabels,
            &p(&["metadata", "labels"]),
            format!(
                "{} labels given; a service that reads secrets by stage records their versions and its restarts in \
                 two tags of their own, so at most {limit} fit beside mcpfleet's tags (pin the secrets' versionId \
                 to need neither)",
                c.labels
            ),
        );
    }
}
