//! `mcpfleet render`: print the ECS inputs or a docker-compose.yml, no AWS calls (tags stay tags).

use clap::ValueEnum;
use mcpfleet::render::{Resolved, compose, ecs};

use super::{EXIT_OK, Files};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// {"services": [{name, cluster, registerTaskDefinition, createService}]} as the ECS API takes them.
    Ecs,
    /// A docker-compose.yml for the local stack.
    Compose,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub files: Files,
    /// What to render.
    #[arg(long, value_enum, default_value_t = Format::Ecs)]
    pub format: Format,
}

pub fn run(args: &Args) -> anyhow::Result<u8> {
    let fleet = super::load_fleet(&args.files)?;
    match args.format {
        Format::Ecs => {
            let services: Vec<ecs::EcsService> =
                fleet.services.iter().map(|s| ecs::render(s, &Resolved::unresolved(s))).collect();
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "services": services }))?);
        }
        Format::Compose => print!("{}", compose::render(&fleet)?),
    }
    Ok(EXIT_OK)
}
