//! The stable code of every diagnostic, defined here and nowhere else.
//!
//! A code names one rule, so scripts, CI annotations and documentation can refer to a problem without matching its
//! wording, which may improve. Codes are grouped by the validation module that owns them (`E01xx` files and YAML,
//! `E02xx` document shape, `E03xx` names, …); a code is never reused for another rule. README's table is checked
//! against this list by a test.

use std::fmt;

macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $code:literal, $summary:literal;)*) => {
        /// The rule a diagnostic reports on.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $($(#[$doc])* #[doc = $summary] $name,)*
        }

        impl Code {
            /// Every code, in order.
            pub const ALL: &'static [Code] = &[$(Code::$name,)*];

            /// The code as printed: `E0101`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$name => $code,)*
                }
            }

            /// What the rule is about, in a few words (README's table).
            pub fn summary(self) -> &'static str {
                match self {
                    $(Code::$name => $summary,)*
                }
            }
        }
    };
}

codes! {
    // E01xx: files and YAML (spec::mod, spec::yaml).
    Unreadable = "E0101", "a file or directory cannot be read";
    NoManifests = "E0102", "a directory has no *.yaml or *.yml files";
    InvalidYaml = "E0103", "not valid YAML (syntax, duplicate key, collection as key, unknown alias)";
    FileTooLarge = "E0104", "a file is larger than 8 MiB";
    TooDeep = "E0105", "collections nest deeper than 64 levels";
    AliasExpansion = "E0106", "anchors and aliases expand to more than 100,000 values";
    TooManyValues = "E0107", "a file holds more than 1,000,000 values";
    ValueTooLong = "E0108", "one collection or scalar runs over more than 64 KiB of text";
    EmptyFile = "E0109", "a file has no YAML documents";
    NoServices = "E0110", "the fleet has no McpService";
    // E02xx: document shape (spec::mod, spec::recover, durations).
    NotAMapping = "E0201", "a document is not a mapping";
    ApiVersion = "E0202", "apiVersion missing or not mcpfleet.io/v1alpha1";
    Kind = "E0203", "kind missing or not FleetDefaults/McpService";
    DefaultsTwice = "E0204", "more than one FleetDefaults in the fleet";
    UnknownField = "E0205", "a field the schema does not have";
    MissingField = "E0206", "a required field is missing";
    WrongType = "E0207", "a value of the wrong type or not one of the allowed words";
    NotADuration = "E0208", "a duration that is not `<number><unit>` terms";
    FractionalSeconds = "E0209", "a duration that is not a whole number of seconds";
    // E03xx: names (validate::names).
    ServiceName = "E0301", "a service name that is not 1-255 letters, digits, `-` or `_`";
    DuplicateService = "E0302", "a service name defined twice in the fleet";
    ClusterName = "E0303", "a cluster name that is not 1-255 letters, digits, `-` or `_`";
    ClusterMissing = "E0304", "no cluster, here or in FleetDefaults";
    // E04xx: labels (validate::labels).
    TooManyLabels = "E0401", "more than 39 labels";
    LabelKeyLength = "E0402", "a label key not 1-128 characters long";
    LabelKeyChars = "E0403", "a label key with characters AWS tags do not allow";
    LabelReserved = "E0404", "a label key with the reserved prefix `aws:` or `mcpfleet.io/`";
    LabelValueLength = "E0405", "a label value longer than 256 characters";
    LabelValueChars = "E0406", "a label value with characters AWS tags do not allow";
    LabelKeysTooLong = "E0407", "label keys longer than 256 characters together (the tag recording them)";
    // E05xx: image (validate::image).
    ImageRef = "E0501", "an image reference that is malformed or has neither tag nor digest";
    // E06xx: task size and lifecycle (validate::task).
    FargateCpu = "E0601", "cpu is not a Fargate CPU size";
    FargateMemory = "E0602", "memory does not pair with cpu on Fargate";
    Replicas = "E0603", "replicas above ECS's 5000 tasks per service";
    Port = "E0604", "port outside 1..65535";
    StopTimeout = "E0605", "stopTimeout outside Fargate's 2s..120s";
    // E07xx: IAM roles (validate::roles).
    RoleArn = "E0701", "not an IAM role ARN";
    ExecutionRoleMissing = "E0702", "no executionRoleArn where ECS needs one (ECR image, secrets, registry credentials, awslogs)";
    // E08xx: env (validate::env).
    EnvName = "E0801", "an env variable name that is not letters, digits and `_`";
    EnvReserved = "E0802", "an env variable ECS sets itself";
    EnvCredentialValue = "E0803", "an env value that looks like a credential";
    EnvCredentialName = "E0804", "a literal env value for a credential-like name";
    // E09xx: secrets (validate::secrets).
    SecretVarName = "E0901", "a secret's variable name that is not letters, digits and `_`";
    SecretInEnv = "E0902", "a variable set in both env and secrets";
    SecretSsm = "E0903", "an SSM parameter instead of a Secrets Manager secret";
    SecretArn = "E0904", "not a Secrets Manager secret ARN";
    SecretName = "E0905", "not a Secrets Manager secret name";
    SecretKey = "E0906", "an empty JSON key or one containing `:`";
    SecretVersionStage = "E0907", "not a version stage";
    SecretVersionId = "E0908", "not a version id";
    SecretStageAndId = "E0909", "both versionStage and versionId";
    RegistryCredentialsEcr = "E0910", "registryCredentials for an Amazon ECR image (ECS pulls those with the execution role)";
    // E10xx: health check (validate::health).
    HealthPathAndCommand = "E1001", "a health check with both `path` and `command`";
    HealthNoProbe = "E1002", "a health check with neither `path` nor `command`";
    HealthPath = "E1003", "a health-check path that does not start with `/` or has spaces or quotes";
    HealthProbeWithCommand = "E1004", "`probe` given with `command`";
    HealthCommandProgram = "E1005", "CMD/CMD-SHELL without a program";
    HealthCommandForm = "E1006", "a health-check command not starting with CMD or CMD-SHELL";
    HealthInterval = "E1007", "health-check interval outside ECS's 5s..300s";
    HealthTimeout = "E1008", "health-check timeout outside ECS's 2s..60s";
    HealthStartPeriod = "E1009", "health-check startPeriod outside ECS's 0s..300s";
    HealthRetries = "E1010", "health-check retries outside ECS's 1..10";
    HealthTimeoutVsInterval = "E1011", "a health-check timeout not shorter than its interval";
    // E11xx: network (validate::network).
    NoSubnet = "E1101", "no subnet";
    TooManySubnets = "E1102", "more than 16 subnets";
    SubnetId = "E1103", "not a subnet id";
    TooManySecurityGroups = "E1104", "more than 5 security groups";
    SecurityGroupId = "E1105", "not a security group id";
    DuplicateId = "E1106", "a subnet or security group listed twice";
    NetworkMissing = "E1107", "no network, here or in FleetDefaults";
    // E12xx: logging (validate::logging).
    LogGroup = "E1201", "not a CloudWatch Logs group name";
    LogRegion = "E1202", "not an AWS region name";
    LogStreamPrefix = "E1203", "a stream prefix not 1-512 characters without `:` or `*`";
    LogGroupMissing = "E1204", "logging configured without a group";
    LogRegionMissing = "E1205", "no log region and an image outside ECR to take it from";
    // E13xx: rollout (validate::rollout).
    MaxPercent = "E1301", "maxPercent outside 100..200";
    MinHealthyPercent = "E1302", "minHealthyPercent above 100";
    HistoryLimit = "E1303", "historyLimit outside 1..100";
    ProgressDeadline = "E1304", "progressDeadline outside 1m..24h";
    RolloutStuck = "E1305", "maxPercent and minHealthyPercent that could never replace a task";
    // E14xx: local stack (validate::local).
    LocalPortRange = "E1401", "a local host port outside 1024..65535";
    LocalPortTaken = "E1402", "a local host port pinned by two services";
    // E15xx: readiness and endpoints (validate::expose).
    ReadinessPath = "E1501", "a readiness path that does not start with `/` or has spaces or quotes";
    ServiceConnectNamespace = "E1502", "a Service Connect namespace that is not a Cloud Map namespace name or ARN";
    ServiceConnectNamespaceMissing = "E1503", "Service Connect without a namespace, here or in FleetDefaults";
    ServiceConnectDnsName = "E1504", "a Service Connect dnsName that is not a DNS label (1-63 `a-z`, `0-9`, `-`)";
    ServiceConnectPort = "E1505", "a Service Connect port outside 1..65535";
    TooManyLoadBalancers = "E1506", "more than 5 load balancers";
    TargetGroup = "E1507", "a targetGroup that is neither a target group name (1-32 `A-Z`, `a-z`, `0-9`, `-`) nor its ARN";
    TargetGroupTwice = "E1508", "a target group listed twice";
    LoadBalancerPort = "E1509", "a load balancer containerPort that is not the container's port (spec.port)";
    HealthCheckGracePeriod = "E1510", "healthCheckGracePeriod outside 0s..2147483647s";
    // E16xx: MCP verification (validate::mcp).
    McpPath = "E1601", "an mcp path that does not start with `/` or has spaces or quotes";
    McpEndpointMissing = "E1602", "`verify: endpoint` without a load balancer or Service Connect in `expose`";
    McpToolName = "E1603", "an expected tool name that is not 1-128 letters, digits, `_`, `-` or `.`";
    McpToolTwice = "E1604", "an expected tool listed twice";
    McpTimeout = "E1605", "an mcp timeout outside 1s..60s";
    McpUnverified = "E1606", "expectTools or allowToolRemoval on a service that is not verified";
    McpLabels = "E1607", "more than 38 labels on a verified service";
    // E17xx: autoscaling (validate::autoscaling).
    AutoscalingNoTarget = "E1701", "autoscaling without a target (targetCpu, targetMemory or requestsPerTarget)";
    AutoscalingBounds = "E1702", "autoscaling min or max outside 1..5000, or min above max";
    AutoscalingReplicas = "E1703", "replicas outside the autoscaling bounds [min, max]";
    AutoscalingTarget = "E1704", "targetCpu or targetMemory outside 1..100, or requestsPerTarget below 1";
    AutoscalingNoLoadBalancer = "E1705", "requestsPerTarget without a load balancer in expose.loadBalancers";
    AutoscalingCooldown = "E1706", "a scale-in or scale-out cooldown outside 0s..1h";
    AutoscalingName = "E1707", "a service name too long for its scaling policies' names (`NAME-METRIC`, at most 256 characters)";
    AutoscalingLabels = "E1708", "more than 38 labels on an autoscaled service (37 if it is also verified)";
    // E18xx: stdio servers behind the bridge (validate::stdio).
    StdioCommandMissing = "E1801", "`transport: stdio` without `command` on an image in Amazon ECR (whose config cannot be read)";
    StdioOnly = "E1802", "`command` or `bridge` on a service whose transport is not stdio";
    StdioCommandEmpty = "E1803", "a command without a program (empty, or an empty first word)";
    BridgeMaxSessions = "E1804", "bridge.maxSessions outside 1..10000";
    BridgeIdleTimeout = "E1805", "bridge.idleTimeout outside 10s..24h";
    BridgeImage = "E1806", "a bridgeImage that is malformed or not pinned by digest";
    BridgeImageMissing = "E1807", "a stdio service without a bridge image (FleetDefaults' bridgeImage or --bridge-image)";
    StdioPath = "E1808", "a stdio service's health or readiness path that is not the bridge's (/health, /ready), or an mcp path that is one of them";
    StdioHealthProbe = "E1809", "healthCheck.probe on a stdio service (the bridge probes itself)";
    // Reported by resolution (reconcile::resolve), which reads the image config.
    StdioImageCommand = "E1810", "a stdio service without `command` whose image config cannot be read or gives no usable command (neither Entrypoint nor Cmd, no program, over 64 KiB)";
    // E19xx: published fleets (spec::bundle).
    BundleUnreadable = "E1901", "a published fleet that is not a bundle `mcpfleet publish` wrote (not its JSON, another apiVersion, a file named twice)";
    BundleTooLarge = "E1902", "a published fleet larger than 64 MiB";
    BundleMissing = "E1903", "no published fleet at the --source URL";
    // E20xx: secret rotation (validate::rotation).
    RotationLabels = "E2001", "more labels than fit beside the two tags of a service that reads secrets by stage (37 at most, fewer if verified or autoscaled)";
    // E21xx: prices of `cost` and the plan's cost line (cost::prices, cli::cost).
    PricesUnreadable = "E2101", "a --prices file that cannot be read or is larger than 1 MiB";
    PricesFile = "E2102", "a --prices file that is not JSON of the documented shape (a field missing or unknown, a region code or price that is not one)";
    NoPrice = "E2103", "no Fargate price for the fleet's region (the built-in table has us-east-1 only)";
    PriceList = "E2104", "an AWS Price List answer without exactly one price for each Fargate Linux usage type of the region";
    LivePricesSim = "E2105", "--live-prices on the sim backend, which has no price list";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::Code;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = BTreeSet::new();
        for code in Code::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} is used twice");
            assert!(s.len() == 5 && s.starts_with('E') && s[1..].bytes().all(|b| b.is_ascii_digit()), "{s}");
            assert!(!code.summary().is_empty(), "{s} has no summary");
        }
    }

    #[test]
    fn readme_lists_every_code_with_its_meaning() {
        let readme = include_str!("../../README.md");
        for code in Code::ALL {
            let row = format!("| `{}` | {} |", code.as_str(), code.summary());
            assert!(readme.contains(&row), "README.md lacks the row: {row}");
        }
        let listed = readme.lines().filter(|l| l.starts_with("| `E") && l.as_bytes().get(8) == Some(&b'`')).count();
        assert_eq!(listed, Code::ALL.len(), "README.md lists codes that no longer exist");
    }
}
