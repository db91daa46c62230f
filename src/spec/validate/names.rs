//! Names ECS keys things by: services (which are also task-definition families) and clusters.

use super::{DocCtx, Seg, fits};
use crate::spec::code::Code;

re!(ECS_NAME, r"^[A-Za-z0-9_-]+$");

/// Whether `name` is an ECS name (1-255 letters, digits, `-`, `_`); reports under `code` when not.
pub(super) fn check_ecs_name(ctx: &mut DocCtx, code: Code, path: &[Seg], what: &str, name: &str) -> bool {
    if fits(&ECS_NAME, name, 255) {
        return true;
    }
    ctx.err(code, path, format!("`{name}` is not a valid {what}: use 1-255 letters, digits, `-` or `_`"));
    false
}
