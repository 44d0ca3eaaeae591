//! The REST API over HTTPS (`security.ssl.rest.*`, rustls) with the server's certificate
//! checked byte for byte by the client, and bad TLS settings refused at start-up.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use riffle_cluster::{MiniCluster, MiniClusterConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Trusts exactly one certificate: the fixture the server was configured with.
#[derive(Debug)]
struct Pinned(Vec<u8>, Arc<CryptoProvider>);

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.0.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the configured certificate".into()))
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.1.signature_verification_algorithms.supported_schemes()
    }
}

fn https_get(addr: std::net::SocketAddr, path: &str) -> String {
    let pem = std::fs::read(fixture("rest-tls-cert.pem")).unwrap();
    let cert = rustls_pemfile::certs(&mut pem.as_slice()).next().unwrap().unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned(cert.as_ref().to_vec(), provider)))
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from("127.0.0.1").unwrap()).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(tls, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    // The server may close without close_notify; what arrived is the answer.
    let _ = tls.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn the_api_is_served_over_tls_with_the_configured_certificate() {
    let mut cfg = MiniClusterConfig::new(1, 1).with_rest();
    cfg.config
        .set("rest.port", "0")
        .set("security.ssl.rest.enabled", "true")
        .set("security.ssl.rest.cert", fixture("rest-tls-cert.pem").display().to_string())
        .set("security.ssl.rest.key", fixture("rest-tls-key.pem").display().to_string());
    let mc = MiniCluster::start(cfg).expect("cluster with TLS starts");
    let url = mc.rest_url().unwrap();
    assert!(url.starts_with("https://"), "{url}");
    let addr: std::net::SocketAddr = url.trim_start_matches("https://").trim_end_matches('/').parse().unwrap();
    let answer = https_get(addr, "/v1/overview");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"taskmanagers\":1"), "{answer}");
    // Plain HTTP on the TLS port gets no API answer.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = plain.write_all(b"GET /overview HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("taskmanagers"));
}

#[test]
fn bad_tls_settings_are_refused_at_start() {
    for (cert, key, want) in [
        (fixture("nope.pem"), fixture("rest-tls-key.pem"), "cannot read"),
        (fixture("rest-tls-key.pem"), fixture("rest-tls-key.pem"), "no PEM certificate"),
        (fixture("rest-tls-cert.pem"), fixture("rest-tls-cert.pem"), "no PEM private key"),
    ] {
        let mut cfg = MiniClusterConfig::new(1, 1).with_rest();
        cfg.config
            .set("rest.port", "0")
            .set("security.ssl.rest.enabled", "true")
            .set("security.ssl.rest.cert", cert.display().to_string())
            .set("security.ssl.rest.key", key.display().to_string());
        let e = MiniCluster::start(cfg).err().expect("refused").to_string();
        assert!(e.contains(want), "{e}");
    }
    let mut cfg = MiniClusterConfig::new(1, 1).with_rest();
    cfg.config.set("rest.port", "0").set("security.ssl.rest.enabled", "true");
    let e = MiniCluster::start(cfg).err().expect("refused").to_string();
    assert!(e.contains("security.ssl.rest.cert"), "{e}");
}
