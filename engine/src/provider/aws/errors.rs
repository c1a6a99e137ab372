//! Turning AWS SDK errors into provider errors users can act on.
//!
//! AWS error messages name resources and principals, never secret values, so they are safe to
//! put in a status; we keep the service's error code and message and add which call failed.

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};

use crate::provider::ProviderError;

/// Classifies an SDK error from `call` (e.g. `secretsmanager:GetSecretValue`).
pub fn classify<E, R>(err: SdkError<E, R>, call: &str) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = err.code().unwrap_or_default().to_string();
    let message = err.message().unwrap_or_default().to_string();
    let detail = if code.is_empty() {
        // Dispatch failures (no connection, DNS, TLS) and credential failures have no code.
        format!(
            "{call}: {}",
            aws_smithy_types::error::display::DisplayErrorContext(&err)
        )
    } else {
        format!("{call}: {code}: {message}")
    };
    match code.as_str() {
        "AccessDeniedException"
        | "AccessDenied"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "ExpiredTokenException"
        | "ExpiredToken"
        | "SignatureDoesNotMatch"
        | "InvalidSignatureException" => ProviderError::AccessDenied(detail),
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded" => ProviderError::Throttled(detail),
        _ => ProviderError::Unavailable(detail),
    }
}

/// Whether an SDK error says the resource does not exist.
pub fn is_not_found<E, R>(err: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    matches!(
        err.code(),
        Some("ResourceNotFoundException" | "ParameterNotFound" | "ParameterVersionNotFound")
    )
}
