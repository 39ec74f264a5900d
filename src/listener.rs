//! The listener (SPEC §9): plain HTTP, or HTTPS only (TLS 1.2 and 1.3, rustls) when
//! `HOOKD_TLS_CERT` and `HOOKD_TLS_KEY` are set. Served by axum-server, which gives the
//! connection-level bounds the API cannot set itself: a client has
//! `HOOKD_REQUEST_READ_TIMEOUT_MS` (30 s) to finish its TLS handshake and to send each
//! request's headers, or the connection is closed. (The body's bound and the handler's are
//! in [`crate::api`], which answers them in the contract's shape.)
//!
//! `SIGHUP` reads both files again: new connections get the new certificate, open ones
//! carry on with theirs. A pair that cannot be used is logged and the previous one kept.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum_server::Handle;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use rustls::ServerConfig;

use crate::config::{Config, TlsFiles};
use crate::pem_files;

/// A bound socket, with its certificate when it speaks HTTPS.
pub struct Listener {
    socket: std::net::TcpListener,
    tls: Option<(RustlsConfig, TlsFiles)>,
    read_timeout: std::time::Duration,
    grace: std::time::Duration,
}

impl Listener {
    /// Readies `socket` to serve as `config` says; a certificate or key that cannot be used
    /// stops here, with the file named.
    pub fn new(socket: tokio::net::TcpListener, config: &Config) -> anyhow::Result<Self> {
        let tls = match &config.tls {
            Some(files) => Some((
                RustlsConfig::from_config(server_config(files)?),
                files.clone(),
            )),
            None => None,
        };
        Ok(Self {
            socket: socket.into_std()?,
            tls,
            read_timeout: config.request_read_timeout,
            // Requests in flight at shutdown get as long as any request may take.
            grace: config.handler_timeout,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Whether it speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves `router` until `shutdown` resolves, then lets the requests in flight finish.
    pub async fn serve(
        self,
        router: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let handle = Handle::new();
        let stopping = handle.clone();
        let grace = self.grace;
        tokio::spawn(async move {
            shutdown.await;
            stopping.graceful_shutdown(Some(grace));
        });
        // The peer's address reaches the handlers (the limit on requests without a key).
        let app = router.into_make_service_with_connect_info::<SocketAddr>();
        let mut server = axum_server::from_tcp(self.socket)?
            .handle(handle)
            .first_request_timeout(self.read_timeout);
        server
            .http_builder()
            .http1()
            .header_read_timeout(self.read_timeout);
        match self.tls {
            None => server.serve(app).await?,
            Some((tls, files)) => {
                let reloading = tokio::spawn(reload_on_hangup(tls.clone(), files));
                let acceptor = RustlsAcceptor::new(tls).handshake_timeout(self.read_timeout);
                let served = server.acceptor(acceptor).serve(app).await;
                reloading.abort();
                served?;
            }
        }
        Ok(())
    }
}

/// The TLS settings for a certificate chain and key: TLS 1.2 and 1.3 with the same crypto
/// provider as the HTTP client, HTTP/2 and HTTP/1.1 offered.
pub fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<ServerConfig>> {
    let certs = pem_files::certificates("HOOKD_TLS_CERT", &files.cert)?;
    let key = pem_files::private_key("HOOKD_TLS_KEY", &files.key)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("the TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            anyhow::anyhow!(
                "HOOKD_TLS_KEY {} does not go with HOOKD_TLS_CERT {}: {e}",
                files.key.display(),
                files.cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reloads the certificate and key at every `SIGHUP`.
async fn reload_on_hangup(tls: RustlsConfig, files: TlsFiles) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGHUP: the certificate is not reloadable");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        match server_config(&files) {
            Ok(config) => {
                tls.reload_from_config(config);
                tracing::info!(cert = %files.cert.display(), "reloaded the TLS certificate");
            }
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "kept the previous TLS certificate");
            }
        }
    }
}
