//! Standard Webhooks signing: `webhook-signature: v1,<base64 HMAC-SHA256>` of
//! `<webhook-id>.<webhook-timestamp>.<body>`, keyed with the bytes a `whsec_` secret
//! encodes. During a rotation every key in effect signs, and the signatures are sent
//! space-separated in one header, so a receiver holding either secret accepts it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The prefix of every signing secret.
const PREFIX: &str = "whsec_";

/// How many random bytes a generated secret holds.
const SECRET_BYTES: usize = 32;

/// A secret is not a `whsec_` secret of 24 to 64 bytes.
#[derive(Debug, thiserror::Error)]
#[error("a signing secret is `whsec_` followed by the base64 of 24 to 64 random bytes")]
pub struct InvalidSecret;

/// A new random signing secret, `whsec_` and the base64 of 32 bytes.
pub fn generate_secret() -> Result<String, getrandom::Error> {
    let mut key = [0; SECRET_BYTES];
    getrandom::fill(&mut key)?;
    Ok(format!("{PREFIX}{}", BASE64.encode(key)))
}

/// The key bytes of a `whsec_` secret.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, InvalidSecret> {
    let encoded = secret.strip_prefix(PREFIX).ok_or(InvalidSecret)?;
    let key = BASE64.decode(encoded).map_err(|_| InvalidSecret)?;
    if (24..=64).contains(&key.len()) {
        Ok(key)
    } else {
        Err(InvalidSecret)
    }
}

/// The `webhook-signature` value for a delivery: one `v1,` signature per secret.
pub fn signature_header(
    secrets: &[&str],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, InvalidSecret> {
    let mut signatures = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let key = secret_key(secret)?;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).map_err(|_| InvalidSecret)?;
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        signatures.push(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())));
    }
    Ok(signatures.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_example() {
        // The example of the specification's reference implementations.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let signature = signature_header(
            &[secret],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn generated_secrets_are_well_formed_and_differ() {
        let one = generate_secret().unwrap();
        let two = generate_secret().unwrap();
        assert_ne!(one, two);
        assert_eq!(secret_key(&one).unwrap().len(), SECRET_BYTES);
        assert!(secret_key("whsec_c2hvcnQ=").is_err());
        assert!(secret_key("sk_live_x").is_err());
    }

    #[test]
    fn every_secret_in_effect_signs() {
        let one = generate_secret().unwrap();
        let two = generate_secret().unwrap();
        let both = signature_header(&[&one, &two], "msg_1", 1, b"{}").unwrap();
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0],
            signature_header(&[&one], "msg_1", 1, b"{}").unwrap()
        );
        assert_eq!(
            parts[1],
            signature_header(&[&two], "msg_1", 1, b"{}").unwrap()
        );
    }
}
