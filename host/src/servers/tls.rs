//! TLS for every route (`/api`, `/public`, `/faye` and its websockets): rustls, loaded once.
//!
//! The certificate chain and the key are PEM files read at start-up; any fault stops
//! start-up with the file named, before the host says it is listening. ALPN offers only
//! HTTP/1.1: websocket upgrades (and so Bayeux websockets) need it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The certificate or key could not be used; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Only one of `tls_cert` and `tls_key` is set.
    #[error("TLS needs both tls_cert and tls_key; only {0} is set")]
    Incomplete(&'static str),
    /// A file cannot be read or holds no usable PEM item.
    #[error("{kind} file {path}: {reason}")]
    File {
        /// `certificate` or `key`.
        kind: &'static str,
        /// The file as configured.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("TLS certificate {cert} with key {key}: {reason}")]
    Refused {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        reason: String,
    },
}

/// The TLS acceptor for the configured pair, or `None` when TLS is off (neither is set).
///
/// # Errors
///
/// When only one file is set, a file is unreadable or not PEM, or the pair is refused.
pub fn acceptor(cert: Option<&Path>, key: Option<&Path>) -> Result<Option<TlsAcceptor>, TlsError> {
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(_), None) => return Err(TlsError::Incomplete("tls_cert")),
        (None, Some(_)) => return Err(TlsError::Incomplete("tls_key")),
        (Some(cert), Some(key)) => (cert, key),
    };
    let chain = read_chain(cert)?;
    let private = read_key(key)?;
    let refused = |reason: String| TlsError::Refused {
        cert: cert.to_owned(),
        key: key.to_owned(),
        reason,
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| refused(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| refused(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

fn file_error(kind: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        kind,
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_error("certificate", path, e))?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error("certificate", path, e))?;
    if chain.is_empty() {
        return Err(file_error(
            "certificate",
            path,
            "no PEM certificate (-----BEGIN CERTIFICATE-----) found",
        ));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_error("key", path, e))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        file_error(
            "key",
            path,
            format!("no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path) -> (PathBuf, PathBuf) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()])
            .expect("a certificate can be made");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, made.cert.pem()).expect("writable");
        std::fs::write(&key, made.signing_key.serialize_pem()).expect("writable");
        (cert, key)
    }

    #[test]
    fn a_valid_pair_loads_and_no_pair_means_no_tls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = pair(dir.path());
        assert!(matches!(acceptor(Some(&cert), Some(&key)), Ok(Some(_))));
        assert!(matches!(acceptor(None, None), Ok(None)));
    }

    #[test]
    fn every_fault_names_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = pair(dir.path());
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a pem file").expect("writable");
        let missing = dir.path().join("missing.pem");
        let message = |c: &Path, k: &Path| match acceptor(Some(c), Some(k)) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{} + {} accepted", c.display(), k.display()),
        };
        let m = message(&cert, &garbage);
        assert!(
            m.starts_with("key file") && m.contains("garbage.pem"),
            "{m}"
        );
        let m = message(&garbage, &key);
        assert!(
            m.starts_with("certificate file") && m.contains("garbage.pem"),
            "{m}"
        );
        let m = message(&missing, &key);
        assert!(m.contains("missing.pem"), "{m}");
        // A key that does not belong to the certificate.
        let other = tempfile::tempdir().expect("tempdir");
        let (_, other_key) = pair(other.path());
        let m = message(&cert, &other_key);
        assert!(m.contains("cert.pem") && m.contains("key.pem"), "{m}");
        let incomplete = acceptor(Some(&cert), None).err().map(|e| e.to_string());
        assert_eq!(
            incomplete.as_deref(),
            Some("TLS needs both tls_cert and tls_key; only tls_cert is set")
        );
    }
}
