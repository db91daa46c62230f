//! Target groups and load balancers through Elastic Load Balancing v2, read only: DescribeTargetGroups (names and
//! ARNs, 20 per request), DescribeTargetGroupAttributes per group, DescribeLoadBalancers (20 ARNs per request) and
//! DescribeLoadBalancerAttributes per load balancer. The request counts are documented on
//! [`TargetGroups`](crate::backend::TargetGroups).

use std::future::Future;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::types::{self as elb};

use super::map_err;
use crate::backend::{
    BackendError, LoadBalancer, LoadBalancerType, Op, TargetGroup, TargetGroups, TargetProtocol, TargetType,
};

/// The target group attribute of the time a deregistered target drains.
const DEREGISTRATION_DELAY: &str = "deregistration_delay.timeout_seconds";
/// The Application Load Balancer attribute of the time an idle connection is kept.
const IDLE_TIMEOUT: &str = "idle_timeout.timeout_seconds";

/// The [`TargetGroups`] port over ELBv2.
pub struct Elbv2 {
    client: Client,
}

impl Elbv2 {
    pub fn new(client: Client) -> Elbv2 {
        Elbv2 { client }
    }

    /// DescribeTargetGroups of names or of ARNs (ELBv2 takes one kind per request).
    async fn describe_groups(&self, ids: Vec<String>, by_arn: bool) -> Result<Vec<elb::TargetGroup>, BackendError> {
        let request = self.client.describe_target_groups();
        let request = if by_arn { request.set_target_group_arns(Some(ids)) } else { request.set_names(Some(ids)) };
        let out = request.send().await.map_err(|e| map_err(Op::DescribeTargetGroups, e))?;
        Ok(out.target_groups().to_vec())
    }

    async fn describe_balancers(&self, arns: Vec<String>) -> Result<Vec<elb::LoadBalancer>, BackendError> {
        let out = self
            .client
            .describe_load_balancers()
            .set_load_balancer_arns(Some(arns))
            .send()
            .await
            .map_err(|e| map_err(Op::DescribeLoadBalancers, e))?;
        Ok(out.load_balancers().to_vec())
    }

    /// A group's `deregistration_delay.timeout_seconds`; `Ok(None)` when the group is gone meanwhile.
    async fn deregistration_delay(&self, arn: &str) -> Result<Option<Option<u32>>, BackendError> {
        let answer = self.client.describe_target_group_attributes().target_group_arn(arn).send().await;
        let answer = answer.map_err(|e| map_err(Op::DescribeTargetGroupAttributes, e));
        unless_gone(
            answer.map(|a| attribute(a.attributes().iter().map(|a| (a.key(), a.value())), DEREGISTRATION_DELAY)),
        )
    }

    /// A load balancer's `idle_timeout.timeout_seconds`; `Ok(None)` when the load balancer is gone meanwhile.
    async fn idle_timeout(&self, arn: &str) -> Result<Option<Option<u32>>, BackendError> {
        let answer = self.client.describe_load_balancer_attributes().load_balancer_arn(arn).send().await;
        let answer = answer.map_err(|e| map_err(Op::DescribeLoadBalancerAttributes, e));
        unless_gone(answer.map(|a| attribute(a.attributes().iter().map(|a| (a.key(), a.value())), IDLE_TIMEOUT)))
    }
}

/// `None` for a resource deleted between the describe request and its attributes request.
fn unless_gone<T>(answer: Result<T, BackendError>) -> Result<Option<T>, BackendError> {
    match answer {
        Ok(v) => Ok(Some(v)),
        Err(BackendError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The whole-seconds value of attribute `key`; `None` when absent or not a number.
fn attribute<'a>(attributes: impl Iterator<Item = (Option<&'a str>, Option<&'a str>)>, key: &str) -> Option<u32> {
    attributes.into_iter().find(|(k, _)| *k == Some(key)).and_then(|(_, v)| v?.trim().parse().ok())
}

/// Runs `request` on all of `ids` at once; when ELBv2 refuses that because one of them is unknown (it fails the
/// whole request), runs it on each id alone and leaves the unknown ones out.
async fn without_unknown<T, F, Fut>(ids: &[String], request: F) -> Result<Vec<T>, BackendError>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = Result<Vec<T>, BackendError>>,
{
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    match request(ids.to_vec()).await {
        Err(BackendError::NotFound { .. }) if ids.len() > 1 => {
            let mut out = Vec::new();
            for id in ids {
                match request(vec![id.clone()]).await {
                    Ok(found) => out.extend(found),
                    Err(BackendError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        }
        Err(BackendError::NotFound { .. }) => Ok(Vec::new()),
        other => other,
    }
}

/// The ARN and the known type of a resource of `op`'s answer (`what`: "target group", "load balancer"), or an
/// error for an answer ELBv2 should never give, rather than a guess.
fn identify<'a, T>(
    op: Op,
    what: &str,
    arn: Option<&'a str>,
    kind: Option<&str>,
    parse: fn(&str) -> Option<T>,
) -> Result<(&'a str, T), BackendError> {
    let malformed =
        |message: String| BackendError::Invalid { operation: op, message: format!("unexpected answer: {message}") };
    let arn = arn.ok_or_else(|| malformed(format!("a {what} without an ARN")))?;
    let kind = kind.unwrap_or_default();
    let parsed = parse(kind).ok_or_else(|| malformed(format!("{what} {arn} has an unknown type `{kind}`")))?;
    Ok((arn, parsed))
}

/// A target group of the answer, without its attributes.
fn target_group(g: &elb::TargetGroup) -> Result<TargetGroup, BackendError> {
    let kind = g.target_type().map(|t| t.as_str());
    let (arn, target_type) =
        identify(Op::DescribeTargetGroups, "target group", g.target_group_arn(), kind, TargetType::from_elb)?;
    Ok(TargetGroup {
        arn: arn.to_string(),
        name: g.target_group_name().unwrap_or_default().to_string(),
        target_type,
        protocol: g.protocol().map(|p| TargetProtocol::from_elb(p.as_str())),
        health_check_path: g.health_check_path().map(str::to_string),
        load_balancer_arns: g.load_balancer_arns().to_vec(),
        deregistration_delay_secs: None,
    })
}

/// A load balancer of the answer, without its attributes.
fn load_balancer(b: &elb::LoadBalancer) -> Result<LoadBalancer, BackendError> {
    let kind = b.r#type().map(|t| t.as_str());
    let (arn, kind) =
        identify(Op::DescribeLoadBalancers, "load balancer", b.load_balancer_arn(), kind, LoadBalancerType::from_elb)?;
    Ok(LoadBalancer {
        arn: arn.to_string(),
        name: b.load_balancer_name().unwrap_or_default().to_string(),
        kind,
        dns_name: b.dns_name().unwrap_or_default().to_string(),
        idle_timeout_secs: None,
    })
}

#[async_trait]
impl TargetGroups for Elbv2 {
    async fn target_groups(&self, ids: &[String]) -> Result<Vec<TargetGroup>, BackendError> {
        let (arns, names): (Vec<String>, Vec<String>) = ids.iter().cloned().partition(|id| id.starts_with("arn:"));
        let mut found = without_unknown(&names, |chunk| self.describe_groups(chunk, false)).await?;
        found.extend(without_unknown(&arns, |chunk| self.describe_groups(chunk, true)).await?);
        let mut out: Vec<TargetGroup> = Vec::with_capacity(found.len());
        for g in &found {
            let mut group = target_group(g)?;
            // A name and the ARN of the same group are one group, described once.
            if out.iter().any(|o| o.arn == group.arn) {
                continue;
            }
            let Some(delay) = self.deregistration_delay(&group.arn).await? else { continue };
            group.deregistration_delay_secs = delay;
            out.push(group);
        }
        Ok(out)
    }

    async fn load_balancers(&self, arns: &[String]) -> Result<Vec<LoadBalancer>, BackendError> {
        let found = without_unknown(arns, |chunk| self.describe_balancers(chunk)).await?;
        let mut out = Vec::with_capacity(found.len());
        for b in &found {
            let mut balancer = load_balancer(b)?;
            let Some(idle) = self.idle_timeout(&balancer.arn).await? else { continue };
            balancer.idle_timeout_secs = idle;
            out.push(balancer);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_whole_seconds_or_absent() {
        let attrs = [(Some("stickiness.enabled"), Some("false")), (Some(DEREGISTRATION_DELAY), Some("120"))];
        assert_eq!(attribute(attrs.into_iter(), DEREGISTRATION_DELAY), Some(120));
        assert_eq!(attribute([(Some(IDLE_TIMEOUT), Some("soon"))].into_iter(), IDLE_TIMEOUT), None);
        assert_eq!(attribute(std::iter::empty(), IDLE_TIMEOUT), None);
    }

    #[test]
    fn an_unknown_target_type_is_an_error_not_a_guess() {
        let g = elb::TargetGroup::builder()
            .target_group_arn("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/x/0123456789abcdef")
            .target_type(elb::TargetTypeEnum::from("teleport"))
            .build();
        let err = target_group(&g).unwrap_err();
        assert!(err.to_string().contains("has an unknown type `teleport`"), "{err}");
        let g = elb::TargetGroup::builder().build();
        assert!(target_group(&g).unwrap_err().to_string().contains("without an ARN"));
    }
}
