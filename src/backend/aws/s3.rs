//! The object store over aws-sdk-s3: the published fleet's one object, read with HeadObject/GetObject and
//! written with PutObject on `If-Match`/`If-None-Match`.
//!
//! Against an endpoint given by `AWS_ENDPOINT_URL` (an S3-compatible store or an emulator on loopback) requests
//! use path-style addressing: such endpoints have no per-bucket host names.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::date_time::Format;

use crate::backend::store::{Object, ObjectHead, ObjectStore, ObjectUrl, ObjectVersion, WriteCondition, Written};
use crate::backend::{BackendError, Op};

/// The S3 adapter.
pub struct S3 {
    client: aws_sdk_s3::Client,
}

impl S3 {
    pub fn new(config: &aws_config::SdkConfig, requests: super::RequestCounter) -> S3 {
        let path_style = config.endpoint_url().is_some();
        let conf = aws_sdk_s3::config::Builder::from(config).force_path_style(path_style).interceptor(requests).build();
        S3 { client: aws_sdk_s3::Client::from_conf(conf) }
    }

    /// HeadObject of the current version, or of `version_id`.
    async fn head_of(&self, url: &ObjectUrl, version_id: Option<&str>) -> Result<Option<ObjectHead>, BackendError> {
        let out = self
            .client
            .head_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .set_version_id(version_id.map(str::to_string))
            .send()
            .await;
        match out {
            Ok(o) => Ok(Some(ObjectHead {
                etag: o.e_tag().unwrap_or_default().to_string(),
                version_id: o.version_id().map(str::to_string),
                metadata: metadata(o.metadata()),
                last_modified: date(o.last_modified()),
            })),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(super::map_err(Op::HeadObject, e)),
        }
    }
}

fn date(d: Option<&aws_smithy_types::DateTime>) -> Option<String> {
    d.and_then(|d| d.fmt(Format::DateTime).ok())
}

fn metadata(m: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    m.map(|m| m.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect()).unwrap_or_default()
}

/// Whether a service error is S3's "no such object" (HeadObject answers a bare 404 without a code).
fn is_missing<E: aws_smithy_types::error::metadata::ProvideErrorMetadata>(
    err: &aws_smithy_runtime_api::client::result::SdkError<E, super::HttpResponse>,
) -> bool {
    use aws_smithy_runtime_api::client::result::SdkError;
    match err {
        SdkError::ServiceError(se) => {
            se.raw().status().as_u16() == 404 && !matches!(se.err().code(), Some("NoSuchBucket"))
        }
        _ => false,
    }
}

#[async_trait]
impl ObjectStore for S3 {
    async fn head(&self, url: &ObjectUrl) -> Result<Option<ObjectHead>, BackendError> {
        self.head_of(url, None).await
    }

    async fn head_version(&self, url: &ObjectUrl, version_id: &str) -> Result<Option<ObjectHead>, BackendError> {
        self.head_of(url, Some(version_id)).await
    }

    async fn get(&self, url: &ObjectUrl, limit: usize) -> Result<Option<Object>, BackendError> {
        let out = match self.client.get_object().bucket(&url.bucket).key(&url.key).send().await {
            Ok(o) => o,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(super::map_err(Op::GetObject, e)),
        };
        let head = ObjectHead {
            etag: out.e_tag().unwrap_or_default().to_string(),
            version_id: out.version_id().map(str::to_string),
            metadata: metadata(out.metadata()),
            last_modified: date(out.last_modified()),
        };
        let size = out.content_length().map_or(0, |n| n.max(0) as u64);
        let mut body = Vec::new();
        if size > limit as u64 {
            return Ok(Some(Object { head, body, size }));
        }
        let mut stream = out.body;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| BackendError::Unavailable {
                operation: Op::GetObject,
                message: format!("reading {url}: {e}"),
            })?;
            body.extend_from_slice(&chunk);
            if body.len() > limit {
                break;
            }
        }
        Ok(Some(Object { head, size: size.max(body.len() as u64), body }))
    }

    async fn put(
        &self,
        url: &ObjectUrl,
        body: Vec<u8>,
        metadata: BTreeMap<String, String>,
        condition: WriteCondition,
    ) -> Result<Written, BackendError> {
        let mut req = self
            .client
            .put_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .content_type("application/json")
            .set_metadata(Some(metadata.clone().into_iter().collect()))
            .body(ByteStream::from(body));
        req = match condition {
            WriteCondition::Absent => req.if_none_match("*"),
            WriteCondition::Matches(etag) => req.if_match(etag),
        };
        match req.send().await {
            Ok(o) => Ok(Written::Done(ObjectHead {
                etag: o.e_tag().unwrap_or_default().to_string(),
                version_id: o.version_id().map(str::to_string),
                metadata,
                last_modified: None,
            })),
            Err(aws_smithy_runtime_api::client::result::SdkError::ServiceError(se))
                if matches!(se.raw().status().as_u16(), 409 | 412) =>
            {
                Ok(Written::Conflict)
            }
            Err(e) => Err(super::map_err(Op::PutObject, e)),
        }
    }

    async fn versions(&self, url: &ObjectUrl) -> Result<Vec<ObjectVersion>, BackendError> {
        let mut out = Vec::new();
        // ListObjectVersions pages by two markers; the SDK has no paginator for it.
        let mut markers: (Option<String>, Option<String>) = (None, None);
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&url.bucket)
                .prefix(&url.key)
                .set_key_marker(markers.0.take())
                .set_version_id_marker(markers.1.take())
                .send()
                .await
                .map_err(|e| super::map_err(Op::ListObjectVersions, e))?;
            for v in page.versions().iter().filter(|v| v.key() == Some(url.key.as_str())) {
                out.push(ObjectVersion {
                    version_id: v.version_id().unwrap_or("null").to_string(),
                    etag: v.e_tag().unwrap_or_default().to_string(),
                    last_modified: date(v.last_modified()),
                    latest: v.is_latest().unwrap_or(false),
                    size: v.size().map_or(0, |s| s.max(0) as u64),
                });
            }
            if page.is_truncated() != Some(true) || page.next_key_marker().is_none() {
                break;
            }
            markers = (page.next_key_marker().map(str::to_string), page.next_version_id_marker().map(str::to_string));
        }
        out.sort_by(|a, b| b.latest.cmp(&a.latest).then_with(|| b.last_modified.cmp(&a.last_modified)));
        Ok(out)
    }
}
