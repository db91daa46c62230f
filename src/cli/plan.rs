//! `mcpfleet plan`: resolve digests and ARNs (read-only), diff desired against observed, print the plan.

use std::io::IsTerminal;

use mcpfleet::plan::{Action, Plan};
use mcpfleet::reconcile;

use super::{Cli, EXIT_OK, Files, Output};

/// Exit code of `plan --detailed-exitcode` when something would change.
pub const EXIT_CHANGES: u8 = 2;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub files: Files,
    /// Exit 2 when the plan has changes (0 when it has none, 1 on error).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// `json` prints {"services": [{name, cluster, action, changes: [{path, from, to}]}]}.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

pub async fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let fleet = super::load_fleet(&args.files)?;
    let conn = super::backend::connect(cli).await?;
    let desired = reconcile::desired_state(&fleet, &conn.backend).await?;
    let observed = reconcile::observe(&desired, conn.backend.ecs.as_ref(), true).await?;
    let plan = reconcile::plan_fleet(&desired, &observed, conn.backend.ecs.as_ref()).await?;
    match args.output {
        Output::Json => {
            let mut doc = serde_json::to_value(&plan)?;
            doc["apiCalls"] = serde_json::to_value(conn.api_calls())?;
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Output::Text => print!("{}", render_plan(&plan, std::io::stdout().is_terminal())),
    }
    Ok(if args.detailed_exitcode && plan.has_changes() { EXIT_CHANGES } else { EXIT_OK })
}

/// The plan for people: one line per service, indented field changes, a summary.
pub fn render_plan(plan: &Plan, colour: bool) -> String {
    let paint = |code: &str, s: &str| if colour { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() };
    let mut out = String::new();
    for s in &plan.services {
        let (mark, code, word) = match s.action {
            Action::Create => ("+", "32", "create"),
            Action::Update => ("~", "33", "update"),
            Action::Delete => ("-", "31", "delete (with --prune)"),
            Action::Noop => ("=", "2", "no change"),
        };
        let mut line = format!("{} {} ({}): {word}", paint(code, mark), s.name, s.cluster);
        if let Some(r) = &s.reason {
            line.push_str(&format!(" - {r}"));
        }
        out.push_str(&line);
        out.push('\n');
        for c in &s.changes {
            let show = |v: &Option<serde_json::Value>| v.as_ref().map_or("(none)".to_string(), |v| v.to_string());
            out.push_str(&format!("    {}: {} -> {}\n", c.path, show(&c.from), show(&c.to)));
        }
    }
    out.push_str(&format!(
        "Plan: {} to create, {} to update, {} to delete, {} unchanged.\n",
        plan.count(Action::Create),
        plan.count(Action::Update),
        plan.count(Action::Delete),
        plan.count(Action::Noop)
    ));
    out
}
