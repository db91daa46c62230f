//! `mcpfleet schema`: print the manifests' JSON Schema (committed as schemas/mcpfleet.v1alpha1.schema.json), or
//! with `--prices` the schema of a `--prices` file (schemas/prices.schema.json).

use super::EXIT_OK;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The schema of a `cost --prices` file instead of the manifests'.
    #[arg(long)]
    pub prices: bool,
}

pub fn run(args: &Args) -> anyhow::Result<u8> {
    let schema = if args.prices { mcpfleet::cost::prices::file_schema() } else { mcpfleet::spec::json_schema() };
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(EXIT_OK)
}
