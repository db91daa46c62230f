//! `metadata.labels`: they become AWS tags on the service and task definition, so they follow AWS's tag rules
//! and leave room for mcpfleet's own tags.

use std::collections::BTreeMap;

use super::{DocCtx, p, with};
use crate::spec::code::Code;

re!(TAG_CHARS, r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$");

/// Labels a service may have: AWS allows 50 tags per resource and mcpfleet keeps its state in up to ten.
const MAX_LABELS: usize = 40;

pub(super) fn check_labels(ctx: &mut DocCtx, labels: &BTreeMap<String, String>) {
    let base = p(&["metadata", "labels"]);
    if labels.len() > MAX_LABELS {
        ctx.err(
            Code::TooManyLabels,
            &base,
            format!("{} labels given; at most {MAX_LABELS} fit beside mcpfleet's own tags", labels.len()),
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
