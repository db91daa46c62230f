//! Secret resolution through Secrets Manager: names with ListSecrets name filters (10 per call), ARNs with
//! DescribeSecret. Only metadata is requested: the ARN and which version holds which stage (ListSecrets'
//! `SecretVersionsToStages`, DescribeSecret's `VersionIdsToStages`), so a rotation is seen without an extra call.
//! GetSecretValue is never called.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};

use super::map_err;
use crate::backend::{BackendError, Op, SecretInfo, Secrets};

/// The [`Secrets`] port over Secrets Manager.
pub struct SecretsManager {
    client: Client,
}

impl SecretsManager {
    pub fn new(client: Client) -> SecretsManager {
        SecretsManager { client }
    }
}

#[async_trait]
impl Secrets for SecretsManager {
    async fn resolve(&self, ids: &[String]) -> Result<BTreeMap<String, SecretInfo>, BackendError> {
        let mut out = BTreeMap::new();
        let (arns, names): (Vec<&String>, Vec<&String>) = ids.iter().partition(|id| id.starts_with("arn:"));
        for chunk in names.chunks(10) {
            let filter = Filter::builder()
                .key(FilterNameStringType::Name)
                .set_values(Some(chunk.iter().map(|n| n.to_string()).collect()))
                .build();
            let mut pages = self.client.list_secrets().filters(filter).max_results(100).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| map_err(Op::ListSecrets, e))?;
                // The name filter matches prefixes: keep exact names only.
                for s in page.secret_list() {
                    if let (Some(name), Some(arn)) = (s.name(), s.arn())
                        && chunk.iter().any(|n| n.as_str() == name)
                    {
                        out.insert(name.to_string(), info(arn, s.secret_versions_to_stages()));
                    }
                }
            }
        }
        for arn in arns {
            match self.client.describe_secret().secret_id(arn).send().await {
                Ok(d) => {
                    if let Some(full) = d.arn() {
                        out.insert(arn.clone(), info(full, d.version_ids_to_stages()));
                    }
                }
                Err(e) => match map_err(Op::DescribeSecret, e) {
                    BackendError::NotFound { .. } => {}
                    other => return Err(other),
                },
            }
        }
        Ok(out)
    }
}

/// A secret's ARN and stages from an answer's version id → stages map (absent: no versions listed).
fn info(arn: &str, versions: Option<&HashMap<String, Vec<String>>>) -> SecretInfo {
    let versions = versions.into_iter().flatten();
    SecretInfo::from_versions(arn, versions.map(|(v, stages)| (v.as_str(), stages.iter().map(String::as_str))))
}
