//! `spec.logging` (awslogs): group, region and stream prefix, merged field by field with FleetDefaults. The region
//! defaults to the ECR image's; an image elsewhere needs it written.

use super::{DocCtx, Seg, fits, p, with};
use crate::spec::code::Code;
use crate::spec::image::ImageRef;
use crate::spec::types::Logging;
use crate::spec::valid::ValidLogging;

re!(LOG_GROUP, r"^[A-Za-z0-9._/#-]+$");
re!(REGION, r"^[a-z]{2}(-[a-z]+)+-[0-9]$");
re!(STREAM_PREFIX, r"^[^:*]+$");

pub(super) fn check_logging(ctx: &mut DocCtx, path: &[Seg], logging: &Logging) {
    if let Some(group) = &logging.group
        && !fits(&LOG_GROUP, group, 512)
    {
        ctx.err(Code::LogGroup, &with(path, "group"), format!("`{group}` is not a CloudWatch Logs group name"));
    }
    if let Some(region) = &logging.region
        && !REGION.is_match(region)
    {
        ctx.err(
            Code::LogRegion,
            &with(path, "region"),
            format!("`{region}` is not an AWS region name such as us-east-1"),
        );
    }
    if let Some(prefix) = &logging.stream_prefix
        && !fits(&STREAM_PREFIX, prefix, 512)
    {
        ctx.err(Code::LogStreamPrefix, &with(path, "streamPrefix"), "must be 1-512 characters without `:` or `*`");
    }
}

pub(super) fn merge_logging(
    ctx: &mut DocCtx,
    own: Option<&Logging>,
    defaults: Option<&Logging>,
    image: Option<&ImageRef>,
    name: &str,
) -> Option<ValidLogging> {
    if let Some(l) = own {
        check_logging(ctx, &p(&["spec", "logging"]), l);
    }
    if own.is_none() && defaults.is_none() {
        return None;
    }
    let pick = |f: fn(&Logging) -> Option<&String>| own.and_then(f).or_else(|| defaults.and_then(f)).cloned();
    let group = pick(|l| l.group.as_ref());
    let region = pick(|l| l.region.as_ref()).or_else(|| image.and_then(ImageRef::ecr).map(|e| e.region));
    let at = p(&["spec", "logging"]);
    let Some(group) = group else {
        ctx.err(
            Code::LogGroupMissing,
            &with(&at, "group"),
            "required when logging is configured (here or in FleetDefaults)",
        );
        return None;
    };
    let Some(region) = region else {
        if image.is_some() {
            ctx.err(
                Code::LogRegionMissing,
                &with(&at, "region"),
                "required: the image is not in ECR, so its region cannot be assumed",
            );
        }
        return None;
    };
    Some(ValidLogging {
        group,
        region,
        stream_prefix: pick(|l| l.stream_prefix.as_ref()).unwrap_or_else(|| name.to_string()),
    })
}
