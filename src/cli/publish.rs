//! `mcpfleet publish`: CI's side of running a controller from a store. The manifests are validated and resolved
//! (read-only, as `plan` does), then written as one object (`spec::bundle`) with who published it, why and from
//! which commit. The write is conditional on the version this publish read (`If-Match` on its ETag, or
//! `If-None-Match: *` for the first), so of two concurrent publishes one wins and the other changes nothing and
//! says who won. An unchanged fleet is not written at all. `--history` lists a versioned bucket's versions.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mcpfleet::backend::store::{ObjectHead, ObjectStore, ObjectUrl, ReadError, WriteCondition, Written, read_bundle};
use mcpfleet::spec::bundle::{Bundle, Publication};

use super::{Cli, EXIT_ERROR, EXIT_OK, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A manifest file or a directory of them; repeatable.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "PATH",
        num_args = 1..,
        required_unless_present = "history",
        conflicts_with = "history"
    )]
    pub paths: Vec<PathBuf>,
    /// The object the fleet is published as (what `run --source` reads).
    #[arg(long, value_name = "s3://BUCKET/KEY", value_parser = ObjectUrl::parse)]
    pub to: ObjectUrl,
    /// Why: recorded with the publication and shown by --history (and to a publish that loses a race).
    #[arg(long, default_value = "")]
    pub message: String,
    /// List the published versions (a versioned bucket keeps them all) with their metadata, newest first.
    #[arg(long)]
    pub history: bool,
    /// `json` prints one document.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

pub async fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let store = mcpfleet::backend::aws::object_store(cli.region.clone(), &Default::default()).await;
    if args.history {
        return history(&store, args).await;
    }
    let (files, read_problems) = mcpfleet::spec::read_paths(&args.paths);
    let loaded = match mcpfleet::spec::load_sources_with(&files, &cli.load_options()) {
        Ok(fleet) if read_problems.is_empty() => Ok(fleet),
        Ok(_) => Err(mcpfleet::spec::Diagnostics(read_problems)),
        Err(mcpfleet::spec::Diagnostics(more)) => Err(mcpfleet::spec::Diagnostics([read_problems, more].concat())),
    };
    let fleet = super::checked(loaded)?;
    let services = fleet.services.len();
    // Resolution proves every image, secret and target group exists before anything is written.
    let prepared = super::Prepared::resolve(cli, fleet).await?;
    drop(prepared);

    let bundle = Bundle { files };
    let body = bundle.encode();
    let publication = Publication {
        publisher: publisher(),
        message: args.message.clone(),
        commit: ["GITHUB_SHA", "CI_COMMIT_SHA"].iter().find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty())),
        content_sha256: bundle.content_hash(),
    };
    let url = &args.to;
    let current = store.head(url).await?;
    if let Some(head) = &current
        && let Some(existing) = Publication::from_metadata(&head.metadata)
        && existing.content_sha256 == publication.content_sha256
    {
        let text =
            format!("already holds this fleet (version {}, published by {})", version(head), existing.describe());
        report(
            args.output,
            &outcome(url, head, false, &publication, services),
            &format!("{url} {text}; nothing written"),
        );
        return Ok(EXIT_OK);
    }
    let condition = current.as_ref().map_or(WriteCondition::Absent, |h| WriteCondition::Matches(h.etag.clone()));
    wait_at_barrier();
    match store.put(url, body, publication.to_metadata(), condition).await? {
        Written::Done(head) => {
            let hash = &publication.content_sha256;
            let text = format!("published {services} services to {url} (version {}, sha256 {hash})", version(&head));
            report(args.output, &outcome(url, &head, true, &publication, services), &text);
            Ok(EXIT_OK)
        }
        Written::Conflict => {
            let winner = match store.head(url).await {
                Ok(Some(h)) => Publication::from_metadata(&h.metadata)
                    .map_or_else(|| format!("a writer other than mcpfleet (ETag {})", h.etag), |p| p.describe()),
                Ok(None) => "a writer that has since deleted it".to_string(),
                Err(e) => format!("another publish (who could not be read: {e})"),
            };
            let message = format!(
                "{url} was published by {winner} after this publish read it; nothing written. Review the fleet now \
                 published (`mcpfleet plan --source {url}`) and publish again"
            );
            if args.output == Output::Json {
                println!("{:#}", serde_json::json!({ "error": message, "written": false, "winner": winner }));
            }
            eprintln!("error: {message}");
            Ok(EXIT_ERROR)
        }
    }
}

/// The version id, or the ETag in a bucket without versioning.
fn version(head: &ObjectHead) -> &str {
    head.version_id.as_deref().unwrap_or(&head.etag)
}

/// `publish -o json`'s document.
fn outcome(
    url: &ObjectUrl,
    head: &ObjectHead,
    written: bool,
    publication: &Publication,
    services: usize,
) -> serde_json::Value {
    serde_json::json!({
        "url": url.to_string(), "written": written, "unchanged": !written, "versionId": head.version_id,
        "etag": head.etag, "contentSha256": publication.content_sha256, "services": services,
    })
}

/// The publisher: the CI's actor, else the local user.
fn publisher() -> String {
    ["GITHUB_ACTOR", "GITLAB_USER_LOGIN", "USER"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}

fn report(output: Output, doc: &serde_json::Value, text: &str) {
    match output {
        Output::Json => println!("{doc:#}"),
        Output::Text => println!("{text}"),
    }
}

/// Tests make two publishes read the same version before either writes: with `MCPFLEET_PUBLISH_BARRIER=DIR`, a
/// publish that has read the current version creates `DIR/read-PID` and waits (at most a minute) until `DIR/go`
/// exists.
fn wait_at_barrier() {
    let Some(dir) = std::env::var_os("MCPFLEET_PUBLISH_BARRIER").map(PathBuf::from) else { return };
    let _ = std::fs::write(dir.join(format!("read-{}", std::process::id())), b"");
    let start = Instant::now();
    while !dir.join("go").exists() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `--history`: every version with what its publication recorded.
async fn history(store: &dyn ObjectStore, args: &Args) -> anyhow::Result<u8> {
    let url = &args.to;
    let mut rows = Vec::new();
    for v in store.versions(url).await? {
        let head = if v.version_id == "null" {
            store.head(url).await?
        } else {
            store.head_version(url, &v.version_id).await?
        };
        let publication = head.as_ref().and_then(|h| Publication::from_metadata(&h.metadata));
        rows.push(serde_json::json!({
            "versionId": v.version_id, "latest": v.latest, "lastModified": v.last_modified, "size": v.size,
            "publisher": publication.as_ref().map(|p| &p.publisher),
            "commit": publication.as_ref().and_then(|p| p.commit.as_ref()),
            "message": publication.as_ref().map(|p| &p.message),
            "contentSha256": publication.as_ref().map(|p| &p.content_sha256),
        }));
    }
    if rows.is_empty() {
        let err = ReadError::Invalid(mcpfleet::spec::Diagnostic {
            file: url.to_string(),
            line: 0,
            code: mcpfleet::spec::Code::BundleMissing,
            path: String::new(),
            message: "no fleet is published here".into(),
        });
        anyhow::bail!(err);
    }
    match args.output {
        Output::Json => println!("{:#}", serde_json::json!({ "url": url.to_string(), "versions": rows })),
        Output::Text => {
            println!("{:<38} {:<22} {:<16} {:<12} MESSAGE", "VERSION", "PUBLISHED", "BY", "COMMIT");
            for r in &rows {
                let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
                let latest = if r["latest"] == true { " *" } else { "" };
                let commit: String = s("commit").chars().take(12).collect();
                println!(
                    "{:<38} {:<22} {:<16} {:<12} {}",
                    format!("{}{latest}", s("versionId")),
                    s("lastModified"),
                    s("publisher"),
                    commit,
                    s("message").replace('\n', " ")
                );
            }
        }
    }
    Ok(EXIT_OK)
}

/// The published fleet's files, or why there is none to read (diagnostics printed on stderr, as for files).
pub async fn read_published(store: &dyn ObjectStore, url: &ObjectUrl) -> anyhow::Result<Bundle> {
    match read_bundle(store, url).await {
        Ok((bundle, _)) => Ok(bundle),
        Err(ReadError::Invalid(d)) => {
            eprintln!("{}", d.coded());
            Err(super::ManifestProblems(vec![d]).into())
        }
        Err(e) => Err(e.into()),
    }
}
