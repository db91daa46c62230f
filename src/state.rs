//! mcpfleet's state in AWS, as types: every `mcpfleet.io/` tag name, the typed views parsed once from a service's
//! and a revision's tags, the writers that turn decisions back into tag maps, task-definition ARNs, and the rule
//! that holds a failed spec back.
//!
//! State lives in tags (there is no database), so the meaning of a tag is decided here and nowhere else: readers
//! ask a [`ServiceTags`] or [`RevisionTags`], writers call the functions below, and whether a spec is held back is
//! answered by [`held_spec`] alone. What was applied is a revision *and* its networking (see [`networking`]): the
//! service's tags name the revision, and the spec at hand (the manifests' spec with the applied spec-hash), when
//! the caller has it, says the networking, so a spec that changed only the networking is judged like any other.
//! Pure: no async, no I/O.

pub mod networking;
pub mod secrets;

use std::fmt;

pub use networking::{Exposure, Networking, TAG_EXPOSURE};

use crate::backend::{DeploymentStatus, RolloutState, ServiceState, Tags};
use crate::render::ecs::{EcsService, Tag, TaskDefinitionInput};

/// Prefix of every tag mcpfleet owns.
pub const TAG_PREFIX: &str = "mcpfleet.io/";
/// `managed-by=mcpfleet` on every service and revision mcpfleet made. A service a controller with a lease
/// converges says which: `mcpfleet dynamodb://TABLE/NAME` (see [`managed_by`]), so `apply` and `rollback` know
/// whose fleet it is. Kept in one tag, so ownership takes none of the room under ECS's 50 tags that labels have.
pub const TAG_MANAGED_BY: &str = "mcpfleet.io/managed-by";
/// Hash of the whole desired state of a service (see `render::ecs::spec_hash`): equal hashes mean nothing to do.
pub const TAG_SPEC_HASH: &str = "mcpfleet.io/spec-hash";
/// The image tag the manifest named.
pub const TAG_IMAGE_TAG: &str = "mcpfleet.io/image-tag";
/// The digest the image was pinned to.
pub const TAG_IMAGE_DIGEST: &str = "mcpfleet.io/image-digest";
/// Hash of the task definition alone (on task definitions): a revision with the same one is reused.
pub const TAG_TASK_HASH: &str = "mcpfleet.io/task-hash";
/// CPU architecture the service runs on.
pub const TAG_ARCHITECTURE: &str = "mcpfleet.io/architecture";
/// MCP transport the server speaks (`streamable-http` or `sse`), for operators and tools that connect to it.
pub const TAG_TRANSPORT: &str = "mcpfleet.io/transport";
/// The task-definition ARN the service's spec-hash was applied with (so drift of the revision is visible).
pub const TAG_TASK_DEFINITION: &str = "mcpfleet.io/task-definition";
/// The task-definition ARN of the last rollout that completed.
pub const TAG_LAST_GOOD: &str = "mcpfleet.io/last-good";
/// A spec-hash whose rollout failed: not deployed again until the spec changes.
pub const TAG_FAILED_SPEC_HASH: &str = "mcpfleet.io/failed-spec-hash";
/// What a revision's rollout came to (see [`Outcome`]), on the task definition.
pub const TAG_OUTCOME: &str = "mcpfleet.io/outcome";
/// Service tag: the id of the deployment whose failed rollback was reported, so it is reported once.
pub const TAG_ROLLBACK_FAILED: &str = "mcpfleet.io/rollback-failed";
/// The keys of the user's labels that mcpfleet put on a resource, comma-separated (a character label keys cannot
/// hold): only these are removed when a label leaves the manifests, so tags that others add stay.
pub const TAG_LABELS: &str = "mcpfleet.io/labels";
/// The hash of the Application Auto Scaling documents last applied to the service (see
/// `render::autoscaling::ScalingDocs::hash`), written once its target and every policy are in place: while it
/// matches the spec's and the target's bounds are as wanted, the policies are not read again.
pub const TAG_AUTOSCALING: &str = "mcpfleet.io/autoscaling";
/// Value of the managed-by tag.
pub const MANAGED_BY: &str = "mcpfleet";

/// The managed-by value of a service owned by the controller holding the lease `owner` (its URL), or of one
/// no controller owns.
pub fn managed_by(owner: Option<&str>) -> String {
    match owner {
        Some(o) => format!("{MANAGED_BY} {o}"),
        None => MANAGED_BY.to_string(),
    }
}

/// The managed-by tag of [`managed_by`].
pub fn owned_by(owner: Option<&str>) -> Tag {
    Tag { key: TAG_MANAGED_BY.into(), value: managed_by(owner) }
}
/// Revision tag: the tools the revision was seen offering when it was verified, as `<count>:<parts>:<hash>` (see
/// [`ToolRecord`]); the names themselves are in [`TAG_TOOLS_PART`]`1`…`<parts>`.
pub const TAG_TOOLS: &str = "mcpfleet.io/tools";
/// Prefix of the revision tags that hold the encoded tool names, 256 characters each: `mcpfleet.io/tools-1`, ….
pub const TAG_TOOLS_PART: &str = "mcpfleet.io/tools-";
/// Service tag: the last MCP verification of the service (see [`Verification`]).
pub const TAG_VERIFICATION: &str = "mcpfleet.io/verification";
/// Tags ECS keeps on one resource (user tags; `aws:` ones do not count).
pub const MAX_TAGS: usize = 50;
/// Characters in one tag value.
pub const MAX_TAG_VALUE: usize = 256;

/// What a revision's rollout came to, recorded on the task definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its rollout completed: a revision to go back to.
    Completed,
    /// Its rollout failed (and nothing went back from it, or going back to it failed).
    Failed,
    /// The service was rolled back from it (by mcpfleet, ECS's circuit breaker or an operator).
    RolledBack,
}

impl Outcome {
    /// The tag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Failed => "failed",
            Outcome::RolledBack => "rolled_back",
        }
    }

    /// The outcome a tag value names; None for anything else.
    pub fn parse(s: &str) -> Option<Outcome> {
        [Outcome::Completed, Outcome::Failed, Outcome::RolledBack].into_iter().find(|o| o.as_str() == s)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task-definition reference: a full ARN (`arn:…:task-definition/family:revision`), `family:revision`, or a bare
/// family. Borrowed, so wrapping a string copies nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskDefArn<'a>(pub &'a str);

impl<'a> TaskDefArn<'a> {
    /// `family:revision` (or the family alone when there is no revision).
    pub fn short(self) -> &'a str {
        self.0.rsplit_once("task-definition/").map_or(self.0, |(_, s)| s)
    }

    /// The family.
    pub fn family(self) -> &'a str {
        let short = self.short();
        short.rsplit_once(':').filter(|(_, r)| is_revision(r)).map_or(short, |(f, _)| f)
    }

    /// The revision number, when the reference names one.
    pub fn revision(self) -> Option<u32> {
        self.short().rsplit_once(':').and_then(|(_, r)| r.parse().ok().filter(|_| is_revision(r)))
    }
}

impl fmt::Display for TaskDefArn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short())
    }
}

fn is_revision(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
}

/// `family:revision` of a task-definition ARN.
pub fn short(arn: &str) -> &str {
    TaskDefArn(arn).short()
}

/// A service's `mcpfleet.io/` tags, parsed once. An empty value counts as absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceTags<'a> {
    /// Tagged `managed-by=mcpfleet` (with or without an owner).
    pub managed: bool,
    /// The lease URL of the controller that owns the service (`managed-by=mcpfleet <URL>`).
    pub owner: Option<&'a str>,
    /// The spec-hash applied.
    pub spec_hash: Option<&'a str>,
    /// The revision the spec-hash was applied with.
    pub applied: Option<&'a str>,
    /// The revision of the last rollout that completed.
    pub last_good: Option<&'a str>,
    /// The spec-hash recorded as failed.
    pub failed_spec_hash: Option<&'a str>,
    /// What the applied revision runs.
    pub image: ImageTags<'a>,
    /// The deployment whose failed rollback was reported.
    pub rollback_failed: Option<&'a str>,
    /// The hash of the autoscaling applied (absent: mcpfleet applied none, or removed it).
    pub autoscaling: Option<&'a str>,
}

fn get<'a>(tags: &'a Tags, key: &str) -> Option<&'a str> {
    tags.get(key).map(String::as_str).filter(|v| !v.is_empty())
}

impl<'a> ServiceTags<'a> {
    pub fn parse(tags: &'a Tags) -> ServiceTags<'a> {
        ServiceTags {
            managed: get(tags, TAG_MANAGED_BY)
                .is_some_and(|v| v == MANAGED_BY || v.strip_prefix(MANAGED_BY).is_some_and(|r| r.starts_with(' '))),
            owner: get(tags, TAG_MANAGED_BY)
                .and_then(|v| v.strip_prefix(MANAGED_BY)?.strip_prefix(' '))
                .filter(|o| !o.is_empty()),
            spec_hash: get(tags, TAG_SPEC_HASH),
            applied: get(tags, TAG_TASK_DEFINITION),
            last_good: get(tags, TAG_LAST_GOOD),
            failed_spec_hash: get(tags, TAG_FAILED_SPEC_HASH),
            image: ImageTags::parse(tags),
            rollback_failed: get(tags, TAG_ROLLBACK_FAILED),
            autoscaling: get(tags, TAG_AUTOSCALING),
        }
    }

    /// The service's tags.
    pub fn of(state: &'a ServiceState) -> ServiceTags<'a> {
        ServiceTags::parse(&state.tags)
    }

    /// The failure of the spec the service was applied with is recorded.
    pub fn applied_failure_recorded(&self) -> bool {
        self.spec_hash.is_some() && self.failed_spec_hash == self.spec_hash
    }

    /// The service left a spec whose rollout failed (a rollback): a failed spec is recorded, and it is not the
    /// one the service's tags now describe.
    pub fn came_back_from_failure(&self) -> bool {
        self.failed_spec_hash.is_some() && self.failed_spec_hash != self.spec_hash
    }
}

/// What a service or revision runs, as its tags say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageTags<'a> {
    /// The image tag the manifest named.
    pub tag: Option<&'a str>,
    /// The digest it was pinned to.
    pub digest: Option<&'a str>,
    pub architecture: Option<&'a str>,
    pub transport: Option<&'a str>,
}

impl<'a> ImageTags<'a> {
    pub fn parse(tags: &'a Tags) -> ImageTags<'a> {
        ImageTags {
            tag: get(tags, TAG_IMAGE_TAG),
            digest: get(tags, TAG_IMAGE_DIGEST),
            architecture: get(tags, TAG_ARCHITECTURE),
            transport: get(tags, TAG_TRANSPORT),
        }
    }
}

/// A revision's `mcpfleet.io/` tags, parsed once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RevisionTags<'a> {
    pub spec_hash: Option<&'a str>,
    pub task_hash: Option<&'a str>,
    pub image: ImageTags<'a>,
    /// None: registered, never judged (`superseded` in history unless it runs).
    pub outcome: Option<Outcome>,
}

impl<'a> RevisionTags<'a> {
    pub fn parse(tags: &'a Tags) -> RevisionTags<'a> {
        RevisionTags {
            spec_hash: get(tags, TAG_SPEC_HASH),
            task_hash: get(tags, TAG_TASK_HASH),
            image: ImageTags::parse(tags),
            outcome: get(tags, TAG_OUTCOME).and_then(Outcome::parse),
        }
    }
}

// ---- the tool contract ----
//
// A verified revision records the tools it offered, so that the next revision can be held to them (the tool
// contract) and `history` can show what changed, whoever asks later: a restarted controller, another CI run.
// ECS allows 50 tags of at most 256 characters per resource, so the names are encoded compactly and split:
//
// - the names, sorted and without repeats, are joined with `/`; in a name, the characters the MCP specification
//   allows (`A-Z a-z 0-9 _ - .`) stand for themselves and every other byte is written `=XX` (hex), so any name a
//   server offers survives and the value holds only characters AWS tag values allow;
// - that text is cut into 256-character parts, `mcpfleet.io/tools-1` … `-N`;
// - `mcpfleet.io/tools` holds `<count>:<N>:<hash>`, the hash being the first 16 hex digits of the SHA-256 of the
//   text, so a part that went missing or was edited is detected rather than read as a shorter list.
//
// The parts use the tags the revision has left (50 minus mcpfleet's own and the labels: 38 or more with few
// labels, i.e. about 9,000 characters, several hundred tool names). A list that does not fit is recorded as
// `<count>:0:<hash>` alone: the contract then knows how many tools there were, not which (see `ToolRecord`).

/// The tools a revision was seen offering, as its tags record them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolRecord {
    /// Every name, sorted, without repeats.
    Names(Vec<String>),
    /// Only how many there were: the names did not fit in the revision's tags, or a part of them is missing.
    Count(usize),
}

impl ToolRecord {
    /// The record a revision's tags hold, if any.
    pub fn parse(tags: &Tags) -> Option<ToolRecord> {
        let mut header = get(tags, TAG_TOOLS)?.splitn(3, ':');
        let count: usize = header.next()?.parse().ok()?;
        let parts: usize = header.next()?.parse().ok()?;
        let hash = header.next()?;
        let names = (parts > 0 || count == 0)
            .then(|| {
                let text: String = (1..=parts)
                    .map(|i| tags.get(&format!("{TAG_TOOLS_PART}{i}")).map(String::as_str))
                    .collect::<Option<_>>()?;
                let names = decode_tools(&text, count)?;
                (text_hash(&text) == hash && names.len() == count).then_some(names)
            })
            .flatten();
        Some(names.map_or(ToolRecord::Count(count), ToolRecord::Names))
    }

    /// How many tools were recorded.
    pub fn count(&self) -> usize {
        match self {
            ToolRecord::Names(names) => names.len(),
            ToolRecord::Count(n) => *n,
        }
    }

    /// The names, when they were recorded.
    pub fn names(&self) -> Option<&[String]> {
        match self {
            ToolRecord::Names(names) => Some(names),
            ToolRecord::Count(_) => None,
        }
    }
}

/// The tags that record `names` on a revision whose other tags (not the tool record's own) number `others`: the
/// header and as many parts as the names need, or the header alone when they need more tags than are left. Empty
/// when not even the header fits. Names are sorted and repeats dropped.
pub fn tool_tags(names: &[String], others: usize) -> Tags {
    let mut sorted: Vec<&str> = names.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let text = encode_tools(&sorted);
    let free = MAX_TAGS.saturating_sub(others);
    if free == 0 {
        return Tags::new();
    }
    // The text is ASCII: characters and bytes are the same, so it may be cut anywhere.
    let parts: Vec<&str> = text.as_bytes().chunks(MAX_TAG_VALUE).filter_map(|c| std::str::from_utf8(c).ok()).collect();
    let fits = parts.len() < free;
    let mut tags = Tags::new();
    let recorded = if fits { parts.len() } else { 0 };
    tags.insert(TAG_TOOLS.into(), format!("{}:{recorded}:{}", sorted.len(), text_hash(&text)));
    if fits {
        for (i, part) in parts.iter().enumerate() {
            tags.insert(format!("{TAG_TOOLS_PART}{}", i + 1), (*part).to_string());
        }
    }
    tags
}

/// Room on a revision carrying `tags` for `adding` more (keys it does not carry yet): when they would take it
/// past [`MAX_TAGS`], its tool record shrinks to the count alone, freeing its parts. Returns the header to write and
/// the parts to remove; None when everything fits as it is (or the parts would not free enough).
pub fn shrink_tool_record(tags: &Tags, adding: &Tags) -> Option<(Tags, Vec<String>)> {
    let new = adding.keys().filter(|k| !tags.contains_key(*k) && !k.starts_with("aws:")).count();
    let have = tags.keys().filter(|k| !k.starts_with("aws:")).count();
    let parts: Vec<String> = tags.keys().filter(|k| k.starts_with(TAG_TOOLS_PART)).cloned().collect();
    if have + new <= MAX_TAGS || have + new - parts.len() > MAX_TAGS {
        return None;
    }
    let count = ToolRecord::parse(tags)?.count();
    let hash = get(tags, TAG_TOOLS)?.rsplit(':').next()?.to_string();
    Some((one(TAG_TOOLS, &format!("{count}:0:{hash}")), parts))
}

/// Whether `key` is one of the tool record's tags.
pub fn is_tool_tag(key: &str) -> bool {
    key == TAG_TOOLS || key.starts_with(TAG_TOOLS_PART)
}

/// The record's parts that `tags` carries beyond those `new` writes: left from a longer record, to remove.
pub fn stale_tool_parts(tags: &Tags, new: &Tags) -> Vec<String> {
    tags.keys().filter(|k| k.starts_with(TAG_TOOLS_PART) && !new.contains_key(*k)).cloned().collect()
}

/// Whether a byte stands for itself in the encoding: the characters the MCP specification allows in tool names.
fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

fn encode_tools(names: &[&str]) -> String {
    let mut out = String::new();
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        for b in name.bytes() {
            if plain(b) {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("={b:02X}"));
            }
        }
    }
    out
}

/// The `count` names of an encoded text; None when it is not one [`encode_tools`] wrote.
fn decode_tools(text: &str, count: usize) -> Option<Vec<String>> {
    if count == 0 {
        return text.is_empty().then(Vec::new);
    }
    text.split('/')
        .map(|name| {
            let mut bytes = Vec::with_capacity(name.len());
            let mut rest = name.as_bytes();
            while let Some((&b, tail)) = rest.split_first() {
                if b == b'=' {
                    let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
                    bytes.push(u8::from_str_radix(hex, 16).ok()?);
                    rest = &tail[2..];
                } else if plain(b) {
                    bytes.push(b);
                    rest = tail;
                } else {
                    return None;
                }
            }
            String::from_utf8(bytes).ok()
        })
        .collect()
}

fn text_hash(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The result of a service's last MCP verification, as its `mcpfleet.io/verification` tag records it:
/// `passed|failed/<RFC 3339 time>/<revision>/<tool count or ->/<reason>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub passed: bool,
    /// Milliseconds since the Unix epoch (whole seconds).
    pub at_ms: u64,
    /// The revision verified, `family:revision`.
    pub revision: String,
    /// The tools it offered, when they were listed.
    pub tools: Option<usize>,
    /// Why it failed (characters AWS tags do not allow become spaces, runs of blanks one, and it is cut to fit);
    /// empty when it passed.
    pub reason: String,
}

impl Verification {
    /// The record a service's tags hold, if any.
    pub fn parse(tags: &Tags) -> Option<Verification> {
        let mut fields = get(tags, TAG_VERIFICATION)?.splitn(5, '/');
        let passed = match fields.next()? {
            "passed" => true,
            "failed" => false,
            _ => return None,
        };
        let at = humantime::parse_rfc3339(fields.next()?).ok()?;
        let at_ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
        let revision = fields.next()?.to_string();
        let tools = match fields.next()? {
            "-" => None,
            n => Some(n.parse().ok()?),
        };
        let reason = fields.next().unwrap_or_default().to_string();
        Some(Verification { passed, at_ms: u64::try_from(at_ms).ok()?, revision, tools, reason })
    }

    /// The service tag that records it.
    pub fn tags(&self) -> Tags {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.at_ms);
        let head = format!(
            "{}/{}/{}/{}/",
            if self.passed { "passed" } else { "failed" },
            humantime::format_rfc3339_seconds(at),
            short(&self.revision),
            self.tools.map_or_else(|| "-".to_string(), |n| n.to_string()),
        );
        let room = MAX_TAG_VALUE.saturating_sub(head.chars().count());
        let safe: String = self.reason.chars().map(tag_char).collect();
        let reason: String = safe.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(room).collect();
        one(TAG_VERIFICATION, &format!("{head}{}", reason.trim_end()))
    }
}

/// `c` when AWS tag values allow it (letters, digits, spaces and `_ . : / = + - @`), else a space.
fn tag_char(c: char) -> char {
    if c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c) { c } else { ' ' }
}

/// The value of `key` among rendered tags.
fn rendered<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
}

/// The desired spec-hash of a rendered service ("" when it has none).
pub fn desired_spec_hash(e: &EcsService) -> &str {
    rendered(&e.create_service.tags, TAG_SPEC_HASH).unwrap_or("")
}

/// The image digest a rendered service is pinned to.
pub fn desired_digest(e: &EcsService) -> Option<&str> {
    rendered(&e.create_service.tags, TAG_IMAGE_DIGEST)
}

/// The transport a rendered service is tagged with.
pub fn desired_transport(e: &EcsService) -> Option<&str> {
    rendered(&e.create_service.tags, TAG_TRANSPORT)
}

/// The transport a rendered task definition is tagged with.
pub fn rendered_transport(td: &TaskDefinitionInput) -> Option<&str> {
    rendered(&td.tags, TAG_TRANSPORT)
}

/// The task-hash a rendered task definition carries.
pub fn desired_task_hash(td: &TaskDefinitionInput) -> Option<&str> {
    rendered(&td.tags, TAG_TASK_HASH)
}

/// The networking of the spec a service was applied with, when `desired` is that spec (its spec-hash is the one
/// the service's tags record: the manifests still describe what was applied). None otherwise: only the revision
/// then tells what was applied.
pub fn applied_networking(state: &ServiceState, desired: Option<&EcsService>) -> Option<Networking> {
    let applied = ServiceTags::of(state).spec_hash?;
    desired.filter(|d| desired_spec_hash(d) == applied).map(|d| Networking::of(&d.create_service))
}

/// Whether the PRIMARY deployment is ECS's circuit breaker going back to the last completed service revision:
/// its reason, or ECS's "rolling back to deployment" event, names it.
pub fn breaker_rolled_back(state: &ServiceState) -> bool {
    let Some(p) = state.primary() else { return false };
    let rollback_event = format!("rolling back to deployment {}", p.id);
    p.rollout_state_reason.contains("circuit breaker: rolling back")
        || state.events.iter().any(|e| e.message.contains(&rollback_event))
}

/// Whether ECS took the service off what mcpfleet applied because that rollout failed (its deployment circuit
/// breaker rolled back), whether or not anyone watched: off the applied revision, whose deployment is FAILED or
/// was replaced by the breaker's rollback; or, on the applied revision, the breaker went back to other networking
/// than `applied` (the applied spec's, when known; see [`applied_networking`]). An out-of-band deployment of
/// another revision or networking is drift, not this.
pub fn rolled_back_by_ecs(state: &ServiceState, applied: Option<&Networking>) -> bool {
    let Some(td) = ServiceTags::of(state).applied else { return false };
    if td == state.task_definition {
        return breaker_rolled_back(state) && applied.is_some_and(|n| n.differs_from(state));
    }
    state.deployments.iter().any(|d| d.task_definition == td && d.rollout_state == RolloutState::Failed)
        || breaker_rolled_back(state)
}

/// The one rule for held-back specs: the spec-hash a service holds back from deployment, if any. That is the
/// recorded `failed-spec-hash`, or, when ECS's circuit breaker visibly rolled back the spec the service was
/// applied with and nobody recorded it yet, that spec. A held spec is not deployed again until the manifest
/// changes (or `apply --retry-failed`). `applied`: the applied spec's networking, when known.
pub fn held_spec<'a>(state: &'a ServiceState, applied: Option<&Networking>) -> Option<&'a str> {
    let tags = ServiceTags::of(state);
    if rolled_back_by_ecs(state, applied) { tags.spec_hash.or(tags.failed_spec_hash) } else { tags.failed_spec_hash }
}

/// Whether `spec_hash` is held back on this service (see [`held_spec`]).
pub fn holds(state: &ServiceState, spec_hash: &str, applied: Option<&Networking>) -> bool {
    !spec_hash.is_empty() && held_spec(state, applied) == Some(spec_hash)
}

/// Whether the spec the service was applied with is held back: its rollout failed (recorded, or visibly rolled
/// back by ECS), so what runs differing from it is not drift to correct.
pub fn applied_spec_held(state: &ServiceState, applied: Option<&Networking>) -> bool {
    ServiceTags::of(state).spec_hash.is_some_and(|h| holds(state, h, applied))
}

/// Whether the service has settled on what mcpfleet last applied: its PRIMARY and only deployment is COMPLETED
/// on the revision mcpfleet asked for (not one ECS's circuit breaker silently went back to), and the spec it runs
/// is not held back as failed (nor was its networking taken back by the breaker). ECS completes a deployment once
/// every task of it ran; the count is not compared after that, since an autoscaler may be moving it.
pub fn runs_what_was_applied(state: &ServiceState, applied: Option<&Networking>) -> bool {
    let td = state.task_definition.as_str();
    let [only] = state.deployments.as_slice() else { return false };
    let settled = only.status == DeploymentStatus::Primary
        && only.rollout_state == RolloutState::Completed
        && only.task_definition == td;
    let asked_for = ServiceTags::of(state).applied == Some(td);
    settled && asked_for && !applied_spec_held(state, applied)
}

/// Whether a service is managed by mcpfleet.
pub fn is_managed(state: &ServiceState) -> bool {
    ServiceTags::of(state).managed
}

// ---- writers ----

fn one(key: &str, value: &str) -> Tags {
    Tags::from([(key.to_string(), value.to_string())])
}

/// The revision becomes the service's last good one.
pub fn last_good(arn: &str) -> Tags {
    one(TAG_LAST_GOOD, arn)
}

/// What a revision's rollout came to.
pub fn outcome(o: Outcome) -> Tags {
    one(TAG_OUTCOME, o.as_str())
}

/// What a revision's rollout came to, with the exposure the service ran it with (see [`Exposure`]): one tag
/// request records both on the revision.
pub fn completed_with(state: &ServiceState) -> Tags {
    let mut tags = outcome(Outcome::Completed);
    tags.extend(Exposure::of(state).tag(&state.arn));
    tags
}

/// A spec whose rollout failed, held back on the service.
pub fn held(spec_hash: &str) -> Tags {
    one(TAG_FAILED_SPEC_HASH, spec_hash)
}

/// The autoscaling whose documents hash to `hash` is in place on the service.
pub fn autoscaling(hash: &str) -> Tags {
    one(TAG_AUTOSCALING, hash)
}

/// The failed rollback of this deployment was reported.
pub fn rollback_failed(deployment: &str) -> Tags {
    one(TAG_ROLLBACK_FAILED, deployment)
}

/// The service state tags that say a service runs the revision `arn` whose tags are `revision`: its spec hash,
/// image and architecture, and its ARN as the applied revision.
pub fn running(arn: &str, revision: &Tags) -> Tags {
    let mut tags = Tags::new();
    for key in [TAG_SPEC_HASH, TAG_IMAGE_TAG, TAG_IMAGE_DIGEST, TAG_ARCHITECTURE] {
        if let Some(v) = get(revision, key) {
            tags.insert(key.to_string(), v.to_string());
        }
    }
    tags.insert(TAG_TASK_DEFINITION.into(), arn.to_string());
    tags
}

/// The tag that records the revision a spec was applied with.
pub fn applied(arn: &str) -> Tag {
    Tag { key: TAG_TASK_DEFINITION.into(), value: arn.into() }
}

/// mcpfleet's own tags for a desired state (services and revisions alike).
#[derive(Debug, Clone, Copy)]
pub struct Stamp<'a> {
    pub spec_hash: &'a str,
    pub transport: &'a str,
    pub architecture: Option<&'a str>,
    pub image_tag: Option<&'a str>,
    pub image_digest: Option<&'a str>,
}

impl Stamp<'_> {
    pub fn tags(&self) -> Vec<Tag> {
        let tag = |k: &str, v: &str| Tag { key: k.into(), value: v.into() };
        let mut out =
            vec![tag(TAG_MANAGED_BY, MANAGED_BY), tag(TAG_SPEC_HASH, self.spec_hash), transport(self.transport)];
        for (k, v) in [
            (TAG_ARCHITECTURE, self.architecture),
            (TAG_IMAGE_TAG, self.image_tag),
            (TAG_IMAGE_DIGEST, self.image_digest),
        ] {
            if let Some(v) = v {
                out.push(tag(k, v));
            }
        }
        out
    }
}

/// The transport tag.
pub fn transport(value: &str) -> Tag {
    Tag { key: TAG_TRANSPORT.into(), value: value.into() }
}

/// The tag that lists the label keys mcpfleet put on a resource.
pub fn owned_labels<'a>(keys: impl Iterator<Item = &'a str>) -> Tag {
    Tag { key: TAG_LABELS.into(), value: keys.collect::<Vec<_>>().join(",") }
}

/// The task-hash tag of a revision.
pub fn task_hash(value: &str) -> Tag {
    Tag { key: TAG_TASK_HASH.into(), value: value.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_managed_by_tag_names_the_owning_controller() {
        let tags = |v: &str| Tags::from([(TAG_MANAGED_BY.to_string(), v.to_string())]);
        let plain = tags("mcpfleet");
        assert_eq!((ServiceTags::parse(&plain).managed, ServiceTags::parse(&plain).owner), (true, None));
        let owned = tags(&managed_by(Some("dynamodb://leases/prod")));
        let parsed = ServiceTags::parse(&owned);
        assert_eq!((parsed.managed, parsed.owner), (true, Some("dynamodb://leases/prod")));
        for other in ["mcpfleetx", "terraform", "mcpfleet "] {
            let t = tags(other);
            assert_eq!(ServiceTags::parse(&t).owner, None, "{other}");
            assert_eq!(ServiceTags::parse(&t).managed, other == "mcpfleet ", "{other}");
        }
    }

    #[test]
    fn task_definition_arns_parse() {
        let arn = TaskDefArn("arn:aws:ecs:us-east-1:123456789012:task-definition/docs-v2:13");
        assert_eq!((arn.short(), arn.family(), arn.revision()), ("docs-v2:13", "docs-v2", Some(13)));
        let bare = TaskDefArn("docs");
        assert_eq!((bare.short(), bare.family(), bare.revision()), ("docs", "docs", None));
        assert_eq!(TaskDefArn("docs:7").revision(), Some(7));
        assert_eq!(TaskDefArn("docs:x").family(), "docs:x");
    }

    fn service(running: &str, reason: &str, tags: &[(&str, &str)]) -> ServiceState {
        let tags: serde_json::Map<String, serde_json::Value> =
            tags.iter().map(|(k, v)| (k.to_string(), (*v).into())).collect();
        serde_json::from_value(serde_json::json!({
            "arn": "arn:aws:ecs:us-east-1:123456789012:service/mcp/search", "cluster": "mcp", "name": "search",
            "status": "ACTIVE", "taskDefinition": running, "desiredCount": 1, "runningCount": 1, "pendingCount": 0,
            "deploymentConfiguration": null,
            "networkConfiguration": {"awsvpcConfiguration": {"subnets": [], "assignPublicIp": "DISABLED"}},
            "deployments": [{"id": "ecs-svc/2", "status": "PRIMARY", "taskDefinition": running, "desiredCount": 1,
                "runningCount": 1, "pendingCount": 0, "failedTasks": 0, "rolloutState": "COMPLETED",
                "rolloutStateReason": reason, "createdAtMs": 0, "updatedAtMs": 0}],
            "events": [], "tags": tags,
        }))
        .expect("a service state")
    }

    #[test]
    fn a_spec_is_held_when_recorded_or_when_ecs_visibly_rolled_it_back() {
        let applied = [(TAG_TASK_DEFINITION, "search:2"), (TAG_SPEC_HASH, "h2")];
        let breaker =
            service("search:1", "ECS deployment circuit breaker: rolling back to deployment ecs-svc/2.", &applied);
        assert!(rolled_back_by_ecs(&breaker, None));
        assert_eq!(held_spec(&breaker, None), Some("h2"));
        assert!(applied_spec_held(&breaker, None));
        // Someone deployed search:1 by hand: drift, nothing held.
        let drift = service("search:1", "ECS deployment ecs-svc/2 completed.", &applied);
        assert!(!rolled_back_by_ecs(&drift, None) && held_spec(&drift, None).is_none() && !holds(&drift, "h2", None));
        let mut recorded = drift.clone();
        recorded.tags.insert(TAG_FAILED_SPEC_HASH.into(), "h2".into());
        assert!(holds(&recorded, "h2", None) && ServiceTags::of(&recorded).applied_failure_recorded());
        assert!(!holds(&recorded, "h3", None));
    }

    /// A rendered service behind one target group, and a service that runs it as applied (its spec-hash and
    /// revision tagged) with `reason` on its PRIMARY deployment.
    fn behind_a_load_balancer(reason: &str) -> (EcsService, ServiceState) {
        let text = "apiVersion: mcpfleet.io/v1alpha1\nkind: McpService\nmetadata: { name: search }\nspec:\n  \
            cluster: mcp\n  image: nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000\n  \
            cpu: 256\n  memory: 512\n  port: 8080\n  network: { subnets: [subnet-0abc1234] }\n  expose:\n    \
            loadBalancers:\n      - targetGroup: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg/0123456789abcdef\n";
        let svc = crate::spec::load_str("search.yaml", text).expect("valid").services.remove(0);
        let e = crate::render::ecs::render(&svc, &crate::render::Resolved::unresolved(&svc));
        let hash = desired_spec_hash(&e).to_string();
        let mut s = service("search:1", reason, &[(TAG_TASK_DEFINITION, "search:1"), (TAG_SPEC_HASH, &hash)]);
        s.network_configuration = e.create_service.network_configuration.clone();
        s.load_balancers = e.create_service.load_balancers.clone();
        (e, s)
    }

    #[test]
    fn a_spec_that_kept_its_revision_is_held_when_the_breaker_took_its_networking_back() {
        let rolling_back = "ECS deployment circuit breaker: rolling back to deployment ecs-svc/2.";
        let (e, mut s) = behind_a_load_balancer(rolling_back);
        let applied = applied_networking(&s, Some(&e));
        assert!(applied.is_some(), "the manifests' spec is the applied one");
        // An earlier rollback still PRIMARY, and the service runs the applied networking: nothing was taken back.
        assert!(!rolled_back_by_ecs(&s, applied.as_ref()) && held_spec(&s, applied.as_ref()).is_none());
        assert!(runs_what_was_applied(&s, applied.as_ref()));

        // The breaker went back to the revision without the target group: the applied spec is held, and the
        // service does not run what was applied.
        s.load_balancers.clear();
        let hash = desired_spec_hash(&e);
        assert!(rolled_back_by_ecs(&s, applied.as_ref()));
        assert_eq!(held_spec(&s, applied.as_ref()), Some(hash));
        assert!(holds(&s, hash, applied.as_ref()) && !runs_what_was_applied(&s, applied.as_ref()));
        // Without the spec at hand, the revision alone cannot tell.
        assert!(!rolled_back_by_ecs(&s, None) && held_spec(&s, None).is_none());

        // The same networking taken off by hand, with no rollback by the breaker: drift, nothing held.
        let (e, mut drift) = behind_a_load_balancer("ECS deployment ecs-svc/2 completed.");
        drift.load_balancers.clear();
        assert!(!rolled_back_by_ecs(&drift, applied_networking(&drift, Some(&e)).as_ref()));

        // A manifest edited since is not the applied spec: its networking says nothing about what was applied.
        s.tags.insert(TAG_SPEC_HASH.into(), "another".into());
        assert!(applied_networking(&s, Some(&e)).is_none());
    }

    #[test]
    fn outcomes_round_trip_and_empty_tags_are_absent() {
        for o in [Outcome::Completed, Outcome::Failed, Outcome::RolledBack] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(Outcome::parse("superseded"), None);
        let tags = Tags::from([(TAG_LAST_GOOD.to_string(), String::new())]);
        assert_eq!(ServiceTags::parse(&tags).last_good, None);
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tool_records_round_trip_any_names_in_tag_sized_values() {
        let odd = names(&["search_documents", "get.document-2", "ns/tool", "a=b", "día", "with space", "", "😀"]);
        for list in [vec![], names(&["one"]), odd.clone()] {
            let tags = tool_tags(&list, 9);
            let mut want = list.clone();
            want.sort();
            assert_eq!(ToolRecord::parse(&tags), Some(ToolRecord::Names(want)), "{tags:?}");
            let allowed = |c: char| c.is_ascii_alphanumeric() || "_.:/=+-@".contains(c);
            assert!(tags.values().all(|v| v.chars().count() <= MAX_TAG_VALUE && v.chars().all(allowed)), "{tags:?}");
        }
        // Repeats are recorded once.
        assert_eq!(
            ToolRecord::parse(&tool_tags(&names(&["b", "a", "b"]), 9)),
            Some(ToolRecord::Names(names(&["a", "b"])))
        );
    }

    #[test]
    fn a_long_tool_list_is_split_across_tags_and_falls_back_to_its_count_when_it_does_not_fit() {
        let many: Vec<String> = (0..600).map(|i| format!("tool_number_{i:04}")).collect();
        let tags = tool_tags(&many, 9);
        let parts = tags.keys().filter(|k| k.starts_with(TAG_TOOLS_PART)).count();
        assert!(parts > 30 && parts < MAX_TAGS - 9, "{parts} parts");
        assert_eq!(ToolRecord::parse(&tags).and_then(|r| r.names().map(<[String]>::len)), Some(600));
        // Beside 48 other tags there is room for the header alone: the count is kept, not the names.
        let crowded = tool_tags(&many, 48);
        assert_eq!(crowded.len(), 1);
        assert_eq!(ToolRecord::parse(&crowded), Some(ToolRecord::Count(600)));
        assert!(tool_tags(&many, MAX_TAGS).is_empty());
        // Two tags left: the header and one part, when one part is enough.
        assert_eq!(ToolRecord::parse(&tool_tags(&names(&["a", "b"]), 48)), Some(ToolRecord::Names(names(&["a", "b"]))));
    }

    #[test]
    fn a_tool_record_with_a_lost_or_edited_part_is_only_a_count() {
        let many: Vec<String> = (0..100).map(|i| format!("tool_{i}")).collect();
        let tags = tool_tags(&many, 9);
        let mut lost = tags.clone();
        lost.remove(&format!("{TAG_TOOLS_PART}2"));
        assert_eq!(ToolRecord::parse(&lost), Some(ToolRecord::Count(100)));
        let mut edited = tags.clone();
        edited.insert(format!("{TAG_TOOLS_PART}1"), "tool_0/tool_1".into());
        assert_eq!(ToolRecord::parse(&edited), Some(ToolRecord::Count(100)));
        let mut garbled = tags.clone();
        garbled.insert(TAG_TOOLS.into(), "many:1:x".into());
        assert_eq!(ToolRecord::parse(&garbled), None);
        assert_eq!(ToolRecord::parse(&Tags::new()), None);
        // A shorter record written over a longer one leaves parts to remove.
        let short = tool_tags(&names(&["a"]), 9);
        let stale = stale_tool_parts(&tags, &short);
        assert!(
            !stale.is_empty()
                && stale.iter().all(|k| k.starts_with(TAG_TOOLS_PART) && k != &format!("{TAG_TOOLS_PART}1"))
        );
        let mut rewritten = tags.clone();
        rewritten.extend(short);
        assert_eq!(ToolRecord::parse(&rewritten), Some(ToolRecord::Names(names(&["a"]))), "extra parts are ignored");
    }

    #[test]
    fn verifications_round_trip_with_their_reason_made_tag_safe() {
        let v = Verification {
            passed: false,
            at_ms: 1_767_225_900_000,
            revision: "arn:aws:ecs:us-east-1:123456789012:task-definition/docs:3".into(),
            tools: Some(12),
            reason: "10.0.1.7:8080: missing tools: get_document (expected); \"quoted\"".into(),
        };
        let tags = v.tags();
        assert_eq!(
            tags[TAG_VERIFICATION],
            "failed/2026-01-01T00:05:00Z/docs:3/12/10.0.1.7:8080: missing tools: get_document expected quoted"
        );
        let back = Verification::parse(&tags).unwrap();
        assert_eq!((back.passed, back.at_ms, back.revision.as_str(), back.tools), (false, v.at_ms, "docs:3", Some(12)));
        let long = Verification { reason: "x".repeat(1000), tools: None, passed: true, ..v };
        let tags = long.tags();
        assert_eq!(tags[TAG_VERIFICATION].chars().count(), MAX_TAG_VALUE);
        assert_eq!(Verification::parse(&tags).map(|v| (v.passed, v.tools)), Some((true, None)));
        assert_eq!(Verification::parse(&one(TAG_VERIFICATION, "maybe/2026-01-01T00:05:00Z/docs:3/1/")), None);
    }

    #[test]
    fn a_tool_record_shrinks_to_its_count_to_make_room_for_labels() {
        let many: Vec<String> = (0..250).map(|i| format!("tool_{i:03}")).collect();
        let mut tags: Tags = (0..30).map(|i| (format!("label-{i}"), "v".to_string())).collect();
        tags.extend((0..9).map(|i| (format!("{TAG_PREFIX}own-{i}"), "v".to_string())));
        let record = tool_tags(&many, tags.len() + 1);
        assert!(record.len() > 5, "{} tags", record.len());
        tags.extend(record);
        let add = |n: usize| -> Tags { (30..30 + n).map(|i| (format!("label-{i}"), "v".to_string())).collect() };
        // Labels it already carries, or few enough new ones, fit as it is.
        assert_eq!(shrink_tool_record(&tags, &add(0)), None);
        assert_eq!(shrink_tool_record(&tags, &add(MAX_TAGS - tags.len())), None);
        let (header, parts) = shrink_tool_record(&tags, &add(8)).unwrap();
        assert_eq!(parts.len(), tags.keys().filter(|k| k.starts_with(TAG_TOOLS_PART)).count());
        let mut shrunk = tags.clone();
        shrunk.retain(|k, _| !parts.contains(k));
        shrunk.extend(header);
        assert_eq!(ToolRecord::parse(&shrunk), Some(ToolRecord::Count(250)));
        assert!(shrunk.len() + 8 <= MAX_TAGS);
    }
}
