//! `mcpfleet lease create-table dynamodb://TABLE`: the table controllers elect their leader in (`run --lease`),
//! for those who do not make it with their IaC.

use mcpfleet::backend::lease::{LeaseStore, LeaseUrl};

use super::{Cli, EXIT_ERROR, EXIT_OK};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create the lease table: partition key `name` (string), on-demand billing.
    CreateTable {
        /// dynamodb://TABLE
        #[arg(value_name = "dynamodb://TABLE")]
        table: String,
    },
}

pub async fn run(cli: &Cli, cmd: &Command) -> anyhow::Result<u8> {
    let Command::CreateTable { table } = cmd;
    let name = table.strip_prefix("dynamodb://").unwrap_or_default().trim_end_matches('/');
    if let Err(e) = LeaseUrl::check_table(name) {
        eprintln!("error: `{table}` is not dynamodb://TABLE: {e}");
        return Ok(EXIT_ERROR);
    }
    let store = mcpfleet::backend::aws::lease_store(cli.region.clone(), &Default::default()).await;
    if store.create_table(name).await? {
        println!("created the lease table {name} (partition key `name`, on-demand billing)");
    } else {
        println!("the lease table {name} exists already");
    }
    Ok(EXIT_OK)
}
