//! TLS to ZooKeeper (`high-availability.zookeeper.client.secure`): the PEM files read into
//! zookeeper-client's [`TlsOptions`], and a probe that says why a connection failed.
//!
//! zookeeper-client tries each member, logs a failed handshake at debug level and reports only
//! "no hosts" (or a timeout), so a wrong CA or a plain client at a TLS port would look like an
//! unreachable quorum. After a failed attempt, [`diagnose`] opens one connection per member and
//! tries a TLS handshake itself (rustls on ring, as zookeeper-client does, with the same trust
//! store and client certificate): a certificate the server or riffle refuses, a member that
//! does not speak TLS although `secure` is on, or one that does although it is off, is a
//! [`HaError::Tls`] that no retry would fix, so the connection fails at once, naming it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use zookeeper_client::TlsOptions;

use super::config::{ZooKeeperTlsConfig, SSL_CERTIFICATE, SSL_KEY, SSL_TRUSTSTORE};
use super::error::HaError;

/// After a handshake, how long to listen for the server refusing our certificate (in TLS 1.3
/// the server checks it after the client's side of the handshake is done).
const REFUSAL_GRACE: Duration = Duration::from_millis(300);

/// The PEM files of a TLS connection, read and checked.
#[derive(Clone)]
pub(crate) struct TlsMaterial {
    ca_pem: String,
    roots: RootCertStore,
    identity: Option<Identity>,
}

#[derive(Clone)]
struct Identity {
    cert_pem: String,
    key_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl TlsMaterial {
    /// Reads the trust store and the client certificate and key; each problem is a
    /// [`HaError::TlsFile`] naming the key and the file.
    pub(crate) fn load(config: &ZooKeeperTlsConfig) -> Result<Self, HaError> {
        let ca_pem = read_pem(SSL_TRUSTSTORE.key(), &config.truststore)?;
        let mut roots = RootCertStore::empty();
        for cert in certificates(SSL_TRUSTSTORE.key(), &config.truststore, &ca_pem)? {
            roots.add(cert).map_err(|e| file_error(SSL_TRUSTSTORE.key(), &config.truststore, e))?;
        }
        let identity = match &config.identity {
            None => None,
            Some(id) => {
                let cert_pem = read_pem(SSL_CERTIFICATE.key(), &id.certificate)?;
                let chain = certificates(SSL_CERTIFICATE.key(), &id.certificate, &cert_pem)?;
                let key_pem = read_pem(SSL_KEY.key(), &id.key)?;
                let key = match rustls_pemfile::private_key(&mut key_pem.as_bytes()) {
                    Ok(Some(key)) => key,
                    Ok(None) => return Err(file_error(SSL_KEY.key(), &id.key, "no unencrypted private key in it")),
                    Err(e) => return Err(file_error(SSL_KEY.key(), &id.key, e)),
                };
                Some(Identity { cert_pem, key_pem, chain, key: Arc::new(key) })
            }
        };
        Ok(Self { ca_pem, roots, identity })
    }

    /// zookeeper-client's options: these roots (and no others), this identity, and the
    /// server's name or IP checked against its certificate.
    pub(crate) fn options(&self, config: &ZooKeeperTlsConfig) -> Result<TlsOptions, HaError> {
        let options = TlsOptions::new()
            .with_pem_ca(&self.ca_pem)
            .map_err(|e| file_error(SSL_TRUSTSTORE.key(), &config.truststore, e))?;
        match (&self.identity, &config.identity) {
            (Some(id), Some(files)) => options
                .with_pem_identity(&id.cert_pem, &id.key_pem)
                .map_err(|e| file_error(SSL_CERTIFICATE.key(), &files.certificate, e)),
            _ => Ok(options),
        }
    }

    /// The same trust and identity as a rustls configuration, for the probe.
    fn client_config(&self) -> Result<ClientConfig, rustls::Error> {
        let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(self.roots.clone());
        match &self.identity {
            Some(id) => builder.with_client_auth_cert(id.chain.clone(), id.key.clone_key()),
            None => Ok(builder.with_no_client_auth()),
        }
    }
}

fn read_pem(key: &'static str, path: &Path) -> Result<String, HaError> {
    std::fs::read_to_string(path).map_err(|e| file_error(key, path, e))
}

fn certificates(key: &'static str, path: &Path, pem: &str) -> Result<Vec<CertificateDer<'static>>, HaError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(key, path, e))?;
    if certs.is_empty() {
        return Err(file_error(key, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

fn file_error(key: &'static str, path: &Path, reason: impl std::fmt::Display) -> HaError {
    HaError::TlsFile { key, path: path.to_path_buf(), reason: reason.to_string() }
}

/// What one handshake attempt with a member showed.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    /// The handshake went through and the server did not refuse us.
    Completed,
    /// The server answered in TLS, and one side refused the other's certificate (or the
    /// server refused the handshake): the reason.
    Refused(String),
    /// The connection closed or broke without a TLS answer: the server does not speak TLS.
    NotTls(String),
    /// No connection (refused, timed out): not a TLS matter.
    Unreachable,
}

/// What [`diagnose`] found.
#[derive(Debug)]
pub(crate) enum Diagnosis {
    /// TLS explains the failure: no retry would help.
    Explained(HaError),
    /// Members answered and TLS is not the problem: no need to probe again.
    NotTls,
    /// No member could be reached: probe again after the next failed attempt.
    NoneReached,
}

/// Why the last connection attempt failed, if TLS (or its absence) explains it: a member whose
/// certificate riffle does not trust, a member that refuses riffle's, a plain member while
/// `secure` is on, or a TLS member while it is off.
pub(crate) async fn diagnose(
    quorum: &str,
    tls: Option<&TlsMaterial>,
    secure_key: &'static str,
    timeout: Duration,
) -> Diagnosis {
    let config = match tls.map(TlsMaterial::client_config) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            return Diagnosis::Explained(HaError::Tls { server: quorum.to_string(), reason: e.to_string() });
        }
        // A plain client only asks "does it speak TLS": any server certificate is refused by
        // an empty trust store, after the server has answered in TLS.
        None => match ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
        {
            Ok(b) => b.with_root_certificates(RootCertStore::empty()).with_no_client_auth(),
            Err(_) => return Diagnosis::NotTls,
        },
    };
    let config = Arc::new(config);
    let secure = tls.is_some();
    let mut reached = false;
    for member in quorum.split(',').map(str::trim) {
        let Some((host, port)) = member.rsplit_once(':') else { continue };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let Ok(port) = port.parse::<u16>() else { continue };
        let config = config.clone();
        let probe = tokio::task::spawn_blocking(move || handshake(&host, port, config, timeout));
        let probe = match tokio::time::timeout(timeout + REFUSAL_GRACE + Duration::from_secs(1), probe).await {
            Ok(Ok(p)) => p,
            _ => Probe::Unreachable,
        };
        tracing::debug!(member, ?probe, "ZooKeeper TLS probe");
        reached |= probe != Probe::Unreachable;
        let reason = match (secure, probe) {
            (true, Probe::Refused(reason)) => reason,
            (true, Probe::NotTls(what)) => format!(
                "no TLS answer ({what}): is this the server's secureClientPort? (a plain port needs {secure_key}: false)"
            ),
            (false, Probe::Refused(_)) => {
                format!("the server speaks TLS: set {secure_key}: true and its ssl.* files, or use its plain clientPort")
            }
            _ => continue,
        };
        return Diagnosis::Explained(HaError::Tls { server: member.to_string(), reason });
    }
    if reached {
        Diagnosis::NotTls
    } else {
        Diagnosis::NoneReached
    }
}

/// One TLS handshake with `host:port` (blocking, every read and write bounded by `timeout`).
fn handshake(host: &str, port: u16, config: Arc<ClientConfig>, timeout: Duration) -> Probe {
    let Some(addr) = (host, port).to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return Probe::Unreachable;
    };
    let Ok(name) = ServerName::try_from(host.to_string()) else {
        return Probe::Refused(format!("'{host}' is not a valid server name for TLS"));
    };
    let Some(mut sock) = connect(addr, timeout) else {
        return Probe::Unreachable;
    };
    let mut conn = match ClientConnection::new(config, name) {
        Ok(c) => c,
        Err(e) => return Probe::Refused(e.to_string()),
    };
    let deadline = Instant::now() + timeout;
    while conn.is_handshaking() {
        if Instant::now() >= deadline {
            return Probe::NotTls(format!("no handshake within {timeout:?}"));
        }
        match conn.complete_io(&mut sock) {
            Ok((0, 0)) if conn.is_handshaking() => return Probe::NotTls("the server closed the connection".into()),
            Ok(_) => {}
            Err(e) => return classify(e),
        }
    }
    // TLS 1.3: the server judges our certificate after we are done; give it a moment to say no.
    let _ = sock.set_read_timeout(Some(REFUSAL_GRACE));
    let mut buf = [0u8; 64];
    let refused = match conn.complete_io(&mut sock) {
        Err(e) if !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            Some(classify(e))
        }
        _ => match conn.reader().read(&mut buf) {
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => Some(classify(e)),
            _ => None,
        },
    };
    conn.send_close_notify();
    let _ = conn.write_tls(&mut sock);
    let _ = sock.flush();
    match refused {
        Some(Probe::Refused(reason)) => Probe::Refused(reason),
        _ => Probe::Completed,
    }
}

fn connect(addr: SocketAddr, timeout: Duration) -> Option<TcpStream> {
    let sock = TcpStream::connect_timeout(&addr, timeout).ok()?;
    sock.set_read_timeout(Some(timeout)).ok()?;
    sock.set_write_timeout(Some(timeout)).ok()?;
    Some(sock)
}

/// A failed handshake's I/O error: a TLS error inside means the server spoke TLS (or sent
/// something that is not TLS at all); a closed or broken connection means it does not.
fn classify(e: std::io::Error) -> Probe {
    let tls = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()).cloned();
    match tls {
        Some(rustls::Error::InvalidCertificate(why)) => {
            Probe::Refused(format!("the server's certificate is not trusted ({why:?}): check the trust store"))
        }
        Some(rustls::Error::AlertReceived(alert)) => Probe::Refused(format!(
            "the server refused the handshake ({alert:?}): is riffle's client certificate signed by a CA it trusts \
             (its ssl.trustStore), and does it require one (ssl.clientAuth)?"
        )),
        Some(rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. }) => {
            Probe::NotTls(format!("the server's answer is not TLS: {e}"))
        }
        Some(other) => Probe::Refused(other.to_string()),
        None => match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                Probe::NotTls("the server did not answer the TLS hello".into())
            }
            _ => Probe::NotTls(format!("the connection broke: {e}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use rustls::{AlertDescription, CertificateError, InvalidMessage};

    use super::*;
    use crate::ha::config::ClientIdentity;

    fn io(e: rustls::Error) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn handshake_errors_are_told_apart() {
        let cases = [
            (io(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)), "not trusted (UnknownIssuer)"),
            (io(rustls::Error::AlertReceived(AlertDescription::CertificateUnknown)), "refused the handshake"),
            (io(rustls::Error::AlertReceived(AlertDescription::BadCertificate)), "client certificate"),
        ];
        for (e, needle) in cases {
            match classify(e) {
                Probe::Refused(reason) => assert!(reason.contains(needle), "{reason}"),
                other => panic!("expected Refused with '{needle}', got {other:?}"),
            }
        }
        let not_tls = [
            io(rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType)),
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "eof"),
            std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"),
            std::io::Error::new(std::io::ErrorKind::WouldBlock, "no answer"),
        ];
        for e in not_tls {
            let what = e.to_string();
            assert!(matches!(classify(e), Probe::NotTls(_)), "{what}");
        }
    }

    #[test]
    fn unusable_files_name_their_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("written");
        let missing = dir.path().join("missing.pem");
        let config = |truststore: PathBuf| ZooKeeperTlsConfig {
            truststore,
            identity: Some(ClientIdentity { certificate: missing.clone(), key: missing.clone() }),
        };
        for (path, needle) in [(&missing, "No such file"), (&empty, "no PEM certificate")] {
            match TlsMaterial::load(&config(path.clone())) {
                Err(HaError::TlsFile { key, path: p, reason }) => {
                    assert_eq!((key, &p), (SSL_TRUSTSTORE.key(), path));
                    assert!(reason.contains(needle), "{reason}");
                }
                Err(other) => panic!("expected TlsFile, got {other}"),
                Ok(_) => panic!("{} accepted", path.display()),
            }
        }
    }

    #[tokio::test]
    async fn a_plain_probe_tells_unreachable_from_plain_servers() {
        // Nothing listens: nothing reached, probe again later.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port");
        let quorum = closed.to_string();
        let timeout = Duration::from_secs(2);
        assert!(matches!(diagnose(&quorum, None, "secure", timeout).await, Diagnosis::NoneReached));

        // A server that closes what it does not understand (as a plain ZooKeeper does): reached,
        // and TLS is not the problem.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let quorum = listener.local_addr().expect("address").to_string();
        let server = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                drop(sock);
            }
        });
        let start = Instant::now();
        assert!(matches!(diagnose(&quorum, None, "secure", timeout).await, Diagnosis::NotTls));
        assert!(start.elapsed() < timeout, "{:?}", start.elapsed());
        server.abort();
    }
}
