//! `mcpfleet cost`: what each service costs a month on Fargate, the fleet's total, and what moving the X86_64
//! services whose image has linux/arm64 would save. Resolution is `plan`'s (read-only); the prices are the
//! built-in table, a `--prices` file or the AWS Price List API. Also the price lookup of `plan`'s cost line.

use mcpfleet::cost::{self, FleetCost, PriceTable};
use mcpfleet::spec::{Code, Diagnostic};

use super::table::{self, Cell, Column, Layout, Tone};
use super::{Backend, Cli, EXIT_OK, Output, Source};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub source: Source,
    #[command(flatten)]
    pub prices: Prices,
    /// Print every value in full, however wide the terminal.
    #[arg(long)]
    pub wide: bool,
    /// `json` prints {"currency", "hoursPerMonth", "region", "prices", "services": [{name, cluster, architecture,
    /// replicas, vcpu, memoryGiB, monthly, arm64Monthly}], "total", "possibleSaving"}.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// The largest `--prices` file read.
const PRICES_FILE_LIMIT: u64 = 1024 * 1024;

/// Where Fargate prices come from (`cost` and `plan`).
#[derive(Debug, Clone, clap::Args)]
pub struct Prices {
    /// Fargate prices by region and architecture (JSON: see README, schemas/prices.schema.json) instead of the
    /// built-in us-east-1 table.
    #[arg(long = "prices", value_name = "FILE", conflicts_with = "live_prices")]
    pub file: Option<std::path::PathBuf>,
    /// Read the current Fargate prices of the fleet's region from the AWS Price List API (pricing:GetProducts),
    /// once per run.
    #[arg(long)]
    pub live_prices: bool,
}

/// A Fargate price problem the CLI reports (the file is read here; the rest is `cost::prices`'s).
#[derive(Debug, thiserror::Error)]
pub enum PricesError {
    /// The `--prices` file cannot be read.
    #[error("{}", .0.coded())]
    Unreadable(Diagnostic),
    /// `--live-prices` on the sim.
    #[error(
        "--live-prices reads AWS's Price List API, which the sim backend does not have [{}]; use the built-in \
         table or --prices FILE",
        Code::LivePricesSim
    )]
    Sim,
}

impl Prices {
    /// Reads the `--prices` file, or refuses `--live-prices` on the sim, before anything else is asked: the
    /// table when it is known without the region (built-in or a file), None when it is to be read live.
    pub fn load(&self, cli: &Cli) -> anyhow::Result<Option<PriceTable>> {
        if self.live_prices {
            if cli.backend == Backend::Sim {
                return Err(PricesError::Sim.into());
            }
            return Ok(None);
        }
        let Some(path) = &self.file else { return Ok(Some(PriceTable::builtin())) };
        let file = path.display().to_string();
        let unreadable = |message: String| {
            PricesError::Unreadable(Diagnostic {
                file: file.clone(),
                line: 0,
                code: Code::PricesUnreadable,
                path: String::new(),
                message,
            })
        };
        // A prices file is a few hundred bytes per region: a megabyte is no prices file (or is /dev/zero).
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| std::io::Read::read_to_string(&mut std::io::Read::take(f, PRICES_FILE_LIMIT + 1), &mut text))
            .map_err(|e| unreadable(format!("cannot be read: {e}")))?;
        if text.len() as u64 > PRICES_FILE_LIMIT {
            return Err(unreadable(format!("is larger than {PRICES_FILE_LIMIT} bytes")).into());
        }
        Ok(Some(PriceTable::from_file(&file, &text)?))
    }

    /// The table for `region`: `loaded`, or the Price List's answer for the region.
    pub async fn for_region(loaded: Option<PriceTable>, region: &str) -> anyhow::Result<PriceTable> {
        match loaded {
            Some(table) => Ok(table),
            None => {
                let items = mcpfleet::backend::aws::fargate_price_list(region).await?;
                Ok(PriceTable::from_price_list(region, &items)?)
            }
        }
    }
}

/// The region the fleet runs in: `--region`; on the sim us-east-1 (where its account lives); else the AWS
/// configuration chain's.
pub async fn region(cli: &Cli) -> anyhow::Result<String> {
    if let Some(r) = &cli.region {
        return Ok(r.clone());
    }
    match cli.backend {
        Backend::Sim => Ok(cost::prices::BUILTIN_REGION.to_string()),
        Backend::Aws => mcpfleet::backend::aws::configured_region().await.ok_or_else(|| {
            anyhow::anyhow!(
                "no AWS region is configured (--region, AWS_REGION or a profile's region): prices are per region"
            )
        }),
    }
}

pub async fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let fleet = args.source.load(cli).await?;
    let loaded = args.prices.load(cli)?;
    let region = region(cli).await?;
    let prepared = super::Prepared::resolve(cli, fleet).await?;
    let table = Prices::for_region(loaded, &region).await?;
    let rates = table.region(&region)?;
    let mut services = Vec::with_capacity(prepared.desired.len());
    for d in &prepared.desired {
        services.push(mcpfleet::reconcile::cost::priced(d).ok_or_else(|| {
            anyhow::anyhow!("service {} ({}): its size or architecture is not resolved", d.ecs.name, d.ecs.cluster)
        })?);
    }
    let cost = cost::fleet_cost(&region, &table.source, rates, &services);
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&cost)?),
        Output::Text => print!("{}", render_table(&cost, Layout::stdout(args.wide))),
    }
    Ok(EXIT_OK)
}

/// The cost as a table for people (fitted to the terminal like every table, see `table`): one line per service,
/// then the total and the possible saving.
pub fn render_table(cost: &FleetCost, layout: Layout) -> String {
    const COLUMNS: [Column; 8] = [
        Column::left("SERVICE").kept(),
        Column::left("CLUSTER"),
        Column::left("ARCH"),
        Column::right("REPLICAS").kept(),
        Column::right("VCPU").kept(),
        Column::right("MEMORY").kept(),
        Column::right("MONTHLY").kept(),
        Column::right("ON ARM64").kept(),
    ];
    let rows = cost
        .services
        .iter()
        .map(|s| {
            vec![
                Cell::from(s.name.clone()),
                s.cluster.clone().into(),
                s.architecture.as_ecs().into(),
                s.replicas.to_string().into(),
                s.vcpu.to_string().into(),
                format!("{} GB", s.memory_gib).into(),
                s.monthly.to_string().into(),
                match s.arm64_monthly {
                    // Cheaper on ARM64: what it would cost there, in the colour of a good change.
                    Some(a) => Cell::toned(a.to_string(), Tone::Good),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    let mut out = table::render(layout, &COLUMNS, rows);
    out.push_str(&format!(
        "Total: {} a month ({}, {} hours, {}, {}).\n",
        cost.total, cost.currency, cost.hours_per_month, cost.region, cost.prices
    ));
    let movable: Vec<String> =
        cost.services.iter().filter_map(|s| s.saving().map(|saving| format!("{} ({saving})", s.name))).collect();
    if !movable.is_empty() {
        out.push_str(&format!(
            "Moving to ARM64 (architecture: auto or arm64) would save {} a month: {}.\n",
            cost.possible_saving,
            movable.join(", ")
        ));
    }
    out
}
