//! Uploads and reports in an S3-compatible object store, which several nodes share, through
//! the `object_store` crate (the Apache Arrow project's client, used by DataFusion and
//! others: signing, retries and multipart uploads done right).
//!
//! Both directions stream: an upload goes up as a multipart upload, a part at a time, and
//! validation reads the object back in ranges. An object exists only once its multipart
//! upload is complete, so validation starts then (see [`Storage::follows_uploads`]). An
//! upload dropped half-way is aborted, which frees its parts; one left by a node that died
//! mid-upload stays until the bucket's lifecycle rule for incomplete multipart uploads
//! removes it.

use std::future::Future;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};

use super::{checked, ignore_missing, Storage, StorageError, UploadWriter};
use crate::side_runtime::SideRuntime;

/// Size of each multipart part (S3 wants at least 5 MiB for all but the last).
const PART_BYTES: usize = 8 << 20;
/// Parts of one upload in flight at once; with the part being filled, this bounds an
/// upload's memory to (PARTS_IN_FLIGHT + 1) × PART_BYTES.
const PARTS_IN_FLIGHT: usize = 2;
/// Size of each ranged read; the next range is fetched while the validator reads this one.
const READ_RANGE: u64 = 8 << 20;

pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    /// Keys start with this (the path of `s3://bucket/prefix`).
    prefix: Path,
    runtime: Arc<SideRuntime>,
}

fn io_error(e: object_store::Error) -> io::Error {
    io::Error::from(e) // NotFound stays NotFound; the rest keep the store's message
}

impl ObjectStorage {
    /// `s3://bucket/prefix`, with the credentials, region and endpoint (for a server that is
    /// not AWS) from the usual `AWS_*` environment variables. Checks at once that the bucket
    /// answers, so a wrong setting stops the server at start-up rather than the first upload.
    pub fn s3(url: &str) -> Result<ObjectStorage, StorageError> {
        ObjectStorage::s3_with(url, &[])
    }

    /// As [`ObjectStorage::s3`], with `settings` (`AWS_*` names) over the environment's.
    pub fn s3_with(url: &str, settings: &[(&str, String)]) -> Result<ObjectStorage, StorageError> {
        let rest = url.strip_prefix("s3://").unwrap_or(url);
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StorageError::NoBucket {
                url: url.to_owned(),
            });
        }
        let mut builder = AmazonS3Builder::from_env();
        for (name, value) in settings {
            let key =
                name.to_ascii_lowercase()
                    .parse()
                    .map_err(|source| StorageError::Setting {
                        name: (*name).to_owned(),
                        source,
                    })?;
            builder = builder.with_config(key, value);
        }
        let store = builder
            .with_bucket_name(bucket)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
            })
            .build()
            .map_err(|source| StorageError::Config {
                url: url.to_owned(),
                source,
            })?;
        let storage = ObjectStorage {
            store: Arc::new(store),
            prefix: Path::from(prefix.trim_matches('/')),
            runtime: Arc::new(
                SideRuntime::new("datavista-storage", 2).map_err(StorageError::Client)?,
            ),
        };
        storage
            .check_reachable()
            .map_err(|source| StorageError::Unreachable {
                url: url.to_owned(),
                source,
            })?;
        Ok(storage)
    }

    fn check_reachable(&self) -> io::Result<()> {
        let store = self.store.clone();
        let probe = self.prefix.clone().join("reports");
        self.wait_for(async move { store.list_with_delimiter(Some(&probe)).await })
            .map(drop)
    }

    fn upload_key(&self, id: &str) -> io::Result<Path> {
        let name = format!("{}.csv", checked(id)?);
        Ok(self.prefix.clone().join("uploads").join(name.as_str()))
    }

    fn report_key(&self, id: &str) -> io::Result<Path> {
        let name = format!("{}.json", checked(id)?);
        Ok(self.prefix.clone().join("reports").join(name.as_str()))
    }

    /// Run one request on the client's runtime and wait for it here (callers are blocking).
    fn wait_for<T: Send + 'static>(
        &self,
        request: impl Future<Output = object_store::Result<T>> + Send + 'static,
    ) -> io::Result<T> {
        wait_on(&self.runtime, request)
    }

    fn remove(&self, key: Path) -> io::Result<()> {
        let store = self.store.clone();
        ignore_missing(self.wait_for(async move { store.delete(&key).await }))
    }
}

fn wait_on<T: Send + 'static>(
    runtime: &SideRuntime,
    request: impl Future<Output = object_store::Result<T>> + Send + 'static,
) -> io::Result<T> {
    runtime
        .wait_for(request)
        .ok_or_else(|| io::Error::other("the object store client stopped"))?
        .map_err(io_error)
}

impl Storage for ObjectStorage {
    fn follows_uploads(&self) -> bool {
        false
    }

    fn create_upload(&self, id: &str) -> io::Result<Box<dyn UploadWriter>> {
        let store = self.store.clone();
        let key = self.upload_key(id)?;
        let upload = self.wait_for(async move { store.put_multipart(&key).await })?;
        Ok(Box::new(MultipartWriter {
            upload: Some(WriteMultipart::new_with_chunk_size(upload, PART_BYTES)),
            runtime: self.runtime.clone(),
        }))
    }

    fn open_upload(&self, id: &str) -> io::Result<Box<dyn Read + Send>> {
        let (store, key) = (self.store.clone(), self.upload_key(id)?);
        let len = self.upload_len(id)?;
        Ok(Box::new(RangedReader {
            store,
            key,
            len,
            fetched_to: 0,
            current: Bytes::new(),
            next: None,
            runtime: self.runtime.clone(),
        }))
    }

    fn upload_len(&self, id: &str) -> io::Result<u64> {
        let (store, key) = (self.store.clone(), self.upload_key(id)?);
        Ok(self.wait_for(async move { store.head(&key).await })?.size)
    }

    fn remove_upload(&self, id: &str) -> io::Result<()> {
        self.remove(self.upload_key(id)?)
    }

    fn write_report(&self, id: &str, json: &[u8]) -> io::Result<()> {
        // One PUT: the object appears whole or not at all.
        let (store, key) = (self.store.clone(), self.report_key(id)?);
        let payload = PutPayload::from(json.to_vec());
        self.wait_for(async move { store.put(&key, payload).await })
            .map(drop)
    }

    fn read_report(&self, id: &str) -> io::Result<Vec<u8>> {
        let (store, key) = (self.store.clone(), self.report_key(id)?);
        let bytes = self.wait_for(async move { store.get(&key).await?.bytes().await })?;
        Ok(bytes.to_vec())
    }

    fn remove_report(&self, id: &str) -> io::Result<()> {
        self.remove(self.report_key(id)?)
    }

    fn available_bytes(&self) -> io::Result<u64> {
        Ok(u64::MAX) // a bucket has no free-space figure; its quota errors reach the upload
    }
}

/// An upload going up as a multipart upload, a part at a time.
struct MultipartWriter {
    /// `None` once finished.
    upload: Option<WriteMultipart>,
    runtime: Arc<SideRuntime>,
}

impl Write for MultipartWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut upload = self
            .upload
            .take()
            .ok_or_else(|| io::Error::other("the upload is already finished"))?;
        let bytes = Bytes::copy_from_slice(buf);
        let (upload, waited) = self
            .runtime
            .wait_for(async move {
                // Waiting here holds the client back while the store is slower than it.
                let waited = upload.wait_for_capacity(PARTS_IN_FLIGHT).await;
                if waited.is_ok() {
                    upload.put(bytes); // starts a part upload once a part is full
                }
                (upload, waited)
            })
            .ok_or_else(|| io::Error::other("the object store client stopped"))?;
        self.upload = Some(upload);
        waited.map_err(io_error)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(()) // parts go up when full; the last one with `finish`
    }
}

impl UploadWriter for MultipartWriter {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        let upload = self
            .upload
            .take()
            .ok_or_else(|| io::Error::other("the upload is already finished"))?;
        wait_on(&self.runtime, async move { upload.finish().await }).map(drop)
    }
}

impl Drop for MultipartWriter {
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            // Unfinished: abort, so the store frees the parts already sent.
            self.runtime.spawn(async move {
                if let Err(e) = upload.abort().await {
                    tracing::warn!(error = %e, "could not abort an unfinished multipart upload");
                }
            });
        }
    }
}

/// Reads a complete object front to back in ranges, one range ahead.
struct RangedReader {
    store: Arc<dyn ObjectStore>,
    key: Path,
    len: u64,
    /// Where the next range to fetch starts.
    fetched_to: u64,
    /// The rest of the range being read.
    current: Bytes,
    next: Option<tokio::task::JoinHandle<object_store::Result<Bytes>>>,
    runtime: Arc<SideRuntime>,
}

impl RangedReader {
    /// Start fetching the next range, if any is left.
    fn fetch_ahead(&mut self) {
        if self.next.is_some() || self.fetched_to >= self.len {
            return;
        }
        let range = self.fetched_to..(self.fetched_to + READ_RANGE).min(self.len);
        self.fetched_to = range.end;
        let (store, key) = (self.store.clone(), self.key.clone());
        self.next = Some(
            self.runtime
                .spawn(async move { store.get_range(&key, range).await }),
        );
    }
}

impl Drop for RangedReader {
    fn drop(&mut self) {
        if let Some(fetching) = self.next.take() {
            fetching.abort(); // a read-ahead nobody will read
        }
    }
}

impl Read for RangedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.current.is_empty() {
            self.fetch_ahead();
            let Some(fetching) = self.next.take() else {
                return Ok(0); // the end of the object
            };
            let fetched = self
                .runtime
                .wait_for(fetching)
                .ok_or_else(|| io::Error::other("the object store client stopped"))?
                .map_err(io::Error::other)?;
            self.current = fetched.map_err(io_error)?;
            if self.current.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stored upload is shorter than its size",
                ));
            }
            self.fetch_ahead();
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
