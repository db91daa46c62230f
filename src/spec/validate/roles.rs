//! IAM roles: the task role the server runs as and the execution role ECS itself uses, which is required as soon
//! as ECS has to pull from ECR, read a secret (registry credentials included) or write awslogs.

use super::{DocCtx, fits, p};
use crate::spec::code::Code;

re!(ROLE_ARN, r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$");

/// Checks `spec.<field>` (`taskRoleArn`, `executionRoleArn`) is a role ARN.
pub(super) fn check_role(ctx: &mut DocCtx, field: &'static str, arn: &str) {
    if !fits(&ROLE_ARN, arn, 2048) {
        ctx.err(
            Code::RoleArn,
            &p(&["spec", field]),
            format!("`{arn}` is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"),
        );
    }
}

/// Why ECS needs an execution role for this service, if it does.
pub(super) struct ExecutionNeeds {
    pub ecr_image: bool,
    pub secrets: bool,
    pub registry_credentials: bool,
    pub awslogs: bool,
}

/// Reports a missing execution role where ECS needs one.
pub(super) fn require_execution_role(ctx: &mut DocCtx, needs: ExecutionNeeds) {
    let why = if needs.ecr_image {
        "to pull an ECR image"
    } else if needs.secrets {
        "to read secrets"
    } else if needs.registry_credentials {
        "to read the registry credentials"
    } else if needs.awslogs {
        "to write awslogs"
    } else {
        return;
    };
    ctx.err(
        Code::ExecutionRoleMissing,
        &p(&["spec", "executionRoleArn"]),
        format!("required {why}: set it here or in FleetDefaults"),
    );
}
