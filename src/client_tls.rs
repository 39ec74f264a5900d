//! TLS for hookd's own connections out (SPEC §9): to webhook targets, and to the mail and
//! SMS gateways. The HIS usually sits behind a certificate of the hospital's own CA:
//! `HOOKD_CA_FILE` adds its certificates to the built-in roots, and
//! `HOOKD_CLIENT_CERT`/`HOOKD_CLIENT_KEY` is the certificate hookd presents to a receiver
//! that asks for one (mutual TLS). Both are read once, at start; a file that cannot be used
//! stops the start with the setting and the path named.
//!
//! A TLS failure is an attempt's outcome, so [`describe_failure`] puts it in words an
//! integrator can act on.

use std::sync::Arc;

use rustls::{AlertDescription, CertificateError};

use crate::config::Config;
use crate::pem_files;

/// What outgoing connections trust beyond the built-in roots, and present.
#[derive(Clone, Default)]
pub struct ClientTls {
    /// The certificates of `HOOKD_CA_FILE`.
    roots: Vec<reqwest::Certificate>,
    /// The same, as DER, for the mail client.
    root_ders: Vec<Vec<u8>>,
    /// The certificate chain and key of `HOOKD_CLIENT_CERT`/`HOOKD_CLIENT_KEY`, as one PEM.
    identity: Option<reqwest::Identity>,
}

impl ClientTls {
    /// Reads the files the configuration names.
    pub fn load(config: &Config) -> anyhow::Result<Self> {
        let root_ders: Vec<Vec<u8>> = match &config.ca_file {
            Some(path) => pem_files::certificates("HOOKD_CA_FILE", path)?
                .iter()
                .map(|der| der.to_vec())
                .collect(),
            None => Vec::new(),
        };
        let roots = root_ders
            .iter()
            .map(|der| reqwest::Certificate::from_der(der))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("HOOKD_CA_FILE: {e}"))?;
        let identity = match &config.client_identity {
            Some(files) => {
                let cert_pem = pem_files::read("HOOKD_CLIENT_CERT", &files.cert)?;
                let key_pem = pem_files::read("HOOKD_CLIENT_KEY", &files.key)?;
                let certs =
                    pem_files::certificates_in("HOOKD_CLIENT_CERT", &files.cert, &cert_pem)?;
                let key = pem_files::private_key_in("HOOKD_CLIENT_KEY", &files.key, &key_pem)?;
                // rustls checks that the key goes with the certificate.
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                rustls::sign::CertifiedKey::from_der(certs, key, &provider).map_err(|e| {
                    anyhow::anyhow!(
                        "HOOKD_CLIENT_KEY {} does not go with HOOKD_CLIENT_CERT {}: {e}",
                        files.key.display(),
                        files.cert.display()
                    )
                })?;
                let both = [cert_pem, b"\n".to_vec(), key_pem].concat();
                Some(reqwest::Identity::from_pem(&both).map_err(|e| {
                    anyhow::anyhow!("HOOKD_CLIENT_CERT {}: {e}", files.cert.display())
                })?)
            }
            None => None,
        };
        Ok(Self {
            roots,
            root_ders,
            identity,
        })
    }

    /// The certificates of `HOOKD_CA_FILE`, as DER.
    pub fn root_certificates(&self) -> &[Vec<u8>] {
        &self.root_ders
    }

    /// `builder` trusting the extra roots and presenting the client certificate.
    pub fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        let builder = builder.tls_certs_merge(self.roots.iter().cloned());
        match &self.identity {
            Some(identity) => builder.identity(identity.clone()),
            None => builder,
        }
    }
}

/// A TLS failure somewhere in `error`'s causes, in words: what went wrong and what fixes
/// it. `None` when the failure was not TLS.
pub fn describe_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let failure = tls_error(error)?;
    let words = match failure {
        rustls::Error::InvalidCertificate(problem) => match problem {
            CertificateError::UnknownIssuer => {
                "the receiver's certificate is not signed by a trusted CA (unknown issuer; a \
                 clinic CA goes in HOOKD_CA_FILE)"
                    .to_owned()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the receiver's certificate is not valid for this host name (name mismatch)"
                    .to_owned()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the receiver's certificate has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the receiver's certificate is not valid yet".to_owned()
            }
            CertificateError::Revoked => "the receiver's certificate is revoked".to_owned(),
            other => format!("the receiver's certificate was refused ({other:?})"),
        },
        rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired | AlertDescription::HandshakeFailure,
        ) => "the receiver requires a client certificate it accepts (HOOKD_CLIENT_CERT and \
              HOOKD_CLIENT_KEY)"
            .to_owned(),
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::AccessDenied),
        ) => format!("the receiver refused hookd's client certificate ({alert:?})"),
        other => other.to_string(),
    };
    Some(format!("TLS: {words}"))
}

/// The rustls error among `error`'s causes. hyper and tokio-rustls wrap it in
/// `io::Error`s (one inside another), whose own `source()` skips the error they carry, so
/// the walk steps into each I/O error's payload instead.
fn tls_error<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        cause = match error.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    None
}
