//! What a service revision runs besides its task definition, as types: the service's [`Networking`] (network
//! configuration, load balancers, Service Connect), compared the way ECS treats it, and the [`Exposure`] a revision
//! last completed with (load balancers, Service Connect, health-check grace period), recorded in one tag on the
//! revision so that a rollback puts back all of it, not the task definition alone.
//!
//! ECS calls a task definition with that networking a *service revision*: a change of the networking alone starts
//! a deployment of the same task definition, and ECS's circuit breaker "rolls back the service deployment to the
//! last successfully deployed service revision", networking included
//! (<https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-revision.html>). mcpfleet's identity for
//! a rollout is therefore the task definition *and* the networking of the spec it applies. Pure: no I/O.

use crate::backend::{ServiceState, Tags, TaskDefinition};
use crate::render::ecs::{LoadBalancer, NetworkConfiguration, ServiceConnectConfiguration, ServiceInput};

/// The revision tag holding its [`Exposure`].
pub const TAG_EXPOSURE: &str = "mcpfleet.io/exposure";

/// The most characters AWS takes in a tag value.
const MAX_TAG_VALUE: usize = 256;

/// A list ECS treats as a set (it may echo it in any order), sorted and deduplicated.
pub fn as_set<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

/// Subnets and security groups are sets to ECS: sorted and deduplicated, so only a real difference counts.
pub fn network_as_sets(n: &NetworkConfiguration) -> NetworkConfiguration {
    let mut out = n.clone();
    out.awsvpc_configuration.subnets = as_set(&n.awsvpc_configuration.subnets);
    out.awsvpc_configuration.security_groups = as_set(&n.awsvpc_configuration.security_groups);
    out
}

/// Service Connect as comparable values: off and absent are the same, services and client aliases are sets, and
/// a namespace ECS echoes as an ARN where the other side names it (or the reverse) is taken as the same one:
/// telling them apart needs Cloud Map, and a manifest change of the namespace is caught by the spec hash anyway.
pub fn service_connect_as_sets(
    observed: Option<&ServiceConnectConfiguration>,
    wanted: Option<&ServiceConnectConfiguration>,
) -> (Option<ServiceConnectConfiguration>, Option<ServiceConnectConfiguration>) {
    let norm = |c: Option<&ServiceConnectConfiguration>| {
        let mut c = c.filter(|c| c.enabled)?.clone();
        for s in &mut c.services {
            s.client_aliases = as_set(&s.client_aliases);
        }
        c.services = as_set(&c.services);
        Some(c)
    };
    let (mut observed, wanted) = (norm(observed), norm(wanted));
    if let (Some(o), Some(w)) = (&mut observed, &wanted)
        && let (Some(on), Some(wn)) = (&o.namespace, &w.namespace)
        && on.starts_with("arn:") != wn.starts_with("arn:")
    {
        o.namespace.clone_from(&w.namespace);
    }
    (observed, wanted)
}

/// The networking of a spec, as its CreateService input sets it: with the task definition, the service revision
/// a rollout deploys.
#[derive(Debug, Clone, PartialEq)]
pub struct Networking {
    network: NetworkConfiguration,
    load_balancers: Vec<LoadBalancer>,
    service_connect: Option<ServiceConnectConfiguration>,
}

impl Networking {
    /// The networking `input` asks for.
    pub fn of(input: &ServiceInput) -> Networking {
        Networking {
            network: network_as_sets(&input.network_configuration),
            load_balancers: as_set(&input.load_balancers),
            service_connect: input.service_connect_configuration.clone(),
        }
    }

    /// Whether ECS reports `observed` running other networking than this: another network configuration, other
    /// target groups, or other Service Connect settings, where Service Connect reported as none counts as off.
    /// Only meaningful where ECS is known to have moved the service (its circuit breaker went back): an emulator
    /// that does not echo Service Connect reports none for a service that has it.
    pub fn differs_from(&self, observed: &ServiceState) -> bool {
        let (observed_sc, wanted_sc) =
            service_connect_as_sets(observed.service_connect_configuration.as_ref(), self.service_connect.as_ref());
        network_as_sets(&observed.network_configuration) != self.network
            || as_set(&observed.load_balancers) != self.load_balancers
            || observed_sc != wanted_sc
    }
}

/// How a revision's tasks were reached when it last completed: its target groups, Service Connect and the
/// health-check grace period. A rollback to the revision sets them again with the task definition, in the same
/// UpdateService. A part that is `None` is not known (a revision recorded before exposures were, or a part too
/// long for the tag) and is left as the service has it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Exposure {
    /// The target groups' ARNs (registering the revision's container on its port).
    pub target_groups: Option<Vec<String>>,
    /// Service Connect: `Some(None)` off, `Some(Some(_))` on with these settings.
    pub service_connect: Option<Option<ServiceConnectConfiguration>>,
    /// The grace period in seconds (ECS's default, 0, for none).
    pub grace_period_secs: Option<u32>,
}

/// Separates the fields of a Service Connect part: a character AWS allows in tag values that no DNS name,
/// namespace ARN or port name holds.
const SC_SEP: char = '@';

impl Exposure {
    /// What `state` runs now, as ECS reports it: the exposure to record for its revision once that has completed.
    pub fn of(state: &ServiceState) -> Exposure {
        // mcpfleet sets one Service Connect service with one client alias; settings of another shape (made outside
        // mcpfleet) are not recorded, and a rollback leaves them alone.
        let service_connect = match &state.service_connect_configuration {
            Some(c) if c.enabled => match c.services.as_slice() {
                [s] if s.client_aliases.len() == 1 => Some(Some(c.clone())),
                _ => None,
            },
            _ => Some(None),
        };
        Exposure {
            target_groups: Some(state.load_balancers.iter().map(|lb| lb.target_group_arn.clone()).collect()),
            service_connect,
            grace_period_secs: Some(state.health_check_grace_period_seconds.unwrap_or(0)),
        }
    }

    /// The tag recording it on a revision of the service `service_arn`. Target groups of the service's own
    /// account and region are written without their common ARN prefix; should the whole not fit in one tag
    /// value, Service Connect and then the target groups are left out (not known, so a rollback leaves them).
    pub fn tag(&self, service_arn: &str) -> Tags {
        let prefix = target_group_prefix(service_arn);
        let grace = self.grace_period_secs.map(|g| format!("grace={g}"));
        let lbs = self.target_groups.as_ref().map(|tgs| match tgs.as_slice() {
            [] => "lb=-".to_string(),
            tgs => tgs
                .iter()
                .map(|arn| format!("lb={}", prefix.as_deref().and_then(|p| arn.strip_prefix(p)).unwrap_or(arn)))
                .collect::<Vec<_>>()
                .join(" "),
        });
        let sc = self.service_connect.as_ref().and_then(|c| match c {
            None => Some("sc=off".to_string()),
            Some(c) => {
                let s = c.services.first()?;
                let alias = s.client_aliases.first()?;
                let fields = [
                    s.port_name.as_str(),
                    c.namespace.as_deref().unwrap_or_default(),
                    s.discovery_name.as_deref().unwrap_or_default(),
                    &alias.port.to_string(),
                    alias.dns_name.as_deref().unwrap_or_default(),
                ];
                // A field holding the separator (never from ECS) cannot be written back faithfully.
                (!fields.iter().any(|f| f.contains(SC_SEP))).then(|| format!("sc={}", fields.join("@")))
            }
        });
        let joined = |parts: [&Option<String>; 3]| parts.into_iter().flatten().cloned().collect::<Vec<_>>().join(" ");
        let none = None;
        // Everything if it fits; else without Service Connect, else without the target groups, else the grace
        // period alone (always short).
        let value = [[&grace, &lbs, &sc], [&grace, &lbs, &none], [&grace, &none, &sc], [&grace, &none, &none]]
            .into_iter()
            .map(joined)
            .find(|v| v.chars().count() <= MAX_TAG_VALUE)
            .unwrap_or_default();
        Tags::from([(TAG_EXPOSURE.to_string(), value)])
    }

    /// The exposure recorded on `td` (a revision of the service `service_arn`), if any. The load balancers
    /// register `td`'s container on its port, as mcpfleet renders them.
    pub fn recorded(td: &TaskDefinition, service_arn: &str) -> Option<Exposure> {
        let value = td.tags.get(TAG_EXPOSURE)?;
        let prefix = target_group_prefix(service_arn);
        let mut out = Exposure::default();
        let mut target_groups: Vec<String> = Vec::new();
        for part in value.split_whitespace() {
            match part.split_once('=') {
                Some(("grace", g)) => out.grace_period_secs = g.parse().ok(),
                Some(("lb", "-")) => out.target_groups = Some(vec![]),
                Some(("lb", tg)) if tg.starts_with("arn:") => target_groups.push(tg.to_string()),
                Some(("lb", tg)) => target_groups.extend(prefix.as_ref().map(|p| format!("{p}{tg}"))),
                Some(("sc", "off")) => out.service_connect = Some(None),
                Some(("sc", sc)) => out.service_connect = parse_service_connect(sc).map(Some),
                _ => {}
            }
        }
        if !target_groups.is_empty() {
            out.target_groups = Some(target_groups);
        }
        Some(out)
    }

    /// The load balancers to register `td`'s container in, when the target groups are known.
    pub fn load_balancers(&self, td: &TaskDefinition) -> Option<Vec<LoadBalancer>> {
        let container = td.spec.container_definitions.first()?;
        let port = container.port_mappings.first()?.container_port;
        let tgs = self.target_groups.as_ref()?;
        Some(
            tgs.iter()
                .map(|tg| LoadBalancer {
                    target_group_arn: tg.clone(),
                    container_name: container.name.clone(),
                    container_port: port,
                })
                .collect(),
        )
    }
}

/// `arn:PARTITION:elasticloadbalancing:REGION:ACCOUNT:targetgroup/` for a service ARN of that partition, region
/// and account.
fn target_group_prefix(service_arn: &str) -> Option<String> {
    let mut parts = service_arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(_), Some(region), Some(account)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    Some(format!("arn:{partition}:elasticloadbalancing:{region}:{account}:targetgroup/"))
}

fn parse_service_connect(value: &str) -> Option<ServiceConnectConfiguration> {
    use crate::render::ecs::{ServiceConnectClientAlias, ServiceConnectService};
    let fields: Vec<&str> = value.split(SC_SEP).collect();
    let [port_name, namespace, discovery, port, alias] = fields.as_slice() else { return None };
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Some(ServiceConnectConfiguration {
        enabled: true,
        namespace: some(namespace),
        services: vec![ServiceConnectService {
            port_name: port_name.to_string(),
            discovery_name: some(discovery),
            client_aliases: vec![ServiceConnectClientAlias { port: port.parse().ok()?, dns_name: some(alias) }],
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE: &str = "arn:aws:ecs:us-east-1:123456789012:service/mcp-prod/documents";
    const TG: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/mcp-documents/6d0ecf831eec9f09";

    fn revision(tags: Tags) -> TaskDefinition {
        serde_json::from_value(serde_json::json!({
            "arn": "arn:aws:ecs:us-east-1:123456789012:task-definition/documents:2", "family": "documents",
            "revision": 2, "status": "ACTIVE", "registeredAtMs": 0, "tags": tags,
            "spec": {"family": "documents", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
                "cpu": "512", "memory": "1024", "runtimePlatform": {"operatingSystemFamily": "LINUX"},
                "volumes": [], "tags": [],
                "containerDefinitions": [{"name": "documents", "image": "i", "essential": true,
                    "portMappings": [{"containerPort": 8080, "protocol": "tcp", "name": "mcp", "appProtocol": "http"}],
                    "environment": [], "secrets": [], "stopTimeout": 30, "readonlyRootFilesystem": true,
                    "mountPoints": [], "linuxParameters": {"initProcessEnabled": true}}]},
        }))
        .expect("a task definition")
    }

    fn service_connect(namespace: &str, alias: &str) -> ServiceConnectConfiguration {
        parse_service_connect(&format!("mcp@{namespace}@documents@8080@{alias}")).expect("five fields")
    }

    #[test]
    fn an_exposure_round_trips_through_its_tag_with_target_groups_shortened() {
        let exposure = Exposure {
            target_groups: Some(vec![TG.into(), "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/x/1".into()]),
            service_connect: Some(Some(service_connect("mcp.internal", "documents.mcp.internal"))),
            grace_period_secs: Some(15),
        };
        let tag = exposure.tag(SERVICE);
        assert_eq!(
            tag[TAG_EXPOSURE],
            "grace=15 lb=mcp-documents/6d0ecf831eec9f09 lb=arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/x/1 \
             sc=mcp@mcp.internal@documents@8080@documents.mcp.internal"
        );
        let td = revision(tag);
        assert_eq!(Exposure::recorded(&td, SERVICE), Some(exposure.clone()));
        let lbs = exposure.load_balancers(&td).unwrap();
        assert_eq!((lbs[0].container_name.as_str(), lbs[0].container_port), ("documents", 8080));

        // Nothing attached is recorded as such, not as unknown; a revision without the tag has no record.
        let bare = Exposure { target_groups: Some(vec![]), service_connect: Some(None), grace_period_secs: Some(0) };
        assert_eq!(bare.tag(SERVICE)[TAG_EXPOSURE], "grace=0 lb=- sc=off");
        assert_eq!(Exposure::recorded(&revision(bare.tag(SERVICE)), SERVICE), Some(bare));
        assert_eq!(Exposure::recorded(&revision(Tags::new()), SERVICE), None);
    }

    #[test]
    fn what_does_not_fit_one_tag_is_left_out_and_stays_unknown() {
        let long_namespace = format!("{}.internal", "n".repeat(200));
        let exposure = Exposure {
            target_groups: Some(vec![TG.into()]),
            service_connect: Some(Some(service_connect(&long_namespace, "documents"))),
            grace_period_secs: Some(15),
        };
        let back = Exposure::recorded(&revision(exposure.tag(SERVICE)), SERVICE).unwrap();
        assert_eq!(back, Exposure { service_connect: None, ..exposure }, "Service Connect is not known");

        // Five target groups with 32-character names do not fit beside the largest grace period: they are left
        // out, and what fits is kept.
        let tgs: Vec<String> = (0..5)
            .map(|i| format!("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{i:0>32}/{i:016x}"))
            .collect();
        let exposure =
            Exposure { target_groups: Some(tgs), service_connect: Some(None), grace_period_secs: Some(2_147_483_647) };
        let tag = exposure.tag(SERVICE);
        assert!(tag[TAG_EXPOSURE].chars().count() <= MAX_TAG_VALUE, "{tag:?}");
        let back = Exposure::recorded(&revision(tag), SERVICE).unwrap();
        assert_eq!(back, Exposure { target_groups: None, ..exposure });
    }

    #[test]
    fn networking_compares_as_ecs_does() {
        let input: ServiceInput = serde_json::from_value(serde_json::json!({
            "cluster": "mcp", "serviceName": "documents", "taskDefinition": "documents", "desiredCount": 1,
            "launchType": "FARGATE", "schedulingStrategy": "REPLICA", "deploymentController": {"type": "ECS"},
            "deploymentConfiguration": {"maximumPercent": 200, "minimumHealthyPercent": 100,
                "deploymentCircuitBreaker": {"enable": true, "rollback": true}},
            "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-b", "subnet-a"],
                "securityGroups": [], "assignPublicIp": "DISABLED"}},
            "enableECSManagedTags": true, "propagateTags": "SERVICE", "tags": [],
            "loadBalancers": [{"targetGroupArn": TG, "containerName": "documents", "containerPort": 8080}],
            "serviceConnectConfiguration": service_connect("mcp.internal", "documents.mcp.internal"),
        }))
        .expect("a service input");
        let wanted = Networking::of(&input);
        let mut observed: ServiceState = serde_json::from_value(serde_json::json!({
            "arn": SERVICE, "cluster": "mcp", "name": "documents", "status": "ACTIVE", "taskDefinition": "documents:1",
            "desiredCount": 1, "runningCount": 1, "pendingCount": 0, "deploymentConfiguration": null,
            "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-a", "subnet-b"],
                "securityGroups": [], "assignPublicIp": "DISABLED"}},
            "loadBalancers": input.load_balancers,
            "serviceConnectConfiguration": service_connect("arn:aws:servicediscovery:us-east-1:1:namespace/ns-1", "documents.mcp.internal"),
            "deployments": [], "events": [], "tags": {},
        }))
        .expect("a service state");
        assert!(!wanted.differs_from(&observed), "order, and a namespace echoed as its ARN, are no difference");
        observed.load_balancers.clear();
        assert!(wanted.differs_from(&observed));
        observed.load_balancers = input.load_balancers.clone();
        observed.service_connect_configuration = None;
        assert!(wanted.differs_from(&observed), "Service Connect reported as none is off");
    }
}
