//! Which secret versions a service's tasks were started with, as its tags record them, and the restart that a
//! rotation starts.
//!
//! ECS reads `secrets` only when a task starts: after a rotation the running tasks keep the old value until they
//! are replaced. So when a service is deployed, mcpfleet records, for every secret it reads by stage (not pinned
//! to a `versionId`), the version id that held the stage then; a later resolution that finds another version
//! there is a rotation, and the service is restarted (a new deployment of the same revision).
//!
//! ECS allows 50 tags of 256 characters per resource, so the record is one compact tag,
//! `mcpfleet.io/secret-versions`: entries `<key>=<version>` joined by `/`, where `<key>` is 6 hex digits of the
//! SHA-256 of the secret's ARN and stage and `<version>` the first 12 hex digits of a UUID version id (those that
//! Secrets Manager makes) or `h` and 11 hex digits of the SHA-256 of any other id (an operator's
//! ClientRequestToken). A list that does not fit in 256 characters is recorded as `#` and 16 hex digits of the
//! SHA-256 of the entries: a rotation is still seen, without knowing which secret rotated.
//!
//! A restart is a rollout of the revision the service already runs: its failure cannot be rolled back (the old
//! value is gone) and holds nothing back. The deployment a restart started is recorded in `mcpfleet.io/restart`
//! (`<deployment id>`, then `failed:<deployment id>` once its failure was reported), so whoever settles it later
//! knows it for a restart and reports its failure once. Pure: no I/O.

use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::backend::{ServiceState, Tags};

/// Service tag: the secret versions its tasks were started with (see the module documentation).
pub const TAG_SECRET_VERSIONS: &str = "mcpfleet.io/secret-versions";
/// Service tag: the deployment a secret rotation started, and whether its failure was reported.
pub const TAG_RESTART: &str = "mcpfleet.io/restart";

const MAX_TAG_VALUE: usize = 256;
const FAILED: &str = "failed:";

/// A secret a service's tasks read by stage, and the version holding that stage now.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretInUse {
    /// The secret as the manifest names it (name or ARN), for people.
    pub secret: String,
    pub arn: String,
    /// `AWSCURRENT` unless the reference names a `versionStage`.
    pub stage: String,
    /// The version id that holds the stage.
    pub version: String,
}

impl SecretInUse {
    fn key(&self) -> String {
        hex(&Sha256::digest(format!("{}#{}", self.arn, self.stage).as_bytes()), 3)
    }
}

fn hex(bytes: &[u8], n: usize) -> String {
    bytes.iter().take(n).map(|b| format!("{b:02x}")).collect()
}

/// What a version id is recorded as: the first 12 hex digits of a UUID, else `h` and a hash.
pub fn fingerprint(version: &str) -> String {
    let plain: String = version.chars().filter(|c| *c != '-').collect();
    let uuid = version.len() == 36 && plain.len() == 32 && plain.chars().all(|c| c.is_ascii_hexdigit());
    if uuid {
        plain[..12].to_ascii_lowercase()
    } else {
        format!("h{}", &hex(&Sha256::digest(version.as_bytes()), 6)[..11])
    }
}

/// The tag value recording `used`; None when the service reads no secret by stage.
pub fn record(used: &[SecretInUse]) -> Option<String> {
    if used.is_empty() {
        return None;
    }
    let mut entries: Vec<String> = used.iter().map(|u| format!("{}={}", u.key(), fingerprint(&u.version))).collect();
    entries.sort();
    entries.dedup();
    let text = entries.join("/");
    Some(if text.len() <= MAX_TAG_VALUE { text } else { format!("#{}", hex(&Sha256::digest(text.as_bytes()), 8)) })
}

/// A secret whose version changed since the service's tasks started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rotated {
    pub secret: String,
    pub stage: String,
    /// The recorded version (its fingerprint); None when the record is a hash of a long list.
    pub from: Option<String>,
    /// The version holding the stage now (its fingerprint).
    pub to: String,
}

impl fmt::Display for Rotated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = |v: &str| format!("{}…", v.chars().take(8).collect::<String>());
        match &self.from {
            Some(from) => {
                write!(f, "secret {} rotated ({} {} → {})", self.secret, self.stage, short(from), short(&self.to))
            }
            None => write!(f, "secret {} may have rotated ({} now {})", self.secret, self.stage, short(&self.to)),
        }
    }
}

/// The secrets of `used` that rotated since `recorded` (a service's tag value) was written. Nothing is known to
/// have rotated without a record (a service deployed before versions were recorded), nor for a reference the
/// record does not hold (a new reference changes the spec: its deployment records it).
pub fn rotated(used: &[SecretInUse], recorded: Option<&str>) -> Vec<Rotated> {
    let Some(recorded) = recorded.filter(|r| !r.is_empty()) else { return vec![] };
    let now = |u: &SecretInUse| fingerprint(&u.version);
    if recorded.starts_with('#') {
        if record(used).as_deref() == Some(recorded) {
            return vec![];
        }
        return used
            .iter()
            .map(|u| Rotated { secret: u.secret.clone(), stage: u.stage.clone(), from: None, to: now(u) })
            .collect();
    }
    let entries: Vec<(&str, &str)> = recorded.split('/').filter_map(|e| e.split_once('=')).collect();
    let mut out: Vec<Rotated> = used
        .iter()
        .filter_map(|u| {
            let key = u.key();
            let (_, was) = entries.iter().find(|(k, _)| *k == key)?;
            let to = now(u);
            (*was != to).then(|| Rotated {
                secret: u.secret.clone(),
                stage: u.stage.clone(),
                from: Some(was.to_string()),
                to,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.secret, &a.stage).cmp(&(&b.secret, &b.stage)));
    out.dedup();
    out
}

/// The rotations a service's record shows against `used`.
pub fn rotated_on(used: &[SecretInUse], state: &ServiceState) -> Vec<Rotated> {
    rotated(used, recorded(&state.tags))
}

/// A service's recorded secret versions, if any.
pub fn recorded(tags: &Tags) -> Option<&str> {
    tags.get(TAG_SECRET_VERSIONS).map(String::as_str).filter(|v| !v.is_empty())
}

/// A restart a rotation started, as the service's `mcpfleet.io/restart` tag records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restart<'a> {
    /// The deployment it started.
    pub deployment: &'a str,
    /// Its failure was reported.
    pub failed: bool,
}

impl<'a> Restart<'a> {
    pub fn parse(tags: &'a Tags) -> Option<Restart<'a>> {
        let value = tags.get(TAG_RESTART).map(String::as_str).filter(|v| !v.is_empty())?;
        Some(match value.strip_prefix(FAILED) {
            Some(deployment) => Restart { deployment, failed: true },
            None => Restart { deployment: value, failed: false },
        })
    }

    /// The restart `state` is in: its deployment is still one of the service's, the PRIMARY one or one that ECS's
    /// circuit breaker replaced by a rollback deployment of the same revision (whose tasks read the new version
    /// too, so it settles the restart).
    pub fn current(state: &'a ServiceState) -> Option<Restart<'a>> {
        let r = Restart::parse(&state.tags)?;
        state.deployments.iter().any(|d| d.id == r.deployment).then_some(r)
    }
}

/// The tags a restart writes once ECS started `deployment`: the versions the new tasks read, and the deployment.
pub fn restarted(used: &[SecretInUse], deployment: &str) -> Tags {
    let mut tags = Tags::new();
    tags.extend(record(used).map(|v| (TAG_SECRET_VERSIONS.to_string(), v)));
    tags.insert(TAG_RESTART.to_string(), deployment.to_string());
    tags
}

/// The tag that marks the failure of the restart `deployment` as reported.
pub fn restart_failed(deployment: &str) -> Tags {
    Tags::from([(TAG_RESTART.to_string(), format!("{FAILED}{deployment}"))])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uses(secret: &str, stage: &str, version: &str) -> SecretInUse {
        SecretInUse {
            secret: secret.into(),
            arn: format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{secret}-AbCdEf"),
            stage: stage.into(),
            version: version.into(),
        }
    }

    const V1: &str = "1f3a9c2e-4b7d-4e1a-9f00-0123456789ab";
    const V2: &str = "9c7d0e11-2233-4455-8899-aabbccddeeff";

    #[test]
    fn a_changed_version_is_a_rotation_named_by_its_secret_and_stage() {
        let before = [uses("prod/db", "AWSCURRENT", V1), uses("prod/key", "AWSCURRENT", V1)];
        let tag = record(&before).unwrap();
        assert!(tag.len() < 50, "{tag}");
        assert!(rotated(&before, Some(&tag)).is_empty());
        let after = [uses("prod/db", "AWSCURRENT", V2), uses("prod/key", "AWSCURRENT", V1)];
        let r = rotated(&after, Some(&tag));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].to_string(), "secret prod/db rotated (AWSCURRENT 1f3a9c2e… → 9c7d0e11…)");
        // Another stage of the same secret is another reference.
        assert!(rotated(&[uses("prod/db", "PENDING", V2)], Some(&tag)).is_empty());
    }

    #[test]
    fn nothing_recorded_is_no_rotation() {
        assert!(rotated(&[uses("a", "AWSCURRENT", V1)], None).is_empty());
        assert_eq!(record(&[]), None);
    }

    #[test]
    fn other_version_ids_are_hashed_and_tag_safe() {
        let a = fingerprint("rotation-2026-12-01-aaaaaaaaaaaaaaaaaaaaaaaa-01");
        let b = fingerprint("rotation-2026-12-01-aaaaaaaaaaaaaaaaaaaaaaaa-02");
        assert_ne!(a, b);
        assert_eq!(a.len(), 12);
        assert!(a.starts_with('h') && a[1..].chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn a_long_list_is_a_hash_that_still_sees_a_rotation() {
        let many: Vec<SecretInUse> = (0..20).map(|i| uses(&format!("s{i}"), "AWSCURRENT", V1)).collect();
        let tag = record(&many).unwrap();
        assert!(tag.starts_with('#') && tag.len() == 17, "{tag}");
        assert!(rotated(&many, Some(&tag)).is_empty());
        let mut after = many.clone();
        after[3].version = V2.into();
        let r = rotated(&after, Some(&tag));
        assert_eq!(r.len(), 20);
        assert!(r[0].from.is_none());
    }

    #[test]
    fn the_restart_marker_round_trips() {
        let tags = restarted(&[uses("a", "AWSCURRENT", V1)], "ecs-svc/1");
        assert_eq!(Restart::parse(&tags), Some(Restart { deployment: "ecs-svc/1", failed: false }));
        let failed = restart_failed("ecs-svc/1");
        assert_eq!(Restart::parse(&failed), Some(Restart { deployment: "ecs-svc/1", failed: true }));
    }
}
