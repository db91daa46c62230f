//! `mcpfleet sim`: seed and disturb the simulator's world (images, secrets, target groups, out-of-band edits, the
//! load its Application Auto Scaling follows).

use mcpfleet::backend::sim::{LoadSpec, ServedUrl, SimImage, TargetGroupSpec};
use mcpfleet::backend::{MAX_DESIRED_COUNT, ServiceUpdate, TargetType};
use mcpfleet::spec::ImageRef;

use super::{Cli, EXIT_OK};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Push a new digest for IMAGE:TAG of an Amazon ECR repository (platforms default to linux/amd64 and
    /// linux/arm64). Images of other registries are resolved through the registry itself.
    Push {
        /// Image reference with a tag, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/documents:v1.4.2
        image: String,
        /// A platform of the image index; repeatable.
        #[arg(long = "platform", value_name = "OS/ARCH")]
        platforms: Vec<String>,
        /// Tasks of this image fail their health checks.
        #[arg(long)]
        unhealthy: bool,
        /// Tasks of this image pass the container health check but fail every target group's (alive, never
        /// ready): behind a load balancer ECS stops them; without one they run.
        #[arg(long)]
        unready: bool,
        /// Its tasks take this long to pass health checks (default 20s), e.g. to exceed a progress deadline.
        #[arg(long, value_parser = humantime::parse_duration)]
        startup: Option<std::time::Duration>,
        /// A real MCP server its running tasks stand for, e.g. http://127.0.0.1:8081/mcp: they report the URL's
        /// host and port as their private IPv4 address and port, so `probe` of them reaches it (at the service's
        /// MCP path). The sim never answers MCP itself.
        #[arg(long, value_name = "URL", value_parser = ServedUrl::parse)]
        serves: Option<ServedUrl>,
    },
    /// Create a secret and print its ARN (NAME plus a 6-character suffix, as AWS does); with --rotate, move its
    /// AWSCURRENT stage to a new version (AWSPREVIOUS to the old one) and print both version ids.
    Secret {
        name: String,
        /// Rotate the secret (it must exist): a new version holds AWSCURRENT, as PutSecretValue or a rotation does.
        #[arg(long)]
        rotate: bool,
        /// With --rotate: the new value breaks the services that read it: their tasks started from now on fail
        /// at start (until the secret is rotated again without --breaks).
        #[arg(long, requires = "rotate")]
        breaks: bool,
    },
    /// Create an ELB target group (HTTP) and print its ARN; unless --no-load-balancer, the sim's ALB routes to it.
    TargetGroup {
        /// 1 to 32 letters, digits and hyphens.
        name: String,
        /// The path its health check probes.
        #[arg(long, value_name = "PATH", default_value = "/")]
        health_path: String,
        /// What it registers: `ip` (ECS tasks on Fargate) or `instance`.
        #[arg(long, value_enum, default_value_t = SimTargetType::Ip)]
        target_type: SimTargetType,
        /// Leave it unattached: no load balancer routes to it.
        #[arg(long)]
        no_load_balancer: bool,
    },
    /// Change a service out of band, as someone in the console would (drift).
    Edit {
        service: String,
        #[arg(long)]
        cluster: String,
        /// 0 to 5000 (ECS's tasks per service).
        #[arg(long, value_parser = parse_desired_count)]
        desired_count: Option<u32>,
        #[arg(long, value_name = "ARN")]
        task_definition: Option<String>,
    },
    /// Set a service's load as its tasks report it now; the sim's Application Auto Scaling follows it every
    /// virtual minute (the work stays the same as tasks are added, so their utilisation falls).
    #[command(group(clap::ArgGroup::new("metrics").required(true).multiple(true).args(["cpu", "memory", "requests"])))]
    Load {
        service: String,
        #[arg(long)]
        cluster: String,
        /// Average CPU utilisation of its tasks, percent (ECSServiceAverageCPUUtilization).
        #[arg(long, value_name = "PERCENT")]
        cpu: Option<u32>,
        /// Average memory utilisation of its tasks, percent (ECSServiceAverageMemoryUtilization).
        #[arg(long, value_name = "PERCENT")]
        memory: Option<u32>,
        /// Requests per minute per task (ALBRequestCountPerTarget).
        #[arg(long, value_name = "N")]
        requests: Option<u32>,
    },
}

/// The target types `sim target-group` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimTargetType {
    Ip,
    Instance,
}

/// `--desired-count`: a whole number up to ECS's quota of tasks per service.
fn parse_desired_count(s: &str) -> Result<u32, String> {
    let n: u64 = s.trim().parse().map_err(|_| format!("`{s}` is not a whole number of tasks"))?;
    u32::try_from(n)
        .ok()
        .filter(|n| *n <= MAX_DESIRED_COUNT)
        .ok_or_else(|| format!("{n} is above ECS's {MAX_DESIRED_COUNT} tasks per service"))
}

pub fn run(cli: &Cli, cmd: &Command) -> anyhow::Result<u8> {
    let sim = super::backend::open_sim(cli)?;
    match cmd {
        Command::Push { image, platforms, unhealthy, unready, startup, serves } => {
            let r = ImageRef::parse(image).map_err(|e| anyhow::anyhow!("{e}"))?;
            if r.ecr().is_none() {
                anyhow::bail!(
                    "`{image}` is not in Amazon ECR: the sim holds only ECR repositories \
                     (ACCOUNT.dkr.ecr.REGION.amazonaws.com/…); images of other registries are resolved through the \
                     registry itself, with either backend (push them there; a local registry is named with \
                     --insecure-registry HOST:PORT)"
                );
            }
            let tag = r
                .tag
                .clone()
                .filter(|_| r.digest.is_none())
                .ok_or_else(|| anyhow::anyhow!("push needs IMAGE:TAG without a digest"))?;
            let platforms = if platforms.is_empty() {
                vec!["linux/amd64".to_string(), "linux/arm64".to_string()]
            } else {
                platforms.clone()
            };
            let image = SimImage {
                platforms: platforms.clone(),
                unhealthy: *unhealthy,
                startup_ms: startup.map(|d| d.as_millis() as u64),
                unready: *unready,
                serves: serves.clone(),
            };
            let digest = sim.with_world(true, |w| w.push_image_with(&r.name(), &tag, image))?;
            println!(
                "{}:{tag} {digest} ({}{}{}{})",
                r.name(),
                platforms.join(", "),
                if *unhealthy { ", unhealthy" } else { "" },
                if *unready { ", unready" } else { "" },
                serves.as_ref().map(|s| format!(", serves {}", s.as_str())).unwrap_or_default()
            );
        }
        Command::Secret { name, rotate: false, .. } => {
            let arn = sim.with_world(true, |w| w.create_secret(name))?;
            println!("{arn}");
        }
        Command::Secret { name, rotate: true, breaks } => {
            let (old, new) = sim.with_world(true, |w| w.rotate_secret(name, *breaks))?.map_err(anyhow::Error::msg)?;
            let broken = if *breaks { " (tasks started from now on that read it fail at start)" } else { "" };
            println!("{name}: AWSCURRENT {old} -> {new}{broken}");
        }
        Command::TargetGroup { name, health_path, target_type, no_load_balancer } => {
            let spec = TargetGroupSpec {
                name: name.clone(),
                health_check_path: health_path.clone(),
                target_type: match target_type {
                    SimTargetType::Ip => TargetType::Ip,
                    SimTargetType::Instance => TargetType::Instance,
                },
                load_balancer: !no_load_balancer,
            };
            let arn = sim.with_world(true, |w| w.create_target_group(&spec))?.map_err(anyhow::Error::msg)?;
            println!("{arn}");
        }
        Command::Edit { service, cluster, desired_count, task_definition } => {
            let update = ServiceUpdate {
                task_definition: task_definition.clone(),
                desired_count: *desired_count,
                ..ServiceUpdate::of(cluster, service)
            };
            let state = sim.with_world(true, |w| w.update_service(&update))??;
            println!(
                "{} in {}: desired {} on {}",
                state.name, state.cluster, state.desired_count, state.task_definition
            );
        }
        Command::Load { service, cluster, cpu, memory, requests } => {
            let spec = LoadSpec { cpu: *cpu, memory: *memory, requests: *requests };
            let tasks = sim.with_world(true, |w| w.set_load(cluster, service, spec))?.map_err(anyhow::Error::msg)?;
            let shown: Vec<String> =
                [("cpu", cpu, "%"), ("memory", memory, "%"), ("requests", requests, "/min per task")]
                    .into_iter()
                    .filter_map(|(what, v, unit)| v.map(|v| format!("{what} {v}{unit}")))
                    .collect();
            println!("{service} in {cluster}: {} on {tasks} task(s)", shown.join(", "));
        }
    }
    Ok(EXIT_OK)
}
