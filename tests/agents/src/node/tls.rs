//! The kubelet's TLS, as a real kubelet sets it up: a serving certificate (the one given, like
//! `--tls-cert-file`/`--tls-private-key-file`, else a self-signed one generated at start for the
//! node's name and address) and client-certificate authentication against a CA (`--client-ca-file`):
//! a client certificate from another CA fails the handshake, and a connection without one is
//! answered `401 Unauthorized` (anonymous authentication off).

use std::net::IpAddr;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why the kubelet's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// No client CA was given.
    #[error(
        "no client CA: the kubelet authenticates the API server by its client certificate (--client-ca-file)"
    )]
    NoClientCa,
    /// The client CA file holds no certificate.
    #[error("the client CA holds no certificate")]
    EmptyClientCa,
    /// A PEM file did not parse.
    #[error("reading PEM: {0}")]
    Pem(#[from] rustls_pki_types::pem::Error),
    /// rustls refused a certificate or the configuration.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client CA: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The self-signed serving certificate could not be generated.
    #[error("generating the serving certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A serving certificate chain and its private key, both PEM.
#[derive(Clone)]
pub struct ServingCert {
    /// The certificate chain (leaf first).
    pub cert_pem: Vec<u8>,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCert").finish_non_exhaustive()
    }
}

/// A self-signed serving certificate for `node` and `ip` (and `localhost` and 127.0.0.1), as the
/// kubelet makes when it is given none: subject `<node>@<unix time>`.
pub fn self_signed(node: &str, ip: IpAddr) -> Result<ServingCert, TlsError> {
    let mut names = vec![node.to_string(), "localhost".to_string()];
    for a in [ip, IpAddr::from([127, 0, 0, 1])] {
        if !a.is_unspecified() && !names.contains(&a.to_string()) {
            names.push(a.to_string());
        }
    }
    let mut params = rcgen::CertificateParams::new(names)?;
    let stamp = jiff::Timestamp::now().as_second();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{node}@{stamp}"));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(ServingCert {
        cert_pem: cert.pem().into_bytes(),
        key_pem: key.serialize_pem().into_bytes(),
    })
}

/// The kubelet's server configuration: `serving` (or a self-signed certificate for `node`/`ip`),
/// client certificates verified against `client_ca`, HTTP/1.1.
pub fn server_config(
    node: &str,
    ip: IpAddr,
    serving: Option<&ServingCert>,
    client_ca: Option<&[u8]>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let ca = client_ca.ok_or(TlsError::NoClientCa)?;
    let roots = kentledge_testcluster::tls::root_store::<TlsError>(ca)?;
    if roots.is_empty() {
        return Err(TlsError::EmptyClientCa);
    }
    let generated;
    let serving = match serving {
        Some(s) => s,
        None => {
            generated = self_signed(node, ip)?;
            &generated
        }
    };
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&serving.cert_pem).collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(&serving.key_pem)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Anonymous clients complete the handshake and get 401 from the HTTP layer; a certificate
    // that does not chain to the client CA fails the handshake.
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_names_the_node_and_its_address() {
        let c = self_signed("node-7", [10, 1, 2, 3].into()).unwrap();
        let der = CertificateDer::from_pem_slice(&c.cert_pem).unwrap();
        let text = format!("{:?}", der.as_ref());
        assert!(!text.is_empty());
        // The configuration accepts it with any client CA.
        let ca = kentledge_testcluster::tls::CA_PEM;
        server_config("node-7", [10, 1, 2, 3].into(), Some(&c), Some(ca)).unwrap();
        assert!(matches!(
            server_config("node-7", [10, 1, 2, 3].into(), Some(&c), None),
            Err(TlsError::NoClientCa)
        ));
    }
}
