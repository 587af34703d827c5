//! Secrets: values that must never reach a log line, an execution record or an API answer.
//!
//! A [`Secret`] prints `***` in `Debug` and `Display`. [`Secrets`] holds the named secrets
//! an integration may read as `$secrets.NAME`, and redacts their values from any text
//! that is about to be recorded.

use std::collections::BTreeMap;
use std::fmt;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "***";

/// The environment variable prefix that names a secret: `SWITCHBOARD_SECRET_<NAME>`.
pub const SECRET_ENV_PREFIX: &str = "SWITCHBOARD_SECRET_";

/// A value that prints as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// The named secrets of a project.
#[derive(Clone, Default)]
pub struct Secrets {
    by_name: BTreeMap<String, Secret>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}

impl Secrets {
    /// Secrets shorter than this are not redacted from text: replacing every `1` or `ab`
    /// in a record would destroy it without protecting anything.
    const MIN_REDACTED_LEN: usize = 4;

    /// Reads every `SWITCHBOARD_SECRET_<NAME>` variable of the environment.
    pub fn from_env() -> Self {
        Self::from_pairs(std::env::vars().filter_map(|(key, value)| {
            key.strip_prefix(SECRET_ENV_PREFIX)
                .map(|name| (name.to_owned(), value))
        }))
    }

    /// Secrets from name and value pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            by_name: pairs
                .into_iter()
                .map(|(name, value)| (name, Secret::new(value)))
                .collect(),
        }
    }

    /// The secret of that name.
    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.by_name.get(name)
    }

    /// Every secret as a JSON object of name to value, for the `$secrets` variable.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.by_name
                .iter()
                .map(|(name, secret)| (name.clone(), secret.expose().into()))
                .collect(),
        )
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The text with every secret value replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in self.by_name.values() {
            let value = secret.expose();
            if value.len() >= Self::MIN_REDACTED_LEN && out.contains(value) {
                out = out.replace(value, REDACTED);
            }
        }
        out
    }

    /// The JSON value with every secret value replaced by `***` in its strings and keys.
    pub fn redact_json(&self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        if self.is_empty() {
            return value.clone();
        }
        match value {
            Value::String(text) => Value::String(self.redact(text)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|item| self.redact_json(item)).collect())
            }
            Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(key, item)| (self.redact(key), self.redact_json(item)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_and_are_redacted_from_text() {
        let secrets = Secrets::from_pairs([("TOKEN".to_owned(), "s3cr3t-value".to_owned())]);
        assert_eq!(format!("{:?}", secrets.get("TOKEN")), "Some(***)");
        assert_eq!(secrets.redact("Bearer s3cr3t-value!"), "Bearer ***!");
        let json = serde_json::json!({"auth": ["x s3cr3t-value"], "n": 1});
        assert_eq!(
            secrets.redact_json(&json),
            serde_json::json!({"auth": ["x ***"], "n": 1})
        );
    }
}
