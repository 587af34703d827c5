//! Inbound signature checks: each scheme's headers and signed content, checked over the
//! raw body bytes with the flow's secrets (any one may have signed: rotation), in
//! constant time. A failure says which check failed, never the expected value.

use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use switchboard_core::Timestamp;
use switchboard_project::{HmacAlgorithm, VerifyScheme};

/// Why a request's signature was refused.
#[derive(Debug)]
pub(crate) struct Refused {
    /// `missing_signature`, `stale_timestamp` or `invalid_signature`.
    pub code: &'static str,
    /// What was wrong, for the sender.
    pub message: String,
}

fn missing(header: &str) -> Refused {
    Refused {
        code: "missing_signature",
        message: format!("the request has no `{header}` header"),
    }
}

fn invalid(what: &str) -> Refused {
    Refused {
        code: "invalid_signature",
        message: format!("the {what} does not match the body and the secret"),
    }
}

/// Checks the request against `scheme` with any of `secrets`, at `now`.
pub(crate) fn check(
    scheme: &VerifyScheme,
    secrets: &[String],
    tolerance: Duration,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
) -> Result<(), Refused> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .ok_or_else(|| missing(name))
    };
    let fresh = |name: &str, seconds: &str| -> Result<(), Refused> {
        let seconds: i64 = seconds.parse().map_err(|_| Refused {
            code: "stale_timestamp",
            message: format!("the `{name}` timestamp is not a number of seconds"),
        })?;
        let skew = (now.millis() / 1000 - seconds).unsigned_abs();
        if skew > tolerance.as_secs() {
            return Err(Refused {
                code: "stale_timestamp",
                message: format!(
                    "the `{name}` timestamp is {skew} s from now; at most {} s is allowed",
                    tolerance.as_secs()
                ),
            });
        }
        Ok(())
    };
    let keys = || secrets.iter().map(|secret| secret.as_bytes().to_vec());
    match scheme {
        VerifyScheme::StandardWebhooks | VerifyScheme::Svix => {
            let prefix = if *scheme == VerifyScheme::Svix {
                "svix"
            } else {
                "webhook"
            };
            let id = header(&format!("{prefix}-id"))?;
            let timestamp_name = format!("{prefix}-timestamp");
            let timestamp = header(&timestamp_name)?;
            let signatures = header(&format!("{prefix}-signature"))?;
            fresh(&timestamp_name, timestamp)?;
            let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
            let entries = |version: &str| -> Vec<Vec<u8>> {
                signatures
                    .split_whitespace()
                    .filter_map(|entry| entry.strip_prefix(version))
                    .filter_map(|encoded| BASE64.decode(encoded).ok())
                    .collect()
            };
            let (public, symmetric): (Vec<&String>, Vec<&String>) = secrets
                .iter()
                .partition(|secret| secret.starts_with("whpk_"));
            let keys = symmetric
                .into_iter()
                .filter_map(|secret| standard_key(secret));
            let by_hmac = any_matches(HmacAlgorithm::Sha256, keys, &signed, &entries("v1,"));
            let by_ed25519 = || {
                let signatures = entries("v1a,");
                public
                    .iter()
                    .filter_map(|secret| ed25519_key(secret))
                    .any(|key| ed25519_matches(&key, &signed, &signatures))
                    .then_some(())
            };
            by_hmac
                .or_else(by_ed25519)
                .ok_or_else(|| invalid(&format!("`{prefix}-signature`")))
        }
        VerifyScheme::Github => {
            let name = "x-hub-signature-256";
            let signature = header(name)?;
            let candidate = signature
                .strip_prefix("sha256=")
                .and_then(|hex| hex::decode(hex).ok())
                .ok_or_else(|| invalid(&format!("`{name}`")))?;
            any_matches(HmacAlgorithm::Sha256, keys(), &[body], &[candidate])
                .ok_or_else(|| invalid(&format!("`{name}`")))
        }
        VerifyScheme::Stripe => {
            let name = "stripe-signature";
            let value = header(name)?;
            let mut timestamp = None;
            let mut candidates = Vec::new();
            for part in value.split(',') {
                match part.trim().split_once('=') {
                    Some(("t", seconds)) => timestamp = Some(seconds),
                    Some(("v1", hex)) => candidates.extend(hex::decode(hex).ok()),
                    _ => {}
                }
            }
            let timestamp = timestamp.ok_or_else(|| Refused {
                code: "missing_signature",
                message: format!("`{name}` has no `t=` timestamp"),
            })?;
            fresh(name, timestamp)?;
            let signed = [timestamp.as_bytes(), b".", body];
            any_matches(HmacAlgorithm::Sha256, keys(), &signed, &candidates)
                .ok_or_else(|| invalid(&format!("`{name}`")))
        }
        VerifyScheme::Shopify => {
            let name = "x-shopify-hmac-sha256";
            let candidate = BASE64
                .decode(header(name)?)
                .map_err(|_| invalid(&format!("`{name}`")))?;
            any_matches(HmacAlgorithm::Sha256, keys(), &[body], &[candidate])
                .ok_or_else(|| invalid(&format!("`{name}`")))
        }
        VerifyScheme::Slack => {
            let name = "x-slack-signature";
            let signature = header(name)?;
            let timestamp_name = "x-slack-request-timestamp";
            let timestamp = header(timestamp_name)?;
            fresh(timestamp_name, timestamp)?;
            let candidate = signature
                .strip_prefix("v0=")
                .and_then(|hex| hex::decode(hex).ok())
                .ok_or_else(|| invalid(&format!("`{name}`")))?;
            let signed = [b"v0:".as_slice(), timestamp.as_bytes(), b":", body];
            any_matches(HmacAlgorithm::Sha256, keys(), &signed, &[candidate])
                .ok_or_else(|| invalid(&format!("`{name}`")))
        }
        VerifyScheme::Hmac(hmac) => {
            let signature = header(&hmac.header)?;
            let encoded = signature
                .strip_prefix(hmac.prefix.as_str())
                .unwrap_or(signature);
            let candidate = if hmac.base64 {
                BASE64.decode(encoded).ok()
            } else {
                hex::decode(encoded).ok()
            }
            .ok_or_else(|| invalid(&format!("`{}`", hmac.header)))?;
            let timestamp = match &hmac.timestamp_header {
                Some(name) => {
                    let timestamp = header(name)?;
                    fresh(name, timestamp)?;
                    Some(timestamp)
                }
                None => None,
            };
            let signed: Vec<&[u8]> = match timestamp {
                Some(timestamp) => vec![timestamp.as_bytes(), b".", body],
                None => vec![body],
            };
            any_matches(hmac.algorithm, keys(), &signed, &[candidate])
                .ok_or_else(|| invalid(&format!("`{}`", hmac.header)))
        }
    }
}

/// A Standard Webhooks secret's key: the base64 after `whsec_`.
fn standard_key(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = BASE64.decode(encoded).ok();
    if key.is_none() {
        tracing::error!(
            "A standard-webhooks secret is not base64 (after `whsec_`); it can never match."
        );
    }
    key
}

/// A Standard Webhooks public key: the base64 of 32 bytes after `whpk_`.
fn ed25519_key(secret: &str) -> Option<ed25519_dalek::VerifyingKey> {
    let bytes = secret
        .strip_prefix("whpk_")
        .and_then(|encoded| BASE64.decode(encoded).ok())
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok());
    let key = bytes.and_then(|bytes| ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok());
    if key.is_none() {
        tracing::error!(
            "A standard-webhooks public key is not `whpk_` and 32 bytes of base64; it can never match."
        );
    }
    key
}

/// Whether one of `signatures` is `key`'s Ed25519 signature of `parts` (concatenated).
fn ed25519_matches(
    key: &ed25519_dalek::VerifyingKey,
    parts: &[&[u8]],
    signatures: &[Vec<u8>],
) -> bool {
    let message = parts.concat();
    signatures.iter().any(|signature| {
        ed25519_dalek::Signature::from_slice(signature)
            .is_ok_and(|signature| key.verify_strict(&message, &signature).is_ok())
    })
}

/// `Some(())` when one of `keys` signs `parts` (concatenated) into one of `candidates`,
/// compared in constant time.
fn any_matches(
    algorithm: HmacAlgorithm,
    keys: impl Iterator<Item = Vec<u8>>,
    parts: &[&[u8]],
    candidates: &[Vec<u8>],
) -> Option<()> {
    fn matches<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]], candidate: &[u8]) -> bool {
        let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
            return false;
        };
        for part in parts {
            mac.update(part);
        }
        mac.verify_slice(candidate).is_ok()
    }
    for key in keys {
        for candidate in candidates {
            let matched = match algorithm {
                HmacAlgorithm::Sha1 => matches::<Hmac<sha1::Sha1>>(&key, parts, candidate),
                HmacAlgorithm::Sha256 => matches::<Hmac<sha2::Sha256>>(&key, parts, candidate),
                HmacAlgorithm::Sha512 => matches::<Hmac<sha2::Sha512>>(&key, parts, candidate),
            };
            if matched {
                return Some(());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    const MINUTES: Duration = Duration::from_secs(300);

    /// GitHub's documentation example: secret `It's a Secret to Everybody`, payload
    /// `Hello, World!`.
    #[test]
    fn github_documentation_example() {
        let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let secrets = [String::from("It's a Secret to Everybody")];
        let good = headers(&[("x-hub-signature-256", signature)]);
        assert!(
            check(
                &VerifyScheme::Github,
                &secrets,
                MINUTES,
                &good,
                b"Hello, World!",
                Timestamp::now()
            )
            .is_ok()
        );
        let refused = check(
            &VerifyScheme::Github,
            &secrets,
            MINUTES,
            &good,
            b"Hello, World?",
            Timestamp::now(),
        )
        .unwrap_err();
        assert_eq!(refused.code, "invalid_signature");
        let refused = check(
            &VerifyScheme::Github,
            &secrets,
            MINUTES,
            &HeaderMap::new(),
            b"",
            Timestamp::now(),
        )
        .unwrap_err();
        assert_eq!(refused.code, "missing_signature");
        assert!(
            !refused.message.contains("757107"),
            "the expected value is never told"
        );
    }

    /// Slack's documentation example (signing secret, timestamp and body from
    /// "Verifying requests from Slack").
    #[test]
    fn slack_documentation_example() {
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let secrets = [String::from("8f742231b10e8888abcd99yyyzzz85a5")];
        let signed = headers(&[
            (
                "x-slack-signature",
                "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            ),
            ("x-slack-request-timestamp", "1531420618"),
        ]);
        let then = Timestamp(1_531_420_618_000);
        assert!(check(&VerifyScheme::Slack, &secrets, MINUTES, &signed, body, then).is_ok());
        let later = Timestamp(then.millis() + 301_000);
        assert_eq!(
            check(
                &VerifyScheme::Slack,
                &secrets,
                MINUTES,
                &signed,
                body,
                later
            )
            .unwrap_err()
            .code,
            "stale_timestamp"
        );
    }

    fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).unwrap();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }

    #[test]
    fn stripe_takes_any_v1_of_a_fresh_timestamp() {
        let body = br#"{"id":"evt_1"}"#;
        let now = Timestamp::now();
        let t = (now.millis() / 1000).to_string();
        let good = hex::encode(hmac_sha256(b"whsec_stripe", &[t.as_bytes(), b".", body]));
        let header = format!("t={t},v1={},v1={good},v0=ignored", "00".repeat(32));
        let secrets = [String::from("whsec_stripe")];
        let signed = headers(&[("stripe-signature", &header)]);
        assert!(check(&VerifyScheme::Stripe, &secrets, MINUTES, &signed, body, now).is_ok());
        let later = Timestamp(now.millis() + 600_000);
        assert_eq!(
            check(
                &VerifyScheme::Stripe,
                &secrets,
                MINUTES,
                &signed,
                body,
                later
            )
            .unwrap_err()
            .code,
            "stale_timestamp"
        );
        let unsigned = headers(&[("stripe-signature", "v1=00")]);
        assert_eq!(
            check(
                &VerifyScheme::Stripe,
                &secrets,
                MINUTES,
                &unsigned,
                body,
                now
            )
            .unwrap_err()
            .code,
            "missing_signature"
        );
    }

    #[test]
    fn svix_is_standard_webhooks_with_its_own_headers() {
        let body = b"{}";
        let now = Timestamp::now();
        let t = (now.millis() / 1000).to_string();
        let key = b"a-32-byte-key-for-the-svix-test!";
        let secret = format!("whsec_{}", BASE64.encode(key));
        let signature = format!(
            "v1,{}",
            BASE64.encode(hmac_sha256(key, &[b"msg_9.", t.as_bytes(), b".", body]))
        );
        let signed = headers(&[
            ("svix-id", "msg_9"),
            ("svix-timestamp", &t),
            ("svix-signature", &signature),
        ]);
        assert!(
            check(
                &VerifyScheme::Svix,
                std::slice::from_ref(&secret),
                MINUTES,
                &signed,
                body,
                now
            )
            .is_ok()
        );
        let refused = check(
            &VerifyScheme::StandardWebhooks,
            &[secret],
            MINUTES,
            &signed,
            body,
            now,
        )
        .unwrap_err();
        assert_eq!(refused.message, "the request has no `webhook-id` header");
    }

    #[test]
    fn standard_webhooks_v1a_is_checked_with_the_public_key() {
        use ed25519_dalek::Signer;
        let signing = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let public = format!("whpk_{}", BASE64.encode(signing.verifying_key().to_bytes()));
        let body = br#"{"ok":true}"#;
        let now = Timestamp::now();
        let t = (now.millis() / 1000).to_string();
        let content = [b"msg_5.".as_slice(), t.as_bytes(), b".", body].concat();
        let signature = format!("v1a,{}", BASE64.encode(signing.sign(&content).to_bytes()));
        let signed = headers(&[
            ("webhook-id", "msg_5"),
            ("webhook-timestamp", &t),
            ("webhook-signature", &signature),
        ]);
        let secrets = [public];
        assert!(
            check(
                &VerifyScheme::StandardWebhooks,
                &secrets,
                MINUTES,
                &signed,
                body,
                now
            )
            .is_ok()
        );
        let refused = check(
            &VerifyScheme::StandardWebhooks,
            &secrets,
            MINUTES,
            &signed,
            b"{}",
            now,
        )
        .unwrap_err();
        assert_eq!(refused.code, "invalid_signature");
    }

    #[test]
    fn any_of_several_secrets_may_sign() {
        let body = b"{}";
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"new-secret").unwrap();
        mac.update(body);
        let signature = BASE64.encode(mac.finalize().into_bytes());
        let signed = headers(&[("x-shopify-hmac-sha256", &signature)]);
        let rotating = [String::from("old-secret"), String::from("new-secret")];
        assert!(
            check(
                &VerifyScheme::Shopify,
                &rotating,
                MINUTES,
                &signed,
                body,
                Timestamp::now()
            )
            .is_ok()
        );
        assert!(
            check(
                &VerifyScheme::Shopify,
                &rotating[..1],
                MINUTES,
                &signed,
                body,
                Timestamp::now()
            )
            .is_err()
        );
    }
}
