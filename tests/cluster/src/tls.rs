//! TLS for the API server: a fixed test CA and a 127.0.0.1 serving certificate (in `certs/`, public test
//! keys), so kubectl sends its bearer token (it never sends credentials over plain HTTP); and the client side
//! towards kubelets, as kube-apiserver's `--kubelet-client-certificate`/`--kubelet-client-key` (a
//! certificate for `kube-apiserver-kubelet-client` in `system:masters`, signed by the same CA) with the
//! kubelet's serving certificate verified only when a CA is given (`--kubelet-certificate-authority`).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The CA that signed the serving certificate (PEM), for kubeconfig `certificate-authority-data`; it also
/// signed [`KUBELET_CLIENT_CERT_PEM`], so it is the `--client-ca-file` to give kubelets.
pub const CA_PEM: &[u8] = include_bytes!("../certs/ca.crt");
const CERT_PEM: &[u8] = include_bytes!("../certs/server.crt");
const KEY_PEM: &[u8] = include_bytes!("../certs/server.key");
/// The API server's client certificate towards kubelets (CN `kube-apiserver-kubelet-client`, O
/// `system:masters`, clientAuth), PEM.
pub const KUBELET_CLIENT_CERT_PEM: &[u8] = include_bytes!("../certs/kubelet-client.crt");
/// Its private key (PKCS#8 PEM; a public test key).
pub const KUBELET_CLIENT_KEY_PEM: &[u8] = include_bytes!("../certs/kubelet-client.key");
/// A kubelet serving certificate for 127.0.0.1, `localhost` and `node-1`, signed by [`CA_PEM`] (PEM).
pub const KUBELET_SERVING_CERT_PEM: &[u8] = include_bytes!("../certs/kubelet.crt");
/// Its private key (PKCS#8 PEM; a public test key).
pub const KUBELET_SERVING_KEY_PEM: &[u8] = include_bytes!("../certs/kubelet.key");

/// TLS set-up failures.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The embedded PEM files did not parse.
    #[error("embedded certificate: {0}")]
    Pem(#[from] rustls_pki_types::pem::Error),
    /// rustls rejected the configuration.
    #[error("tls config: {0}")]
    Config(#[from] rustls::Error),
    /// The kubelet CA could not be used for verification.
    #[error("kubelet certificate authority: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server configuration (HTTP/1.1 only through ALPN).
pub fn server_config() -> Result<Arc<ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(CERT_PEM).collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(KEY_PEM)?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// How the API server talks TLS to kubelets.
#[derive(Clone, Debug)]
pub struct KubeletClientTls {
    /// The client certificate chain (PEM).
    pub cert_pem: Vec<u8>,
    /// Its key (PEM).
    pub key_pem: Vec<u8>,
    /// Verify kubelet serving certificates against this CA (PEM); `None` skips the verification, as
    /// kube-apiserver does without `--kubelet-certificate-authority`.
    pub ca_pem: Option<Vec<u8>>,
}

impl Default for KubeletClientTls {
    /// The embedded `kube-apiserver-kubelet-client` certificate, no serving-certificate verification.
    fn default() -> Self {
        KubeletClientTls {
            cert_pem: KUBELET_CLIENT_CERT_PEM.to_vec(),
            key_pem: KUBELET_CLIENT_KEY_PEM.to_vec(),
            ca_pem: None,
        }
    }
}

/// Accepts any kubelet serving certificate (Go's `InsecureSkipVerify`) but still checks that the
/// handshake is signed by the certificate's key.
#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The certificates of a PEM bundle as trust anchors (for the kubelet's serving certificates here,
/// for the API server's client certificate in the node agents' kubelet).
pub fn root_store<E>(pem: &[u8]) -> Result<RootCertStore, E>
where
    E: From<rustls_pki_types::pem::Error> + From<rustls::Error>,
{
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(pem) {
        roots.add(c?)?;
    }
    Ok(roots)
}

/// The client configuration for dialling kubelets (HTTP/1.1, client certificate presented).
pub fn kubelet_client_config(t: &KubeletClientTls) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&t.cert_pem).collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(&t.key_pem)?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &t.ca_pem {
        Some(ca) => {
            let roots = root_store::<TlsError>(ca)?;
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()?;
            builder.with_webpki_verifier(verifier)
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider))),
    };
    let mut cfg = builder.with_client_auth_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_certificates_load() {
        server_config().unwrap();
        kubelet_client_config(&KubeletClientTls::default()).unwrap();
        kubelet_client_config(&KubeletClientTls {
            ca_pem: Some(CA_PEM.to_vec()),
            ..KubeletClientTls::default()
        })
        .unwrap();
    }
}
