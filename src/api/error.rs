//! `ApiError`: the one place that knows HTTP status codes and the contract's error shape
//! `{"error": {"code", "message", "details": [{"field", "message"}]}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::Role;
use crate::store::StoreError;

/// How long a client is told to wait before it tries again after a 503: long enough for
/// an operator's fix or a checkpoint to free space, short enough not to stall the HIS.
pub const RETRY_AFTER_SECONDS: u64 = 5;

/// One bad field.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON, or not sent as JSON.
    #[error("{0}")]
    InvalidJson(String),
    /// 422: every bad field.
    #[error("some fields are invalid")]
    Validation(Vec<FieldError>),
    /// 401.
    #[error("a valid API key is required")]
    Unauthorized,
    /// 403: the key is valid but its role does not reach this route.
    #[error("a key with the role `{role}` may not do this")]
    Forbidden { role: Role },
    /// 404.
    #[error("not found")]
    NotFound,
    /// 405.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409 with a stable code (`limit_exceeded`, `delivery_in_progress`, `already_completed`,
    /// `idempotency_in_progress`).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 422: an `Idempotency-Key` already answered a different request.
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    /// 413.
    #[error("the body is larger than 1 MiB")]
    PayloadTooLarge,
    /// 408: the body did not arrive in time; the connection is closed after the answer.
    #[error("the request's body did not arrive in time")]
    RequestTimeout,
    /// 503 with `Retry-After`: the request took longer than any request may. Its effect
    /// may or may not have been stored.
    #[error(
        "the request took longer than the server allows; it may have taken effect, so send it again with the same Idempotency-Key"
    )]
    TimedOut,
    /// 429 with `Retry-After`: too many requests without a valid key from one address.
    #[error("too many requests from this address; try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// 503 with `Retry-After`: the database cannot be written right now, or the server
    /// is not ready. Nothing was changed; the same request may succeed later.
    #[error("{0}")]
    Unavailable(String),
    /// 500: logged with its cause, shown without it.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The error document.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
}

impl ApiError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidJson(_) => StatusCode::BAD_REQUEST,
            Self::Validation(_) | Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::TimedOut => StatusCode::SERVICE_UNAVAILABLE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_json",
            Self::Validation(_) => "validation_failed",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict { code, .. } => code,
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::TimedOut => "timeout",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => Self::NotFound,
            StoreError::Invalid { field, message } => Self::field(field, message),
            StoreError::Conflict { code, message } => Self::Conflict { code, message },
            // The cause is logged once by the store when the fault begins, not per request.
            StoreError::Unavailable(_) => Self::Unavailable(
                "the database cannot be written right now; nothing was changed, try again shortly"
                    .into(),
            ),
            other => Self::Internal(other.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(cause) = &self {
            tracing::error!(error = %format!("{cause:#}"), "request failed");
        }
        let details = match &self {
            Self::Validation(details) => details.clone(),
            _ => Vec::new(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().into(),
                message: self.to_string(),
                details,
            },
        };
        let mut response = (self.status_code(), Json(body)).into_response();
        let retry_after = match self {
            Self::Unavailable(_) | Self::TimedOut => Some(RETRY_AFTER_SECONDS),
            Self::RateLimited { retry_after_secs } => Some(retry_after_secs),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
