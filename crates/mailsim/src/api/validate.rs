//! `POST /api/v1/connectors/{name}/validate`: `Validate-OutboundConnector` against the live world
//! (exo-behaviour §8.6; [`crate::validate_outbound`]). Body (optional): `{"recipients": ["a@b"]}`.
//! Answers the [`crate::validate_outbound::ValidationReport`] as JSON (200 whether the validation
//! passed or failed: see its `passed`), 404 for an unknown connector, 400 for a bad body or
//! recipient, 422 when no recipient can be derived.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use mailsim_core::addr::EmailAddress;
use serde::Deserialize;

use super::problem::Problem;
use super::{Api, ApiResult, json_body, ok};
use crate::validate_outbound::{ValidateError, validate};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(default)]
    recipients: Vec<String>,
}

/// The handler.
pub(super) async fn validate_connector(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body: Body = json_body(b)?;
    let recipients = body
        .recipients
        .iter()
        .map(|r| r.parse::<EmailAddress>().map_err(|e| Problem::bad_request(format!("recipient {r:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    match validate(api.endpoint(), &name, &recipients).await {
        Ok(report) => ok(report),
        Err(e @ ValidateError::NoSuchConnector(..)) => Err(Problem::not_found(e.to_string())),
        Err(e @ ValidateError::NoRecipient(..)) => Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())),
    }
}
