//! Turning AWS SDK errors into provider errors users can act on.
//!
//! AWS error codes and messages name resources and principals, never secret values, so they
//! are safe in a status. We never put a raw response body there: for an error response
//! without a parsable code (some emulators and proxies answer JSON APIs with XML) we extract
//! `<Code>` and `<Message>` and otherwise report the HTTP status alone.

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::http::Response;

use crate::provider::ProviderError;

/// Classifies an SDK error from `call` (e.g. `secretsmanager:GetSecretValue`).
pub fn classify<E>(err: SdkError<E, Response>, call: &str) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let (code, message) = match (err.code(), err.raw_response()) {
        (Some(code), _) => (
            code.to_string(),
            err.message().unwrap_or_default().to_string(),
        ),
        (None, Some(raw)) => {
            let body = raw
                .body()
                .bytes()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            match (xml_tag(&body, "Code"), xml_tag(&body, "Message")) {
                (Some(c), m) => (c, m.unwrap_or_default()),
                _ => (String::new(), String::new()),
            }
        }
        (None, None) => (String::new(), String::new()),
    };
    let detail = match (code.is_empty(), status) {
        (false, _) => format!("{call}: {code}: {message}"),
        (true, Some(s)) => format!("{call}: HTTP {s}"),
        // No response at all: connection refused, DNS, TLS, timeouts, credentials.
        (true, None) => format!(
            "{call}: {}",
            aws_smithy_types::error::display::DisplayErrorContext(&err)
        ),
    };
    match (code.as_str(), status) {
        (
            "AccessDeniedException"
            | "AccessDenied"
            | "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "ExpiredTokenException"
            | "ExpiredToken"
            | "SignatureDoesNotMatch"
            | "InvalidSignatureException",
            _,
        )
        | (_, Some(401 | 403)) => ProviderError::AccessDenied(detail),
        (
            "ThrottlingException"
            | "Throttling"
            | "TooManyRequestsException"
            | "RequestLimitExceeded",
            _,
        )
        | (_, Some(429)) => ProviderError::Throttled(detail),
        // The service answered and refused this request (a secret marked for deletion, a bad
        // parameter): not an outage, and not worth reporting as one.
        (
            "InvalidRequestException"
            | "InvalidParameterException"
            | "InvalidParameterValueException"
            | "ValidationException"
            | "ResourceExistsException"
            | "ParameterAlreadyExists",
            _,
        ) => ProviderError::Rejected(detail),
        _ => ProviderError::Unavailable(detail),
    }
}

/// Classifies an SDK error from `call` reading one secret (`key`, at `version`): a secret that
/// does not exist is ESO's `NoSecretErr`, which deletion policies act on.
pub fn classify_get<E>(
    err: SdkError<E, Response>,
    call: &str,
    key: &str,
    version: Option<&str>,
) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if is_not_found(&err) {
        ProviderError::NoSecret {
            key: key.to_string(),
            version: version.map(str::to_string),
        }
    } else {
        classify(err, call)
    }
}

/// The text of the first `<tag>…</tag>` in `body`.
fn xml_tag(body: &str, tag: &str) -> Option<String> {
    let start = body.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(body[start..end].to_string())
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

#[cfg(test)]
mod tests {
    #[test]
    fn xml_error_bodies() {
        let body = "<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>User: x is not authorized</Message></Error></Errors></ErrorResponse>";
        assert_eq!(
            super::xml_tag(body, "Code").as_deref(),
            Some("AccessDenied")
        );
        assert_eq!(
            super::xml_tag(body, "Message").as_deref(),
            Some("User: x is not authorized")
        );
        assert_eq!(super::xml_tag("{}", "Code"), None);
    }

    #[test]
    fn a_missing_secret_is_no_secret_and_anything_else_is_classified() {
        use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::ErrorMetadata;

        let error = |code: &str, status: u16| {
            super::SdkError::service_error(
                GetSecretValueError::generic(ErrorMetadata::builder().code(code).build()),
                super::Response::new(status.try_into().unwrap(), SdkBody::empty()),
            )
        };
        let missing = super::classify_get(
            error("ResourceNotFoundException", 400),
            "secretsmanager:GetSecretValue",
            "db",
            Some("v1"),
        );
        assert!(
            matches!(&missing, super::ProviderError::NoSecret { key, version }
                if key == "db" && version.as_deref() == Some("v1")),
            "{missing:?}"
        );
        let denied = super::classify_get(
            error("AccessDeniedException", 400),
            "secretsmanager:GetSecretValue",
            "db",
            None,
        );
        assert!(
            matches!(denied, super::ProviderError::AccessDenied(_)),
            "{denied:?}"
        );
    }
}
