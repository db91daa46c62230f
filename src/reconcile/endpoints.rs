//! Where agents reach a service, as ECS and Elastic Load Balancing report it: each target group it registers in,
//! with the DNS name of the first load balancer routing there, then the Service Connect client aliases of its
//! PRIMARY deployment. `status` shows them; `verify: endpoint` probes the first.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::backend::{BackendError, DESCRIBE_TARGET_GROUPS_BATCH, ServiceState, TargetGroups};

/// One way to reach a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Endpoint {
    /// A target group the service's tasks register in, and the DNS name of the (first) load balancer routing to
    /// it; None when ELBv2 no longer knows the group or no load balancer routes to it.
    #[serde(rename_all = "camelCase")]
    LoadBalancer { target_group_arn: String, dns_name: Option<String> },
    /// A Service Connect client alias: reachable from tasks in the namespace.
    ServiceConnect { url: String },
}

impl Endpoint {
    /// What a table shows: the load balancer's DNS name (the target group when there is none), or the URL.
    pub fn shown(&self) -> &str {
        match self {
            Endpoint::LoadBalancer { target_group_arn, dns_name } => dns_name.as_deref().unwrap_or(target_group_arn),
            Endpoint::ServiceConnect { url } => url,
        }
    }

    /// The base URL an HTTP client connects to (`http://NAME` for a load balancer, its port 80 listener), when
    /// the address is known.
    pub fn base_url(&self) -> Option<String> {
        match self {
            Endpoint::LoadBalancer { dns_name, .. } => dns_name.as_ref().map(|d| format!("http://{d}")),
            Endpoint::ServiceConnect { url } => Some(url.clone()),
        }
    }
}

/// The service's target groups (with `dns`, the DNS name by target group ARN), then the Service Connect client
/// aliases it runs with, as URLs (Service Connect proxies HTTP).
pub fn endpoints(s: &ServiceState, dns: &BTreeMap<String, String>) -> Vec<Endpoint> {
    let balanced = s.load_balancers.iter().map(|lb| Endpoint::LoadBalancer {
        target_group_arn: lb.target_group_arn.clone(),
        dns_name: dns.get(&lb.target_group_arn).cloned(),
    });
    let connected =
        s.service_connect_configuration.iter().filter(|c| c.enabled).flat_map(|c| &c.services).flat_map(|svc| {
            svc.client_aliases.iter().map(move |a| {
                let host = a.dns_name.as_deref().or(svc.discovery_name.as_deref()).unwrap_or(&svc.port_name);
                Endpoint::ServiceConnect { url: format!("http://{host}:{}", a.port) }
            })
        });
    balanced.chain(connected).collect()
}

/// The DNS name of the first load balancer routing to each of the services' target groups, by target group ARN:
/// one [`TargetGroups::describe`] for all of them (per [`DESCRIBE_TARGET_GROUPS_BATCH`]).
pub async fn load_balancer_dns<'a>(
    services: impl Iterator<Item = &'a ServiceState>,
    target_groups: &dyn TargetGroups,
) -> Result<BTreeMap<String, String>, BackendError> {
    let arns: BTreeSet<String> =
        services.flat_map(|s| s.load_balancers.iter().map(|lb| lb.target_group_arn.clone())).collect();
    let arns: Vec<String> = arns.into_iter().collect();
    let mut dns = BTreeMap::new();
    for chunk in arns.chunks(DESCRIBE_TARGET_GROUPS_BATCH) {
        for info in target_groups.describe(chunk).await? {
            if let Some(lb) = info.load_balancers.first() {
                dns.insert(info.target_group.arn, lb.dns_name.clone());
            }
        }
    }
    Ok(dns)
}
