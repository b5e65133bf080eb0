//! [`S3Store`]: an archive in S3 or an S3-compatible server (`s3://bucket/prefix`), through
//! aws-sdk-s3. Create-only puts are conditional writes (`If-None-Match: *`), on single
//! puts and on the completion of multipart uploads alike.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::OnceCell;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_http_client::tls;
use bytes::Bytes;

use crate::archive_store::{ArchiveStore, ObjectMeta, PartialDownload, join_key};
use crate::config::S3Settings;
use crate::error::{StoreError, StoreErrorKind};

/// S3's smallest part size (except the last part).
const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;

/// An archive in one S3 bucket, under a key prefix.
#[derive(Debug, Clone)]
pub struct S3Store {
    /// Built on first use: loading the AWS credential chain is async, and building the
    /// store is not, so that [`crate::open_store`] stays a plain function.
    client: Arc<OnceCell<Client>>,
    settings: S3Settings,
    bucket: String,
    prefix: String,
    multipart_threshold_bytes: u64,
    part_bytes: u64,
}

impl S3Store {
    /// A store on `bucket` under `prefix`. The client uses `settings`: explicit endpoint,
    /// region and path style when given; the access key pair when given, else the usual
    /// AWS chain (environment, profile, instance metadata). SDK retries are off:
    /// [`crate::RetryStore`] owns them.
    pub fn new(
        bucket: &str,
        prefix: &str,
        settings: &S3Settings,
        multipart_threshold_bytes: u64,
        part_bytes: u64,
    ) -> Result<S3Store, StoreError> {
        if settings.access_key_id.is_some() != settings.secret_access_key.is_some() {
            return Err(StoreError::new(
                StoreErrorKind::Config,
                "s3: set both access_key_id and secret_access_key, or neither (to use the AWS chain)",
            ));
        }
        Ok(S3Store {
            client: Arc::new(OnceCell::new()),
            settings: settings.clone(),
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            multipart_threshold_bytes,
            part_bytes: part_bytes.max(MIN_PART_BYTES),
        })
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| build_client(&self.settings))
            .await
    }

    /// Creates the bucket if it does not exist (tests and first runs).
    pub async fn ensure_bucket(&self) -> Result<(), StoreError> {
        match self
            .client()
            .await
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let code = e.code().unwrap_or_default().to_string();
                if code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
                    Ok(())
                } else {
                    Err(map_err("create bucket", &self.bucket, e))
                }
            }
        }
    }

    fn full_key(&self, key: &str) -> String {
        join_key(&self.prefix, key)
    }

    async fn put_multipart(
        &self,
        key: &str,
        full: &str,
        source: &Path,
        len: u64,
    ) -> Result<(), StoreError> {
        let upload = self
            .client()
            .await
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .send()
            .await
            .map_err(|e| map_err("create multipart upload", key, e))?;
        let Some(upload_id) = upload.upload_id() else {
            return Err(StoreError::new(
                StoreErrorKind::Protocol,
                format!("s3 gave no upload id for {key}"),
            ));
        };
        let result = self.upload_parts(key, full, source, len, upload_id).await;
        if result.is_err() {
            // Leave no orphan parts behind; if the abort fails too the bucket's lifecycle
            // rule for incomplete uploads (docs/porter.md) cleans up.
            let _ = self
                .client()
                .await
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(full)
                .upload_id(upload_id)
                .send()
                .await;
        }
        result
    }

    async fn upload_parts(
        &self,
        key: &str,
        full: &str,
        source: &Path,
        len: u64,
        upload_id: &str,
    ) -> Result<(), StoreError> {
        let mut parts = Vec::new();
        let mut offset = 0u64;
        let mut number = 1i32;
        while offset < len {
            let n = self.part_bytes.min(len - offset);
            let body = ByteStream::read_from()
                .path(source)
                .offset(offset)
                .length(aws_smithy_types::byte_stream::Length::Exact(n))
                .build()
                .await
                .map_err(|e| {
                    StoreError::new(StoreErrorKind::Io, format!("{}: {e}", source.display()))
                })?;
            let out = self
                .client()
                .await
                .upload_part()
                .bucket(&self.bucket)
                .key(full)
                .upload_id(upload_id)
                .part_number(number)
                .body(body)
                .send()
                .await
                .map_err(|e| map_err("upload part", key, e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .build(),
            );
            offset += n;
            number += 1;
        }
        self.client()
            .await
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .upload_id(upload_id)
            .if_none_match("*")
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| map_err("complete multipart upload", key, e))?;
        Ok(())
    }
}

async fn build_client(settings: &S3Settings) -> Client {
    // Set the HTTP client explicitly: with the SDK's default features off there is no
    // implicit one, and this one (hyper 1, rustls with ring) is the tree we build once.
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .region(Region::new(settings.region.clone()));
    if let (Some(key), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key) {
        loader = loader.credentials_provider(Credentials::new(
            key.clone(),
            secret.clone(),
            None,
            None,
            "porter-config",
        ));
    }
    if let Some(endpoint) = &settings.endpoint {
        loader = loader.endpoint_url(endpoint.clone());
    }
    let shared = loader.load().await;
    let conf = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(settings.path_style)
        .build();
    Client::from_conf(conf)
}

/// Maps an SDK error to a kind, in one place.
fn map_err<E>(
    op: &str,
    key: &str,
    err: SdkError<E, aws_smithy_runtime_api_http::HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_string);
    let kind = match (&err, status) {
        (SdkError::TimeoutError(_), _) => StoreErrorKind::Timeout,
        (SdkError::DispatchFailure(d), _) if d.is_timeout() => StoreErrorKind::Timeout,
        (SdkError::DispatchFailure(d), _) if d.is_user() => StoreErrorKind::Config,
        (SdkError::DispatchFailure(_), _) => StoreErrorKind::Service,
        (SdkError::ConstructionFailure(_), _) => StoreErrorKind::Config,
        (_, Some(404)) => StoreErrorKind::NotFound,
        (_, Some(412)) => StoreErrorKind::AlreadyExists,
        // 409 on a conditional write: another writer's request to the same key is in
        // flight; trying again settles who won.
        (_, Some(409)) => StoreErrorKind::Service,
        (_, Some(401 | 403)) => StoreErrorKind::Unauthorized,
        (_, Some(408)) => StoreErrorKind::Timeout,
        (_, Some(429 | 500..=599)) => StoreErrorKind::Service,
        _ if code.as_deref() == Some("RequestTimeout") => StoreErrorKind::Timeout,
        (SdkError::ResponseError(_), _) => StoreErrorKind::Service,
        _ => StoreErrorKind::Protocol,
    };
    let status = status.map(|s| format!(" (http {s})")).unwrap_or_default();
    StoreError::new(
        kind,
        format!("s3 {op} {key}{status}: {}", DisplayErrorContext(&err)),
    )
}

mod aws_smithy_runtime_api_http {
    pub use aws_sdk_s3::config::http::HttpResponse;
}

#[async_trait::async_trait]
impl ArchiveStore for S3Store {
    async fn put_file(&self, key: &str, source: &Path) -> Result<(), StoreError> {
        let full = self.full_key(key);
        let len = tokio::fs::metadata(source)
            .await
            .map_err(|e| StoreError::io(source.display(), e))?
            .len();
        if len > self.multipart_threshold_bytes {
            return self.put_multipart(key, &full, source, len).await;
        }
        let body = ByteStream::from_path(source).await.map_err(|e| {
            StoreError::new(StoreErrorKind::Io, format!("{}: {e}", source.display()))
        })?;
        self.client()
            .await
            .put_object()
            .bucket(&self.bucket)
            .key(&full)
            .if_none_match("*")
            .body(body)
            .send()
            .await
            .map_err(|e| map_err("put", key, e))?;
        Ok(())
    }

    async fn put_bytes(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        self.client()
            .await
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .if_none_match("*")
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| map_err("put", key, e))?;
        Ok(())
    }

    async fn get_bytes(&self, key: &str) -> Result<Bytes, StoreError> {
        let out = self
            .client()
            .await
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| map_err("get", key, e))?;
        let data = out.body.collect().await.map_err(|e| {
            StoreError::new(StoreErrorKind::Service, format!("s3 get {key}: body: {e}"))
        })?;
        Ok(data.into_bytes())
    }

    async fn get_to_file(&self, key: &str, dest: &Path) -> Result<u64, StoreError> {
        let out = self
            .client()
            .await
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| map_err("get", key, e))?;
        let mut download = PartialDownload::create(dest).await?;
        let mut body = out.body;
        let transfer = async {
            while let Some(chunk) = body.try_next().await.map_err(|e| {
                StoreError::new(StoreErrorKind::Service, format!("s3 get {key}: body: {e}"))
            })? {
                download.write(&chunk).await?;
            }
            Ok(())
        }
        .await;
        download.finish(dest, transfer).await
    }

    async fn size(&self, key: &str) -> Result<u64, StoreError> {
        let out = self
            .client()
            .await
            .head_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| map_err("head", key, e))?;
        Ok(out.content_length().unwrap_or(0).max(0) as u64)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let full_prefix = self.full_key(prefix);
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client()
                .await
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full_prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| map_err("list", prefix, e))?;
            for o in page.contents() {
                if let Some(k) = o.key()
                    && k.len() >= strip
                {
                    out.push(ObjectMeta {
                        key: k[strip..].to_string(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self
            .client()
            .await
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = map_err("delete", key, e);
                if e.kind == StoreErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}
