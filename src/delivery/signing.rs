//! Request signatures (SPEC §4): `X-Webhook-Signature` (hex HMAC-SHA256 of the body with the
//! current secret) and the Standard Webhooks headers (`webhook-signature: v1,<base64>` over
//! `"{id}.{timestamp}.{body}"`, one entry per live secret during a rotation).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::domain::Secret;

type HmacSha256 = Hmac<Sha256>;

/// The signature headers of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signatures {
    /// `sha256=<hex>` with the current secret.
    pub x_webhook_signature: String,
    /// Space-separated `v1,<base64>` entries, current secret first.
    pub webhook_signature: String,
}

/// Signs `body` for delivery `id` at `timestamp` (Unix seconds) with every secret given
/// (current first, then a previous one still within its overlap). `None` without a secret.
pub fn sign(secrets: &[Secret], id: &str, timestamp: i64, body: &[u8]) -> Option<Signatures> {
    let current = secrets.first()?;
    let x_webhook_signature = format!(
        "sha256={}",
        hex::encode(hmac(current.expose().as_bytes(), &[body]))
    );
    let header = format!("{id}.{timestamp}.");
    let webhook_signature = secrets
        .iter()
        .map(|secret| {
            format!(
                "v1,{}",
                STANDARD.encode(hmac(&standard_key(secret), &[header.as_bytes(), body]))
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    Some(Signatures {
        x_webhook_signature,
        webhook_signature,
    })
}

/// The Standard Webhooks key: the base64-decoded part after `whsec_`, else the UTF-8 bytes.
fn standard_key(secret: &Secret) -> Vec<u8> {
    let text = secret.expose();
    text.strip_prefix("whsec_")
        .and_then(|encoded| STANDARD.decode(encoded).ok())
        .unwrap_or_else(|| text.as_bytes().to_vec())
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> Secret {
        Secret::from_stored(text.to_owned())
    }

    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        let signed = sign(
            &[secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(
            signed.webhook_signature,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn x_webhook_signature_is_hex_hmac_of_the_body_with_the_raw_secret() {
        // Computed independently: python3 -c "import hmac,hashlib;
        //   print(hmac.new(b'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', b'{}', hashlib.sha256).hexdigest())"
        let signed = sign(
            &[secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")],
            "d",
            1,
            b"{}",
        )
        .unwrap();
        assert_eq!(
            signed.x_webhook_signature,
            "sha256=6cbbcdf2c8016ca85b50543b19e8e121ef16137967bdfa3ce660972922bafaeb"
        );
    }

    #[test]
    fn a_rotation_signs_with_both_secrets_current_first() {
        let new = secret("new-secret-0123456789");
        let old = secret("old-secret-0123456789");
        let both = sign(&[new.clone(), old], "id", 7, b"body").unwrap();
        let only_new = sign(&[new], "id", 7, b"body").unwrap();
        let entries: Vec<_> = both.webhook_signature.split(' ').collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0], only_new.webhook_signature);
        assert_eq!(both.x_webhook_signature, only_new.x_webhook_signature);
    }

    #[test]
    fn no_secret_means_no_signature() {
        assert_eq!(sign(&[], "id", 1, b"{}"), None);
    }
}
