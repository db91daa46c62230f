//! Command-line interface: clap definitions, global flags, logging set-up and exit codes. One file per
//! subcommand; each returns the process exit code or an error (printed as `error: …`, exit 1).

mod apply;
mod backend;
mod bridge;
mod cost;
mod healthcheck;
mod history;
mod lease;
mod owner;
mod plan;
mod probe;
mod progress;
mod publish;
mod render;
mod rollback;
mod run;
mod schema;
mod sim;
mod status;
mod table;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Exit code for success or "nothing to do".
pub const EXIT_OK: u8 = 0;
/// Exit code for any error: invalid spec, unresolvable or unusable image, secret or target group, API failure.
pub const EXIT_ERROR: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "mcpfleet",
    version,
    about = "Run fleets of MCP servers on AWS ECS/Fargate from declarative YAML",
    long_about = "mcpfleet turns McpService manifests (YAML, apiVersion mcpfleet.io/v1alpha1) into ECS task \
definitions and services: images pinned to their digest, ARM64 or X86_64 per service, Secrets Manager ARNs wired \
in, stopTimeout and health checks set. The same manifests render a local Docker Compose stack.\n\n\
Start with `mcpfleet validate -f manifests/`, then `mcpfleet render -f manifests/` to see what ECS would receive.",
    after_help = "Exit codes: 0 success or nothing to do; 1 error (invalid spec, unresolvable or unusable image, secret or target group, \
API failure); 2 plan --detailed-exitcode found changes; 3 a rollout failed; 4 --wait stopped at --timeout with a rollout still in progress."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Where ECS, ECR, Secrets Manager and ELB live: real AWS, or the embedded simulator.
    #[arg(long, global = true, value_enum, default_value_t = Backend::Aws, env = "MCPFLEET_BACKEND")]
    pub backend: Backend,

    /// State file of the sim backend.
    #[arg(long, global = true, value_name = "PATH", default_value = ".mcpfleet/sim.json", env = "MCPFLEET_SIM_STATE")]
    pub sim_state: PathBuf,

    /// An API's rate limit as the account has it: `OPERATION=BURST/RATE` (tokens, and requests per second), for
    /// an operation's bucket (`DescribeServices`, `BatchGetImage`) or a bucket by name (`ServiceWrite`);
    /// repeatable. The defaults are AWS's published quotas (see the README's "API rate limits").
    #[arg(long = "api-rate", global = true, value_name = "OPERATION=BURST/RATE", value_parser = mcpfleet::backend::limits::RateOverride::parse)]
    pub api_rates: Vec<mcpfleet::backend::limits::RateOverride>,

    /// AWS region (default: the standard AWS region chain).
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,

    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// The mcpfleet image that `transport: stdio` services copy the bridge from, pinned by digest (`repo@sha256:…`),
    /// when FleetDefaults' spec.bridgeImage names none; a controller passes its own image.
    #[arg(long, global = true, value_name = "IMAGE", env = "MCPFLEET_BRIDGE_IMAGE", value_parser = mcpfleet::spec::ImageRef::parse_pinned)]
    pub bridge_image: Option<mcpfleet::spec::ImageRef>,

    /// A registry spoken to over plain HTTP instead of HTTPS (a local or test registry), as image references write
    /// it: HOST:PORT. Repeatable; MCPFLEET_INSECURE_REGISTRIES takes a comma-separated list.
    #[arg(
        long = "insecure-registry",
        global = true,
        value_name = "HOST:PORT",
        env = "MCPFLEET_INSECURE_REGISTRIES",
        value_delimiter = ',',
        value_parser = mcpfleet::backend::registry::parse_insecure_registry
    )]
    pub insecure_registries: Vec<String>,

    /// Log mcpfleet's and the AWS SDK's debug lines on stderr (e.g. each credential provider's answer). The
    /// MCPFLEET_LOG or RUST_LOG filter, when set, is used instead.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Real AWS through the standard credential chain (honours AWS_ENDPOINT_URL).
    Aws,
    /// The embedded ECS/ECR/Secrets Manager simulator (no AWS account needed).
    Sim,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Text for people or one JSON object for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check manifests without calling AWS; prints every problem as FILE:LINE: FIELD: message.
    Validate(validate::Args),
    /// Print what ECS would receive (RegisterTaskDefinition + CreateService JSON) or a docker-compose.yml.
    Render(render::Args),
    /// Resolve images and secrets (read-only), compare with what runs, and print what apply would change.
    Plan(plan::Args),
    /// What each service costs a month on Fargate, the fleet's total, and what moving X86_64 services whose image
    /// has linux/arm64 to ARM64 would save (resolution read-only, as in `plan`).
    Cost(cost::Args),
    /// Converge ECS to the manifests; with --wait, watch every rollout.
    Apply(apply::Args),
    /// Show each service's revision, image, architecture, task counts, rollout state and last good revision.
    Status(status::Args),
    /// The revisions a service ran, newest first, with image, digest, architecture and outcome.
    History(history::Args),
    /// Put a service back on its last known-good revision (or --to-revision N).
    Rollback(rollback::Args),
    /// Check that MCP servers answer as clients need (handshake, tools/list, expected tools): one URL, or every
    /// RUNNING task of a service (--cluster) and its endpoints.
    Probe(probe::Args),
    /// Run the controller: reconcile every interval and on manifest changes; /healthz, /readyz, /metrics.
    Run(run::Args),
    /// Validate and resolve the manifests (read-only), then write them as one object for controllers to run
    /// (`run --source`); the write is conditional on the version read, so concurrent publishes never overwrite
    /// each other. `--history` lists the published versions.
    Publish(publish::Args),
    /// The DynamoDB table of `run --lease`: `lease create-table dynamodb://TABLE`.
    #[command(subcommand)]
    Lease(lease::Command),
    /// Exit 0 when the controller's /healthz answers 200 (the container HEALTHCHECK).
    Healthcheck(healthcheck::Args),
    /// Serve a stdio MCP server over Streamable HTTP (both protocol generations), with /health, /ready and a
    /// graceful drain: `mcpfleet bridge --port 8080 -- CMD ARGS…`.
    Bridge(bridge::Args),
    /// Copy this executable into DIR (how a stdio service's task gets the bridge into any server image).
    InstallBridge(bridge::InstallArgs),
    /// Print the JSON Schema of the manifests (for editors and CI).
    Schema(schema::Args),
    /// Seed or disturb the simulator (--sim-state): push images, create secrets, edit services.
    #[command(subcommand)]
    Sim(sim::Command),
}

/// Manifest files or directories (every *.yaml / *.yml inside, in name order).
#[derive(Debug, clap::Args)]
pub struct Files {
    /// A manifest file or a directory of them; repeatable.
    #[arg(short = 'f', long = "file", value_name = "PATH", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
}

/// Where a command's fleet comes from: manifest files, or the fleet `mcpfleet publish` wrote.
#[derive(Debug, clap::Args)]
pub struct Source {
    /// A manifest file or a directory of them; repeatable.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "PATH",
        num_args = 1..,
        required_unless_present = "source",
        conflicts_with = "source"
    )]
    pub paths: Vec<PathBuf>,
    /// The fleet `mcpfleet publish` wrote, instead of files.
    #[arg(long, value_name = "s3://BUCKET/KEY", value_parser = mcpfleet::backend::store::ObjectUrl::parse)]
    pub source: Option<mcpfleet::backend::store::ObjectUrl>,
}

impl Source {
    /// Loads and validates the fleet (printing every diagnostic to stderr when there are any).
    pub async fn load(&self, cli: &Cli) -> anyhow::Result<mcpfleet::spec::ValidFleet> {
        match &self.source {
            None => load_fleet(cli, &Files { paths: self.paths.clone() }),
            Some(url) => {
                let store = mcpfleet::backend::aws::object_store(cli.region.clone(), &Default::default()).await;
                let files = publish::read_published(&store, url).await?;
                let fleet = mcpfleet::spec::load_sources_with(&files.files, &cli.load_options());
                checked(fleet)
            }
        }
    }
}

pub fn main() -> ExitCode {
    // Usage errors exit 1 like every other error: exit 2 is reserved for `plan --detailed-exitcode`.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() { EXIT_ERROR } else { EXIT_OK };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    init_logging(cli.log_format, matches!(cli.command, Command::Run(_) | Command::Bridge(_)), cli.verbose);
    let result = match &cli.command {
        Command::Validate(args) => validate::run(&cli, args),
        Command::Render(args) => render::run(&cli, args),
        Command::Schema(args) => schema::run(args),
        Command::Sim(cmd) => sim::run(&cli, cmd),
        Command::Plan(args) => block_on(plan::run(&cli, args)),
        Command::Cost(args) => block_on(cost::run(&cli, args)),
        Command::Apply(args) => block_on(apply::run(&cli, args)),
        Command::Status(args) => block_on(status::run(&cli, args)),
        Command::History(args) => block_on(history::run(&cli, args)),
        Command::Rollback(args) => block_on(rollback::run(&cli, args)),
        Command::Probe(args) => block_on(probe::run(&cli, args)),
        Command::Healthcheck(args) => healthcheck::run(args),
        Command::InstallBridge(args) => bridge::install(args),
        Command::Bridge(args) => block_on_threads(bridge::run(args)),
        Command::Run(args) => block_on_threads(run::run(&cli, args)),
        Command::Publish(args) => block_on(publish::run(&cli, args)),
        Command::Lease(cmd) => block_on(lease::run(&cli, cmd)),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            // A program reading `-o json` gets a document on stdout whatever happened, not an empty stream.
            if cli.command.output() == Output::Json {
                println!("{:#}", error_document(&err));
            }
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

impl Command {
    /// The output format the command was asked for (`-o`); text for commands without one.
    fn output(&self) -> Output {
        match self {
            Command::Validate(args) => args.output,
            Command::Plan(args) => args.output.errors(),
            Command::Cost(args) => args.output,
            Command::Apply(args) => args.output,
            Command::Status(args) => args.output,
            Command::History(args) => args.output,
            Command::Probe(args) => args.output,
            Command::Publish(args) => args.output,
            _ => Output::Text,
        }
    }
}

/// `{"error": "…"}` for a command that failed under `-o json`, with the manifests' `diagnostics` (as
/// `validate -o json` lists them) when the manifests were the problem.
pub fn error_document(err: &anyhow::Error) -> serde_json::Value {
    let mut doc = serde_json::json!({ "error": format!("{err:#}") });
    if let Some(ManifestProblems(diagnostics)) = err.downcast_ref::<ManifestProblems>() {
        doc["diagnostics"] = serde_json::json!(diagnostics);
    }
    doc
}

/// Manifests that failed validation. The diagnostics were printed on stderr; they travel with the error so a JSON
/// error document can list them too.
#[derive(Debug, thiserror::Error)]
#[error("{}", problems(.0.len()))]
pub struct ManifestProblems(pub Vec<mcpfleet::spec::Diagnostic>);

fn block_on<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(f)
}

/// The long-running commands' runtime: two worker threads, so a busy task never holds up the others.
fn block_on_threads<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(f)
}

fn init_logging(format: LogFormat, long_running: bool, verbose: bool) {
    // A controller narrates its passes; one-shot commands print their own output and log only warnings.
    // The MCP client's own lines (a worker that quits on a refused connection logs an error) repeat what the
    // probe reports; they show with -v.
    let default = match (verbose, long_running) {
        (true, _) => "info,mcpfleet=debug,aws_config=debug,aws_smithy_runtime=debug,rmcp=debug",
        (false, true) => "info,rmcp=off",
        (false, false) => "warn,rmcp=off",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MCPFLEET_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// `--concurrency`: a whole number of at least 1 (0 would converge nothing).
pub fn parse_concurrency(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (services converged at the same time)".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a whole number")),
    }
}

/// What `plan` and `apply` start from: the manifests validated, the backend connected, the fleet resolved and
/// rendered (resolution's warnings printed: they change nothing, the fleet is applied as written).
pub struct Prepared {
    pub conn: backend::Connected,
    pub desired: Vec<mcpfleet::reconcile::Desired>,
    /// The fleet's default cluster: a cluster the last desired service moved off still has managed services that
    /// `--prune` must see.
    extra_clusters: Vec<String>,
}

impl Prepared {
    pub async fn new(cli: &Cli, files: &Files) -> anyhow::Result<Prepared> {
        Prepared::resolve(cli, load_fleet(cli, files)?).await
    }

    /// Connects and resolves a loaded fleet.
    pub async fn resolve(cli: &Cli, fleet: mcpfleet::spec::ValidFleet) -> anyhow::Result<Prepared> {
        let conn = backend::connect(cli).await?;
        let extra_clusters = fleet.default_cluster.iter().cloned().collect();
        let desired = mcpfleet::reconcile::into_desired_state(fleet, &conn.backend).await?;
        for w in desired.iter().flat_map(|d| &d.warnings) {
            eprintln!("warning: {w}");
        }
        Ok(Prepared { conn, desired, extra_clusters })
    }

    /// Resolution's warnings, as printed on stderr (without the `warning: ` prefix), for `-o json`.
    pub fn warnings(&self) -> Vec<&str> {
        self.desired.iter().flat_map(|d| d.warnings.iter().map(String::as_str)).collect()
    }

    /// The desired services as ECS has them, and the other managed services of their clusters, with what
    /// Application Auto Scaling has for those that have or want autoscaling.
    pub async fn observe(&self) -> Result<mcpfleet::reconcile::Observed, mcpfleet::backend::BackendError> {
        let ecs = self.conn.backend.ecs.as_ref();
        let mut observed =
            mcpfleet::reconcile::observe_clusters(&self.desired, &self.extra_clusters, ecs, true).await?;
        let autoscaling = self.conn.backend.autoscaling.as_ref();
        mcpfleet::reconcile::scaling::observe(&self.desired, &mut observed, autoscaling).await?;
        Ok(observed)
    }
}

impl Cli {
    /// What the command line adds to the manifests.
    pub fn load_options(&self) -> mcpfleet::spec::LoadOptions {
        mcpfleet::spec::LoadOptions { bridge_image: self.bridge_image.clone() }
    }
}

/// Loads and validates manifests, printing every diagnostic to stderr when there are any.
pub fn load_fleet(cli: &Cli, files: &Files) -> anyhow::Result<mcpfleet::spec::ValidFleet> {
    checked(mcpfleet::spec::load_paths_with(&files.paths, &cli.load_options()))
}

/// A loaded fleet, or its diagnostics printed on stderr and carried by the error.
fn checked(
    loaded: Result<mcpfleet::spec::ValidFleet, mcpfleet::spec::Diagnostics>,
) -> anyhow::Result<mcpfleet::spec::ValidFleet> {
    match loaded {
        Ok(fleet) => {
            tracing::debug!(services = fleet.services.len(), "manifests valid");
            Ok(fleet)
        }
        Err(diags) => {
            for d in &diags.0 {
                eprintln!("{}", d.coded());
            }
            Err(ManifestProblems(diags.0).into())
        }
    }
}

/// "1 problem found in the manifests" / "N problems …".
pub fn problems(n: usize) -> String {
    format!("{n} problem{} found in the manifests", if n == 1 { "" } else { "s" })
}
