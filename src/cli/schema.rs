//! `mcpfleet schema`: print the manifests' JSON Schema (committed as schemas/mcpfleet.v1alpha1.schema.json).

use super::EXIT_OK;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_: &Args) -> anyhow::Result<u8> {
    println!("{}", serde_json::to_string_pretty(&mcpfleet::spec::json_schema())?);
    Ok(EXIT_OK)
}
