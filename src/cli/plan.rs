//! `mcpfleet plan`: resolve digests and ARNs (read-only), diff desired against observed, print the plan.

use std::collections::BTreeMap;
use std::io::Write;

use super::backend::ApiCalls;

use mcpfleet::cost::{self, CostDelta};
use mcpfleet::plan::{Action, Plan, PlanReason, ServicePlan};
use mcpfleet::reconcile;

use super::cost::Prices;
use super::table::Layout;
use super::{Cli, EXIT_OK, Output, Source};

/// Exit code of `plan --detailed-exitcode` when something would change.
pub const EXIT_CHANGES: u8 = 2;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub source: Source,
    /// Exit 2 when the plan has changes (0 when it has none, 1 on error).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Plan as `apply --prune` would: deletes of managed services no longer in the manifests count as changes.
    /// Without it they are listed as what --prune would delete and leave the exit code alone.
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub prices: Prices,
    /// `json` prints {"services": [{name, cluster, action, changes: [{path, from, to}]}], "costDelta",
    /// "warnings": [...]}; `markdown` a table per changed service, for a pull request comment or a CI job summary.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = PlanOutput::Text)]
    pub output: PlanOutput,
    /// List the services that would not change too, one line each (by default they are counted on one line).
    #[arg(long)]
    pub show_unchanged: bool,
    /// Print every line in full, however wide the terminal.
    #[arg(long)]
    pub wide: bool,
}

/// What `plan` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanOutput {
    Text,
    Json,
    Markdown,
}

impl PlanOutput {
    /// The output an error is reported in: a JSON document only under `-o json`.
    pub fn errors(self) -> Output {
        if self == PlanOutput::Json { Output::Json } else { Output::Text }
    }
}

pub async fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let fleet = args.source.load(cli).await?;
    let prices = args.prices.load(cli)?;
    let prepared = super::Prepared::resolve(cli, fleet).await?;
    let observed = prepared.observe().await?;
    let ecs = prepared.conn.backend.ecs.as_ref();
    let mut described = BTreeMap::new();
    let opts = reconcile::PlanOptions { retry_failed: false, changes: true };
    let mut plan = reconcile::plan_fleet_described(&prepared.desired, &observed, ecs, opts, &mut described).await?;
    if !args.prune {
        plan = plan.without_prune();
    }
    let delta = async {
        let region = super::cost::region(cli).await.map_err(|e| format!("{e:#}"))?;
        let table = Prices::for_region(prices, &region).await.map_err(|e| format!("{e:#}"))?;
        let rates = table.region(&region).map_err(|e| e.to_string())?;
        let changes = reconcile::cost::plan_changes(&plan, &prepared.desired, &observed, ecs, described)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<CostDelta, String>(cost::cost_delta(&region, &table.source, rates, &changes))
    }
    .await;
    let cost_text = cost_line(&delta);
    match args.output {
        PlanOutput::Json => {
            let doc = PlanDoc {
                services: &plan.services,
                prune: args.prune,
                cost_delta: delta.as_ref().ok(),
                cost_unknown: delta.as_ref().err().map(String::as_str),
                warnings: prepared.warnings(),
                api_calls: prepared.conn.api_calls(),
            };
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
            out.flush()?;
        }
        PlanOutput::Text => {
            let layout = Layout::stdout(args.wide);
            for line in render_plan(&plan, layout.colour, args.show_unchanged, Some(&cost_text)).lines() {
                println!("{}", layout.fit_line(line));
            }
        }
        PlanOutput::Markdown => print!("{}", render_markdown(&plan, &prepared.warnings(), Some(&cost_text))),
    }
    Ok(if args.detailed_exitcode && has_changes(&plan) { EXIT_CHANGES } else { EXIT_OK })
}

/// `plan -o json`'s document, written out as it is serialized: a `serde_json::Value` of it and the text made from
/// that were two more copies of the plan in memory (at 10,000 services, 8 MB at the command's peak).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanDoc<'a> {
    services: &'a [ServicePlan],
    prune: bool,
    /// `null` when the cost change is unknown, with why in `costUnknown`.
    cost_delta: Option<&'a CostDelta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cost_unknown: Option<&'a str>,
    warnings: Vec<&'a str>,
    api_calls: ApiCalls,
}

/// The plan's cost change for its summary line: `Monthly cost: +$7.20 (USD, us-east-1, built-in table …).`, or
/// why it is unknown (never a zero it does not know).
pub fn cost_line(delta: &Result<CostDelta, String>) -> String {
    match delta {
        Ok(d) => format!("Monthly cost: {} ({}, {}, {}).", d.monthly.signed(), d.currency, d.region, d.prices),
        Err(why) => format!("Monthly cost change unknown: {why}."),
    }
}

/// Whether applying (with `--prune` or not, as the plan was made) would change anything.
pub fn has_changes(plan: &Plan) -> bool {
    plan.services.iter().any(|s| match s.action {
        Action::Noop | Action::Orphan => false,
        Action::Create | Action::Update | Action::Delete => true,
    })
}

/// The plan for people: one line per service that would change, indented field changes, a summary. The services
/// that would not change are one count line (a fleet of a thousand services that changes two shows those two),
/// or a line each with `show_unchanged`. Orphans (a plan made without `--prune`) are shown as what `--prune` would
/// delete and counted apart.
pub fn render_plan(plan: &Plan, colour: bool, show_unchanged: bool, cost: Option<&str>) -> String {
    let paint = |code: &str, s: &str| if colour { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() };
    let mut out = String::new();
    for s in plan.services.iter().filter(|s| show_unchanged || s.action != Action::Noop) {
        let (mark, code, word) = match s.action {
            Action::Create => ("+", "32", "create"),
            Action::Update if s.reason == Some(PlanReason::SecretRotated) => ("~", "33", "restart"),
            Action::Update => ("~", "33", "update"),
            Action::Delete => ("-", "31", "delete"),
            Action::Orphan => ("-", "2", "would be deleted with --prune"),
            Action::Noop => ("=", "2", "no change"),
        };
        let mut line = format!("{} {} ({}): {word}", paint(code, mark), s.name, s.cluster);
        if !s.rotated.is_empty() {
            let rotated: Vec<String> = s.rotated.iter().map(ToString::to_string).collect();
            line.push_str(&format!(" - {}", rotated.join(", ")));
        } else if let Some(r) = s.reason.as_ref().filter(|r| **r != PlanReason::KeptWithoutPrune) {
            line.push_str(&format!(" - {r}"));
        }
        out.push_str(&line);
        out.push('\n');
        for c in &s.changes {
            let show = |v: &Option<serde_json::Value>| v.as_ref().map_or("(none)".to_string(), |v| v.to_string());
            out.push_str(&format!("    {}: {} -> {}\n", c.path, show(&c.from), show(&c.to)));
        }
    }
    let unchanged = plan.count(Action::Noop);
    if !show_unchanged && unchanged > 0 {
        let services = if unchanged == 1 { "service" } else { "services" };
        out.push_str(&format!("{} {unchanged} {services} unchanged (--show-unchanged lists them)\n", paint("2", "=")));
    }
    out.push_str(&format!("Plan: {}.", counts(plan)));
    let orphans = plan.count(Action::Orphan);
    if orphans > 0 {
        out.push_str(&format!(" {orphans} no longer in the manifests would be deleted with --prune."));
    }
    if let Some(cost) = cost {
        out.push(' ');
        out.push_str(cost);
    }
    out.push('\n');
    out
}

/// `N to create, N to update, N to delete, N unchanged`.
fn counts(plan: &Plan) -> String {
    format!(
        "{} to create, {} to update, {} to delete, {} unchanged",
        plan.count(Action::Create),
        plan.count(Action::Update),
        plan.count(Action::Delete),
        plan.count(Action::Noop)
    )
}

/// The plan as Markdown: a summary line, then for each service that would change a heading and a table of its
/// changes; services without changes are counted, not listed. Values are shown as JSON in code spans.
pub fn render_markdown(plan: &Plan, warnings: &[&str], cost: Option<&str>) -> String {
    let cell = |v: &Option<serde_json::Value>| match v {
        // A `|` would end the cell, a backtick the code span, a newline the row.
        Some(v) => format!("`{}`", v.to_string().replace('|', "\\|").replace('`', "'").replace('\n', " ")),
        None => "*(none)*".to_string(),
    };
    let mut out = format!("**Plan:** {}", counts(plan));
    let orphans = plan.count(Action::Orphan);
    if orphans > 0 {
        out.push_str(&format!(", {orphans} would be deleted with `--prune`"));
    }
    out.push('.');
    if let Some(cost) = cost {
        out.push(' ');
        out.push_str(cost);
    }
    out.push('\n');
    for s in plan.services.iter().filter(|s| s.action != Action::Noop) {
        let word = match s.action {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Orphan => "would be deleted with `--prune`",
            Action::Noop => "no change",
        };
        out.push_str(&format!("\n### `{}` ({}): {word}\n", s.name, s.cluster));
        if let Some(r) = s.reason.as_ref().filter(|r| **r != PlanReason::KeptWithoutPrune) {
            out.push_str(&format!("\n{r}\n"));
        }
        if !s.changes.is_empty() {
            out.push_str("\n| field | from | to |\n|---|---|---|\n");
            for c in &s.changes {
                out.push_str(&format!("| `{}` | {} | {} |\n", c.path, cell(&c.from), cell(&c.to)));
            }
        }
    }
    if !warnings.is_empty() {
        out.push_str("\n**Warnings**\n\n");
        for w in warnings {
            out.push_str(&format!("- {w}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use mcpfleet::plan::{Change, ServicePlan};
    use serde_json::json;

    use super::*;

    fn service(name: &str, action: Action, reason: Option<PlanReason>, changes: Vec<Change>) -> ServicePlan {
        let scaling = Default::default();
        ServicePlan {
            name: name.into(),
            cluster: "mcp-prod".into(),
            action,
            changes,
            reason,
            replaced_by: None,
            scaling,
            rotated: vec![],
        }
    }

    fn sample() -> Plan {
        Plan {
            services: vec![
                service("database", Action::Noop, None, vec![]),
                service(
                    "documents",
                    Action::Update,
                    Some(PlanReason::Drift),
                    vec![Change { path: "service.desiredCount".into(), from: Some(json!(5)), to: Some(json!(2)) }],
                ),
                service("old", Action::Orphan, Some(PlanReason::KeptWithoutPrune), vec![]),
                service(
                    "search",
                    Action::Create,
                    None,
                    vec![Change { path: "x.removed".into(), from: Some(json!("a")), to: None }],
                ),
            ],
        }
    }

    #[test]
    fn text_without_colour() {
        assert_eq!(
            render_plan(&sample(), false, true, None),
            "\
= database (mcp-prod): no change
~ documents (mcp-prod): update - drift: the service was changed outside mcpfleet
    service.desiredCount: 5 -> 2
- old (mcp-prod): would be deleted with --prune
+ search (mcp-prod): create
    x.removed: \"a\" -> (none)
Plan: 1 to create, 1 to update, 0 to delete, 1 unchanged. 1 no longer in the manifests would be deleted with --prune.
"
        );
        let mut pruning = sample();
        pruning.services[2].action = Action::Delete;
        pruning.services[2].reason = Some(PlanReason::Orphan);
        let text = render_plan(&pruning, false, true, None);
        assert!(
            text.contains("- old (mcp-prod): delete - managed by mcpfleet and no longer in the manifests\n"),
            "{text}"
        );
        assert!(text.ends_with("Plan: 1 to create, 1 to update, 1 to delete, 1 unchanged.\n"), "{text}");
        assert!(!text.contains('\x1b') && !render_plan(&sample(), false, true, None).contains('\x1b'));
    }

    #[test]
    fn unchanged_services_are_one_count_line_unless_asked_for() {
        let mut plan = sample();
        for i in 0..998 {
            plan.services.push(service(&format!("svc-{i:03}"), Action::Noop, None, vec![]));
        }
        let text = render_plan(&plan, false, false, None);
        assert_eq!(
            text,
            "\
~ documents (mcp-prod): update - drift: the service was changed outside mcpfleet
    service.desiredCount: 5 -> 2
- old (mcp-prod): would be deleted with --prune
+ search (mcp-prod): create
    x.removed: \"a\" -> (none)
= 999 services unchanged (--show-unchanged lists them)
Plan: 1 to create, 1 to update, 0 to delete, 999 unchanged. 1 no longer in the manifests would be deleted with --prune.
"
        );
        let all = render_plan(&plan, false, true, None);
        assert_eq!(all.lines().filter(|l| l.ends_with("): no change")).count(), 999, "{all}");
        assert!(!all.contains("--show-unchanged"), "{all}");
        plan.services.retain(|s| s.action != Action::Noop || s.name == "database");
        assert!(
            render_plan(&plan, false, false, None).contains("\n= 1 service unchanged (--show-unchanged lists them)\n")
        );
    }

    #[test]
    fn markdown_lists_each_changed_service_as_a_table() {
        let mut plan = sample();
        plan.services[1].changes.push(Change {
            path: "task.env.NOTE".into(),
            from: Some(json!("a|b")),
            to: Some(json!("x`y")),
        });
        assert_eq!(
            render_markdown(&plan, &["search: one replica behind a load balancer"], None),
            "\
**Plan:** 1 to create, 1 to update, 0 to delete, 1 unchanged, 1 would be deleted with `--prune`.

### `documents` (mcp-prod): update

drift: the service was changed outside mcpfleet

| field | from | to |
|---|---|---|
| `service.desiredCount` | `5` | `2` |
| `task.env.NOTE` | `\"a\\|b\"` | `\"x'y\"` |

### `old` (mcp-prod): would be deleted with `--prune`

### `search` (mcp-prod): create

| field | from | to |
|---|---|---|
| `x.removed` | `\"a\"` | *(none)* |

**Warnings**

- search: one replica behind a load balancer
"
        );
    }

    #[test]
    fn colour_only_when_asked() {
        let mut sample = sample();
        sample.services[2].action = Action::Delete;
        let text = render_plan(&sample, true, true, None);
        assert!(text.contains("\x1b[32m+\x1b[0m search"), "{text:?}");
        assert!(text.contains("\x1b[33m~\x1b[0m documents"), "{text:?}");
        assert!(text.contains("\x1b[31m-\x1b[0m old (mcp-prod): delete"), "{text:?}");
        assert!(text.contains("\x1b[2m=\x1b[0m database"), "{text:?}");
        // Only the marks are painted: without the escapes the text is the plain one.
        let plain = text.replace("\x1b[32m", "").replace("\x1b[33m", "").replace("\x1b[31m", "");
        let plain = plain.replace("\x1b[2m", "").replace("\x1b[0m", "");
        assert_eq!(plain, render_plan(&sample, false, true, None));
    }

    #[test]
    fn deletes_count_as_changes_only_with_prune() {
        let mut p = sample();
        p.services.retain(|s| matches!(s.action, Action::Noop | Action::Orphan));
        assert!(!has_changes(&p));
        p.services[1].action = Action::Delete;
        assert!(has_changes(&p));
        assert!(has_changes(&sample()));
    }
}
