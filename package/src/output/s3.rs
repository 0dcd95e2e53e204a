//! Buckets on an S3-compatible endpoint, through `object_store`'s S3 client (SigV4 signing,
//! retries with backoff, bounded timeouts). S3 cannot make several objects appear at once, so
//! a component is published in an order that makes it safe to read: every artifact first, the
//! recipe and `create-component-version.json` (the last file) after them. A failed publish
//! deletes what it wrote; a prefix whose last file is missing holds the remains of a publish
//! that was killed and is replaced; a complete component is never overwritten.

use std::future::Future;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, PutPayload, RetryConfig};

use super::{check_key, check_keys, Fence, OutputFile, OutputStore, S3Settings};
use crate::error::{ApiError, Result};

/// Static credentials, for callers that hold them (tests, embedding programs); without them
/// the store reads the environment as the AWS tools do.
#[derive(Clone)]
pub struct S3Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// Buckets on an S3-compatible endpoint.
#[derive(Debug, Clone)]
pub struct S3Store {
    settings: S3Settings,
    credentials: Option<S3Credentials>,
}

impl S3Store {
    /// A store on the endpoint of `settings`, with credentials from the environment.
    pub fn new(settings: S3Settings) -> Self {
        Self { settings, credentials: None }
    }

    /// The same store with these credentials instead of the environment's.
    pub fn with_credentials(mut self, credentials: S3Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    fn where_(&self) -> String {
        self.settings.endpoint_url.clone().unwrap_or_else(|| "AWS S3".into())
    }

    /// A client for `bucket`.
    fn client(&self, bucket: &str) -> Result<AmazonS3> {
        let options =
            ClientOptions::new().with_connect_timeout(Duration::from_secs(10)).with_timeout(Duration::from_secs(300));
        let retry =
            RetryConfig { backoff: BackoffConfig::default(), max_retries: 4, retry_timeout: Duration::from_secs(60) };
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket).with_client_options(options).with_retry(retry);
        if let Some(url) = &self.settings.endpoint_url {
            b = b.with_endpoint(url).with_allow_http(url.starts_with("http://"));
        }
        if let Some(region) = &self.settings.region {
            b = b.with_region(region);
        }
        match &self.credentials {
            Some(c) => {
                b = b.with_access_key_id(&c.access_key_id).with_secret_access_key(&c.secret_access_key);
                if let Some(t) = &c.session_token {
                    b = b.with_token(t);
                }
            }
            // Off AWS there is no instance or container role to fall back on: say so now
            // instead of timing out on the instance metadata endpoint.
            None if self.settings.endpoint_url.is_some() && std::env::var_os("AWS_ACCESS_KEY_ID").is_none() => {
                return Err(ApiError::validation(format!(
                    "S3 storage at {}: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                    self.where_()
                )));
            }
            None => {}
        }
        b.build().map_err(|e| ApiError::validation(format!("S3 storage at {}: {e}", self.where_())))
    }

    /// Drives `f` to completion on a runtime of its own (the service's callers are threads,
    /// not tasks).
    fn block<T>(&self, f: impl Future<Output = Result<T>>) -> Result<T> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ApiError::internal(format!("S3 storage: no async runtime: {e}")))?;
        rt.block_on(f)
    }

    /// An S3 error as the service's: a missing object or bucket and refused credentials are
    /// the caller's to fix (ValidationException), the rest is the service's.
    fn fail(&self, what: &str, bucket: &str, key: &str, e: object_store::Error) -> ApiError {
        use object_store::Error as E;
        let message = format!("{what} s3://{bucket}/{key} at {}: {e}", self.where_());
        match e {
            E::NotFound { .. } | E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
                ApiError::validation(message)
            }
            _ => ApiError::internal(message),
        }
    }

    /// The objects under `prefix` left by an interrupted publish (none when it is empty);
    /// an error when a complete component (one with `last`) or anything else is there.
    async fn leftovers(&self, s3: &AmazonS3, bucket: &str, key_prefix: &str, last: &str) -> Result<Vec<Key>> {
        let prefix = key(bucket, key_prefix)?;
        let listing =
            s3.list_with_delimiter(Some(&prefix)).await.map_err(|e| self.fail("listing", bucket, key_prefix, e))?;
        if !listing.common_prefixes.is_empty() {
            return Err(ApiError::validation(format!(
                "output s3://{bucket}/{key_prefix}/ holds folders that are not a component's; nothing was overwritten"
            )));
        }
        if listing.objects.iter().any(|o| o.location.filename() == Some(last)) {
            return Err(ApiError::validation(format!(
                "output s3://{bucket}/{key_prefix}/ already holds a component; nothing was overwritten"
            )));
        }
        Ok(listing.objects.into_iter().map(|o| o.location).collect())
    }
}

fn key(bucket: &str, key: &str) -> Result<Key> {
    Key::parse(key).map_err(|e| ApiError::validation(format!("s3://{bucket}/{key}: {e}")))
}

impl OutputStore for S3Store {
    fn publish_fenced(&self, bucket: &str, key_prefix: &str, files: &[OutputFile], fence: &dyn Fence) -> Result<()> {
        check_keys(bucket, key_prefix, files)?;
        if files.is_empty() {
            return Err(ApiError::internal("a component without files"));
        }
        let s3 = self.client(bucket)?;
        let keys: Vec<Key> =
            files.iter().map(|f| key(bucket, &format!("{key_prefix}/{}", f.name))).collect::<Result<_>>()?;
        let last = files.len() - 1;
        let (s3, keys) = (&s3, &keys);
        let put = |i: usize| async move {
            s3.put(&keys[i], PutPayload::from(files[i].bytes.clone()))
                .await
                .map_err(|e| self.fail("writing", bucket, keys[i].as_ref(), e))
        };
        let mut written = 0;
        let mut revealed = false;
        let outcome = self
            .block(async {
                // The remains of a killed publish (no last file) are cleared before writing anew.
                for k in self.leftovers(s3, bucket, key_prefix, &files[last].name).await? {
                    s3.delete(&k).await.map_err(|e| self.fail("clearing", bucket, k.as_ref(), e))?;
                }
                for i in 0..last {
                    put(i).await?;
                    written += 1;
                }
                // Fail point (feature `fault-injection`): all but the last object written.
                fail::fail_point!("publish-staged", |_| Err(ApiError::internal("fail point publish-staged")));
                Ok(())
            })
            // The last file marks the component complete: written inside the fence.
            .and_then(|()| {
                fence.hold(&mut || {
                    self.block(put(last))?;
                    revealed = true;
                    Ok(())
                })
            });
        outcome.map_err(|mut err| {
            let undone = self.block(async {
                let mut problems = String::new();
                // A fence that failed after the last file (it could not record the outcome)
                // takes that back too: the last file goes first.
                let last_key = revealed.then(|| &keys[last]);
                for k in last_key.into_iter().chain(&keys[..written]) {
                    if let Err(d) = s3.delete(k).await {
                        problems += &format!("; and could not delete {k} again: {d}");
                    }
                }
                Ok(problems)
            });
            err.message += &undone.unwrap_or_else(|e| format!("; and could not clean up: {}", e.message));
            err
        })
    }

    fn check_destination(&self, bucket: &str, key_prefix: &str, last: &str) -> Result<()> {
        check_key(bucket, key_prefix)?;
        let s3 = self.client(bucket)?;
        self.block(async { self.leftovers(&s3, bucket, key_prefix, last).await.map(drop) })
    }

    fn get(&self, bucket: &str, key_: &str) -> Result<Vec<u8>> {
        check_key(bucket, key_)?;
        let s3 = self.client(bucket)?;
        let k = key(bucket, key_)?;
        self.block(async {
            let got = s3.get(&k).await.map_err(|e| self.fail("reading", bucket, key_, e))?;
            let bytes = got.bytes().await.map_err(|e| self.fail("reading", bucket, key_, e))?;
            Ok(bytes.to_vec())
        })
    }

    fn locate(&self, bucket: &str, key: &str) -> String {
        match &self.settings.endpoint_url {
            Some(url) => format!("{}/{bucket}/{key}", url.trim_end_matches('/')),
            None => format!("s3://{bucket}/{key} on AWS S3"),
        }
    }
}
