//! The object store a published fleet lives in (`publish --to s3://…`, `run --source s3://…`): one object per
//! fleet, written only on a condition on the version the writer read, so two writers cannot silently overwrite
//! each other. The port speaks mcpfleet's types; `aws::s3` is its adapter.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;

use super::BackendError;
use crate::spec::bundle::{Bundle, MAX_BUNDLE_BYTES};

/// Where a published fleet lives: `s3://BUCKET/KEY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectUrl {
    pub bucket: String,
    pub key: String,
}

impl ObjectUrl {
    /// Parses `s3://BUCKET/KEY` (a bucket name as S3 allows it, a non-empty key).
    pub fn parse(s: &str) -> Result<ObjectUrl, String> {
        let rest = s.strip_prefix("s3://").ok_or_else(|| format!("`{s}` is not an s3://BUCKET/KEY URL"))?;
        let (bucket, key) = rest.split_once('/').ok_or_else(|| format!("`{s}` has no key: write s3://BUCKET/KEY"))?;
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !bucket_ok {
            return Err(format!(
                "`{bucket}` in `{s}` is not an S3 bucket name (3-63 lowercase letters, digits, `.` and `-`)"
            ));
        }
        if key.is_empty() || key.len() > 1024 || key.ends_with('/') {
            return Err(format!("`{s}` does not name an object: the key must be 1-1024 bytes, not ending in `/`"));
        }
        Ok(ObjectUrl { bucket: bucket.to_string(), key: key.to_string() })
    }
}

impl fmt::Display for ObjectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// What a HeadObject (or the head of a GetObject) says about the current version of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    /// The entity tag, quotes included, as conditional requests take it back.
    pub etag: String,
    /// The version id, when the bucket has versioning.
    pub version_id: Option<String>,
    /// The object's user metadata (`x-amz-meta-*`), keys lowercase.
    pub metadata: BTreeMap<String, String>,
    /// When it was written (RFC 3339), as S3 reports it.
    pub last_modified: Option<String>,
}

/// An object's current version and its content.
#[derive(Debug, Clone)]
pub struct Object {
    pub head: ObjectHead,
    /// The content; only its first `limit + 1` bytes when it is larger than the limit asked for, and empty when
    /// the store said beforehand that it was.
    pub body: Vec<u8>,
    /// The object's size in bytes.
    pub size: u64,
}

/// The condition a write is made on: the version the writer read is still the current one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// `If-None-Match: *`: there is no object yet.
    Absent,
    /// `If-Match: ETAG`: the object is still the version with this entity tag.
    Matches(String),
}

/// What a conditional write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The object now holds the new content.
    Done(ObjectHead),
    /// Another writer changed the object since it was read (HTTP 412, or 409 for a concurrent conditional write
    /// S3 was still completing); nothing was written.
    Conflict,
}

/// One version of an object, from a versioned bucket's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    pub version_id: String,
    pub etag: String,
    pub last_modified: Option<String>,
    pub latest: bool,
    pub size: u64,
}

/// An object store: S3.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// The current version's head, or `None` when there is no object.
    async fn head(&self, url: &ObjectUrl) -> Result<Option<ObjectHead>, BackendError>;
    /// The head of one version (`None` when it is gone).
    async fn head_version(&self, url: &ObjectUrl, version_id: &str) -> Result<Option<ObjectHead>, BackendError>;
    /// The current version and its content, never more than `limit + 1` bytes of it (a larger object is not
    /// held in memory whole: its size tells); `None` when there is no object.
    async fn get(&self, url: &ObjectUrl, limit: usize) -> Result<Option<Object>, BackendError>;
    /// Writes `body` with `metadata` on `condition`.
    async fn put(
        &self,
        url: &ObjectUrl,
        body: Vec<u8>,
        metadata: BTreeMap<String, String>,
        condition: WriteCondition,
    ) -> Result<Written, BackendError>;
    /// The object's versions, newest first (one, without a version id, when the bucket is not versioned).
    async fn versions(&self, url: &ObjectUrl) -> Result<Vec<ObjectVersion>, BackendError>;
}

/// Why a published fleet could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The store could not be asked (network, permissions, a missing bucket).
    #[error("reading the published fleet: {0}")]
    Store(#[from] BackendError),
    /// There is no fleet there, or it is not one `publish` wrote.
    #[error("{}", .0.coded())]
    Invalid(crate::spec::Diagnostic),
}

/// The fleet published at `url`: its files (named `URL#FILE`) and the version they are.
pub async fn read_bundle(store: &dyn ObjectStore, url: &ObjectUrl) -> Result<(Bundle, ObjectHead), ReadError> {
    let origin = url.to_string();
    let Some(object) = store.get(url, MAX_BUNDLE_BYTES).await? else {
        return Err(ReadError::Invalid(crate::spec::Diagnostic {
            file: origin,
            line: 0,
            code: crate::spec::Code::BundleMissing,
            path: String::new(),
            message: "no fleet is published here (run `mcpfleet publish --to` this URL first)".into(),
        }));
    };
    let size = object.size.max(object.body.len() as u64);
    let decoded = if size > MAX_BUNDLE_BYTES as u64 {
        Bundle::decode_oversized(&origin, size)
    } else {
        Bundle::decode(&origin, &object.body)
    };
    Ok((decoded.map_err(ReadError::Invalid)?, object.head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_bucket_and_a_key() {
        let u = ObjectUrl::parse("s3://fleet-config/prod/fleet.json").unwrap();
        assert_eq!((u.bucket.as_str(), u.key.as_str()), ("fleet-config", "prod/fleet.json"));
        assert_eq!(u.to_string(), "s3://fleet-config/prod/fleet.json");
        for bad in
            ["fleet-config/x", "s3://fleet-config", "s3://fleet-config/", "s3://Fleet/x", "s3://ab/x", "s3://b-/x"]
        {
            assert!(ObjectUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
