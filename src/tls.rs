//! The process's one TLS stack: rustls with ring as its cryptography. The MCP client and the registry client
//! (reqwest) take the process-wide rustls provider, installed here; the AWS SDKs get an HTTPS client built on the
//! same provider (`backend::aws`). One stack instead of the SDKs' default aws-lc beside it keeps the shipped
//! binary within its size budget; certificates are checked against the platform's roots either way.

/// Makes ring the process's rustls provider; call before building an HTTPS client. Idempotent.
pub fn install() {
    // An error means a provider is installed already: this one, by an earlier call.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
