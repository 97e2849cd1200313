//! TLS for the API server: a fixed test CA and a 127.0.0.1 serving certificate (in `certs/`, public test
//! keys), so kubectl sends its bearer token (it never sends credentials over plain HTTP).

use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The CA that signed the serving certificate (PEM), for kubeconfig `certificate-authority-data`.
pub const CA_PEM: &[u8] = include_bytes!("../certs/ca.crt");
const CERT_PEM: &[u8] = include_bytes!("../certs/server.crt");
const KEY_PEM: &[u8] = include_bytes!("../certs/server.key");

/// TLS set-up failures.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The embedded PEM files did not parse.
    #[error("embedded certificate: {0}")]
    Pem(#[from] rustls_pki_types::pem::Error),
    /// rustls rejected the configuration.
    #[error("tls config: {0}")]
    Config(#[from] rustls::Error),
}

/// The server configuration (HTTP/1.1 only through ALPN).
pub fn server_config() -> Result<Arc<ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(CERT_PEM).collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(KEY_PEM)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
