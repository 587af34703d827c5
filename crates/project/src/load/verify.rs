//! A webhook's `verify`: the scheme, its secrets and, for `hmac`, its settings.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::{FileChecker, StepRefs};
use crate::model::{HmacAlgorithm, HmacScheme, Verify, VerifyScheme};
use crate::spec::VerifySpec;

/// How far a signed timestamp may be from now, when not given.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

const SCHEMES: [&str; 7] = [
    "standard-webhooks",
    "svix",
    "github",
    "stripe",
    "shopify",
    "slack",
    "hmac",
];

impl FileChecker<'_> {
    pub(super) fn verify(&mut self, spec: &Spanned<VerifySpec>) -> Option<Verify> {
        let at = spec.referenced;
        let verify = &spec.value;
        let problems_before = self.problems.len();
        let scheme = match verify.scheme.value.as_str() {
            "standard-webhooks" => VerifyScheme::StandardWebhooks,
            "svix" => VerifyScheme::Svix,
            "github" => VerifyScheme::Github,
            "stripe" => VerifyScheme::Stripe,
            "shopify" => VerifyScheme::Shopify,
            "slack" => VerifyScheme::Slack,
            "hmac" => VerifyScheme::Hmac(self.hmac(verify, &spec.value.scheme)?),
            other => {
                self.report(
                    &verify.scheme.referenced,
                    format!(
                        "`{other}` is not a verify scheme; use one of {}",
                        SCHEMES.join(", ")
                    ),
                );
                return None;
            }
        };
        if !matches!(scheme, VerifyScheme::Hmac(_)) {
            let hmac_only = [
                verify.header.as_ref().map(|header| header.referenced),
                verify
                    .algorithm
                    .as_ref()
                    .map(|algorithm| algorithm.referenced),
                verify.encoding.as_ref().map(|encoding| encoding.referenced),
                verify
                    .timestamp_header
                    .as_ref()
                    .map(|header| header.referenced),
            ];
            if let Some(place) = hmac_only.into_iter().flatten().next() {
                self.report(&place, "`header`, `algorithm`, `encoding` and `timestamp_header` go with `scheme: hmac`");
            }
        }
        let sources: Vec<&Spanned<String>> = verify
            .secret
            .iter()
            .chain(verify.secrets.iter().flatten())
            .collect();
        if sources.is_empty() {
            self.report(
                &at,
                "`verify` needs a `secret` (or `secrets`, for rotation)",
            );
        }
        let refs = StepRefs::NONE;
        let secrets: Vec<_> = sources
            .into_iter()
            .filter_map(|secret| self.template(secret, "secret", &refs))
            .collect();
        (self.problems.len() == problems_before).then(|| Verify {
            scheme,
            secrets,
            tolerance: verify.tolerance.map_or(DEFAULT_TOLERANCE, Duration::from),
        })
    }

    fn hmac(&mut self, verify: &VerifySpec, scheme_at: &Spanned<String>) -> Option<HmacScheme> {
        let Some(header) = &verify.header else {
            self.report(
                &scheme_at.referenced,
                "`scheme: hmac` needs the `header` that carries the signature",
            );
            return None;
        };
        let algorithm = match verify
            .algorithm
            .as_ref()
            .map(|algorithm| algorithm.value.as_str())
        {
            None | Some("sha256") => HmacAlgorithm::Sha256,
            Some("sha1") => HmacAlgorithm::Sha1,
            Some("sha512") => HmacAlgorithm::Sha512,
            Some(other) => {
                let at = verify
                    .algorithm
                    .as_ref()
                    .map_or(scheme_at.referenced, |algorithm| algorithm.referenced);
                self.report(
                    &at,
                    format!("`algorithm` is `{other}`; use sha1, sha256 or sha512"),
                );
                return None;
            }
        };
        let base64 = match verify
            .encoding
            .as_ref()
            .map(|encoding| encoding.value.as_str())
        {
            None | Some("hex") => false,
            Some("base64") => true,
            Some(other) => {
                let at = verify
                    .encoding
                    .as_ref()
                    .map_or(scheme_at.referenced, |encoding| encoding.referenced);
                self.report(&at, format!("`encoding` is `{other}`; use hex or base64"));
                return None;
            }
        };
        Some(HmacScheme {
            header: header.value.to_ascii_lowercase(),
            algorithm,
            base64,
            prefix: verify.prefix.clone().unwrap_or_default(),
            timestamp_header: verify
                .timestamp_header
                .as_ref()
                .map(|header| header.value.to_ascii_lowercase()),
        })
    }
}
