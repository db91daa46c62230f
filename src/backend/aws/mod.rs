//! The `aws` backend: the ports over aws-sdk-ecs, aws-sdk-ecr, aws-sdk-secretsmanager,
//! aws-sdk-elasticloadbalancingv2 and aws-sdk-applicationautoscaling; the object store (S3), the lease (DynamoDB) and
//! the Price List (`cost --live-prices`).
//!
//! Clients come from the standard AWS chain (environment, profiles, SSO, ECS task role, IMDS), `--region`, and
//! the SDK's own `AWS_ENDPOINT_URL` support, which is how the tests point them at moto on loopback. SDK types
//! are converted here and go no further. Every HTTP request is counted by an interceptor (retries included), so
//! tests and benchmarks measure what reaches the wire.
//!
//! The SDK's own retries are disabled (one attempt per request): `backend::limits` is the single retry policy,
//! so attempts do not multiply and its documented bound is the bound on the wire. Errors are classified here:
//! throttling, 5xx, and I/O or timeout failures of the connection are retryable; a request that could not be
//! sent for any other reason (no credentials, an expired SSO session, a bad configuration) is reported at once.

mod autoscaling;
mod dynamodb;
mod ecr;
mod ecs;
mod elbv2;
mod pricing;
mod s3;
mod secrets;

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
pub(crate) use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

pub use autoscaling::ApplicationAutoScaling;
pub use dynamodb::DynamoDb;
pub use ecr::Ecr;
pub use ecs::AwsEcs;
pub use elbv2::Elbv2;
pub use pricing::PriceList;
pub use s3::S3;
pub use secrets::SecretsManager;

use super::op::Counts;
use super::sim::CallStats;
use super::{Backend, BackendError, Op, SystemClock};

/// Counts HTTP requests by operation (each attempt of a retried call counts).
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<Counts>);

impl RequestCounter {
    /// Requests so far, as the sim reports its calls.
    pub fn stats(&self) -> CallStats {
        CallStats { calls: self.0.snapshot(), throttled: BTreeMap::new() }
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "mcpfleet-request-counter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Every request the adapters send is an `Op` (tests/iam_policy.rs holds the adapters to it).
        match cfg.load::<Metadata>().map(|m| (m.name(), Op::from_name(m.name()))) {
            Some((_, Some(op))) => self.0.add(op),
            other => {
                tracing::warn!(operation = ?other.map(|(name, _)| name), "a request outside backend::Op was not counted")
            }
        }
        Ok(())
    }
}

/// The aws backend and its request counter.
pub struct Aws {
    pub backend: Backend,
    pub requests: RequestCounter,
    credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
}

impl Aws {
    /// Loads credentials once along the provider chain, so that missing ones are one error before the first
    /// request rather than the same failure for every request. (The clients' identity cache loads them once more
    /// for the first request: a local read, or one metadata call.)
    pub async fn check_credentials(&self) -> Result<(), BackendError> {
        use aws_credential_types::provider::ProvideCredentials;
        let Some(provider) = &self.credentials else {
            return Err(BackendError::Credentials { reason: "no credential provider is configured".into() });
        };
        match provider.provide_credentials().await {
            Ok(_) => Ok(()),
            Err(e) => Err(credentials_failure(&e)),
        }
    }
}

/// Connects with the standard AWS configuration chain; `region` overrides the chain's region.
pub async fn connect(region: Option<String>) -> Aws {
    let config = sdk_config(region).await;
    let requests = RequestCounter::default();
    let ecs = aws_sdk_ecs::Client::from_conf(
        aws_sdk_ecs::config::Builder::from(&config).interceptor(requests.clone()).build(),
    );
    let secrets = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&config).interceptor(requests.clone()).build(),
    );
    let backend = Backend {
        ecs: Arc::new(AwsEcs::new(ecs)),
        images: Arc::new(Ecr::new(aws_sdk_ecr::config::Builder::from(&config).interceptor(requests.clone()).build())),
        secrets: Arc::new(SecretsManager::new(secrets)),
        target_groups: Arc::new(Elbv2::new(aws_sdk_elasticloadbalancingv2::Client::from_conf(
            aws_sdk_elasticloadbalancingv2::config::Builder::from(&config).interceptor(requests.clone()).build(),
        ))),
        autoscaling: Arc::new(ApplicationAutoScaling::new(aws_sdk_applicationautoscaling::Client::from_conf(
            aws_sdk_applicationautoscaling::config::Builder::from(&config).interceptor(requests.clone()).build(),
        ))),
        clock: Arc::new(SystemClock),
    };
    Aws { backend, requests, credentials: config.credentials_provider() }
}

/// The object store of published fleets (S3), from the standard configuration chain; `region` over the
/// chain's. Its requests are counted by `requests`.
pub async fn object_store(region: Option<String>, requests: &RequestCounter) -> S3 {
    S3::new(&sdk_config(region).await, requests.clone())
}

/// The lease store (DynamoDB), from the standard configuration chain; `region` over the chain's. Its requests
/// are counted by `requests`.
pub async fn lease_store(region: Option<String>, requests: &RequestCounter) -> DynamoDb {
    DynamoDb::new(&sdk_config(region).await, requests.clone())
}

/// The region the standard configuration chain names (`AWS_REGION`, a profile's, IMDS), if any.
pub async fn configured_region() -> Option<String> {
    sdk_config(None).await.region().map(|r| r.to_string())
}

/// Every AmazonECS product of `region` from the AWS Price List API (see [`PriceList`]), with the standard
/// configuration chain's credentials.
pub async fn fargate_price_list(region: &str) -> Result<Vec<String>, BackendError> {
    PriceList::new(&sdk_config(None).await).ecs_products(region).await
}

/// The HTTPS client every SDK client sends with: the process's one TLS stack (see `tls`). A configuration built
/// by hand (tests) needs it too: the SDKs are built without a default client of their own.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    crate::tls::install();
    aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
}

/// The shared SDK configuration: the standard chain, `region` over the chain's, and no SDK retries.
async fn sdk_config(region: Option<String>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        // For the services' clients and the credential providers alike.
        .http_client(https_client())
        // One attempt per request: `backend::limits` retries, with its own bound (see its docs).
        .retry_config(aws_config::retry::RetryConfig::disabled());
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r));
    }
    loader.load().await
}

/// The credentials or SSO-token failure in the error's source chain, if there is one, as
/// [`BackendError::Credentials`] with the innermost reason; the whole chain goes to the debug log (`-v`).
fn credentials_error(err: &(dyn std::error::Error + 'static)) -> Option<BackendError> {
    use aws_credential_types::provider::error::{CredentialsError, TokenError};
    let mut e: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cur) = e {
        if cur.is::<CredentialsError>() || cur.is::<TokenError>() {
            return Some(credentials_failure(cur));
        }
        e = cur.source();
    }
    None
}

fn credentials_failure(err: &(dyn std::error::Error + 'static)) -> BackendError {
    tracing::debug!(chain = %DisplayErrorContext(err), "loading AWS credentials failed");
    let mut innermost = err;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    BackendError::Credentials { reason: innermost.to_string() }
}

/// Error codes with which AWS refuses the credentials of a request (unknown key, bad signature, expired token).
const CREDENTIALS_CODES: [&str; 7] = [
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "ExpiredTokenException",
    "ExpiredToken",
];

/// Throttling error codes across AWS services.
const THROTTLING_CODES: [&str; 6] = [
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "RequestThrottled",
];

/// Maps an SDK error to a port error: throttling and 5xx/transport failures are retryable, a missing resource is
/// NotFound, anything else is the AWS message as is.
pub(crate) fn map_err<E>(op: Op, err: SdkError<E, HttpResponse>) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let operation = op;
    let context = || format!("{}", DisplayErrorContext(&err));
    match &err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            let status = se.raw().status().as_u16();
            let code = e.code().unwrap_or("Unknown").to_string();
            let message = format!("{code}: {}", e.message().unwrap_or("(no message)"));
            if THROTTLING_CODES.contains(&code.as_str()) || status == 429 {
                BackendError::Throttled { operation, message }
            } else if status >= 500
                || matches!(code.as_str(), "ServerException" | "InternalFailure" | "ServiceUnavailable")
            {
                BackendError::Unavailable { operation, message }
            } else if CREDENTIALS_CODES.contains(&code.as_str()) {
                BackendError::Credentials { reason: format!("AWS refused them ({message})") }
            } else if code.ends_with("NotFoundException") || code.ends_with("NotFound") {
                // ELBv2 says `TargetGroupNotFound`, the others `…NotFoundException`.
                BackendError::NotFound { operation, message }
            } else {
                BackendError::Invalid { operation, message }
            }
        }
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            BackendError::Unavailable { operation, message: context() }
        }
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => {
            BackendError::Unavailable { operation, message: context() }
        }
        _ if let Some(e) = credentials_error(&err) => e,
        _ => BackendError::Invalid { operation, message: format!("the request was not sent: {}", context()) },
    }
}

#[cfg(test)]
mod tests {
    use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};

    use super::*;

    #[tokio::test]
    async fn clients_make_one_attempt_per_request() {
        let config = sdk_config(Some("eu-west-1".into())).await;
        assert_eq!(config.retry_config().map(|r| r.max_attempts()), Some(1));
        let ecs = aws_sdk_ecs::config::Builder::from(&config).build();
        assert_eq!(ecs.retry_config().map(|r| r.max_attempts()), Some(1));
        assert_eq!(ecs.region().map(|r| r.as_ref()), Some("eu-west-1"));
    }

    fn dispatch(e: ConnectorError) -> SdkError<aws_sdk_ecs::operation::list_services::ListServicesError, HttpResponse> {
        SdkError::dispatch_failure(e)
    }

    #[test]
    fn only_io_and_timeouts_are_retryable_dispatch_failures() {
        let io = dispatch(ConnectorError::io("connection refused".into()));
        assert!(matches!(map_err(Op::ListServices, io), BackendError::Unavailable { .. }));
        let timeout = dispatch(ConnectorError::timeout("timed out".into()));
        assert!(map_err(Op::ListServices, timeout).is_retryable());

        let creds = aws_credential_types::provider::error::CredentialsError::not_loaded("no providers in chain");
        let err = map_err(Op::ListServices, dispatch(ConnectorError::other(Box::new(creds), None)));
        assert!(matches!(err, BackendError::Credentials { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.starts_with("AWS credentials are missing or invalid"), "{message}");
        assert!(message.contains("no providers in chain"), "{message}");

        let other = map_err(Op::ListServices, dispatch(ConnectorError::other("bad endpoint".into(), None)));
        assert!(!other.is_retryable(), "{other:?}");
    }
}
