//! Reading the PEM files that settings name (the listener's certificate and key, the CA
//! and client certificate of outgoing connections). Every error names the setting and
//! the path, so that a start that cannot use a file says which one.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The file's bytes.
pub fn read(setting: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("{setting} {}: {e}", path.display()))
}

/// The PEM certificates of the file, at least one.
pub fn certificates(setting: &str, path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    certificates_in(setting, path, &read(setting, path)?)
}

/// [`certificates`] of the bytes already read from `path`.
pub fn certificates_in(
    setting: &str,
    path: &Path,
    pem: &[u8],
) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{setting} {}: not PEM certificates ({e})", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{setting} {}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        path.display()
    );
    Ok(certs)
}

/// The PEM private key of the file (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(setting: &str, path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    private_key_in(setting, path, &read(setting, path)?)
}

/// [`private_key`] of the bytes already read from `path`.
pub fn private_key_in(
    setting: &str,
    path: &Path,
    pem: &[u8],
) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        anyhow::anyhow!(
            "{setting} {}: holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
            path.display()
        )
    })
}
