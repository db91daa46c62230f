//! `mcpfleet history`: the revisions a service ran, newest first, with image, digest and outcome.

use mcpfleet::reconcile::rollout;

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
            println!("{:>8}  {:<12} {:<20} {:<7} {:<25} OUTCOME", "REVISION", "IMAGE", "DIGEST", "ARCH", "REGISTERED");
            for r in &revisions {
                let when = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(r.registered_at),
                );
                println!(
                    "{:>8}  {:<12} {:<20} {:<7} {:<25} {}",
                    r.revision,
                    r.image_tag.as_deref().unwrap_or("-"),
                    r.digest.as_deref().map(|d| d.chars().take(19).collect::<String>()).unwrap_or_else(|| "-".into()),
                    r.architecture.as_deref().unwrap_or("-"),
                    when.to_string(),
                    if r.inactive { format!("{} (inactive)", r.outcome) } else { r.outcome.clone() }
                );
            }
        }
    }
    Ok(EXIT_OK)
}
