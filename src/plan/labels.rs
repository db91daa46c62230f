//! Labels: a service's `metadata.labels` are desired state, carried as AWS tags on the service and its task
//! definition. mcpfleet records the keys it put there (`mcpfleet.io/labels`), so a label removed from the
//! manifests is removed from AWS while tags that others added (cost allocation, ownership) are left alone.
//! Labels are not part of the spec hash: changing one retags, it never starts a deployment.

use std::collections::{BTreeMap, BTreeSet};

use super::Change;
use crate::backend::Tags;
use crate::render::ecs::EcsService;
use crate::render::json_of;
use crate::state::{TAG_LABELS, TAG_PREFIX};

/// The labels a desired service carries: its tags outside mcpfleet's prefix.
pub fn desired(d: &EcsService) -> BTreeMap<&str, &str> {
    let tags = d.create_service.tags.iter();
    tags.filter(|t| !t.key.starts_with(TAG_PREFIX)).map(|t| (t.key.as_str(), t.value.as_str())).collect()
}

/// The label keys mcpfleet put on a resource: those its `mcpfleet.io/labels` tag lists. A resource tagged before
/// that tag existed owns the desired keys it carries (mcpfleet put them there), and nothing else is known to be
/// its own.
fn owned<'t>(observed: &'t Tags, desired: &BTreeMap<&'t str, &str>) -> BTreeSet<&'t str> {
    match observed.get(TAG_LABELS) {
        Some(keys) => keys.split(',').filter(|k| !k.is_empty()).collect(),
        None => observed.keys().map(String::as_str).filter(|k| desired.contains_key(k)).collect(),
    }
}

/// Label changes from what a service carries to what is desired: `labels.KEY` added, changed, or (for keys
/// mcpfleet owns) removed.
pub fn changes(d: &EcsService, observed: &Tags) -> Vec<Change> {
    let want = desired(d);
    let mut out: Vec<Change> = want
        .iter()
        .filter(|(k, v)| observed.get(**k).map(String::as_str) != Some(**v))
        .map(|(k, v)| Change { path: format!("labels.{k}"), from: observed.get(*k).map(json_of), to: Some(json_of(v)) })
        .collect();
    for k in removed(d, observed) {
        if let Some(v) = observed.get(&k) {
            out.push(Change { path: format!("labels.{k}"), from: Some(json_of(v)), to: None });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Keys to remove from a resource tagged `observed`: labels mcpfleet owns that are no longer desired, and the
/// ownership tag itself once no label is left.
pub fn removed(d: &EcsService, observed: &Tags) -> Vec<String> {
    let want = desired(d);
    let mut keys: Vec<String> = owned(observed, &want)
        .into_iter()
        .filter(|k| !want.contains_key(k) && observed.contains_key(*k))
        .map(String::from)
        .collect();
    if want.is_empty() && observed.contains_key(TAG_LABELS) {
        keys.push(TAG_LABELS.into());
    }
    keys
}

/// The tags that put `d`'s labels on a resource, with the ownership tag.
pub fn tags(d: &EcsService) -> Tags {
    let tags = d.create_service.tags.iter();
    tags.filter(|t| !t.key.starts_with(TAG_PREFIX) || t.key == TAG_LABELS)
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect()
}
