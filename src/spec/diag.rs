//! Diagnostics: one problem in one place, printed as `FILE:LINE: FIELD.PATH: message`, and by the CLI with the
//! rule's code after it (`… message [E0605]`).

use std::fmt;

use super::code::Code;
use super::yaml::Seg;

/// A problem found while loading or validating manifests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// The file as the user named it (or as found under a directory they named).
    pub file: String,
    /// 1-based line; 0 when the problem concerns the file as a whole.
    pub line: usize,
    /// The rule broken, stable across releases.
    pub code: Code,
    /// Field path such as `spec.healthCheck.interval`; empty for file-level problems.
    pub path: String,
    /// What is wrong and, where it helps, what to do.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl Diagnostic {
    /// The diagnostic as the CLI prints it: the plain form with the rule's code at the end, where it neither
    /// pushes the message away from the location nor changes what the line starts with.
    pub fn coded(&self) -> impl fmt::Display + '_ {
        struct Coded<'a>(&'a Diagnostic);
        impl fmt::Display for Coded<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{} [{}]", self.0, self.0.code)
            }
        }
        Coded(self)
    }
}

/// Every problem of a fleet, in file and line order.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("{} problem(s) in the manifests", .0.len())]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Renders a field path the way users write it: `spec.env.LOG_LEVEL`, `spec.network.subnets[0]`.
pub fn path_string(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}
