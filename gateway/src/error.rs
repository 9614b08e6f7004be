//! Errors of the gateway, and how the HTTP API reports them.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use tracing::error;

/// Result alias of this crate.
pub type GatewayResult<T> = Result<T, GatewayError>;

/// What can go wrong starting or running the gateway.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// Binding the listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] lumen_store::StoreError),
    /// The chain failed.
    #[error(transparent)]
    Chain(#[from] lumen_chain::ChainError),
    /// The RPC URL is invalid.
    #[error("invalid RPC URL {0}")]
    RpcUrl(String),
    /// The HTTP server failed while serving.
    #[error("server: {0}")]
    Serve(std::io::Error),
}

/// An HTTP API error: a status, a stable code and a message for the client.
/// Internal failures are logged once and reported as a generic 500.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

/// The JSON body of an API error.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable explanation.
    pub error: String,
    /// Structured detail (for example the unpacked files of a `.blend`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    /// A client error.
    pub fn client(status: StatusCode, code: &'static str, error: impl Into<String>) -> Self {
        Self { status, body: ErrorBody { code, error: error.into(), details: None } }
    }

    /// Adds structured detail.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.body.details = Some(details);
        self
    }

    /// 400.
    pub fn bad_request(code: &'static str, error: impl Into<String>) -> Self {
        Self::client(StatusCode::BAD_REQUEST, code, error)
    }

    /// 404.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::client(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// 500, logging the real cause.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        error!(target: "gateway::api", %err, "internal error");
        Self::client(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }
}

impl From<lumen_store::StoreError> for ApiError {
    fn from(err: lumen_store::StoreError) -> Self {
        match err {
            lumen_store::StoreError::JobExists(id) => {
                Self::client(StatusCode::CONFLICT, "job_exists", format!("job {id} is already registered"))
            }
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}
