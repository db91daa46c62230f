//! `mcpfleet history`: the revisions a service ran, newest first, with image, digest, outcome and, for verified
//! revisions, the MCP tools they offered and what changed.

use mcpfleet::reconcile::rollout::{self, Revision, RevisionTools};

use super::table::{self, Cell, Column, Layout, Tone};
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
    /// Print every value in full (whole digests), however wide the terminal.
    #[arg(long)]
    pub wide: bool,
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

/// The revisions as a table, newest first; digests cut to 19 characters unless `wide`.
fn render_revisions(revisions: &[Revision], wide: bool, layout: Layout) -> String {
    const COLUMNS: [Column; 7] = [
        Column::right("REVISION").kept(),
        Column::left("IMAGE"),
        Column::left("DIGEST"),
        Column::left("ARCH"),
        Column::left("REGISTERED"),
        Column::left("TOOLS"),
        Column::left("OUTCOME"),
    ];
    let rows = revisions
        .iter()
        .map(|r| {
            let when = humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(r.registered_at),
            );
            // The running revision and a superseded one carry no recorded outcome.
            let tone = match mcpfleet::state::Outcome::parse(&r.outcome) {
                _ if r.inactive => Tone::Quiet,
                Some(mcpfleet::state::Outcome::Completed) => Tone::Good,
                Some(mcpfleet::state::Outcome::Failed | mcpfleet::state::Outcome::RolledBack) => Tone::Bad,
                None => Tone::Plain,
            };
            vec![
                r.revision.to_string().into(),
                r.image_tag.as_deref().unwrap_or("-").into(),
                super::status::digest_shown(r.digest.as_deref(), wide).into(),
                r.architecture.as_deref().unwrap_or("-").into(),
                when.to_string().into(),
                r.tools.as_ref().map_or_else(|| "-".to_string(), tool_counts).into(),
                Cell::toned(if r.inactive { format!("{} (inactive)", r.outcome) } else { r.outcome.clone() }, tone),
            ]
        })
        .collect();
    table::render(layout, &COLUMNS, rows)
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
            print!("{}", render_revisions(&revisions, args.wide, Layout::stdout(args.wide)));
            for r in &revisions {
                if let Some(line) = r.tools.as_ref().and_then(tool_changes) {
                    println!("{}: {line}", mcpfleet::state::short(&r.task_definition));
                }
            }
        }
    }
    Ok(EXIT_OK)
}
