//! The kubelet's HTTPS: who it serves (the API server's kubelet client certificate; no certificate →
//! 401; another CA → no handshake), its self-signed serving certificate for the node's name and
//! address, a given serving certificate, and an API server that verifies kubelets with a CA.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Pod;
use kentledge_nodeagents::node::{Node, NodeOptions};
use kentledge_testcluster::ServerOptions;
use kentledge_testcluster::tls::{
    CA_PEM, KUBELET_SERVING_CERT_PEM, KUBELET_SERVING_KEY_PEM, KubeletClientTls,
    kubelet_client_config,
};
use kube::api::{Api, LogParams, PostParams};
use rustls::ClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls_pki_types::pem::PemObject;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::{env, phase, pod_with};

/// The API server's view: its kubelet client certificate, the kubelet's certificate not verified.
pub fn api_server() -> Arc<ClientConfig> {
    kubelet_client_config(&KubeletClientTls::default()).unwrap()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[derive(Debug)]
struct AnyCert;

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            m,
            c,
            d,
            &provider().signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            m,
            c,
            d,
            &provider().signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client with `identity` (cert, key PEM) or none, trusting `roots` (PEM or DER list) or anything.
fn client(
    identity: Option<(&[u8], &[u8])>,
    roots: Option<Vec<CertificateDer<'static>>>,
) -> Arc<ClientConfig> {
    let b = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let b = match roots {
        Some(list) => {
            let mut store = rustls::RootCertStore::empty();
            for c in list {
                store.add(c).unwrap();
            }
            b.with_root_certificates(store)
        }
        None => b
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert)),
    };
    Arc::new(match identity {
        Some((cert, key)) => b
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<_, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(key).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    })
}

/// TLS to the kubelet at `addr`, checking its certificate for `name` (when the config verifies).
pub async fn connect_as(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_string()).unwrap();
    tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
}

/// TLS to the kubelet at `addr` (server name 127.0.0.1).
pub async fn connect(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    connect_as(addr, cfg, "127.0.0.1").await
}

/// `GET path` over TLS: (status, body), or the error text.
async fn get(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
    name: &str,
    path: &str,
) -> Result<(u16, String), String> {
    let tls = connect_as(addr, cfg, name)
        .await
        .map_err(|e| e.to_string())?;
    let (mut send, conn) = hyper::client::conn::http1::handshake::<
        _,
        http_body_util::Empty<bytes::Bytes>,
    >(hyper_util::rt::TokioIo::new(tls))
    .await
    .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", addr.to_string())
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let code = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

/// A client certificate from a CA the kubelet does not know.
fn stranger() -> (String, String) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kube-apiserver-kubelet-client");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn the_kubelet_serves_https_only_to_the_api_servers_client_certificate() {
    let e = env().await;
    let addr = e.node.kubelet_addr();
    assert_eq!(
        get(addr, api_server(), "127.0.0.1", "/healthz").await,
        Ok((200, "ok".to_string()))
    );
    // Anonymous: the handshake completes, the request is refused.
    assert_eq!(
        get(addr, client(None, None), "127.0.0.1", "/healthz").await,
        Ok((401, "Unauthorized".to_string()))
    );
    // A certificate from another CA: no TLS session at all.
    let (cert, key) = stranger();
    let r = get(
        addr,
        client(Some((cert.as_bytes(), key.as_bytes())), None),
        "127.0.0.1",
        "/healthz",
    )
    .await;
    assert!(r.is_err(), "{r:?}");
    // Plain HTTP gets no HTTP answer.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(!buf.starts_with(b"HTTP/1.1"), "{buf:?}");

    // The self-signed serving certificate names the node and its InternalIP, not the test CA.
    let tls = connect(addr, api_server()).await.unwrap();
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned();
    let pinned = |cert: CertificateDer<'static>| {
        client(
            Some((
                kentledge_testcluster::tls::KUBELET_CLIENT_CERT_PEM,
                kentledge_testcluster::tls::KUBELET_CLIENT_KEY_PEM,
            )),
            Some(vec![cert]),
        )
    };
    for name in ["node-1", "127.0.0.1", "localhost"] {
        assert_eq!(
            get(addr, pinned(presented.clone()), name, "/healthz").await,
            Ok((200, "ok".to_string())),
            "{name}"
        );
    }
    assert!(
        get(addr, pinned(presented.clone()), "node-2", "/healthz")
            .await
            .is_err()
    );
    let ca = CertificateDer::from_pem_slice(CA_PEM).unwrap();
    let r = get(addr, pinned(ca), "127.0.0.1", "/healthz").await;
    assert!(r.is_err(), "{r:?}");
}

/// An API server started with `--kubelet-certificate-authority` reaches a kubelet whose
/// `--tls-cert-file` that CA signed, and refuses one with a self-signed certificate.
#[tokio::test]
async fn an_api_server_with_a_kubelet_ca_verifies_serving_certificates() {
    let (_server, client) = kentledge_nodeagents::testing::server_with_namespace(
        ServerOptions::default().kubelet_certificate_authority(CA_PEM),
        crate::NS,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let _signed = Node::start(
        client.clone(),
        NodeOptions::new("node-1", dir.path().join("n1"))
            .client_ca(CA_PEM)
            .serving_cert(KUBELET_SERVING_CERT_PEM, KUBELET_SERVING_KEY_PEM),
    )
    .await
    .unwrap();
    let _self_signed = Node::start(
        client.clone(),
        NodeOptions::new("node-2", dir.path().join("n2"))
            .client_ca(CA_PEM)
            .scheduler(false),
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), crate::NS);
    for node in ["node-1", "node-2"] {
        let p: Pod = serde_json::from_value(pod_with(
            node,
            "echo hello",
            json!({"nodeSelector": {"kubernetes.io/hostname": node}}),
        ))
        .unwrap();
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    for node in ["node-1", "node-2"] {
        kentledge_nodeagents::testing::eventually(20, "pod done", || async {
            let p = pods.get(node).await.ok()?;
            (phase(&p) == "Succeeded").then_some(())
        })
        .await;
    }
    assert_eq!(
        pods.logs("node-1", &LogParams::default()).await.unwrap(),
        "hello\n"
    );
    let err = pods
        .logs("node-2", &LogParams::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("x509: certificate signed by unknown authority"),
        "{err}"
    );
}
