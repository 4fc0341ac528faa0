//! Errors of the HTTP API as RFC 9457 problem details (`application/problem+json`): a status, its
//! title, a detail an admin can act on, and for an invalid tenant or step the loader's own
//! diagnostic (`file:line:col: field: problem` and its hint) whole in `detail` and by part.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mailsim_core::diagnostics::ConfigError;
use serde::Serialize;

/// One problem. `type` stays `about:blank` (RFC 9457 §4.2.1): the status says what kind it is.
#[derive(Debug, Serialize)]
pub struct Problem {
    /// Always `about:blank`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The status's reason phrase.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for a person.
    pub detail: String,
    /// A loader diagnostic, when the body was a tenant or steps that did not load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Box<Diagnostic>>,
}

/// A loader diagnostic by part.
#[derive(Debug, Serialize)]
pub struct Diagnostic {
    /// The file (or `request` for a body).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The field, e.g. `InboundConnector[1].SenderIPAddresses`.
    pub field: String,
    /// The problem.
    pub message: String,
    /// What to write instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Problem {
    /// A problem with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            error: None,
        }
    }

    /// 400: the body or a parameter is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 404: no such id, host or name.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 409: the world cannot do it now, or not in this mode.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// 422: the body is well-formed but the loader refused it.
    pub fn invalid(e: &ConfigError) -> Self {
        let mut p = Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string());
        p.error = Some(Box::new(Diagnostic {
            file: e.file.clone(),
            line: e.line,
            column: e.column,
            field: e.field.clone(),
            message: e.message.clone(),
            hint: e.hint.clone(),
        }));
        p
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).expect("a problem serializes");
        (status, [(header::CONTENT_TYPE, "application/problem+json")], body).into_response()
    }
}
