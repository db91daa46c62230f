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
    /// Parses `dynamodb://TABLE/NAME` (a DynamoDB table name, a non-empty lease name).
    pub fn parse(s: &str) -> Result<LeaseUrl, String> {
        let rest = s.strip_prefix("dynamodb://").ok_or_else(|| format!("`{s}` is not a dynamodb://TABLE/NAME URL"))?;
        let (table, name) = rest.split_once('/').unwrap_or((rest, ""));
        LeaseUrl::check_table(table).map_err(|e| format!("`{s}`: {e}"))?;
        if name.is_empty() || name.len() > 1024 || name.chars().any(char::is_control) {
            return Err(format!("`{s}` names no lease: write dynamodb://TABLE/NAME (NAME: 1-1024 characters)"));
        }
        Ok(LeaseUrl { table: table.to_string(), name: name.to_string() })
    }

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
    }
}
