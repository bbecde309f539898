//! The TLS half of [`super::Net`]: which roots are trusted, and what a failed handshake means.
//!
//! Roots are the operating system's (`rustls-native-certs`, which reads `SSL_CERT_FILE` and
//! `SSL_CERT_DIR` when set; loaded once per process) plus every certificate of `tls_ca_file`.
//! Certificates are always verified: there is no way to turn that off. A handshake error is
//! classified into [`NetError`] by what the operator must fix (unknown CA, wrong name, expired).
//! PEM reading of certificates and keys lives here too, for the listening side.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{CertificateError, RootCertStore};

use super::NetError;

/// The process's crypto provider (ring, the one wasmtime-wasi-http's rustls already uses);
/// named explicitly so no process-wide default has to be installed.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The operating system's roots, read once (they do not change under a running process).
fn native_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let result = rustls_native_certs::load_native_certs();
        for error in &result.errors {
            tracing::warn!(%error, "cannot read some of the system's CA certificates");
        }
        if result.certs.is_empty() {
            tracing::warn!(
                "no system CA certificates found; only tls_ca_file is trusted for https"
            );
        }
        result.certs
    })
}

/// Every certificate in the PEM file at `path` (at least one).
pub(crate) fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into());
    }
    Ok(certs)
}

/// The private key in the PEM file at `path` (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| format!("no usable PEM private key: {e}"))
}

/// The client configuration: system roots plus `ca_file`, HTTP/1.1 by ALPN.
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, NetError> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(native_roots().iter().cloned());
    if let Some(file) = ca_file {
        let ca_error = |reason: String| NetError::CaFile {
            file: file.display().to_string(),
            reason,
        };
        for cert in read_certificates(file).map_err(ca_error)? {
            roots
                .add(cert)
                .map_err(|e| ca_error(format!("not a usable CA certificate: {e}")))?;
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| NetError::Tls {
            host: String::new(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// What a failed handshake with `host` means.
pub(crate) fn classify_handshake(host: &str, error: &std::io::Error) -> NetError {
    let host = host.to_owned();
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(cert)) => match cert {
            CertificateError::UnknownIssuer => NetError::UnknownCa { host },
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                NetError::NameMismatch { host }
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                NetError::Expired { host }
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                NetError::Certificate {
                    host,
                    reason: "it is not valid yet (check the clocks)".into(),
                }
            }
            other => NetError::Certificate {
                host,
                reason: format!("{other:?}"),
            },
        },
        Some(other) => NetError::Tls {
            host,
            reason: other.to_string(),
        },
        None => NetError::Tls {
            host,
            reason: error.to_string(),
        },
    }
}
