//! HTTPS on the listening side: `tls_cert_file` + `tls_key_file`, renewed without a restart.
//!
//! [`TlsFiles`] holds the rustls server configuration of the pair that loaded last. Before each
//! new connection [`TlsFiles::current`] looks at both files' metadata (inode, size, mtime: a
//! cert-manager renewal writes a new file and renames it over the old one) and, when either
//! changed, loads the pair again. A new pair that does not load (unreadable, not PEM, key not
//! matching the certificate — as between the two renames of a renewal) keeps the old one serving;
//! the failure is logged once per change and shown in `/v1/status` under `tls`. Connections
//! already open keep the certificate they were made with. HTTP/1.1 only (ALPN `http/1.1`).
//!
//! This module must never serve without a certificate that loaded, and never log key material.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use chrono::{DateTime, Utc};

use crate::net::tls::{provider, read_certificates, read_private_key};

/// Why a certificate pair cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls_cert_file {file}: {reason}")]
    Cert { file: PathBuf, reason: String },
    #[error("tls_key_file {file}: {reason}")]
    Key { file: PathBuf, reason: String },
    #[error("tls_cert_file {cert} and tls_key_file {key} do not make a pair: {reason}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// What identifies one version of a file on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        inode: meta.ino(),
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

type PairStamp = (Option<FileStamp>, Option<FileStamp>);

struct Loaded {
    config: Arc<rustls::ServerConfig>,
    /// The files' stamps when `config` was loaded.
    stamp: PairStamp,
    loaded_at: DateTime<Utc>,
    /// The stamps of the last pair that failed, so a broken pair is tried (and logged) once.
    failed: Option<PairStamp>,
    last_error: Option<String>,
    last_error_at: Option<DateTime<Utc>>,
    reloads: u64,
}

/// The served certificate pair, reloaded when its files change.
pub struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    state: Mutex<Loaded>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl TlsFiles {
    /// Load the pair; a pair that does not load is an error (the daemon does not start).
    pub fn load(cert: &Path, key: &Path) -> Result<TlsFiles, TlsError> {
        let stamp = (stamp(cert), stamp(key));
        let config = server_config(cert, key)?;
        Ok(TlsFiles {
            cert: cert.to_owned(),
            key: key.to_owned(),
            state: Mutex::new(Loaded {
                config,
                stamp,
                loaded_at: Utc::now(),
                failed: None,
                last_error: None,
                last_error_at: None,
                reloads: 0,
            }),
        })
    }

    /// The configuration for a new connection: the files' current pair if it changed and
    /// loads, else the one in force.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        let now = (stamp(&self.cert), stamp(&self.key));
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if now != state.stamp && state.failed != Some(now) {
            match server_config(&self.cert, &self.key) {
                Ok(config) => {
                    state.config = config;
                    state.stamp = now;
                    state.loaded_at = Utc::now();
                    state.failed = None;
                    state.reloads += 1;
                    tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                }
                Err(error) => {
                    tracing::error!(%error, "the renewed TLS certificate does not load; still serving the previous one");
                    state.failed = Some(now);
                    state.last_error = Some(error.to_string());
                    state.last_error_at = Some(Utc::now());
                }
            }
        }
        state.config.clone()
    }

    /// `/v1/status`'s `tls` member.
    pub fn status(&self) -> serde_json::Value {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        serde_json::json!({
            "cert_file": self.cert,
            "key_file": self.key,
            "loaded_at": state.loaded_at,
            "reloads": state.reloads,
            "last_error": state.last_error,
            "last_error_at": state.last_error_at,
        })
    }
}

fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = read_certificates(cert).map_err(|reason| TlsError::Cert {
        file: cert.to_owned(),
        reason,
    })?;
    let private = read_private_key(key).map_err(|reason| TlsError::Key {
        file: key.to_owned(),
        reason,
    })?;
    let pair = |reason: String| TlsError::Pair {
        cert: cert.to_owned(),
        key: key.to_owned(),
        reason,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| pair(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| pair(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Write `text` to `path` the way cert-manager does: a new file renamed over the old.
    fn replace(path: &Path, text: &str) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    #[test]
    fn a_renewed_pair_is_picked_up_and_a_broken_one_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let (c1, k1) = pair("one.test");
        std::fs::write(&cert, &c1).unwrap();
        std::fs::write(&key, &k1).unwrap();
        let files = TlsFiles::load(&cert, &key).unwrap();
        let first = files.current();
        assert!(
            Arc::ptr_eq(&first, &files.current()),
            "unchanged files, same config"
        );

        // Half a renewal: a new certificate with the old key is not a pair.
        let (c2, k2) = pair("two.test");
        replace(&cert, &c2);
        assert!(
            Arc::ptr_eq(&first, &files.current()),
            "the broken pair must not serve"
        );
        let status = files.status();
        assert!(
            status["last_error"]
                .as_str()
                .unwrap()
                .contains("do not make a pair"),
            "{status}"
        );
        assert_eq!(status["reloads"], 0);
        // The other half: the pair loads.
        replace(&key, &k2);
        let second = files.current();
        assert!(!Arc::ptr_eq(&first, &second), "the renewed pair serves");
        assert_eq!(files.status()["reloads"], 1);

        // Garbage keeps the second pair.
        replace(&cert, "not PEM");
        assert!(Arc::ptr_eq(&second, &files.current()));
        assert!(
            files.status()["last_error"]
                .as_str()
                .unwrap()
                .contains("tls_cert_file")
        );
    }

    #[test]
    fn a_pair_that_does_not_load_at_start_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let (c, _) = pair("x.test");
        std::fs::write(&cert, &c).unwrap();
        let err = TlsFiles::load(&cert, &key).unwrap_err().to_string();
        assert!(
            err.contains("tls_key_file") && err.contains("k.pem"),
            "{err}"
        );
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(TlsFiles::load(&cert, &key).is_err());
    }
}
