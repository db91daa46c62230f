//! `mcpfleet history`: the revisions a service ran, newest first, with image, digest, outcome and, for verified
//! revisions, the MCP tools they offered and what changed.

use mcpfleet::reconcile::rollout::{self, RevisionTools};

use super::{Cli, EXIT_OK, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service (its ECS name).
    pub service: String,
    /// Its cluster.
    #[arg(long)]
    pub cluster: String,
    /// `json` prints {"service", "cluster", "revisions": [...]}.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// The added and removed tools of a verified revision, when it was compared with a good one and names are known.
fn added_removed(t: &RevisionTools) -> Option<(&[String], &[String])> {
    match (&t.compared_to, &t.added, &t.removed) {
        (Some(_), Some(added), Some(removed)) => Some((added, removed)),
        _ => None,
    }
}

/// `12 (+1 -2)`: the count, and how many tools came and went since the last good revision before it.
fn tool_counts(t: &RevisionTools) -> String {
    match added_removed(t) {
        Some((a, r)) if !a.is_empty() || !r.is_empty() => format!("{} (+{} -{})", t.count, a.len(), r.len()),
        _ => t.count.to_string(),
    }
}

/// `tools added since docs:1: x, y; removed: z`, when something changed.
fn tool_changes(t: &RevisionTools) -> Option<String> {
    let (added, removed) = added_removed(t).filter(|(a, r)| !a.is_empty() || !r.is_empty())?;
    let list = |l: &[String]| if l.is_empty() { "-".to_string() } else { l.join(", ") };
    Some(format!(
        "tools added since {}: {}; removed: {}",
        t.compared_to.as_deref().unwrap_or("-"),
        list(added),
        list(removed)
    ))
}

pub async fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let conn = super::backend::connect(cli).await?;
    let ecs = conn.backend.ecs.as_ref();
    let state = rollout::managed_service(ecs, &args.service, &args.cluster).await?;
    let revisions = rollout::history(ecs, &state).await?;
    match args.output {
        Output::Json => {
            let doc = serde_json::json!({ "service": args.service, "cluster": args.cluster, "revisions": revisions });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Output::Text => {
            println!(
                "{:>8}  {:<12} {:<20} {:<7} {:<25} {:<12} OUTCOME",
                "REVISION", "IMAGE", "DIGEST", "ARCH", "REGISTERED", "TOOLS"
            );
            for r in &revisions {
                let when = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(r.registered_at),
                );
                println!(
                    "{:>8}  {:<12} {:<20} {:<7} {:<25} {:<12} {}",
                    r.revision,
                    r.image_tag.as_deref().unwrap_or("-"),
                    r.digest.as_deref().map(|d| d.chars().take(19).collect::<String>()).unwrap_or_else(|| "-".into()),
                    r.architecture.as_deref().unwrap_or("-"),
                    when.to_string(),
                    r.tools.as_ref().map_or_else(|| "-".to_string(), tool_counts),
                    if r.inactive { format!("{} (inactive)", r.outcome) } else { r.outcome.clone() },
                );
            }
            for r in &revisions {
                if let Some(line) = r.tools.as_ref().and_then(tool_changes) {
                    println!("{}: {line}", mcpfleet::state::short(&r.task_definition));
                }
            }
        }
    }
    Ok(EXIT_OK)
}
