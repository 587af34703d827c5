//! HTTP headers as the JSON object flows and records show them.

use http::HeaderMap;
use serde_json::{Map, Value};

/// Headers as an object with lower-case names; a header sent several times is joined
/// with `, ` as HTTP allows; values that are not UTF-8 are read lossily.
pub fn headers_object(headers: &HeaderMap) -> Value {
    let mut object = Map::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match object.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                object.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_headers_are_joined() {
        let mut headers = HeaderMap::new();
        headers.append("X-Tag", "a".parse().unwrap());
        headers.append("x-tag", "b".parse().unwrap());
        assert_eq!(
            headers_object(&headers),
            serde_json::json!({"x-tag": "a, b"})
        );
    }
}
