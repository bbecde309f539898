//! The harness's own TLS: a throwaway certificate authority made at every run (rcgen, ring like
//! the daemon's rustls) and one server certificate from it for `127.0.0.1`, written as PEM files
//! for the child daemon (`tls_cert_file`, `tls_key_file` to serve HTTPS, `tls_ca_file` to trust
//! the HTTPS receiver), plus the rustls server configuration of that receiver.
//!
//! Nothing is read from the system's trust store or sent beyond 127.0.0.1; the key files live in
//! the run's scratch directory and are never printed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The files of one run's CA and server certificate.
#[derive(Clone, Debug)]
pub struct BenchTls {
    /// The CA certificate (what clients trust).
    pub ca_file: PathBuf,
    /// The server certificate for 127.0.0.1 (signed by the CA) and its private key.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl BenchTls {
    /// Makes the CA and the server certificate and writes `ca.pem`, `server.pem`, `server.key`
    /// into `dir`.
    pub fn generate(dir: &Path) -> anyhow::Result<BenchTls> {
        std::fs::create_dir_all(dir)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "readyd-bench throwaway CA");
        let ca_key = KeyPair::generate()?;
        let ca = ca_params.self_signed(&ca_key)?;
        // An IP address name: the client connects to 127.0.0.1 and never resolves a host name.
        let server_params = CertificateParams::new(vec!["127.0.0.1".to_owned()])?;
        let server_key = KeyPair::generate()?;
        let server = server_params.signed_by(&server_key, &ca, &ca_key)?;
        let write = |name: &str, text: &str| -> anyhow::Result<PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        };
        Ok(BenchTls {
            ca_file: write("ca.pem", &ca.pem())?,
            cert_file: write("server.pem", &server.pem())?,
            key_file: write("server.key", &server_key.serialize_pem())?,
            cert_der: server.der().clone(),
            key_der: server_key.serialize_der(),
        })
    }

    /// The server side for the HTTPS webhook receiver: the same certificate, HTTP/1.1 only (as
    /// the daemon's own listener announces).
    pub fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![self.cert_der.clone()], key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}
