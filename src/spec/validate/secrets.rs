//! `spec.secrets`: Secrets Manager references by name or ARN, with an optional JSON key and version; and
//! `spec.registryCredentials`, the secret ECS pulls a private registry's image with. Whether each exists is asked
//! of AWS later, by `reconcile::resolve`.

use std::collections::BTreeMap;

use super::env::{BAD_ENV_NAME, is_env_name};
use super::{DocCtx, fits, p, with};
use crate::spec::code::Code;
use crate::spec::image::ImageRef;
use crate::spec::types::SecretSource;
use crate::spec::valid::SecretRef;

re!(SECRET_NAME, r"^[A-Za-z0-9/_+=.@-]+$");
re!(SECRET_ARN, r"^arn:aws(-[a-z]+)*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$");
re!(VERSION_STAGE, r"^[A-Za-z0-9_.@-]+$");
re!(VERSION_ID, r"^[A-Za-z0-9-]+$");

pub(super) fn check_secrets(
    ctx: &mut DocCtx,
    secrets: &BTreeMap<String, SecretSource>,
    env: &BTreeMap<String, String>,
) -> BTreeMap<String, SecretRef> {
    let mut out = BTreeMap::new();
    for (name, source) in secrets {
        let at = with(&p(&["spec", "secrets"]), name.clone());
        if !is_env_name(name) {
            ctx.err(Code::SecretVarName, &at, BAD_ENV_NAME);
        }
        if env.contains_key(name) {
            ctx.err(
                Code::SecretInEnv,
                &at,
                format!("`{name}` is also set in spec.env; a variable comes from env or secrets, not both"),
            );
        }
        let r = match source {
            SecretSource::Name(s) => SecretRef { secret: s.clone(), key: None, version_stage: None, version_id: None },
            SecretSource::Ref(r) => SecretRef {
                secret: r.secret.clone(),
                key: r.key.clone(),
                version_stage: r.version_stage.clone(),
                version_id: r.version_id.clone(),
            },
        };
        let field = if matches!(source, SecretSource::Ref(_)) { with(&at, "secret") } else { at.clone() };
        check_secret_id(ctx, &field, &r.secret, true);
        if let Some(key) = &r.key
            && (key.is_empty() || key.contains(':'))
        {
            ctx.err(Code::SecretKey, &with(&at, "key"), "a JSON key must be non-empty and must not contain `:`");
        }
        if let Some(stage) = &r.version_stage
            && !fits(&VERSION_STAGE, stage, 256)
        {
            ctx.err(Code::SecretVersionStage, &with(&at, "versionStage"), format!("`{stage}` is not a version stage"));
        }
        if let Some(vid) = &r.version_id
            && !(vid.len() >= 32 && fits(&VERSION_ID, vid, 64))
        {
            ctx.err(Code::SecretVersionId, &with(&at, "versionId"), format!("`{vid}` is not a version id"));
        }
        if r.version_stage.is_some() && r.version_id.is_some() {
            ctx.err(Code::SecretStageAndId, &at, "set versionStage or versionId, not both");
        }
        out.insert(name.clone(), r);
    }
    out
}

/// A Secrets Manager secret's name or ARN at `field`; `keyed`: the field's form has a place for a JSON key and
/// version, worth pointing at when they were written into the ARN.
fn check_secret_id(ctx: &mut DocCtx, field: &[crate::spec::yaml::Seg], id: &str, keyed: bool) {
    if id.starts_with("arn:") {
        if id.contains(":ssm:") {
            ctx.err(Code::SecretSsm, field, "SSM parameters are not supported; reference a Secrets Manager secret");
        } else if !fits(&SECRET_ARN, id, 2048) {
            let hint = if keyed && id.matches(':').count() > 6 {
                " (for a JSON key or version use {secret, key, versionStage})"
            } else {
                ""
            };
            ctx.err(Code::SecretArn, field, format!("`{id}` is not a Secrets Manager secret ARN{hint}"));
        }
    } else if !fits(&SECRET_NAME, id, 512) {
        ctx.err(
            Code::SecretName,
            field,
            format!("`{id}` is not a secret name (1-512 of letters, digits and `/_+=.@-`)"),
        );
    }
}

/// `spec.registryCredentials`: a secret name or ARN, for an image outside Amazon ECR (ECS pulls ECR images with
/// the execution role and takes no repository credentials for them).
pub(super) fn check_registry_credentials(ctx: &mut DocCtx, id: &str, image: Option<&ImageRef>) {
    let field = p(&["spec", "registryCredentials"]);
    check_secret_id(ctx, &field, id, false);
    if let Some(image) = image
        && image.ecr().is_some()
    {
        ctx.err(
            Code::RegistryCredentialsEcr,
            &field,
            format!(
                "`{}` is in Amazon ECR, which ECS pulls from with the execution role; registryCredentials are for \
                 private registries outside ECR",
                image.name()
            ),
        );
    }
}
