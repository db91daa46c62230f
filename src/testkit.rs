//! Synthetic fleets for tests and benchmarks: N services over a few repositories and secrets, and a sim world
//! seeded with exactly what they reference; and AWS Price List products as GetProducts returns them.

use crate::backend::sim::World;

/// The registry every synthetic image lives in.
pub const REGISTRY: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

/// A fleet of `n` services in one file: FleetDefaults plus McpServices `svc-0000…`, spread over `repos`
/// repositories (tag `v1`) and `secrets` secrets.
pub fn fleet_yaml(n: usize, repos: usize, secrets: usize) -> String {
    let mut text = String::from(
        "apiVersion: mcpfleet.io/v1alpha1\nkind: FleetDefaults\nspec:\n  cluster: bench\n  network: { subnets: [subnet-0abc1234], securityGroups: [sg-0abc1234] }\n  executionRoleArn: arn:aws:iam::123456789012:role/exec\n  logging: { group: /mcp/bench }\n",
    );
    for i in 0..n {
        let arch = ["auto", "arm64", "x86_64"][i % 3];
        text.push_str(&format!(
            "---\napiVersion: mcpfleet.io/v1alpha1\nkind: McpService\nmetadata: {{ name: svc-{i:05}, labels: {{ team: t{} }} }}\nspec:\n  image: {REGISTRY}/mcp/repo-{}:v1\n  architecture: {arch}\n  cpu: 256\n  memory: 512\n  replicas: {}\n  port: 8080\n  env: {{ LOG_LEVEL: INFO, INDEX: '{i}' }}\n  secrets: {{ API_KEY: {{ secret: bench/secret-{}, key: api_key }} }}\n  healthCheck: {{ path: /health, interval: 10s, timeout: 5s }}\n  stopTimeout: 20s\n",
            i % 7,
            i % repos.max(1),
            1 + i % 3,
            i % secrets.max(1),
        ));
    }
    text
}

/// A world holding the images (multi-arch, tag `v1`) and secrets [`fleet_yaml`] references.
pub fn seeded_world(repos: usize, secrets: usize) -> World {
    let mut w = World::default();
    for r in 0..repos.max(1) {
        w.push_image(
            &format!("{REGISTRY}/mcp/repo-{r}"),
            "v1",
            vec!["linux/amd64".into(), "linux/arm64".into()],
            false,
        );
    }
    for s in 0..secrets.max(1) {
        w.create_secret(&format!("bench/secret-{s}"));
    }
    w
}

/// One AmazonECS product of a Price List `GetProducts` answer (an item of `PriceList`: a JSON document in a
/// string), shaped as AWS writes it: product attributes, one On-Demand term with one price dimension.
pub fn price_list_product(sku: &str, usagetype: &str, region: &str, location: &str, usd: &str) -> String {
    serde_json::json!({
        "product": {
            "productFamily": "Compute",
            "attributes": {
                "servicecode": "AmazonECS",
                "regionCode": region,
                "location": location,
                "locationType": "AWS Region",
                "usagetype": usagetype,
                "operation": "",
                "servicename": "Amazon Elastic Container Service"
            },
            "sku": sku
        },
        "serviceCode": "AmazonECS",
        "terms": {
            "OnDemand": {
                format!("{sku}.JRTCKXETXF"): {
                    "priceDimensions": {
                        format!("{sku}.JRTCKXETXF.6YS6EN2CT7"): {
                            "unit": "hours",
                            "endRange": "Inf",
                            "description": format!("AWS Fargate - {usagetype} - {location}"),
                            "appliesTo": [],
                            "rateCode": format!("{sku}.JRTCKXETXF.6YS6EN2CT7"),
                            "beginRange": "0",
                            "pricePerUnit": { "USD": usd }
                        }
                    },
                    "sku": sku,
                    "effectiveDate": "2026-11-01T00:00:00Z",
                    "offerTermCode": "JRTCKXETXF",
                    "termAttributes": {}
                }
            }
        },
        "version": "20261101000000",
        "publicationDate": "2026-11-01T00:00:00Z"
    })
    .to_string()
}
