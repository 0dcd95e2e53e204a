//! The storage setting: where `S3OutputLocation`s resolve. Kept in `<root>/storage.json` so
//! that every command and every worker process of a service uses the same place.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{LocalStore, OutputStore, S3Store};
use crate::error::{ApiError, Result};

/// The file of the storage setting, in the service's root.
pub const STORAGE_FILE: &str = "storage.json";

/// Where buckets are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "Kind")]
pub enum Storage {
    /// The embedded default: one folder per bucket under `<root>/buckets`.
    #[default]
    Local,
    /// An S3-compatible endpoint; credentials come from the environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`; on AWS also web
    /// identity, container and instance credentials), never from this setting.
    S3(S3Settings),
}

/// An S3-compatible endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct S3Settings {
    /// The endpoint, `http://host:port` or `https://…` (path-style requests); none: AWS S3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// The region; none: `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl S3Settings {
    /// Checks the endpoint and region.
    pub fn check(&self) -> Result<()> {
        if let Some(url) = &self.endpoint_url {
            let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
            // Credentials never reach a file or a message: refused, and not repeated.
            if let Some((userinfo, host)) = rest.and_then(|r| r.split(['/', '?', '#']).next()?.rsplit_once('@')) {
                let scheme = url.split("://").next().unwrap_or("http");
                let shown = if userinfo.is_empty() { "@" } else { "***@" };
                return Err(ApiError::validation(format!(
                    "EndpointUrl '{scheme}://{shown}{host}…' carries credentials; give the endpoint without them \
                     and the keys in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
                )));
            }
            if rest.is_none_or(|r| r.is_empty() || r.contains(char::is_whitespace)) {
                return Err(ApiError::validation(format!(
                    "EndpointUrl '{url}': expected http://host[:port] or https://host[:port]"
                )));
            }
        }
        if let Some(region) = &self.region {
            let ok = !region.is_empty() && region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !ok {
                return Err(ApiError::validation(format!("Region '{region}': expected letters, digits and '-'")));
            }
        }
        Ok(())
    }
}

impl Storage {
    /// The setting of the service in `root` (`Local` when none was saved).
    pub fn load(root: &Path) -> Result<Storage> {
        let Some(storage) = crate::setting::load::<Storage>(root, STORAGE_FILE, "storage setting")? else {
            return Ok(Storage::Local);
        };
        let path = root.join(STORAGE_FILE);
        storage.check().map_err(|e| ApiError::validation(format!("{}: {}", path.display(), e.message)))?;
        Ok(storage)
    }

    /// Saves this setting for the service in `root` (written whole, then renamed).
    pub fn save(&self, root: &Path) -> Result<()> {
        self.check()?;
        crate::setting::save(root, STORAGE_FILE, self)
    }

    /// Checks the setting's values.
    pub fn check(&self) -> Result<()> {
        match self {
            Storage::Local => Ok(()),
            Storage::S3(s) => s.check(),
        }
    }

    /// The store this setting names, for the service in `root`.
    pub fn open(&self, root: &Path) -> Arc<dyn OutputStore> {
        match self {
            Storage::Local => Arc::new(LocalStore::new(&root.join("buckets"))),
            Storage::S3(s) => Arc::new(S3Store::new(s.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(endpoint: Option<&str>, region: Option<&str>) -> Storage {
        Storage::S3(S3Settings { endpoint_url: endpoint.map(Into::into), region: region.map(Into::into) })
    }

    #[test]
    fn a_saved_setting_is_what_loads_and_none_means_local() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Storage::load(dir.path()).unwrap(), Storage::Local);
        let setting = s3(Some("https://minio.factory.lan:9000"), Some("eu-central-1"));
        setting.save(dir.path()).unwrap();
        assert_eq!(Storage::load(dir.path()).unwrap(), setting);
        let text = std::fs::read_to_string(dir.path().join(STORAGE_FILE)).unwrap();
        assert!(text.contains("\"Kind\": \"S3\"") && text.contains("\"EndpointUrl\""), "{text}");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join(STORAGE_FILE)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "owner-only");
        Storage::Local.save(dir.path()).unwrap();
        assert_eq!(Storage::load(dir.path()).unwrap(), Storage::Local);
    }

    #[test]
    fn bad_settings_are_refused_naming_the_problem() {
        for (setting, problem) in [
            (s3(Some("ftp://host"), None), "EndpointUrl 'ftp://host'"),
            (s3(Some("http://"), None), "EndpointUrl 'http://'"),
            (s3(Some("http://a b"), None), "EndpointUrl 'http://a b'"),
            (s3(None, Some("eu central")), "Region 'eu central'"),
            (s3(None, Some("")), "Region ''"),
            (
                s3(Some("http://AKIDEXAMPLE:wJalrXUtnFEMI@minio:9000/x"), None),
                "'http://***@minio:9000…' carries credentials",
            ),
            (s3(Some("https://AKIDEXAMPLE@minio"), None), "'https://***@minio…' carries credentials"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let err = setting.save(dir.path()).unwrap_err();
            assert!(err.message.contains(problem), "{}", err.message);
            assert!(!err.message.contains("AKIDEXAMPLE") && !err.message.contains("wJalr"), "{}", err.message);
            assert!(!dir.path().join(STORAGE_FILE).exists());
        }
        for (text, problem) in [
            ("{\"Kind\": \"Ftp\"}", "unknown variant `Ftp`"),
            ("{\"Kind\": \"S3\", \"Endpoint\": \"http://x\"}", "unknown field `Endpoint`"),
            ("{\"Kind\": \"S3\", \"EndpointUrl\": \"x\"}", "EndpointUrl 'x'"),
            ("{\"Kind\": \"S3\", \"EndpointUrl\": \"http://K:S@h\"}", "'http://***@h…' carries credentials"),
            ("not json", "not a storage setting"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(STORAGE_FILE), text).unwrap();
            let err = Storage::load(dir.path()).unwrap_err();
            assert!(err.message.contains(problem) && err.message.contains(STORAGE_FILE), "{text}: {}", err.message);
        }
    }
}
