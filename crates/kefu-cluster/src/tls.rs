//! Mutual TLS between a cluster's scheduler, executors and clients (`--tls DIR`). One
//! certificate authority is made for the cluster (`kefu cluster certs`), with one
//! certificate for its members; every connection — client to scheduler, executors to the
//! scheduler, shuffles between executors, results to clients — is TLS, and each end shows
//! a certificate of that authority or is refused during the handshake, before any request
//! is read. Ballista's gRPC clients take the TLS settings through its endpoint overrides;
//! the executors' Flight servers through tonic's server TLS; the scheduler's server takes
//! no TLS settings, so it listens on the loopback interface behind a TLS front on its port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ballista_core::extension::{EndpointOverrideFn, SessionConfigExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::ClusterError;

/// The name every member's certificate carries, and every client checks: members are
/// reached at addresses (IPs, hostnames) the certificate cannot list in advance.
pub const MEMBER_NAME: &str = "kefu-cluster";

const CA_FILE: &str = "ca.pem";
const CERT_FILE: &str = "member.pem";
const KEY_FILE: &str = "member.key";

/// A TLS handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The cluster's authority and this member's certificate and key, as PEM.
#[derive(Clone)]
pub struct ClusterTls {
    dir: PathBuf,
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("ClusterTls")
            .field("dir", &self.dir)
            .finish()
    }
}

fn tls_error(dir: &Path, source: impl Into<kefu_model::BoxError>) -> ClusterError {
    ClusterError::Tls {
        dir: dir.display().to_string(),
        source: source.into(),
    }
}

impl ClusterTls {
    /// Reads `ca.pem`, `member.pem` and `member.key` from `dir`, checking that they parse.
    pub fn load(dir: &Path) -> Result<Self, ClusterError> {
        // rustls is built with two providers here (the dependencies ask for both): the
        // process uses aws-lc-rs. Installing fails only when one is installed already.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .map_err(|e| tls_error(dir, format!("{}: {e}", dir.join(name).display())))
        };
        let tls = ClusterTls {
            dir: dir.to_path_buf(),
            ca: read(CA_FILE)?,
            cert: read(CERT_FILE)?,
            key: read(KEY_FILE)?,
        };
        tls.server_config()?;
        Ok(tls)
    }

    /// Makes a cluster's authority and its members' certificate in `dir` (a new or empty
    /// directory); the keys are readable by their owner only.
    pub fn generate(dir: &Path) -> Result<(), ClusterError> {
        let err = |e: kefu_model::BoxError| tls_error(dir, e);
        if dir.exists()
            && std::fs::read_dir(dir)
                .map_err(|e| err(e.into()))?
                .next()
                .is_some()
        {
            return Err(err("the directory is not empty; give a new one".into()));
        }
        std::fs::create_dir_all(dir).map_err(|e| err(e.into()))?;
        let mut ca_params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| err(e.into()))?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kefu cluster authority");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_key = rcgen::KeyPair::generate().map_err(|e| err(e.into()))?;
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(|e| err(e.into()))?;
        let mut params = rcgen::CertificateParams::new(vec![MEMBER_NAME.to_string()])
            .map_err(|e| err(e.into()))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, MEMBER_NAME);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = rcgen::KeyPair::generate().map_err(|e| err(e.into()))?;
        let cert = params.signed_by(&key, &ca).map_err(|e| err(e.into()))?;
        write_private(&dir.join(CA_FILE), ca.pem().as_bytes()).map_err(|e| err(e.into()))?;
        write_private(&dir.join(CERT_FILE), cert.pem().as_bytes()).map_err(|e| err(e.into()))?;
        write_private(&dir.join(KEY_FILE), key.serialize_pem().as_bytes())
            .map_err(|e| err(e.into()))?;
        Ok(())
    }

    /// TLS for Ballista's gRPC clients (to the scheduler, to executors).
    pub fn endpoint_override(&self) -> EndpointOverrideFn {
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca))
            .identity(Identity::from_pem(&self.cert, &self.key))
            .domain_name(MEMBER_NAME);
        let grpc = ballista_core::utils::GrpcClientConfig::from(
            &datafusion::prelude::SessionConfig::new_with_ballista().ballista_config(),
        );
        Arc::new(move |endpoint: tonic::transport::Endpoint| {
            // Ballista names the scheduler http:// or df://, whatever its TLS setting, and
            // tonic speaks TLS only to https:// (the endpoint is made again, with
            // Ballista's client settings).
            let uri = endpoint.uri().to_string();
            let endpoint = match uri.split_once("://") {
                Some((scheme, rest)) if scheme != "https" => {
                    ballista_core::utils::create_grpc_client_endpoint(
                        format!("https://{rest}"),
                        Some(&grpc),
                    )?
                }
                _ => endpoint,
            };
            Ok(endpoint.tls_config(config.clone())?)
        })
    }

    /// TLS for an executor's Flight server: clients show a certificate of the authority.
    pub fn flight_server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert, &self.key))
            .client_ca_root(Certificate::from_pem(&self.ca))
    }

    /// An HTTPS client of the scheduler's HTTP API, which it reaches at `scheduler`.
    pub fn http_client(&self, scheduler: SocketAddr) -> Result<reqwest::Client, ClusterError> {
        let mut pem = self.cert.clone();
        pem.extend_from_slice(&self.key);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| tls_error(&self.dir, e))?;
        let ca = reqwest::Certificate::from_pem(&self.ca).map_err(|e| tls_error(&self.dir, e))?;
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .identity(identity)
            .resolve(MEMBER_NAME, scheduler)
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| tls_error(&self.dir, e))
    }

    fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, ClusterError> {
        let err = |e: kefu_model::BoxError| tls_error(&self.dir, e);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(&self.ca) {
            roots
                .add(ca.map_err(|e| err(format!("{CA_FILE}: {e}").into()))?)
                .map_err(|e| err(format!("{CA_FILE}: {e}").into()))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| err(e.into()))?;
        let chain = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(format!("{CERT_FILE}: {e}").into()))?;
        let key = PrivateKeyDer::from_pem_slice(&self.key)
            .map_err(|e| err(format!("{KEY_FILE}: {e}").into()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| err(e.into()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| err(e.into()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Accepts TLS connections on `public` and relays each, once its client's certificate
    /// is verified, to `inner` (a server on the loopback interface).
    pub async fn front(
        &self,
        public: tokio::net::TcpListener,
        inner: SocketAddr,
    ) -> Result<(), ClusterError> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.server_config()?);
        loop {
            let (socket, peer) = match public.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            #[expect(
                clippy::disallowed_methods,
                reason = "a connection's task ends with the connection (or its handshake timeout)"
            )]
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket));
                let mut tls = match handshake.await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::warn!(%peer, error = %e, "refused a connection (TLS)");
                        return;
                    }
                    Err(_) => {
                        tracing::warn!(%peer, "refused a connection (no TLS handshake in 10 s)");
                        return;
                    }
                };
                let Ok(mut backend) = tokio::net::TcpStream::connect(inner).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut backend).await;
            });
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}
