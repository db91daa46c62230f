//! `--live-prices`: the Price List adapter against aws-smithy-mocks, with GetProducts answers shaped as AWS sends
//! them for AmazonECS (each `PriceList` item a product as a JSON document in a string, `terms.OnDemand` with one
//! price dimension, region-prefixed usage types), read into the prices `cost` uses. Pages are followed, the query
//! names AmazonECS and the region, and a refusal is AWS's message.

use aws_sdk_pricing::Client;
use aws_sdk_pricing::operation::get_products::GetProductsOutput;
use aws_sdk_pricing::types::FilterType;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use mcpfleet::backend::aws::PriceList;
use mcpfleet::backend::{BackendError, Op};
use mcpfleet::cost::{Cents, PriceSource, PriceTable, Tasks};
use mcpfleet::render::CpuArch;
use mcpfleet::testkit::price_list_product;

fn no_sdk_retries(b: aws_sdk_pricing::config::Builder) -> aws_sdk_pricing::config::Builder {
    b.retry_config(aws_sdk_pricing::config::retry::RetryConfig::disabled())
}

fn eu_west_1(sku: &str, usagetype: &str, usd: &str) -> String {
    price_list_product(sku, &format!("EUW1-{usagetype}"), "eu-west-1", "EU (Ireland)", usd)
}

/// Whether a GetProducts request is the query `--live-prices` makes for `region`.
fn asks_for(r: &aws_sdk_pricing::operation::get_products::GetProductsInput, region: &str) -> bool {
    let filter = r.filters().first();
    r.service_code() == Some("AmazonECS")
        && r.format_version() == Some("aws_v1")
        && r.filters().len() == 1
        && filter
            .is_some_and(|f| f.r#type() == &FilterType::TermMatch && f.field() == "regionCode" && f.value() == region)
}

#[tokio::test]
async fn live_prices_follow_the_pages_and_price_the_fleet() {
    let first = mock!(Client::get_products)
        .match_requests(|r| asks_for(r, "eu-west-1") && r.next_token().is_none())
        .then_output(|| {
            GetProductsOutput::builder()
                .format_version("aws_v1")
                .price_list(eu_west_1("QX2H5C2N7UFRTDUS", "Fargate-vCPU-Hours:perCPU", "0.0449100000"))
                .price_list(eu_west_1("Y6RZUXNS8CZRXMG8", "Fargate-GB-Hours", "0.0049340000"))
                // Left aside: Spot and Windows prices, storage.
                .price_list(eu_west_1("B5VNPAMX2UF4UD9M", "SpotUsage:Fargate-vCPU-Hours:perCPU", "0.0134730000"))
                .price_list(eu_west_1("P9Q4CGJ7N6RSZ3DV", "Fargate-Windows-vCPU-Hours:perCPU", "0.0512100000"))
                .price_list(eu_west_1("T7H4BUN2QK3ZHR5E", "Fargate-EphemeralStorage-GB-Hours", "0.0001220000"))
                .next_token("eyJwYWdlIjoyfQ==")
                .build()
        });
    let second = mock!(Client::get_products)
        .match_requests(|r| asks_for(r, "eu-west-1") && r.next_token() == Some("eyJwYWdlIjoyfQ=="))
        .then_output(|| {
            GetProductsOutput::builder()
                .format_version("aws_v1")
                .price_list(eu_west_1("6G3CQ3ABE8F7X2AV", "Fargate-ARM-vCPU-Hours:perCPU", "0.0359200000"))
                .price_list(eu_west_1("8FJN2YSUGQ2VUH6W", "Fargate-ARM-GB-Hours", "0.0039400000"))
                .build()
        });
    let client = mock_client!(aws_sdk_pricing, RuleMode::Sequential, [&first, &second], no_sdk_retries);
    let items = PriceList::with_client(client).ecs_products("eu-west-1").await.unwrap();
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    assert_eq!(items.len(), 7);

    let table = PriceTable::from_price_list("eu-west-1", &items).unwrap();
    assert_eq!(table.source, PriceSource::Live);
    let rates = table.region("eu-west-1").unwrap();
    // documents: 2 × 730 × (0.5 × 0.03592 + 1 × 0.00394) = 1460 × 0.0219 = 31.974 → 31.97.
    let documents = Tasks { cpu: 512, memory: 1024, architecture: CpuArch::Arm64, replicas: 2 };
    assert_eq!(documents.monthly(rates.of(CpuArch::Arm64)), Cents(3197));
    // database: 2 × 730 × (1 × 0.04491 + 2 × 0.004934) = 1460 × 0.054778 = 79.97588 → 79.98.
    let database = Tasks { cpu: 1024, memory: 2048, architecture: CpuArch::X86_64, replicas: 2 };
    assert_eq!(database.monthly(rates.of(CpuArch::X86_64)), Cents(7998));
    assert!(table.region("us-east-1").is_err(), "only the region asked for is priced");
}

#[tokio::test]
async fn an_answer_without_the_arm64_prices_is_said_so() {
    let only_x86 = mock!(Client::get_products).then_output(|| {
        GetProductsOutput::builder()
            .price_list(eu_west_1("QX2H5C2N7UFRTDUS", "Fargate-vCPU-Hours:perCPU", "0.0449100000"))
            .price_list(eu_west_1("Y6RZUXNS8CZRXMG8", "Fargate-GB-Hours", "0.0049340000"))
            .build()
    });
    let client = mock_client!(aws_sdk_pricing, RuleMode::Sequential, [&only_x86], no_sdk_retries);
    let items = PriceList::with_client(client).ecs_products("eu-west-1").await.unwrap();
    let err = PriceTable::from_price_list("eu-west-1", &items).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the AWS Price List has no price for Fargate-ARM-vCPU-Hours:perCPU for Fargate in region eu-west-1 [E2104]"
    );
}

#[tokio::test]
async fn a_refused_query_is_aws_message() {
    let body =
        r#"{"__type":"AccessDeniedException","Message":"User is not authorized to perform: pricing:GetProducts"}"#;
    let denied = mock!(Client::get_products).sequence().http_status(400, Some(body.into())).repeatedly().build();
    let client = mock_client!(aws_sdk_pricing, RuleMode::Sequential, [&denied], no_sdk_retries);
    let err = PriceList::with_client(client).ecs_products("eu-west-1").await.unwrap_err();
    assert_eq!(
        err,
        BackendError::Invalid {
            operation: Op::GetProducts,
            message: "AccessDeniedException: User is not authorized to perform: pricing:GetProducts".into()
        }
    );
    assert_eq!(denied.num_calls(), 1);
}
