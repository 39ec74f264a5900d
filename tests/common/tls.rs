//! Certificates made for the tests with rcgen: a clinic's own CA, and certificates it
//! signs for `localhost` / `127.0.0.1` (servers) and for a client. The CA is made once per
//! test binary; leaves are cheap (ECDSA P-256) and made as a test needs them.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A certificate and its private key, in PEM.
#[derive(Clone)]
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Pair {
    /// Writes `<name>.crt` and `<name>.key` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }

    /// The certificate as DER, to compare with what a TLS peer presented.
    pub fn cert_der(&self) -> Vec<u8> {
        pem_to_der(&self.cert_pem)
    }
}

/// A certificate authority that signs test certificates.
pub struct Authority {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// What a leaf certificate is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    /// A server for `localhost` and `127.0.0.1`.
    Server,
    /// A server whose certificate ran out yesterday.
    ExpiredServer,
    /// A server with another name only (`his.clinic.example`).
    OtherName,
    /// A client presenting itself to a server that asks.
    Client,
}

impl Authority {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A new certificate signed by this authority.
    pub fn issue(&self, leaf: Leaf) -> Pair {
        let names = match leaf {
            Leaf::OtherName => vec!["his.clinic.example".to_owned()],
            Leaf::Client => vec!["his-client".to_owned()],
            Leaf::Server | Leaf::ExpiredServer => {
                vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
            }
        };
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "hookd test");
        params.extended_key_usages = vec![if leaf == Leaf::Client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        if leaf == Leaf::ExpiredServer {
            let now = time::OffsetDateTime::now_utc();
            params.not_before = now - time::Duration::days(30);
            params.not_after = now - time::Duration::days(1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// The clinic's CA: what hookd is told to trust.
pub fn clinic_ca() -> &'static Authority {
    static CA: OnceLock<Authority> = OnceLock::new();
    CA.get_or_init(|| Authority::new("Clinic test CA"))
}

/// A CA nobody was told to trust.
pub fn stranger_ca() -> &'static Authority {
    static CA: OnceLock<Authority> = OnceLock::new();
    CA.get_or_init(|| Authority::new("Unknown test CA"))
}

/// A server certificate of the clinic's CA, made once.
pub fn server_pair() -> &'static Pair {
    static PAIR: OnceLock<Pair> = OnceLock::new();
    PAIR.get_or_init(|| clinic_ca().issue(Leaf::Server))
}

impl Authority {
    /// Its certificate, as a trust anchor.
    pub fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pem_to_der(&self.cert_pem).into()).unwrap();
        roots
    }
}

/// TLS settings for a test receiver presenting `pair`; with `clients_of`, it requires a
/// client certificate signed by that CA.
pub fn receiver_config(pair: &Pair, clients_of: Option<&Authority>) -> rustls::ServerConfig {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match clients_of {
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                std::sync::Arc::new(ca.roots()),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let key = rustls::pki_types::PrivateKeyDer::try_from(pem_to_der(&pair.key_pem)).unwrap();
    builder
        .with_single_cert(vec![pair.cert_der().into()], key)
        .unwrap()
}

/// A client that trusts only the clinic's CA.
pub fn client_trusting_clinic_ca() -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(clinic_ca().cert_pem.as_bytes()).unwrap();
    reqwest::Client::builder().no_proxy().tls_certs_only([ca])
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}
