//! The AWS Price List API over aws-sdk-pricing: the AmazonECS products of one region (Fargate's prices among
//! them), for `cost --live-prices` and `plan --live-prices`. One GetProducts query per run, paged; the products
//! come back as the JSON documents AWS sends, read by `cost::prices` (no SDK type leaves this file).
//!
//! The Price List is served from a few regions only, whatever region it prices: the client asks us-east-1
//! (or `AWS_ENDPOINT_URL`, as every client does). Unlike the fleet's clients it keeps the SDK's standard retries:
//! it is one query outside `backend::limits`, made once.

use aws_sdk_pricing::types::{Filter, FilterType};

use crate::backend::{BackendError, Op};

/// Where the Price List API is served (it also is in eu-central-1 and ap-south-1).
pub const PRICE_LIST_REGION: &str = "us-east-1";

/// The Price List's service code of ECS (Fargate's prices are ECS products).
const SERVICE_CODE: &str = "AmazonECS";

/// Pages read at most (the AmazonECS products of a region fill one or two of 100).
const MAX_PAGES: usize = 20;

/// The Price List adapter.
pub struct PriceList {
    client: aws_sdk_pricing::Client,
}

impl PriceList {
    /// From the shared configuration, in [`PRICE_LIST_REGION`], with the SDK's standard retries.
    pub fn new(config: &aws_config::SdkConfig) -> PriceList {
        let conf = aws_sdk_pricing::config::Builder::from(config)
            .region(aws_config::Region::new(PRICE_LIST_REGION))
            .retry_config(aws_config::retry::RetryConfig::standard())
            .build();
        PriceList { client: aws_sdk_pricing::Client::from_conf(conf) }
    }

    /// Over a client built elsewhere (tests' mocked clients).
    pub fn with_client(client: aws_sdk_pricing::Client) -> PriceList {
        PriceList { client }
    }

    /// Every AmazonECS product of `region`, each a JSON document as the API returns it.
    pub async fn ecs_products(&self, region: &str) -> Result<Vec<String>, BackendError> {
        let invalid =
            |e: &dyn std::fmt::Display| BackendError::Invalid { operation: Op::GetProducts, message: e.to_string() };
        let filter = Filter::builder()
            .r#type(FilterType::TermMatch)
            .field("regionCode")
            .value(region)
            .build()
            .map_err(|e| invalid(&e))?;
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let out = self
                .client
                .get_products()
                .service_code(SERVICE_CODE)
                .format_version("aws_v1")
                .filters(filter.clone())
                .max_results(100)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| super::map_err(Op::GetProducts, e))?;
            items.extend(out.price_list().iter().cloned());
            match out.next_token().filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t.to_string()),
                None => return Ok(items),
            }
        }
        Err(invalid(&format!("more than {MAX_PAGES} pages of {SERVICE_CODE} products for {region}")))
    }
}
