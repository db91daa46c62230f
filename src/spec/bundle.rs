//! A published fleet: every manifest file of a fleet in one document (`publish` writes it as one object, so a
//! controller never sees half a change), and what a publication records about itself (publisher, message, source
//! commit, content hash) as object metadata.
//!
//! The bundle keeps each file's name and text as they were read, so a controller validating it reports problems as
//! `s3://BUCKET/KEY#FILE:LINE: …`, in the author's own lines. Pure: no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Code, Diagnostic, SourceFile};

/// The bundle format's version.
pub const API_VERSION: &str = "mcpfleet.io/bundle/v1";

/// The largest bundle read: 8 manifests at the 8 MiB bound of a file. Beyond it an object is not one `publish`
/// wrote, and it is refused before it is held in memory whole.
pub const MAX_BUNDLE_BYTES: usize = 64 * 1024 * 1024;

/// Object metadata keys (`x-amz-meta-…`) of a publication.
const META_PUBLISHER: &str = "mcpfleet-publisher";
const META_MESSAGE: &str = "mcpfleet-message";
const META_COMMIT: &str = "mcpfleet-commit";
const META_HASH: &str = "mcpfleet-content-sha256";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Doc {
    api_version: String,
    files: Vec<DocFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocFile {
    name: String,
    text: String,
}

/// The manifest files of a fleet, in the order they were read.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub files: Vec<SourceFile>,
}

impl Bundle {
    /// The object's content: compact JSON, the same bytes for the same files.
    pub fn encode(&self) -> Vec<u8> {
        let doc = Doc {
            api_version: API_VERSION.to_string(),
            files: self.files.iter().map(|f| DocFile { name: f.name.clone(), text: f.text.clone() }).collect(),
        };
        // A struct of strings always serializes.
        serde_json::to_vec(&doc).unwrap_or_default()
    }

    /// The SHA-256 of [`Bundle::encode`], in hex: what tells an unchanged fleet from a changed one.
    pub fn content_hash(&self) -> String {
        use sha2::Digest;
        sha2::Sha256::digest(self.encode()).iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The refusal of an object of `size` bytes, above [`MAX_BUNDLE_BYTES`], without reading it.
    pub fn decode_oversized(origin: &str, size: u64) -> Result<Bundle, Diagnostic> {
        Err(Diagnostic {
            file: origin.to_string(),
            line: 0,
            code: Code::BundleTooLarge,
            path: String::new(),
            message: format!("{size} bytes is above the bound of 64 MiB"),
        })
    }

    /// Reads an object's content as a bundle. `origin` (the object's URL) names the files in diagnostics:
    /// `ORIGIN#FILE`.
    pub fn decode(origin: &str, bytes: &[u8]) -> Result<Bundle, Diagnostic> {
        let diag = |code: Code, message: String| Diagnostic {
            file: origin.to_string(),
            line: 0,
            code,
            path: String::new(),
            message,
        };
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Bundle::decode_oversized(origin, bytes.len() as u64);
        }
        let doc: Doc = serde_json::from_slice(bytes)
            .map_err(|e| diag(Code::BundleUnreadable, format!("not a fleet published by `mcpfleet publish`: {e}")))?;
        if doc.api_version != API_VERSION {
            return Err(diag(
                Code::BundleUnreadable,
                format!("apiVersion `{}` is not {API_VERSION}; publish it with this mcpfleet", doc.api_version),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut files = Vec::new();
        for f in doc.files {
            if !seen.insert(f.name.clone()) {
                return Err(diag(Code::BundleUnreadable, format!("the file `{}` is in the bundle twice", f.name)));
            }
            files.push(SourceFile { name: format!("{origin}#{}", f.name), text: f.text });
        }
        Ok(Bundle { files })
    }
}

/// What a publication records about itself, beside the content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Publication {
    /// Who published: the CI actor or the local user.
    pub publisher: String,
    /// `--message`, or empty.
    pub message: String,
    /// The source commit (`GITHUB_SHA`, `CI_COMMIT_SHA`), when published from CI.
    pub commit: Option<String>,
    /// [`Bundle::content_hash`].
    pub content_sha256: String,
}

/// What metadata values may hold as they are: printable ASCII except `%`. Anything else is percent-encoded, since
/// S3 carries metadata in HTTP headers.
const METADATA_ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');

impl Publication {
    /// As object metadata (values percent-encoded where HTTP headers could not carry them).
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, METADATA_ESCAPED).to_string();
        let mut m = BTreeMap::new();
        m.insert(META_PUBLISHER.to_string(), enc(&self.publisher));
        m.insert(META_MESSAGE.to_string(), enc(&self.message));
        m.insert(META_HASH.to_string(), self.content_sha256.clone());
        if let Some(c) = &self.commit {
            m.insert(META_COMMIT.to_string(), enc(c));
        }
        m
    }

    /// Read back from object metadata; `None` when the object was not written by `publish`.
    pub fn from_metadata(m: &BTreeMap<String, String>) -> Option<Publication> {
        let dec = |s: &String| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        Some(Publication {
            publisher: m.get(META_PUBLISHER).map(dec)?,
            message: m.get(META_MESSAGE).map(dec).unwrap_or_default(),
            commit: m.get(META_COMMIT).map(dec),
            content_sha256: m.get(META_HASH)?.clone(),
        })
    }

    /// `alice (commit 1a2b3c4, "raise search to 3 replicas")`: who and what, for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = &self.commit {
            parts.push(format!("commit {c}"));
        }
        if !self.message.is_empty() {
            parts.push(format!("{:?}", self.message));
        }
        if parts.is_empty() { self.publisher.clone() } else { format!("{} ({})", self.publisher, parts.join(", ")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> Bundle {
        Bundle {
            files: vec![
                SourceFile { name: "manifests/a.yaml".into(), text: "kind: McpService\n".into() },
                SourceFile { name: "manifests/b.yaml".into(), text: "x: é\n".into() },
            ],
        }
    }

    #[test]
    fn a_bundle_round_trips_with_its_files_named_after_the_object() {
        let b = bundle();
        let back = Bundle::decode("s3://b/k", &b.encode()).unwrap();
        let names: Vec<&str> = back.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["s3://b/k#manifests/a.yaml", "s3://b/k#manifests/b.yaml"]);
        assert_eq!(back.files[1].text, "x: é\n");
        assert_eq!(b.content_hash(), bundle().content_hash());
        let mut other = bundle();
        other.files[0].text.push('\n');
        assert_ne!(other.content_hash(), b.content_hash());
    }

    #[test]
    fn what_publish_did_not_write_is_refused_with_its_code() {
        let cases: [(&[u8], Code, &str); 4] = [
            (b"{\"apiVersion\": \"mcpfleet.io/bundle/v1\", \"files\": [", Code::BundleUnreadable, "not a fleet published"),
            (b"kind: McpService", Code::BundleUnreadable, "not a fleet published"),
            (b"{\"apiVersion\": \"v9\", \"files\": []}", Code::BundleUnreadable, "apiVersion `v9`"),
            (
                b"{\"apiVersion\": \"mcpfleet.io/bundle/v1\", \"files\": [{\"name\": \"a\", \"text\": \"\"}, {\"name\": \"a\", \"text\": \"\"}]}",
                Code::BundleUnreadable,
                "`a` is in the bundle twice",
            ),
        ];
        for (bytes, code, words) in cases {
            let d = Bundle::decode("s3://b/k", bytes).unwrap_err();
            assert_eq!((d.code, d.file.as_str()), (code, "s3://b/k"));
            assert!(d.message.contains(words), "{}", d.message);
        }
        let big = vec![b' '; MAX_BUNDLE_BYTES + 1];
        assert_eq!(Bundle::decode("s3://b/k", &big).unwrap_err().code, Code::BundleTooLarge);
    }

    #[test]
    fn a_publication_survives_metadata_whatever_its_message() {
        let p = Publication {
            publisher: "alice".into(),
            message: "café: 100% better\nsecond line".into(),
            commit: Some("1a2b3c4".into()),
            content_sha256: "ab".repeat(32),
        };
        let m = p.to_metadata();
        assert!(m.values().all(|v| v.bytes().all(|b| (0x20..0x7f).contains(&b))), "{m:?}");
        assert_eq!(Publication::from_metadata(&m), Some(p.clone()));
        assert_eq!(p.describe(), "alice (commit 1a2b3c4, \"café: 100% better\\nsecond line\")");
        assert_eq!(Publication::from_metadata(&BTreeMap::new()), None);
    }
}
