//! Apply never fights the controller: services a controller with a lease converges say so in their managed-by
//! tag (`mcpfleet <lease URL>`), and `apply` and `rollback` refuse them while that lease is live, unless
//! `--force`. Checked after the first read and before the first write, so a refusal changes nothing.

use std::collections::BTreeMap;
use std::time::SystemTime;

use mcpfleet::backend::ServiceState;
use mcpfleet::backend::lease::{LeaseStore, LeaseUrl};
use mcpfleet::state::ServiceTags;

use super::Cli;
use super::backend::Connected;

/// What the refused command is, for the message.
#[derive(Debug, Clone, Copy)]
pub enum Command {
    Apply,
    Rollback,
}

/// `Ok(true)` when the command may go on: no service in `services` is owned by a controller whose lease is
/// live, or `force` is set (then each such owner is named in a warning). Otherwise the refusal is printed on
/// stderr and `Ok(false)` returned.
pub async fn may_write<'a>(
    cli: &Cli,
    conn: &Connected,
    services: impl IntoIterator<Item = &'a ServiceState>,
    force: bool,
    command: Command,
) -> anyhow::Result<bool> {
    let mut owned: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in services {
        if let Some(owner) = ServiceTags::of(s).owner {
            owned.entry(owner).or_default().push(&s.name);
        }
    }
    if owned.is_empty() {
        return Ok(true);
    }
    let store = mcpfleet::backend::aws::lease_store(cli.region.clone(), conn.store_requests()).await;
    let mut refused = false;
    for (owner, names) in owned {
        let verdict = judge(&store, owner).await;
        let Some(holder) = verdict else { continue };
        let what = services_phrase(&names);
        if force {
            eprintln!(
                "warning: {what} {} by the controller holding {owner} ({holder}): going on (--force)",
                be(&names)
            );
            continue;
        }
        refused = true;
        eprintln!("error: {what} {} by the controller holding {owner} ({holder}).", be(&names));
        eprintln!("  That controller converges them to the published fleet: change the fleet with `mcpfleet publish`.");
        match command {
            Command::Apply => eprintln!(
                "  --force applies anyway; the controller converges them back to the published fleet at its next pass."
            ),
            Command::Rollback => eprintln!(
                "  --force rolls back anyway; the rolled-back spec is held, so the controller keeps the rollback until \
                 the published spec changes."
            ),
        }
    }
    Ok(!refused)
}

/// `None` when the owner's lease is not live (released, expired, gone): the command may write. Otherwise who
/// holds it and since when, or why that could not be told (then the command refuses as well).
async fn judge(store: &dyn LeaseStore, owner: &str) -> Option<String> {
    let url = match LeaseUrl::parse(owner) {
        Ok(url) => url,
        Err(e) => return Some(format!("an owner mcpfleet cannot read: {e}")),
    };
    match store.read(&url).await {
        Ok(Some(record)) if record.live_at(SystemTime::now()) => {
            Some(format!("held by {}, since {}, renewed {}", record.holder, record.acquired_at, record.renewed_at))
        }
        Ok(_) => None,
        Err(e) => Some(format!("its lease could not be read: {e}")),
    }
}

fn services_phrase(names: &[&str]) -> String {
    match names {
        [one] => format!("service {one}"),
        more => format!("{} services ({})", more.len(), more.join(", ")),
    }
}

fn be(names: &[&str]) -> &'static str {
    if names.len() == 1 { "is owned" } else { "are owned" }
}
