//! The sim state's journal: the write calls (and the clock moves) a command made since the state file was last
//! written whole, one JSON line each, appended to `<state>.journal` before the call returns.
//!
//! Rewriting the whole world after every write made a command's persistence O(writes × state); appending what
//! the call was makes it proportional to what changed. The world's operations are deterministic (ids and digests
//! come from its own sequence, time from its own clock), so replaying the records in order on the snapshot
//! rebuilds exactly the world the command had. The journal is folded into the snapshot (compacted) when the
//! command ends, and on open when a command crashed before it could, always under the state's lock.
//!
//! The first line is a header naming the snapshot's generation the records apply to. Compaction writes the
//! snapshot with the next generation and only then removes the journal, so a crash in between leaves a journal
//! of an older generation, which is recognised as already folded in and discarded: nothing is applied twice.
//! A record is written with one `write` call; a crash during it can only leave the last line incomplete, which
//! is ignored (and dropped by the compaction). An incomplete line anywhere else, or a line that is not a record,
//! is an error naming the file and line: the journal was changed by something other than mcpfleet.
//!
//! Records reach the kernel before the call returns, so they survive the command crashing or being killed (as
//! the whole-file writes they replace did); like those, they are not forced to disk against a power loss.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::world::World;
use crate::backend::{BackendError, Op, ServiceUpdate, Tags};
use crate::render::autoscaling::{ScalableTargetInput, ScalingPolicyInput};
use crate::render::ecs::{ServiceInput, TaskDefinitionInput};

/// The journal format this build writes and reads.
const FORMAT: u32 = 1;

/// The journal's first line.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    /// Which journal format the records are in.
    journal: u32,
    /// The snapshot generation ([`World::journal_generation`]) the records apply to.
    generation: u64,
}

/// One change to the world: a write call as the sim received it, or a move of its clock.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) enum Record {
    /// The clock moved to this time (deployments and scaling progressed on the way).
    Advance(u64),
    RegisterTaskDefinition(Box<TaskDefinitionInput>),
    DeregisterTaskDefinition(String),
    CreateService(Box<ServiceInput>, Option<String>),
    UpdateService(Box<ServiceUpdate>),
    DeleteService(String, String),
    TagResource(String, Tags),
    UntagResource(String, Vec<String>),
    RegisterScalableTarget(ScalableTargetInput),
    PutScalingPolicy(ScalingPolicyInput),
    DeleteScalingPolicy(String, String),
    DeregisterScalableTarget(String),
}

impl Record {
    /// The operation the record is a call of (`None` for a clock move).
    pub(super) fn op(&self) -> Option<Op> {
        Some(match self {
            Record::Advance(_) => return None,
            Record::RegisterTaskDefinition(_) => Op::RegisterTaskDefinition,
            Record::DeregisterTaskDefinition(_) => Op::DeregisterTaskDefinition,
            Record::CreateService(..) => Op::CreateService,
            Record::UpdateService(_) => Op::UpdateService,
            Record::DeleteService(..) => Op::DeleteService,
            Record::TagResource(..) => Op::TagResource,
            Record::UntagResource(..) => Op::UntagResource,
            Record::RegisterScalableTarget(_) => Op::RegisterScalableTarget,
            Record::PutScalingPolicy(_) => Op::PutScalingPolicy,
            Record::DeleteScalingPolicy(..) => Op::DeleteScalingPolicy,
            Record::DeregisterScalableTarget(_) => Op::DeregisterScalableTarget,
        })
    }

    /// Makes the change again on `w`. A call that failed when it was made fails the same way here, and its
    /// answer is not needed: only its effect on the world is.
    pub(super) fn replay(&self, w: &mut World) {
        let _ = match self {
            Record::Advance(t) => {
                w.advance_to(*t);
                Ok(())
            }
            Record::RegisterTaskDefinition(input) => {
                w.register_task_definition(input);
                Ok(())
            }
            Record::DeregisterTaskDefinition(arn) => w.deregister_task_definition(arn),
            Record::CreateService(input, token) => w.create_service_with_token(input, token.as_deref()).map(drop),
            Record::UpdateService(update) => w.update_service(update).map(drop),
            Record::DeleteService(cluster, name) => w.delete_service(cluster, name),
            Record::TagResource(arn, tags) => w.tag_resource(arn, tags),
            Record::UntagResource(arn, keys) => w.untag_resource(arn, keys),
            Record::RegisterScalableTarget(input) => w.register_scalable_target(input),
            Record::PutScalingPolicy(input) => w.put_scaling_policy(input),
            Record::DeleteScalingPolicy(resource_id, name) => w.delete_scaling_policy(resource_id, name),
            Record::DeregisterScalableTarget(resource_id) => w.deregister_scalable_target(resource_id),
        };
    }
}

/// Where the journal of the state file `state` lives: next to it, `<state>.journal`.
pub fn path_of(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_os_string();
    name.push(".journal");
    PathBuf::from(name)
}

/// What was found in a journal on open.
pub(super) struct Found {
    /// The complete records of the snapshot's generation, in order.
    pub records: Vec<Record>,
    /// Whether there is a journal file at all (stale, torn or empty ones included): it must then be removed by
    /// the compaction.
    pub exists: bool,
}

fn journal_err(at: String, message: String) -> BackendError {
    BackendError::StateJournal { at, message }
}

/// Reads the journal of `state` for the snapshot of `generation`.
pub(super) fn read(state: &Path, generation: u64) -> Result<Found, BackendError> {
    let path = path_of(state);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found { records: Vec::new(), exists: false }),
        Err(e) => return Err(BackendError::State(format!("cannot read {}: {e}", path.display()))),
    };
    // Only newline-terminated lines were completely written; what follows the last newline is a torn record.
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut lines = bytes[..complete].split(|b| *b == b'\n').enumerate().filter(|(_, l)| !l.is_empty());
    let Some((h, header)) = lines.next() else { return Ok(Found { records: Vec::new(), exists: true }) };
    let at = |line: usize| format!("{}:{}", path.display(), line + 1);
    let header: Header =
        serde_json::from_slice(header).map_err(|e| journal_err(at(h), format!("not a journal header: {e}")))?;
    if header.journal != FORMAT {
        return Err(journal_err(
            at(h),
            format!("journal format {} is not the one this mcpfleet reads ({FORMAT})", header.journal),
        ));
    }
    if header.generation != generation {
        // Written for an older snapshot, which the compaction that wrote this one already folded it into.
        return Ok(Found { records: Vec::new(), exists: true });
    }
    let records = lines
        .map(|(n, line)| serde_json::from_slice(line).map_err(|e| journal_err(at(n), format!("not a record: {e}"))))
        .collect::<Result<_, _>>()?;
    Ok(Found { records, exists: true })
}

/// The open journal a command appends its records to.
pub(super) struct Writer {
    file: File,
}

impl Writer {
    /// Starts the journal of `state` for the snapshot of `generation` (none may exist: the last compaction
    /// removed it).
    pub(super) fn create(state: &Path, generation: u64) -> Result<Writer, BackendError> {
        let path = path_of(state);
        let err = |e: std::io::Error| BackendError::State(format!("cannot write {}: {e}", path.display()));
        let mut file = File::options().create(true).truncate(true).write(true).open(&path).map_err(err)?;
        let mut line = serde_json::to_vec(&Header { journal: FORMAT, generation })
            .map_err(|e| BackendError::State(e.to_string()))?;
        line.push(b'\n');
        file.write_all(&line).map_err(err)?;
        Ok(Writer { file })
    }

    /// Appends `record` in one write, so a crash leaves it whole or as a torn last line.
    pub(super) fn append(&mut self, record: &Record) -> Result<(), BackendError> {
        let mut line = serde_json::to_vec(record).map_err(|e| BackendError::State(e.to_string()))?;
        line.push(b'\n');
        self.file.write_all(&line).map_err(|e| BackendError::State(format!("cannot append to the sim journal: {e}")))
    }
}

/// Removes the journal of `state` (after its records were folded into the snapshot).
pub(super) fn remove(state: &Path) -> Result<(), BackendError> {
    let path = path_of(state);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BackendError::State(format!("cannot remove {}: {e}", path.display()))),
    }
}
