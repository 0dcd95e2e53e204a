//! Error responses of the AWS rest-json protocol: the status code, the error type in the
//! `x-amzn-ErrorType` header and a JSON body with its `Message` (and, for not-found and
//! conflict errors, `ResourceId`/`ResourceType`).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use package::ApiError;
use serde_json::{json, Value};

use crate::sigv4::SigError;

/// An error answer: status, AWS error code, body.
#[derive(Debug)]
pub struct ErrorReply {
    /// HTTP status.
    pub status: u16,
    /// The AWS error code (`x-amzn-ErrorType`).
    pub code: &'static str,
    /// The JSON body (`Message` at least).
    pub body: Value,
}

impl ErrorReply {
    /// An error with a message only.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ErrorReply { status, code, body: json!({ "Message": message.into() }) }
    }

    /// `SerializationException`: a body that is not the operation's JSON.
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new(400, "SerializationException", message)
    }

    /// `AccessDeniedException`: the key may not touch the resource.
    pub fn access_denied(key: &str, operation: &str, resource: &str) -> Self {
        Self::new(
            403,
            "AccessDeniedException",
            format!(
                "User: arn:edgepack:iam::000000000000:user/{key} is not authorized to perform: \
                 lookoutvision:{operation} on resource: {resource}"
            ),
        )
    }

    /// `InternalServerException`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalServerException", message)
    }
}

impl From<ApiError> for ErrorReply {
    fn from(e: ApiError) -> Self {
        ErrorReply { status: e.kind.http_status(), code: e.kind.type_name(), body: e.to_json() }
    }
}

impl From<SigError> for ErrorReply {
    fn from(e: SigError) -> Self {
        Self::new(e.status(), e.code(), e.to_string())
    }
}

impl IntoResponse for ErrorReply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (status, [("content-type", "application/json")], self.body.to_string()).into_response();
        r.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static(self.code));
        r
    }
}
