//! The packaging API's errors: one type per exception of the API model, with its HTTP status.

use std::fmt;

/// The exception types of the API model (`lookoutvision-2020-11-20.service.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: a request broke a constraint or a rule.
    Validation,
    /// 403.
    AccessDenied,
    /// 404: the project, model version or job does not exist.
    ResourceNotFound,
    /// 409: the request conflicts with the state of a resource (a name in use, a client
    /// token reused with other parameters, a project that still has models).
    Conflict,
    /// 402.
    ServiceQuotaExceeded,
    /// 429.
    Throttling,
    /// 500: something failed on our side (storage, database).
    InternalServer,
}

impl ErrorKind {
    /// The exception's name, as in the `x-amzn-ErrorType` header.
    pub fn type_name(self) -> &'static str {
        match self {
            ErrorKind::Validation => "ValidationException",
            ErrorKind::AccessDenied => "AccessDeniedException",
            ErrorKind::ResourceNotFound => "ResourceNotFoundException",
            ErrorKind::Conflict => "ConflictException",
            ErrorKind::ServiceQuotaExceeded => "ServiceQuotaExceededException",
            ErrorKind::Throttling => "ThrottlingException",
            ErrorKind::InternalServer => "InternalServerException",
        }
    }

    /// The HTTP status code the API model gives the exception.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::Validation => 400,
            ErrorKind::AccessDenied => 403,
            ErrorKind::ResourceNotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::ServiceQuotaExceeded => 402,
            ErrorKind::Throttling => 429,
            ErrorKind::InternalServer => 500,
        }
    }
}

/// The kind of resource a not-found or conflict error is about (`ResourceType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    /// A project.
    Project,
    /// A model version.
    Model,
    /// A model packaging job.
    ModelPackageJob,
    /// A Greengrass component (name + version).
    Component,
    /// A client token.
    ClientToken,
}

impl ResourceType {
    /// The API model's spelling, always one of its `ResourceType` enum (`PROJECT`, `DATASET`,
    /// `MODEL`, `TRIAL`, `MODEL_PACKAGE_JOB`): a component version and a client token belong to
    /// a packaging job, so they are reported as `MODEL_PACKAGE_JOB` (the resource id still
    /// names the component or the token).
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Project => "PROJECT",
            ResourceType::Model => "MODEL",
            ResourceType::ModelPackageJob | ResourceType::Component | ResourceType::ClientToken => "MODEL_PACKAGE_JOB",
        }
    }
}

/// An error of the packaging API: its exception type, a message that names the field or
/// resource, and for not-found and conflict errors the resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The exception type.
    pub kind: ErrorKind,
    /// What went wrong, naming the field or resource.
    pub message: String,
    /// The resource's id (its name) for not-found and conflict errors.
    pub resource_id: Option<String>,
    /// The resource's type for not-found and conflict errors.
    pub resource_type: Option<ResourceType>,
}

impl ApiError {
    /// A `ValidationException`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Validation, message: message.into(), resource_id: None, resource_type: None }
    }

    /// A `ResourceNotFoundException` about `id`.
    pub fn not_found(ty: ResourceType, id: &str, message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::ResourceNotFound,
            message: message.into(),
            resource_id: Some(id.into()),
            resource_type: Some(ty),
        }
    }

    /// A `ConflictException` about `id`.
    pub fn conflict(ty: ResourceType, id: &str, message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Conflict,
            message: message.into(),
            resource_id: Some(id.into()),
            resource_type: Some(ty),
        }
    }

    /// An `InternalServerException`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::InternalServer, message: message.into(), resource_id: None, resource_type: None }
    }

    /// The error body of the rest-json protocol: `{"Message", "ResourceId"?, "ResourceType"?}`
    /// (the type travels in the `x-amzn-ErrorType` header: [`ErrorKind::type_name`]).
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({ "Message": self.message });
        if let Some(id) = &self.resource_id {
            v["ResourceId"] = id.clone().into();
        }
        if let Some(t) = self.resource_type {
            v["ResourceType"] = t.as_str().into();
        }
        v
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.type_name(), self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        ApiError::internal(format!("job store: {e}"))
    }
}

impl From<postgres::Error> for ApiError {
    fn from(e: postgres::Error) -> Self {
        ApiError::internal(format!("job store (PostgreSQL): {}", postgres_detail(&e)))
    }
}

/// What a PostgreSQL error says: the server's own message and code where it sent one (the
/// error's summary is only "db error"), else the client's.
pub(crate) fn postgres_detail(e: &postgres::Error) -> String {
    use std::error::Error as _;
    match (e.as_db_error(), e.source()) {
        (Some(d), _) => format!("{} (SQLSTATE {})", d.message(), d.code().code()),
        (None, Some(cause)) => format!("{e}: {cause}"),
        (None, None) => e.to_string(),
    }
}

/// Results of the packaging API.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

#[cfg(test)]
mod resource_type_tests {
    use super::ResourceType;

    #[test]
    fn every_resource_type_is_in_the_api_models_enum() {
        // `ResourceType` of the API model (lookoutvision-2020-11-20.service.json).
        let allowed = ["PROJECT", "DATASET", "MODEL", "TRIAL", "MODEL_PACKAGE_JOB"];
        use ResourceType::*;
        for t in [Project, Model, ModelPackageJob, Component, ClientToken] {
            assert!(allowed.contains(&t.as_str()), "{t:?} → {}", t.as_str());
        }
    }
}
