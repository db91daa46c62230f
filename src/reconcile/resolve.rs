//! Resolution: every image tag to its digest and platforms, every secret (registry credentials included) to its
//! full ARN, every load balancer's target group to its ARN (checked to be one a Fargate service can register
//! in), for the whole fleet, before anything is written. Lookups are batched: one image call per repository per
//! 100 references (up to [`REPOSITORIES_AT_ONCE`] repositories at a time), one secret call per 10 distinct
//! secrets, one target-group describe per 20 distinct target groups. A registry that refuses a repository (401,
//! 403, an unknown repository) fails the services of its images, each with the registry's words; one that
//! cannot be reached fails resolution as a whole. The secret answers also say which version holds each stage: the
//! versions a service's tasks will read are kept (see [`crate::state::secrets`]), without another request.
//! A stdio service without `command` then gets its image's
//! `Entrypoint` + `Cmd` for the architecture chosen (`Images::image_command`, asked for no other service); an
//! image that gives none fails that service alone ([`Code::StdioImageCommand`]).

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt as _;

use crate::backend::{
    AWSCURRENT, BackendError, DESCRIBE_TARGET_GROUPS_BATCH, IMAGE_BATCH, ImageInfo, ImageSelector, Images,
    LoadBalancerType, SecretInfo, Secrets, TargetGroupInfo, TargetGroups, TargetType,
};
use crate::render::{CpuArch, Resolved};
use crate::spec::Code;
use crate::spec::{Architecture, SecretRef, ValidFleet, ValidService};
use crate::spec::{HealthProbe, Transport};
use crate::state::secrets::SecretInUse;

use super::ReconcileError;

/// Secrets resolved per call.
pub const SECRET_BATCH: usize = 10;

/// Image repositories looked up at the same time (each registry outside ECR also limits its own requests).
pub const REPOSITORIES_AT_ONCE: usize = 8;

/// What a resolution problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reference {
    /// `spec.image`: its repository, tag or digest, or the architecture its platforms allow.
    Image,
    /// A secret of `spec.secrets`, or `spec.registryCredentials`.
    Secret,
    /// A target group of `spec.expose.loadBalancers`.
    TargetGroup,
}

impl Reference {
    /// The noun for `n` of them.
    pub fn noun(self, n: usize) -> &'static str {
        match (self, n) {
            (Reference::Image, 1) => "image",
            (Reference::Image, _) => "images",
            (Reference::Secret, 1) => "secret",
            (Reference::Secret, _) => "secrets",
            (Reference::TargetGroup, 1) => "target group",
            (Reference::TargetGroup, _) => "target groups",
        }
    }
}

/// A reference that could not be resolved, or that resolved to something the service cannot use: the located
/// message a user reads, and what it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub about: Reference,
    pub message: String,
}

impl Problem {
    fn new(about: Reference, message: String) -> Problem {
        Problem { about, message }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The error's header: how many problems, and how many of each kind (`3 problems resolving the fleet's references
/// (1 image, 2 target groups)`).
pub fn summary(problems: &[Problem]) -> String {
    let mut counts: BTreeMap<Reference, usize> = BTreeMap::new();
    for p in problems {
        *counts.entry(p.about).or_default() += 1;
    }
    let counts: Vec<String> = counts.into_iter().map(|(about, n)| format!("{n} {}", about.noun(n))).collect();
    let n = problems.len();
    let noun = if n == 1 { "problem" } else { "problems" };
    format!("{n} {noun} resolving the fleet's references ({})", counts.join(", "))
}

/// What to look the image up by: its digest when pinned, else its tag. `None` only for a reference with neither,
/// which validation refuses, but a `ValidService` built by hand could hold one: that service then fails alone.
fn selector(svc: &ValidService) -> Option<ImageSelector> {
    match (&svc.image.digest, &svc.image.tag) {
        (Some(d), _) => Some(ImageSelector::Digest(d.clone())),
        (None, Some(t)) => Some(ImageSelector::Tag(t.clone())),
        (None, None) => None,
    }
}

/// Resolves the fleet; on any failure returns every failure (service, what, why) and nothing else.
pub async fn resolve(
    fleet: &ValidFleet,
    images: &dyn Images,
    secrets: &dyn Secrets,
    target_groups: &dyn TargetGroups,
) -> Result<Vec<Resolved>, ReconcileError> {
    let each = resolve_each(fleet, images, secrets, target_groups).await?;
    let problems: Vec<Problem> = each.iter().filter_map(|r| r.as_ref().err()).flatten().cloned().collect();
    if problems.is_empty() {
        Ok(each.into_iter().flatten().collect())
    } else {
        Err(ReconcileError::Resolution(problems))
    }
}

/// Resolves each service on its own (the controller converges what it can): a lookup that cannot be made
/// (unreachable, throttled past the retries) fails the whole call; a repository the registry refuses or lacks,
/// and a tag, secret or architecture that does not resolve, fails only its services.
pub async fn resolve_each(
    fleet: &ValidFleet,
    images: &dyn Images,
    secrets: &dyn Secrets,
    target_groups: &dyn TargetGroups,
) -> Result<Vec<Result<Resolved, Vec<Problem>>>, ReconcileError> {
    // Images, grouped by repository.
    let mut by_repo: BTreeMap<String, BTreeSet<ImageSelector>> = BTreeMap::new();
    for svc in &fleet.services {
        let wanted = by_repo.entry(svc.image.name()).or_default();
        wanted.extend(selector(svc));
        // The tag of a `repo:tag@digest` too, in the same call: where it points now is worth a warning.
        if let (Some(_), Some(tag)) = (&svc.image.digest, &svc.image.tag) {
            wanted.insert(ImageSelector::Tag(tag.clone()));
        }
    }
    let lookups = by_repo.iter().flat_map(|(repo, selectors)| {
        let selectors: Vec<ImageSelector> = selectors.iter().cloned().collect();
        let chunks: Vec<Vec<ImageSelector>> = selectors.chunks(IMAGE_BATCH).map(<[_]>::to_vec).collect();
        chunks.into_iter().map(move |chunk| async move { (repo.as_str(), images.lookup(repo, &chunk).await) })
    });
    let answers: Vec<_> = futures::stream::iter(lookups).buffered(REPOSITORIES_AT_ONCE).collect().await;
    let mut found: BTreeMap<(String, ImageSelector), ImageInfo> = BTreeMap::new();
    // Repositories the registry does not have (ECR's RepositoryNotFoundException, a registry's NAME_UNKNOWN)
    // and those it refused: their services fail alone, with the registry's words.
    let mut missing_repos: BTreeMap<&str, String> = BTreeMap::new();
    let mut refused_repos: BTreeMap<&str, String> = BTreeMap::new();
    let mut problems = Vec::new();
    for (repo, answer) in answers {
        match answer {
            Ok(map) => found.extend(map.into_iter().map(|(sel, info)| ((repo.to_string(), sel), info))),
            Err(BackendError::NotFound { message, .. }) => {
                missing_repos.insert(repo, message);
            }
            Err(e @ BackendError::Invalid { .. }) => {
                refused_repos.insert(repo, e.to_string());
            }
            // Every other call would fail the same way: one error, not one per repository and secret.
            Err(e @ BackendError::Credentials { .. }) => return Err(e.into()),
            Err(e) => problems.push(Problem::new(Reference::Image, format!("image repository {repo}: {e}"))),
        }
    }

    // Secrets, distinct.
    let ids: BTreeSet<String> = fleet
        .services
        .iter()
        .flat_map(|s| s.secrets.values().map(|r| r.secret.clone()).chain(s.registry_credentials.clone()))
        .collect();
    let ids: Vec<String> = ids.into_iter().collect();
    let mut arns = BTreeMap::new();
    for found in batched(&ids, SECRET_BATCH, Reference::Secret, &mut problems, |chunk| secrets.resolve(chunk)).await? {
        arns.extend(found);
    }
    // Target groups, distinct.
    let ids: BTreeSet<String> =
        fleet.services.iter().flat_map(|s| s.load_balancers.iter().map(|lb| lb.target_group.clone())).collect();
    let ids: Vec<String> = ids.into_iter().collect();
    let mut groups = Vec::new();
    let batches = batched(&ids, DESCRIBE_TARGET_GROUPS_BATCH, Reference::TargetGroup, &mut problems, |chunk| {
        target_groups.describe(chunk)
    });
    for found in batches.await? {
        groups.extend(found);
    }
    if !problems.is_empty() {
        return Err(ReconcileError::Resolution(problems));
    }

    let mut out = Vec::with_capacity(fleet.services.len());
    // Stdio services without `command` that resolved: their image's own is read next.
    let mut image_commands = Vec::new();
    for svc in &fleet.services {
        let mut problems = Vec::new();
        let image = |message| Problem::new(Reference::Image, message);
        // Only a problem needs the service's location: the field's line where the spec kept it.
        let at = |line: usize| format!("service `{}` ({}:{line})", svc.name, svc.source.file);
        let Some(selector) = selector(svc) else {
            let image = &svc.image;
            out.push(Err(vec![Problem::new(
                Reference::Image,
                format!("{}: spec.image: `{image}` has neither a tag nor a digest", at(svc.lines.image)),
            )]));
            continue;
        };
        let info = found.get(&(svc.image.name(), selector.clone()));
        let name = svc.image.name();
        let architecture = match info {
            None if let Some(why) = missing_repos.get(name.as_str()) => {
                problems
                    .push(image(format!("{}: spec.image: repository `{name}` not found ({why})", at(svc.lines.image))));
                None
            }
            None if let Some(why) = refused_repos.get(name.as_str()) => {
                problems.push(image(format!("{}: spec.image: {why}", at(svc.lines.image))));
                None
            }
            None => {
                let what = match selector {
                    ImageSelector::Tag(t) => format!("tag `{t}`"),
                    ImageSelector::Digest(d) => format!("digest `{d}`"),
                };
                let name = svc.image.name();
                problems.push(image(format!("{}: spec.image: {what} not found in {name}", at(svc.lines.image))));
                None
            }
            Some(info) => match pick_architecture(svc.architecture, &info.platforms) {
                Ok(a) => Some(a),
                Err(e) => {
                    problems.push(image(format!("{}: spec.architecture: {e}", at(svc.source.line))));
                    None
                }
            },
        };
        let mut secret_refs = BTreeMap::new();
        let mut secret_versions = Vec::new();
        for (env, r) in &svc.secrets {
            match arns.get(&r.secret) {
                Some(info) => {
                    secret_refs.insert(env.clone(), r.value_from(&info.arn));
                    secret_versions.extend(in_use(r, info));
                }
                None => {
                    let line = svc.lines.secrets.get(env).copied().unwrap_or(svc.source.line);
                    let message = format!("{}: spec.secrets.{env}: secret `{}` not found", at(line), r.secret);
                    problems.push(Problem::new(Reference::Secret, message));
                }
            }
        }
        secret_versions.sort();
        secret_versions.dedup_by(|a, b| a.arn == b.arn && a.stage == b.stage);
        let registry_credentials = svc.registry_credentials.as_ref().and_then(|id| {
            let arn = arns.get(id).map(|info| info.arn.clone());
            if arn.is_none() {
                let line = svc.lines.registry_credentials;
                problems.push(Problem::new(
                    Reference::Secret,
                    format!("{}: spec.registryCredentials: secret `{id}` not found", at(line)),
                ));
            }
            arn
        });
        let mut warnings: Vec<String> =
            moved_tag(svc, &found).map(|w| format!("{}: spec.image: {w}", at(svc.lines.image))).into_iter().collect();
        let mut target_group_arns = Vec::with_capacity(svc.load_balancers.len());
        let target_group = |message| Problem::new(Reference::TargetGroup, message);
        let mut first_group = None;
        for (i, lb) in svc.load_balancers.iter().enumerate() {
            let line = svc.lines.target_groups.get(i).copied().unwrap_or(svc.source.line);
            let field = format!("{}: spec.expose.loadBalancers[{i}].targetGroup", at(line));
            let info = groups.iter().find(|g| {
                let tg = &g.target_group;
                if lb.target_group.starts_with("arn:") { tg.arn == lb.target_group } else { tg.name == lb.target_group }
            });
            match info {
                None => problems.push(target_group(format!("{field}: target group `{}` not found", lb.target_group))),
                Some(info) => {
                    first_group = first_group.or((i == 0).then_some(info));
                    let judged = judge_target_group(svc, info);
                    problems.extend(judged.problems.iter().map(|p| target_group(format!("{field}: {p}"))));
                    warnings.extend(judged.warnings.iter().map(|w| format!("{field}: {w}")));
                    target_group_arns.push(info.target_group.arn.clone());
                }
            }
        }
        let request_count_label = match request_count_label(svc, first_group) {
            Ok(label) => label,
            Err(why) => {
                let line = svc.lines.requests_per_target.unwrap_or(svc.source.line);
                problems.push(target_group(format!("{}: spec.autoscaling.requestsPerTarget: {why}", at(line))));
                None
            }
        };
        out.push(match (info, architecture) {
            (Some(info), Some(arch)) if problems.is_empty() => {
                let command = svc.stdio.as_ref().map(|s| s.command.clone());
                if let Some(None) = command {
                    image_commands.push(ImageCommandWanted { at: out.len(), svc, digest: info.digest.clone(), arch });
                }
                Ok(Resolved {
                    image: svc.image.pinned(&info.digest),
                    digest: Some(info.digest.clone()),
                    architecture: Some(arch),
                    secrets: secret_refs,
                    target_groups: target_group_arns,
                    registry_credentials,
                    secret_versions,
                    command: command.flatten(),
                    warnings,
                    request_count_label,
                    platforms: info.platforms.clone(),
                })
            }
            _ => Err(problems),
        });
    }
    read_image_commands(images, image_commands, &mut out).await?;
    Ok(out)
}

/// The secrets each service of `fleet` reads by stage, with the version holding the stage now, by (cluster, name):
/// what `status` compares with the versions the services' tasks were started with. One secret call per 10
/// distinct secrets; a secret not found is left out (plan and apply report it).
pub async fn secret_versions(
    fleet: &ValidFleet,
    secrets: &dyn Secrets,
) -> Result<BTreeMap<(String, String), Vec<SecretInUse>>, ReconcileError> {
    let ids: BTreeSet<String> =
        fleet.services.iter().flat_map(|s| s.secrets.values().map(|r| r.secret.clone())).collect();
    let ids: Vec<String> = ids.into_iter().collect();
    let mut problems = Vec::new();
    let mut found = BTreeMap::new();
    for answer in batched(&ids, SECRET_BATCH, Reference::Secret, &mut problems, |c| secrets.resolve(c)).await? {
        found.extend(answer);
    }
    if !problems.is_empty() {
        return Err(ReconcileError::Resolution(problems));
    }
    let used = |svc: &ValidService| -> Vec<SecretInUse> {
        svc.secrets.values().filter_map(|r| in_use(r, found.get(&r.secret)?)).collect()
    };
    Ok(fleet.services.iter().map(|s| ((s.cluster.clone(), s.name.clone()), used(s))).collect())
}

/// The version a reference reads, when it reads one by stage: a reference pinned to a `versionId` never changes,
/// and a secret whose answer listed no version for the stage cannot be followed.
fn in_use(r: &SecretRef, info: &SecretInfo) -> Option<SecretInUse> {
    if r.version_id.is_some() {
        return None;
    }
    let stage = r.version_stage.clone().unwrap_or_else(|| AWSCURRENT.to_string());
    let version = info.stages.get(&stage)?.clone();
    Some(SecretInUse { secret: r.secret.clone(), arn: info.arn.clone(), stage, version })
}

/// A stdio service without `command`, resolved (`out[at]`) to `digest` on `arch`.
struct ImageCommandWanted<'a> {
    at: usize,
    svc: &'a ValidService,
    digest: String,
    arch: CpuArch,
}

/// Gives each `wanted` service its image's `Entrypoint` + `Cmd` on the architecture resolution chose (up to
/// [`REPOSITORIES_AT_ONCE`] read at a time). An image that names neither, or whose config cannot be read, fails
/// its service alone with [`Code::StdioImageCommand`]; refused credentials stop resolution as lookups do.
async fn read_image_commands(
    images: &dyn Images,
    wanted: Vec<ImageCommandWanted<'_>>,
    out: &mut [Result<Resolved, Vec<Problem>>],
) -> Result<(), ReconcileError> {
    let reads = wanted
        .iter()
        .map(|w| async move { (w, images.image_command(&w.svc.image.name(), &w.digest, w.arch.platform()).await) });
    let answers: Vec<_> = futures::stream::iter(reads).buffered(REPOSITORIES_AT_ONCE).collect().await;
    for (w, answer) in answers {
        let svc = w.svc;
        let image = format!("`{}` ({})", svc.image.pinned(&w.digest), w.arch.platform());
        let why = match answer {
            Err(e @ BackendError::Credentials { .. }) => return Err(e.into()),
            Err(e) => format!("the config of image {image} gives no command to run: {e}"),
            Ok(c) => match c.command() {
                command if command.is_empty() => {
                    format!("image {image} names neither Entrypoint nor Cmd in its config")
                }
                command if command.first().is_some_and(|program| program.trim().is_empty()) => {
                    format!("the Entrypoint + Cmd of image {image} has no program as its first word")
                }
                command => {
                    if let Some(Ok(res)) = out.get_mut(w.at) {
                        res.command = Some(command);
                    }
                    continue;
                }
            },
        };
        let message = format!(
            "service `{}` ({}:{}): spec.command: {why}; write `command`, the program and arguments that start the \
             server [{}]",
            svc.name,
            svc.source.file,
            svc.lines.command,
            Code::StdioImageCommand
        );
        if let Some(slot) = out.get_mut(w.at) {
            *slot = Err(vec![Problem::new(Reference::Image, message)]);
        }
    }
    Ok(())
}

/// Longest a load balancer may keep an idle SSE stream, or a deregistered task draining, before it is worth a
/// warning: five minutes.
const PATIENCE_SECS: u32 = 300;

/// What is wrong (refused) and what is doubtful (warned) about a found target group for one service.
#[derive(Debug, Default)]
struct Judged {
    problems: Vec<String>,
    warnings: Vec<String>,
}

/// Asks `call` for `ids` (of `about`) in batches of `batch`: the answers of the batches that succeeded. A failed
/// batch is one problem (`secrets: error`) and resolution goes on, so every problem is reported at once; missing or refused
/// credentials stop it at once instead of repeating for every batch.
async fn batched<'a, T, F, Fut>(
    ids: &'a [String],
    batch: usize,
    about: Reference,
    problems: &mut Vec<Problem>,
    mut call: F,
) -> Result<Vec<T>, ReconcileError>
where
    F: FnMut(&'a [String]) -> Fut,
    Fut: std::future::Future<Output = Result<T, BackendError>>,
{
    let mut out = Vec::new();
    for chunk in ids.chunks(batch.max(1)) {
        match call(chunk).await {
            Ok(found) => out.push(found),
            Err(e @ BackendError::Credentials { .. }) => return Err(e.into()),
            Err(e) => problems.push(Problem::new(about, format!("{}: {e}", about.noun(2)))),
        }
    }
    Ok(out)
}

/// Fargate tasks (awsvpc) register only in `ip` target groups; a target group no load balancer routes to would
/// take the tasks and send them nothing; an ALB routes only HTTP or HTTPS.
fn judge_target_group(svc: &ValidService, info: &TargetGroupInfo) -> Judged {
    let tg = &info.target_group;
    let mut j = Judged::default();
    if tg.target_type != TargetType::Ip {
        j.problems.push(format!(
            "target group `{}` has target type `{}`; Fargate tasks register only in `ip` target groups",
            tg.name,
            tg.target_type.as_str()
        ));
    }
    if tg.load_balancer_arns.is_empty() {
        j.problems.push(format!(
            "target group `{}` is not attached to a load balancer (no listener or rule forwards to it)",
            tg.name
        ));
    }
    let albs = || info.load_balancers.iter().filter(|b| b.kind == LoadBalancerType::Application);
    if let Some(alb) = albs().next()
        && !tg.protocol.as_ref().is_some_and(|p| p.is_http())
    {
        let protocol = match &tg.protocol {
            Some(p) => serde_json::to_value(p).ok().and_then(|v| v.as_str().map(str::to_string)),
            None => None,
        };
        j.problems.push(format!(
            "target group `{}` uses {} behind the Application Load Balancer `{}`, which routes only HTTP or HTTPS",
            tg.name,
            protocol.unwrap_or_else(|| "no protocol".into()),
            alb.name
        ));
    }
    let probed = svc.readiness_path.as_deref().or(match svc.health_check.as_ref().map(|h| &h.probe) {
        Some(HealthProbe::Http { path, .. }) => Some(path.as_str()),
        _ => None,
    });
    if let (Some(want), Some(have)) = (probed, tg.health_check_path.as_deref())
        && want != have
    {
        let field = if svc.readiness_path.is_some() { "readiness.path" } else { "healthCheck.path" };
        j.warnings
            .push(format!("target group `{}` health-checks `{have}`, not the service's {field} `{want}`", tg.name));
    }
    if svc.transport == Transport::Sse {
        for alb in albs() {
            if let Some(idle) = alb.idle_timeout_secs.filter(|t| *t < PATIENCE_SECS) {
                j.warnings.push(format!(
                    "the Application Load Balancer `{}` cuts connections idle for {idle}s, which ends quiet SSE \
                     streams (raise idle_timeout.timeout_seconds to at least {PATIENCE_SECS})",
                    alb.name
                ));
            }
        }
    }
    if let Some(delay) = tg.deregistration_delay_secs.filter(|d| *d > PATIENCE_SECS) {
        j.warnings.push(format!(
            "target group `{}` drains deregistered targets for {delay}s: every deployment waits that long",
            tg.name
        ));
    }
    j
}

/// The resource label `autoscaling.requestsPerTarget` follows: the service's first target group (`first`, when it
/// was found) with the first Application Load Balancer routing to it. Ok(None) without a requests target; Err
/// (why) when no ALB routes to that group, so requests cannot be counted per target.
fn request_count_label(svc: &ValidService, first: Option<&TargetGroupInfo>) -> Result<Option<String>, String> {
    if svc.autoscaling.as_ref().and_then(|a| a.requests_per_target).is_none() {
        return Ok(None);
    }
    // A first target group that was not found is reported on its own field.
    let Some(info) = first else { return Ok(None) };
    let tg = &info.target_group;
    let alb = info.load_balancers.iter().find(|b| b.kind == LoadBalancerType::Application);
    match alb.and_then(|alb| crate::render::autoscaling::request_count_label(&alb.arn, &tg.arn)) {
        Some(label) => Ok(Some(label)),
        None => Err(format!(
            "no Application Load Balancer routes to target group `{}` (the first of expose.loadBalancers), so \
             ALBRequestCountPerTarget has no requests to count",
            tg.name
        )),
    }
}

/// For a `repo:tag@digest` whose tag no longer names that digest: what the tag names now (the digest still wins).
fn moved_tag(svc: &ValidService, found: &BTreeMap<(String, ImageSelector), ImageInfo>) -> Option<String> {
    let (Some(pinned), Some(tag)) = (&svc.image.digest, &svc.image.tag) else { return None };
    let now = found.get(&(svc.image.name(), ImageSelector::Tag(tag.clone())));
    match now {
        Some(now) if now.digest == *pinned => None,
        Some(now) => Some(format!("tag `{tag}` now points to {}; the pinned digest {pinned} is deployed", now.digest)),
        None => Some(format!(
            "tag `{tag}` no longer exists in {}; the pinned digest {pinned} is deployed",
            svc.image.name()
        )),
    }
}

/// `auto` prefers Graviton when the image has it; an explicit architecture must be in the image. An image
/// whose platforms are unknown (a single manifest in ECR, whose answer carries no config) runs where asked, and
/// `auto` runs it on X86_64, ECS's default.
pub fn pick_architecture(wanted: Architecture, platforms: &[String]) -> Result<CpuArch, String> {
    if platforms.is_empty() {
        return Ok(match wanted {
            Architecture::Arm64 => CpuArch::Arm64,
            Architecture::Auto | Architecture::X86_64 => CpuArch::X86_64,
        });
    }
    let has = |a: CpuArch| platforms.iter().any(|p| p == a.platform());
    let list = platforms.join(", ");
    match wanted {
        Architecture::Auto if has(CpuArch::Arm64) => Ok(CpuArch::Arm64),
        Architecture::Auto if has(CpuArch::X86_64) => Ok(CpuArch::X86_64),
        Architecture::Auto => Err(format!("the image has no linux/arm64 or linux/amd64 variant (it has {list})")),
        Architecture::Arm64 if has(CpuArch::Arm64) => Ok(CpuArch::Arm64),
        Architecture::X86_64 if has(CpuArch::X86_64) => Ok(CpuArch::X86_64),
        Architecture::Arm64 => Err(format!("arm64 requested but the image has only {list}")),
        Architecture::X86_64 => Err(format!("x86_64 requested but the image has only {list}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::sim::Sim;
    use crate::spec::load_str;
    use crate::testkit::{fleet_yaml, seeded_world};

    #[tokio::test]
    async fn an_image_with_neither_tag_nor_digest_fails_its_service_alone() {
        let mut fleet = load_str("fleet.yaml", &fleet_yaml(2, 1, 1)).unwrap();
        fleet.services[0].image.tag = None;
        let sim = Sim::in_memory(seeded_world(1, 1));
        let b = sim.backend();
        let each = resolve_each(&fleet, b.images.as_ref(), b.secrets.as_ref(), b.target_groups.as_ref()).await.unwrap();
        let problems = each[0].as_ref().unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].about, Reference::Image);
        assert!(problems[0].message.starts_with("service `svc-00000` (fleet.yaml:"), "{problems:?}");
        assert!(
            problems[0].message.ends_with(
                "spec.image: `123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/repo-0` has neither a tag nor a digest"
            ),
            "{problems:?}"
        );
        assert!(each[1].is_ok(), "{:?}", each[1]);
    }
}

#[cfg(test)]
mod request_count_tests {
    use super::*;
    use crate::backend::TargetType;
    use crate::backend::sim::{Sim, TargetGroupSpec};
    use crate::spec::load_str;
    use crate::testkit::{fleet_yaml, seeded_world};

    /// The first service of the test fleet exposed through `tg` with a requests target.
    fn fleet_with_requests(tg: &str) -> ValidFleet {
        let text = fleet_yaml(1, 1, 1).replacen(
            "  stopTimeout: 20s\n",
            &format!(
                "  stopTimeout: 20s\n  expose: {{ loadBalancers: [{{ targetGroup: {tg} }}] }}\n  autoscaling:\n    min: 1\n    max: 4\n    requestsPerTarget: 500\n"
            ),
            1,
        );
        load_str("fleet.yaml", &text).unwrap()
    }

    #[tokio::test]
    async fn requests_per_target_follows_the_first_target_group_behind_an_alb() {
        let mut world = seeded_world(1, 1);
        let spec = |name: &str, load_balancer: bool| TargetGroupSpec {
            name: name.into(),
            health_check_path: "/".into(),
            target_type: TargetType::Ip,
            load_balancer,
        };
        let tg = world.create_target_group(&spec("docs", true)).unwrap();
        world.create_target_group(&spec("lonely", false)).unwrap();
        let alb = world.target_groups["docs"].load_balancer_arns[0].clone();
        let sim = Sim::in_memory(world);
        let b = sim.backend();
        let resolved =
            resolve(&fleet_with_requests("docs"), b.images.as_ref(), b.secrets.as_ref(), b.target_groups.as_ref())
                .await
                .unwrap();
        let label = resolved[0].request_count_label.clone().unwrap();
        assert_eq!(Some(label.clone()), crate::render::autoscaling::request_count_label(&alb, &tg));
        assert!(label.starts_with("app/mcpfleet-sim/") && label.contains("/targetgroup/docs/"), "{label}");

        // A target group no load balancer routes to: no requests to count, refused with the field's line.
        let err =
            resolve(&fleet_with_requests("lonely"), b.images.as_ref(), b.secrets.as_ref(), b.target_groups.as_ref())
                .await
                .unwrap_err();
        let ReconcileError::Resolution(problems) = err else { panic!("{err:?}") };
        let requests: Vec<&Problem> =
            problems.iter().filter(|p| p.message.contains("spec.autoscaling.requestsPerTarget")).collect();
        assert_eq!(requests.len(), 1, "{problems:#?}");
        assert!(requests[0].message.starts_with("service `svc-00000` (fleet.yaml:"), "{}", requests[0].message);
        assert!(requests[0].message.contains("no Application Load Balancer routes to target group `lonely`"));
        assert_eq!(requests[0].about, Reference::TargetGroup);
    }
}
