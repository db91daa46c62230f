//! `spec.image`: a reference in the distribution grammar with a tag or a digest (resolved against the registry
//! later, by `reconcile::resolve`).

use super::{DocCtx, p};
use crate::spec::code::Code;
use crate::spec::image::ImageRef;

pub(super) fn check_image(ctx: &mut DocCtx, image: &str) -> Option<ImageRef> {
    match ImageRef::parse(image) {
        Ok(i) => Some(i),
        Err(e) => {
            ctx.err(Code::ImageRef, &p(&["spec", "image"]), e);
            None
        }
    }
}
