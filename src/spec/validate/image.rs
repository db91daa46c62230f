//! `spec.image`: a reference in the distribution grammar with a tag or a digest (resolved against the registry
//! later, by `reconcile::resolve`).

use super::{DocCtx, p};
use crate::spec::code::Code;
use crate::spec::image::ImageRef;

pub(super) fn check_image(ctx: &mut DocCtx, image: &str) -> Option<ImageRef> {
    reference(ctx, Code::ImageRef, &["spec", "image"], ImageRef::parse(image))
}

/// A parsed reference, or the reason it is none reported under `code` at `path`.
pub(super) fn reference(
    ctx: &mut DocCtx,
    code: Code,
    path: &[&'static str],
    parsed: Result<ImageRef, String>,
) -> Option<ImageRef> {
    parsed.map_err(|e| ctx.err(code, &p(path), e)).ok()
}
