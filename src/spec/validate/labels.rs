//! `metadata.labels`: they become AWS tags on the service and task definition, so they follow AWS's tag rules
//! and leave room for mcpfleet's own tags.

use std::collections::BTreeMap;

use super::{DocCtx, p, with};
use crate::spec::code::Code;

re!(TAG_CHARS, r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$");

/// ECS allows 50 tags a resource; mcpfleet's own take up to 11 (state, and `mcpfleet.io/labels`).
pub(super) const MAX_LABELS: usize = 39;

pub(super) fn check_labels(ctx: &mut DocCtx, labels: &BTreeMap<String, String>) {
    let base = p(&["metadata", "labels"]);
    if labels.len() > MAX_LABELS {
        ctx.err(
            Code::TooManyLabels,
            &base,
            format!("{} labels given; at most {MAX_LABELS} fit beside mcpfleet's own tags", labels.len()),
        );
    }
    // mcpfleet records the keys it put there in one tag value (at most 256 characters), comma-separated.
    let keys_len = labels.keys().map(|k| k.chars().count()).sum::<usize>() + labels.len().saturating_sub(1);
    if keys_len > 256 {
        ctx.err(
            Code::LabelKeysTooLong,
            &base,
            format!(
                "label keys take {keys_len} characters together (with a comma between); at most 256 fit in the tag that records them"
            ),
        );
    }
    for (k, v) in labels {
        let at = with(&base, k.clone());
        // A length problem is told as one: the character message would send the user looking for a bad character.
        let key_len = k.chars().count();
        if key_len == 0 || key_len > 128 {
            ctx.err(
                Code::LabelKeyLength,
                &at,
                format!("label keys must be 1-128 characters long; this one has {key_len}"),
            );
        } else if !TAG_CHARS.is_match(k) {
            ctx.err(Code::LabelKeyChars, &at, "label keys must be 1-128 letters, digits, spaces or `_ . : / = + - @`");
        } else if k.to_ascii_lowercase().starts_with("aws:") || k.starts_with("mcpfleet.io/") {
            ctx.err(Code::LabelReserved, &at, "the prefixes `aws:` and `mcpfleet.io/` are reserved");
        }
        let value_len = v.chars().count();
        if value_len > 256 {
            ctx.err(
                Code::LabelValueLength,
                &at,
                format!("label values must be at most 256 characters long; this one has {value_len}"),
            );
        } else if !TAG_CHARS.is_match(v) {
            ctx.err(
                Code::LabelValueChars,
                &at,
                "label values must be 0-256 letters, digits, spaces or `_ . : / = + - @`",
            );
        }
    }
}
