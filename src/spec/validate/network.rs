//! `spec.network` (awsvpc): subnet and security-group ids and the counts ECS allows. Fargate needs a network, so
//! a service gets one here or from FleetDefaults.

use std::collections::BTreeSet;

use regex::Regex;

use super::{DocCtx, Seg, with, with_index};
use crate::spec::code::Code;
use crate::spec::types::Network;

re!(SUBNET, r"^subnet-[0-9a-f]{8,17}$");
re!(SECURITY_GROUP, r"^sg-[0-9a-f]{8,17}$");

pub(super) fn check_network(ctx: &mut DocCtx, path: &[Seg], net: &Network) {
    let subnets = with(path, "subnets");
    if net.subnets.is_empty() {
        ctx.err(Code::NoSubnet, &subnets, "at least one subnet is required for awsvpc networking");
    }
    if net.subnets.len() > 16 {
        ctx.err(Code::TooManySubnets, &subnets, format!("{} subnets given; ECS allows at most 16", net.subnets.len()));
    }
    check_ids(ctx, Code::SubnetId, &subnets, &net.subnets, &SUBNET, "subnet id (subnet-…)");
    let sgs = with(path, "securityGroups");
    if net.security_groups.len() > 5 {
        ctx.err(
            Code::TooManySecurityGroups,
            &sgs,
            format!("{} security groups given; ECS allows at most 5", net.security_groups.len()),
        );
    }
    check_ids(ctx, Code::SecurityGroupId, &sgs, &net.security_groups, &SECURITY_GROUP, "security group id (sg-…)");
}

fn check_ids(ctx: &mut DocCtx, code: Code, path: &[Seg], ids: &[String], re: &Regex, what: &str) {
    let mut seen = BTreeSet::new();
    for (i, id) in ids.iter().enumerate() {
        let at = with_index(path, i);
        if !re.is_match(id) {
            ctx.err(code, &at, format!("`{id}` is not a {what}"));
        } else if !seen.insert(id) {
            ctx.err(Code::DuplicateId, &at, format!("`{id}` is listed twice"));
        }
    }
}
