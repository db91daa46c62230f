//! `spec.env`: variable names, variables ECS sets itself, and credentials written as plain values (which belong in
//! `spec.secrets`). A value is never echoed in a message: it may be a real credential.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use super::{DocCtx, p, with};
use crate::spec::code::Code;

re!(ENV_NAME, r"^[A-Za-z_][A-Za-z0-9_]*$");

/// Values that are credentials whatever their variable is called, and what each is.
const CREDENTIAL_VALUES: [(&str, &str); 9] = [
    (r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", "an AWS access key id"),
    (r"-----BEGIN [A-Z ]*PRIVATE KEY-----", "a private key"),
    (r"\bsk-[A-Za-z0-9_-]{20,}", "an API secret key (sk-…)"),
    (r"\bgh[pousr]_[A-Za-z0-9]{30,}", "a GitHub token"),
    (r"\bxox[abprs]-[A-Za-z0-9-]{10,}", "a Slack token"),
    (r"\bglpat-[A-Za-z0-9_-]{20,}", "a GitLab token"),
    (r"\bAIza[0-9A-Za-z_-]{35}\b", "a Google API key"),
    (r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.", "a JSON web token"),
    // The user part may be empty: Redis passwords are written `redis://:PASSWORD@host`.
    (r"://[^/\s:@]*:[^/\s@]+@", "a URL with an embedded password"),
];

/// All credential patterns in one automaton: one pass per value.
static CREDENTIAL_SET: LazyLock<regex::RegexSet> =
    LazyLock::new(|| regex::RegexSet::new(CREDENTIAL_VALUES.iter().map(|(p, _)| p)).expect("static regexes"));

/// Variable-name endings that say "this is a credential".
const CREDENTIAL_SUFFIXES: [&str; 12] = [
    "PASSWORD",
    "PASSWD",
    "_SECRET",
    "SECRET_KEY",
    "_TOKEN",
    "API_KEY",
    "APIKEY",
    "PRIVATE_KEY",
    "ACCESS_KEY",
    "_CREDENTIALS",
    "CLIENT_SECRET",
    "_PASS",
];

/// Variables ECS sets itself; overriding them breaks credentials or metadata inside the task.
const RESERVED_ENV_PREFIXES: [&str; 3] =
    ["AWS_CONTAINER_CREDENTIALS_", "ECS_CONTAINER_METADATA_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN"];

/// Whether `name` can be an environment variable's name (shared with `spec.secrets`, whose keys are variables too).
pub(super) fn is_env_name(name: &str) -> bool {
    ENV_NAME.is_match(name)
}

/// The message for a name that is not a variable name.
pub(super) const BAD_ENV_NAME: &str = "not a valid variable name (letters, digits and `_`, not starting with a digit)";

pub(super) fn check_env(ctx: &mut DocCtx, env: &BTreeMap<String, String>) {
    for (name, value) in env {
        let at = with(&p(&["spec", "env"]), name.clone());
        if !is_env_name(name) {
            ctx.err(Code::EnvName, &at, BAD_ENV_NAME);
            continue;
        }
        let upper = name.to_ascii_uppercase();
        if RESERVED_ENV_PREFIXES.iter().any(|pre| upper.starts_with(pre)) {
            ctx.err(
                Code::EnvReserved,
                &at,
                "is set by ECS inside every task; overriding it breaks task credentials or metadata",
            );
            continue;
        }
        if value.is_empty() {
            continue;
        }
        if let Some(i) = CREDENTIAL_SET.matches(value).iter().next() {
            let what = CREDENTIAL_VALUES[i].1;
            ctx.err(
                Code::EnvCredentialValue,
                &at,
                format!("value looks like {what}; move it to spec.secrets (a Secrets Manager reference)"),
            );
        } else if let Some(suffix) =
            CREDENTIAL_SUFFIXES.iter().find(|s| upper.ends_with(*s) || upper == s.trim_start_matches('_'))
        {
            ctx.err(
                Code::EnvCredentialName,
                &at,
                format!(
                    "a literal value for a credential-like name (…{}); move it to spec.secrets (a Secrets Manager reference)",
                    suffix.trim_start_matches('_')
                ),
            );
        }
    }
}
