//! Manifest reloading: the controller watches the files under `-f` (modification time and size of each, listed by
//! the same [`spec::manifest_files`] the loader uses) and reloads when they change. A broken file keeps the last
//! valid fleet: it is reported, never acted on.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::spec::{self, ValidFleet, ValidService};

use super::schedule::Key;

/// What a reload found.
pub enum Reload {
    /// Nothing changed on disk since the last load.
    Unchanged,
    /// A valid fleet was loaded; these services are new or their spec differs from the last valid fleet's.
    Loaded { changed: Vec<Key> },
    /// The files on disk are invalid (one line per diagnostic); the last valid fleet stays.
    Invalid(Vec<String>),
}

/// The manifests under `-f`, and the last valid fleet read from them.
pub struct Manifests {
    paths: Vec<PathBuf>,
    options: spec::LoadOptions,
    fingerprint: Vec<(PathBuf, Option<SystemTime>, u64)>,
    fleet: Option<ValidFleet>,
}

impl Manifests {
    pub fn new(paths: Vec<PathBuf>, options: spec::LoadOptions) -> Manifests {
        Manifests { paths, options, fingerprint: vec![], fleet: None }
    }

    /// The last valid fleet.
    pub fn fleet(&self) -> Option<&ValidFleet> {
        self.fleet.as_ref()
    }

    /// Whether the files differ from those last loaded.
    pub fn changed_on_disk(&self) -> bool {
        fingerprint(&self.paths) != self.fingerprint
    }

    /// Reloads when the files changed, or when no valid fleet was ever loaded.
    pub fn reload(&mut self) -> Reload {
        let fp = fingerprint(&self.paths);
        if fp == self.fingerprint && self.fleet.is_some() {
            return Reload::Unchanged;
        }
        self.fingerprint = fp;
        match spec::load_paths_with(&self.paths, &self.options) {
            Ok(fleet) => {
                let changed = changed_services(self.fleet.as_ref(), &fleet);
                self.fleet = Some(fleet);
                Reload::Loaded { changed }
            }
            Err(diags) => Reload::Invalid(diags.0.iter().map(ToString::to_string).collect()),
        }
    }
}

/// The services of `after` that are new or whose spec differs from `before`'s.
pub(super) fn changed_services(before: Option<&ValidFleet>, after: &ValidFleet) -> Vec<Key> {
    let before: BTreeMap<(&str, &str), &ValidService> =
        before.iter().flat_map(|f| &f.services).map(|s| ((s.cluster.as_str(), s.name.as_str()), s)).collect();
    after
        .services
        .iter()
        .filter(|s| before.get(&(s.cluster.as_str(), s.name.as_str())) != Some(s))
        .map(|s| (s.cluster.clone(), s.name.clone()))
        .collect()
}

/// Modification times and sizes of every manifest, to notice edits.
fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    let mut out = Vec::new();
    for p in paths {
        // A directory that cannot be listed has no files to watch; the loader reports why.
        let files = if p.is_dir() { spec::manifest_files(p).unwrap_or_default() } else { vec![p.clone()] };
        for f in files {
            let meta = std::fs::metadata(&f).ok();
            out.push((f, meta.as_ref().and_then(|m| m.modified().ok()), meta.map_or(0, |m| m.len())));
        }
    }
    out
}
