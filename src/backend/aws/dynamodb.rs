//! The lease store over aws-sdk-dynamodb: one item per lease, key `name`, read strongly consistent and written
//! with PutItem on a condition on its record version (`rvn`).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};

use crate::backend::lease::{LeaseRecord, LeaseStore, LeaseUrl, LeaseWrite};
use crate::backend::{BackendError, Op};

/// The table's partition key.
const KEY: &str = "name";

/// The DynamoDB adapter.
pub struct DynamoDb {
    client: aws_sdk_dynamodb::Client,
}

impl DynamoDb {
    pub fn new(config: &aws_config::SdkConfig, requests: super::RequestCounter) -> DynamoDb {
        let conf = aws_sdk_dynamodb::config::Builder::from(config).interceptor(requests).build();
        DynamoDb { client: aws_sdk_dynamodb::Client::from_conf(conf) }
    }
}

fn s(item: &HashMap<String, AttributeValue>, k: &str) -> String {
    item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

fn n(item: &HashMap<String, AttributeValue>, k: &str) -> u64 {
    item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn invalid(op: Op, e: impl std::fmt::Display) -> BackendError {
    BackendError::Invalid { operation: op, message: e.to_string() }
}

#[async_trait]
impl LeaseStore for DynamoDb {
    async fn read(&self, url: &LeaseUrl) -> Result<Option<LeaseRecord>, BackendError> {
        let out = self
            .client
            .get_item()
            .table_name(&url.table)
            .key(KEY, AttributeValue::S(url.name.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| super::map_err(Op::GetItem, e))?;
        Ok(out.item().map(|item| LeaseRecord {
            holder: s(item, "holder"),
            record_version: s(item, "rvn"),
            duration_ms: n(item, "leaseDurationMs"),
            acquired_at: s(item, "acquiredAt"),
            renewed_at: s(item, "renewedAt"),
            transitions: n(item, "transitions"),
        }))
    }

    async fn write(
        &self,
        url: &LeaseUrl,
        expected: Option<&str>,
        record: &LeaseRecord,
    ) -> Result<LeaseWrite, BackendError> {
        let item = HashMap::from([
            (KEY.to_string(), AttributeValue::S(url.name.clone())),
            ("holder".to_string(), AttributeValue::S(record.holder.clone())),
            ("rvn".to_string(), AttributeValue::S(record.record_version.clone())),
            ("leaseDurationMs".to_string(), AttributeValue::N(record.duration_ms.to_string())),
            ("acquiredAt".to_string(), AttributeValue::S(record.acquired_at.clone())),
            ("renewedAt".to_string(), AttributeValue::S(record.renewed_at.clone())),
            ("transitions".to_string(), AttributeValue::N(record.transitions.to_string())),
        ]);
        let req = self.client.put_item().table_name(&url.table).set_item(Some(item));
        let req = match expected {
            None => req.condition_expression("attribute_not_exists(#k)").expression_attribute_names("#k", KEY),
            Some(rvn) => req
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", "rvn")
                .expression_attribute_values(":v", AttributeValue::S(rvn.to_string())),
        };
        match req.send().await {
            Ok(_) => Ok(LeaseWrite::Done),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(LeaseWrite::Conflict)
            }
            Err(e) => Err(super::map_err(Op::PutItem, e)),
        }
    }

    async fn create_table(&self, table: &str) -> Result<bool, BackendError> {
        let key = KeySchemaElement::builder()
            .attribute_name(KEY)
            .key_type(KeyType::Hash)
            .build()
            .map_err(|e| invalid(Op::CreateTable, e))?;
        let attr = AttributeDefinition::builder()
            .attribute_name(KEY)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| invalid(Op::CreateTable, e))?;
        let out = self
            .client
            .create_table()
            .table_name(table)
            .key_schema(key)
            .attribute_definitions(attr)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => Ok(false),
            Err(e) => Err(super::map_err(Op::CreateTable, e)),
        }
    }
}
