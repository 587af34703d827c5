//! The one table of API errors: a stable code, an HTTP status and a JSON body
//! `{"error": {"code", "message", "path"?}}`. A 500 never shows its cause; the cause is
//! logged instead.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    path: Option<String>,
    allow: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            path: None,
            allow: None,
        }
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Names where in the input the problem is (`limit`, `body.lines[0]`).
    pub fn at(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// 401 with `code`: the request did not prove where it came from.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 405 `method_not_allowed`, with the methods that are.
    pub fn method_not_allowed(method: &str, allowed: &[String]) -> Self {
        let mut error = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "this hook does not take {method}; it takes {}",
                allowed.join(", ")
            ),
        );
        error.allow = Some(allowed.join(", "));
        error
    }

    /// 405 `method_not_allowed` on a route that takes other methods (axum adds `Allow`).
    pub fn wrong_method(method: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "this route does not take {method}; the Allow header names the methods it takes"
            ),
        )
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than the limit of {limit} bytes"),
        )
    }

    /// 415 `unsupported_media_type`.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }

    /// 400 `invalid_json`.
    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", message).at("body")
    }

    /// 400 `invalid_body`: the body could not be read.
    pub fn invalid_body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_body", message).at("body")
    }

    /// 400 `invalid_callback`: the callback URL cannot be used.
    pub fn invalid_callback(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_callback", message).at("callback_url")
    }

    /// 409 `conflict`: the action does not fit the resource's state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 422 with `code`: the input was read but cannot be used.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 400 `invalid_query`, at the parameter's name.
    pub fn invalid_query(parameter: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_query", message).at(parameter)
    }

    /// 503 `store_unavailable`; the cause is logged, not shown.
    pub fn store_unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "Store failure while answering a request.");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the store is not available; try again",
        )
    }

    /// 500 `internal`; the cause is logged, not shown.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "Internal error while answering a request.");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong on our side",
        )
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, in an error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code: `not_found`, `method_not_allowed`, `payload_too_large`,
    /// `unsupported_media_type`, `invalid_json`, `invalid_body`, `invalid_query`,
    /// `dedupe_key_failed`, `concurrency_key_failed`, `ordering_key_failed`,
    /// `debounce_key_failed`, `throttle_key_failed`, `challenge_failed`, `invalid_field`,
    /// `missing_signature`,
    /// `stale_timestamp`, `invalid_signature`, `conflict`, `store_unavailable` or
    /// `internal`.
    #[schema(example = "invalid_query")]
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// Where in the input: a query parameter's name, or `body` and a path into it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "limit")]
    pub path: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                path: self.path,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(allow) = self
            .allow
            .and_then(|allow| HeaderValue::from_str(&allow).ok())
        {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        response
    }
}
