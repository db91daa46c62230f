//! `mcpfleet render`: print the ECS inputs or a docker-compose.yml, no AWS calls (tags stay tags).

use clap::ValueEnum;
use mcpfleet::render::compose::SecretsMode;
use mcpfleet::render::{Resolved, compose, ecs};

use super::{Cli, EXIT_OK, Files};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// {"services": [{name, cluster, registerTaskDefinition, createService}]} as the ECS API takes them.
    Ecs,
    /// A docker-compose.yml for the local stack.
    Compose,
}

/// `--secrets`: how the local stack hands secrets to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Secrets {
    /// `<NAME>` holds the value, as on ECS; Compose reads it from `.env` beside the compose file.
    Env,
    /// Docker secrets from ./secrets/<NAME>, mounted at /run/secrets/<NAME>, with `<NAME>_FILE` pointing there.
    Files,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub files: Files,
    /// What to render.
    #[arg(long, value_enum, default_value_t = Format::Ecs)]
    pub format: Format,
    /// With --format compose: how secrets reach the servers [default: env].
    #[arg(long, value_enum)]
    pub secrets: Option<Secrets>,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    if args.format == Format::Ecs && args.secrets.is_some() {
        anyhow::bail!("--secrets applies to --format compose; ECS always passes secrets as Secrets Manager ARNs");
    }
    let fleet = super::load_fleet(cli, &args.files)?;
    match args.format {
        Format::Ecs => {
            if let Some(why) = fleet.services.iter().find_map(mcpfleet::render::unknown_command) {
                anyhow::bail!(why);
            }
            let services: Vec<ecs::EcsService> =
                fleet.services.iter().map(|s| ecs::render(s, &Resolved::unresolved(s))).collect();
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "services": services }))?);
        }
        Format::Compose => {
            let mode = match args.secrets.unwrap_or(Secrets::Env) {
                Secrets::Env => SecretsMode::Env,
                Secrets::Files => SecretsMode::Files,
            };
            let out = compose::render(&fleet, mode)?;
            for shift in &out.port_shifts {
                eprintln!("note: {shift}");
            }
            print!("{}", out.text);
        }
    }
    Ok(EXIT_OK)
}
