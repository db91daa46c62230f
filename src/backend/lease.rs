//! The store of the controller's lease (`run --lease dynamodb://TABLE/NAME`): one item per fleet, written only on
//! a condition on the record version number the writer last read, so of two replicas exactly one holds it. The
//! port speaks mcpfleet's types; `aws::dynamodb` is its adapter. The election itself is `controller::lease`.

use std::fmt;

use async_trait::async_trait;

use super::BackendError;

/// Where a lease lives: `dynamodb://TABLE/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseUrl {
    pub table: String,
    pub name: String,
}

impl LeaseUrl {
    /// Parses `dynamodb://TABLE/NAME` (a DynamoDB table name, a non-empty lease name). The whole URL goes into
    /// the services' managed-by tag (see `state::managed_by`), so it is held to what an ECS tag value may be:
    /// at most [`LeaseUrl::MAX_LEN`] characters, NAME of letters, digits and `+ - = . _ : / @`.
    pub fn parse(s: &str) -> Result<LeaseUrl, String> {
        let rest = s.strip_prefix("dynamodb://").ok_or_else(|| format!("`{s}` is not a dynamodb://TABLE/NAME URL"))?;
        let (table, name) = rest.split_once('/').unwrap_or((rest, ""));
        LeaseUrl::check_table(table).map_err(|e| format!("`{s}`: {e}"))?;
        if name.is_empty() {
            return Err(format!("`{s}` names no lease: write dynamodb://TABLE/NAME"));
        }
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-=._:/@".contains(&b)) {
            return Err(format!(
                "`{s}`: the lease name may hold letters, digits and `+ - = . _ : / @` only (it is written in the \
                 services' mcpfleet.io/managed-by tag)"
            ));
        }
        if s.len() > LeaseUrl::MAX_LEN {
            return Err(format!(
                "`{s}` is {} characters long; at most {} fit in the services' mcpfleet.io/managed-by tag",
                s.len(),
                LeaseUrl::MAX_LEN
            ));
        }
        Ok(LeaseUrl { table: table.to_string(), name: name.to_string() })
    }

    /// The longest URL: an ECS tag value holds 256 characters, and the managed-by value is `mcpfleet <URL>`.
    pub const MAX_LEN: usize = 256 - "mcpfleet ".len();

    /// A DynamoDB table name: 3-255 letters, digits, `_`, `-` and `.`.
    pub fn check_table(table: &str) -> Result<(), String> {
        let ok = (3..=255).contains(&table.len())
            && table.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok {
            Ok(())
        } else {
            Err(format!("`{table}` is not a DynamoDB table name (3-255 letters, digits, `_`, `-`, `.`)"))
        }
    }
}

impl fmt::Display for LeaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dynamodb://{}/{}", self.table, self.name)
    }
}

/// The lease item as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// Who holds it (a controller's identity); empty when released.
    pub holder: String,
    /// Changes at every write: a waiter measures a lease's age by how long this stayed the same on its own clock.
    pub record_version: String,
    /// How long a holder may go without renewing before a waiter may take the lease.
    pub duration_ms: u64,
    /// When the holder acquired it (RFC 3339, the holder's clock: for people, never for the election).
    pub acquired_at: String,
    /// When the holder last renewed it (RFC 3339, the holder's clock).
    pub renewed_at: String,
    /// How many times the lease changed hands.
    pub transitions: u64,
}

impl LeaseRecord {
    /// Whether a holder renewed the lease less than a lease duration before `now`, by the stamps of the
    /// holder's clock. A standby measures age on its own clock instead, over a whole lease duration; a one-shot
    /// command (`apply`, `rollback`) cannot wait that long, so it trusts the stamps, one second of rounding
    /// aside. An unreadable stamp counts as live: a command refuses rather than fights a controller.
    pub fn live_at(&self, now: std::time::SystemTime) -> bool {
        if self.holder.is_empty() {
            return false;
        }
        match humantime::parse_rfc3339_weak(&self.renewed_at) {
            Ok(renewed) => {
                now < renewed + std::time::Duration::from_millis(self.duration_ms) + std::time::Duration::from_secs(1)
            }
            Err(_) => true,
        }
    }
}

/// What a conditional write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseWrite {
    Done,
    /// The item was not as expected (another replica wrote it): nothing was written.
    Conflict,
}

/// A lease store: DynamoDB.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// The item, read strongly consistent; `None` when there is none.
    async fn read(&self, url: &LeaseUrl) -> Result<Option<LeaseRecord>, BackendError>;
    /// Writes `record` if the item's record version is still `expected` (`None`: there is no item).
    async fn write(
        &self,
        url: &LeaseUrl,
        expected: Option<&str>,
        record: &LeaseRecord,
    ) -> Result<LeaseWrite, BackendError>;
    /// Creates a lease table (partition key `name`, a string; on-demand billing); `false` when it already
    /// exists.
    async fn create_table(&self, table: &str) -> Result<bool, BackendError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_urls_name_a_table_and_a_lease() {
        let u = LeaseUrl::parse("dynamodb://mcpfleet-leases/prod").unwrap();
        assert_eq!((u.table.as_str(), u.name.as_str()), ("mcpfleet-leases", "prod"));
        assert_eq!(u.to_string(), "dynamodb://mcpfleet-leases/prod");
        for bad in ["mcpfleet-leases/prod", "dynamodb://mcpfleet-leases", "dynamodb://ab/x", "dynamodb://a b c/x"] {
            assert!(LeaseUrl::parse(bad).is_err(), "{bad}");
        }
        // Whatever parses fits in a tag value: no characters ECS refuses, never over 256 with the prefix.
        assert!(LeaseUrl::parse("dynamodb://leases/prod fleet").unwrap_err().contains("letters, digits"));
        assert!(LeaseUrl::parse("dynamodb://leases/team@eu-west-1:prod/v2").is_ok());
        let long = format!("dynamodb://leases/{}", "n".repeat(LeaseUrl::MAX_LEN));
        assert!(LeaseUrl::parse(&long).unwrap_err().contains("at most 247"));
        let rec = |holder: &str, renewed: &str| LeaseRecord {
            holder: holder.into(),
            record_version: "1".into(),
            duration_ms: 15_000,
            acquired_at: "2026-12-01T10:00:00Z".into(),
            renewed_at: renewed.into(),
            transitions: 1,
        };
        let now = humantime::parse_rfc3339("2026-12-01T10:00:20Z").unwrap();
        assert!(rec("a/1/x", "2026-12-01T10:00:10Z").live_at(now));
        assert!(!rec("a/1/x", "2026-12-01T10:00:04Z").live_at(now), "renewed 16 s ago: gone");
        assert!(!rec("", "2026-12-01T10:00:19Z").live_at(now), "released");
        assert!(rec("a/1/x", "yesterday").live_at(now), "unreadable: refuse rather than fight");
        let longest = format!("dynamodb://leases/{}", "n".repeat(LeaseUrl::MAX_LEN - "dynamodb://leases/".len()));
        assert_eq!(crate::state::managed_by(Some(&LeaseUrl::parse(&longest).unwrap().to_string())).len(), 256);
    }
}
