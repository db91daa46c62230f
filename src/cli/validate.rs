//! `mcpfleet validate`: parse and validate manifests, no AWS calls.

use super::{Cli, EXIT_ERROR, EXIT_OK, Files, Output, problems};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub files: Files,
    /// `json` prints {"valid", "services", "diagnostics"} on stdout.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    if args.output == Output::Text {
        let fleet = super::load_fleet(cli, &args.files)?;
        let names: Vec<&str> = fleet.services.iter().map(|s| s.name.as_str()).collect();
        println!("valid: {} service{} ({})", names.len(), if names.len() == 1 { "" } else { "s" }, names.join(", "));
        return Ok(EXIT_OK);
    }
    let (valid, services, diagnostics) = match mcpfleet::spec::load_paths_with(&args.files.paths, &cli.load_options()) {
        Ok(fleet) => (true, fleet.services.iter().map(|s| s.name.clone()).collect(), vec![]),
        Err(diags) => (false, vec![], diags.0),
    };
    let doc = serde_json::json!({ "valid": valid, "services": services, "diagnostics": diagnostics });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    if valid {
        Ok(EXIT_OK)
    } else {
        eprintln!("error: {}", problems(diagnostics.len()));
        Ok(EXIT_ERROR)
    }
}
