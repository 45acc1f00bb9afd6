//! Where uploaded files and reports live, behind a trait: a local directory by default, or
//! any S3-compatible object store that several nodes share. Keys are server-made ids (UUIDs),
//! never a user's file name.

mod local;
mod object;

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

pub use local::LocalDisk;
pub use object::ObjectStorage;

pub trait Storage: Send + Sync + 'static {
    /// Can an upload be read while it is still being written? Then validation follows the
    /// upload; otherwise (object stores, where an object appears only once complete) it
    /// starts when the upload is complete.
    fn follows_uploads(&self) -> bool;
    /// A new upload's bytes, written as they arrive.
    fn create_upload(&self, id: &str) -> io::Result<Box<dyn UploadWriter>>;
    /// Read an upload from the start. With [`Storage::follows_uploads`], reading past what is
    /// written so far returns 0 bytes, and later reads see what was appended since.
    fn open_upload(&self, id: &str) -> io::Result<Box<dyn Read + Send>>;
    /// The size of a complete upload; NotFound when there is none.
    fn upload_len(&self, id: &str) -> io::Result<u64>;
    /// Removing what is not there is not an error.
    fn remove_upload(&self, id: &str) -> io::Result<()>;
    /// All or nothing: a reader never sees half a report.
    fn write_report(&self, id: &str, json: &[u8]) -> io::Result<()>;
    fn read_report(&self, id: &str) -> io::Result<Vec<u8>>;
    fn remove_report(&self, id: &str) -> io::Result<()>;
    /// Bytes free for new uploads.
    fn available_bytes(&self) -> io::Result<u64>;
}

/// An upload being written. Dropping it without [`UploadWriter::finish`] discards it.
pub trait UploadWriter: Write + Send {
    /// Every byte is written: make the upload whole and readable.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// Why the configured storage cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// `--storage` is a URL, but not an `s3://` one.
    #[error("'{0}' is not a storage location: give a directory or s3://bucket/prefix")]
    NotALocation(String),
    /// The local directories could not be made.
    #[error("{0}")]
    Local(#[source] io::Error),
    #[error("'{url}' names no bucket: use s3://bucket/prefix")]
    NoBucket { url: String },
    /// An `AWS_*` setting the object store client does not take.
    #[error("{name}: {source}")]
    Setting {
        name: String,
        source: object_store::Error,
    },
    /// The object store client refused the configuration.
    #[error("cannot use the object store {url}: {source}")]
    Config {
        url: String,
        source: object_store::Error,
    },
    /// The bucket did not answer.
    #[error("cannot use the object store {url}: {source}")]
    Unreachable { url: String, source: io::Error },
    #[error("cannot start the object store client: {0}")]
    Client(#[source] io::Error),
}

/// `--storage`: none for `DATA_DIR/uploads` and `DATA_DIR/reports`, a directory, or
/// `s3://bucket/prefix` (credentials and endpoint from the usual `AWS_*` variables).
pub fn open(location: Option<&str>, data_dir: &Path) -> Result<Arc<dyn Storage>, StorageError> {
    let storage: Arc<dyn Storage> = match location {
        None => Arc::new(LocalDisk::new(data_dir).map_err(StorageError::Local)?),
        Some(url) if url.starts_with("s3://") => Arc::new(ObjectStorage::s3(url)?),
        Some(url) if url.contains("://") => return Err(StorageError::NotALocation(url.to_owned())),
        Some(dir) => Arc::new(LocalDisk::new(Path::new(dir)).map_err(StorageError::Local)?),
    };
    Ok(storage)
}

/// Ids are UUIDs we made; anything else never reaches a file system or a bucket.
fn checked(id: &str) -> io::Result<&str> {
    uuid::Uuid::parse_str(id)
        .map(|_| id)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "not a storage id"))
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The test kit's S3-compatible server, for the storage tests below.
#[cfg(test)]
use datavista_testkit::s3 as test_s3;

/// One behaviour, two backends: every test here runs on a local directory and on a real
/// S3-compatible server (s3s-fs).
#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::test_s3::TestS3;
    use super::*;

    const ID: &str = "6f1c7a52-3f7e-4c3b-9d51-0b7d3a3f2c11";
    const OTHER: &str = "0d6f2a1e-8c4b-4f7a-a1d2-5e3c9b8f7a60";

    fn object_storage(s3: &TestS3, prefix: &str) -> ObjectStorage {
        let env = s3.env();
        let settings: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.clone())).collect();
        ObjectStorage::s3_with(&s3.url(prefix), &settings).unwrap()
    }

    /// Bytes no two ranges or parts share by accident: 20 MiB spans several multipart parts
    /// and several ranged reads.
    fn large_upload() -> Vec<u8> {
        (0..20u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect()
    }

    fn exists(storage: &dyn Storage, id: &str) -> bool {
        match storage.upload_len(id) {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => panic!("{e}"),
        }
    }

    fn read_all(storage: &dyn Storage, id: &str) -> Vec<u8> {
        let mut read = Vec::new();
        storage
            .open_upload(id)
            .unwrap()
            .read_to_end(&mut read)
            .unwrap();
        read
    }

    fn behaves_like_storage(storage: &dyn Storage) {
        assert!(!exists(storage, ID));

        // An upload written in uneven pieces reads back whole.
        let bytes = large_upload();
        let mut upload = storage.create_upload(ID).unwrap();
        for piece in bytes.chunks(3 << 20 | 17) {
            upload.write_all(piece).unwrap();
        }
        upload.finish().unwrap();
        assert!(exists(storage, ID));
        assert_eq!(storage.upload_len(ID).unwrap(), bytes.len() as u64);
        assert!(
            read_all(storage, ID) == bytes,
            "the upload reads back unchanged"
        );

        // An empty file is a file too.
        storage.create_upload(OTHER).unwrap().finish().unwrap();
        assert_eq!(storage.upload_len(OTHER).unwrap(), 0);
        assert_eq!(read_all(storage, OTHER), b"");
        storage.remove_upload(OTHER).unwrap();

        storage.remove_upload(ID).unwrap();
        assert!(!exists(storage, ID));
        storage.remove_upload(ID).unwrap(); // removing what is gone is fine
        assert_eq!(
            storage.open_upload(ID).err().map(|e| e.kind()),
            Some(io::ErrorKind::NotFound)
        );

        // Reports: whole, replaced, removed.
        assert_eq!(
            storage.read_report(ID).err().map(|e| e.kind()),
            Some(io::ErrorKind::NotFound)
        );
        storage.write_report(ID, b"{\"valid\":false}").unwrap();
        storage.write_report(ID, b"{\"valid\":true}").unwrap();
        assert_eq!(storage.read_report(ID).unwrap(), b"{\"valid\":true}");
        storage.remove_report(ID).unwrap();
        storage.remove_report(ID).unwrap();
        assert!(storage.read_report(ID).is_err());

        // Only server-made ids reach the store.
        for hostile in ["../../etc/passwd", "a/b", "", "..", "6f1c7a52"] {
            assert_eq!(
                storage.create_upload(hostile).err().map(|e| e.kind()),
                Some(io::ErrorKind::InvalidInput),
                "{hostile:?}"
            );
            assert!(storage.read_report(hostile).is_err());
            assert!(storage.remove_upload(hostile).is_err());
        }
        assert!(storage.available_bytes().unwrap() > 0);
    }

    /// An upload dropped half-way leaves nothing readable behind. `sent` runs before the
    /// drop, when some of it is surely stored.
    fn unfinished_uploads_vanish(storage: &dyn Storage, sent: impl FnOnce()) {
        let mut upload = storage.create_upload(ID).unwrap();
        // In pieces: past two parts in flight, a write waits for a part to be stored.
        for piece in large_upload().chunks(1 << 20) {
            upload.write_all(piece).unwrap();
        }
        sent();
        drop(upload);
        if !storage.follows_uploads() {
            assert!(!exists(storage, ID), "no object before it is complete");
        }
        storage.remove_upload(ID).unwrap(); // what the job runner does after an abort
        assert!(!exists(storage, ID));
    }

    #[test]
    fn local_disk() {
        let dir = tempfile::tempdir().unwrap();
        let storage = open(None, dir.path()).unwrap();
        assert!(storage.follows_uploads());
        behaves_like_storage(storage.as_ref());
        unfinished_uploads_vanish(storage.as_ref(), || {});
    }

    #[test]
    fn local_disk_reads_an_upload_while_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalDisk::new(dir.path()).unwrap();
        let mut upload = storage.create_upload(ID).unwrap();
        upload.write_all(b"a,b\n").unwrap();
        let mut reader = storage.open_upload(ID).unwrap();
        let mut seen = Vec::new();
        reader.read_to_end(&mut seen).unwrap();
        upload.write_all(b"1,2\n").unwrap();
        reader.read_to_end(&mut seen).unwrap();
        assert_eq!(seen, b"a,b\n1,2\n");
    }

    #[test]
    fn s3_storage() {
        let s3 = TestS3::start();
        let storage = object_storage(&s3, "team/datavista");
        assert!(!storage.follows_uploads());
        behaves_like_storage(&storage);
        // s3s-fs keeps the parts of an unfinished upload as `.upload_id-*` files.
        let parts_left = || {
            std::fs::read_dir(&s3.root)
                .unwrap()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(".upload_id-"))
        };
        unfinished_uploads_vanish(&storage, || assert!(parts_left(), "parts were sent"));
        // The abort frees the parts sent so far.
        let deadline = Instant::now() + Duration::from_secs(10);
        while parts_left() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!parts_left(), "the aborted upload's parts are gone");
        // Keys stay under the prefix.
        storage.write_report(ID, b"{}").unwrap();
        let objects = s3.objects("team/datavista/reports");
        assert_eq!(objects.len(), 1, "{objects:?}");
        assert!(objects[0].ends_with(&format!("{ID}.json")), "{objects:?}");
    }

    #[test]
    fn storage_locations_are_checked_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("elsewhere");
        open(Some(other.to_str().unwrap()), dir.path()).unwrap();
        assert!(other.join("uploads").is_dir(), "a directory location");
        let wrong = open(Some("ftp://host/x"), dir.path())
            .err()
            .unwrap()
            .to_string();
        assert!(wrong.contains("s3://bucket/prefix"), "{wrong}");
        let nameless = open(Some("s3:///prefix"), dir.path())
            .err()
            .unwrap()
            .to_string();
        assert!(nameless.contains("names no bucket"), "{nameless}");

        // A bucket that does not answer stops the start, naming the store.
        let s3 = TestS3::start();
        let mut settings: Vec<(&str, String)> = s3.env();
        settings.retain(|(k, _)| *k != "AWS_ENDPOINT");
        settings.push(("AWS_ENDPOINT", "http://127.0.0.1:9".to_owned()));
        let refused = ObjectStorage::s3_with(&s3.url("x"), &settings)
            .err()
            .unwrap()
            .to_string();
        assert!(
            refused.contains("cannot use the object store s3://datavista/x"),
            "{refused}"
        );
        let mut wrong_key = s3.env();
        wrong_key.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
        wrong_key.push(("AWS_SECRET_ACCESS_KEY", "not-the-secret".to_owned()));
        assert!(ObjectStorage::s3_with(&s3.url("x"), &wrong_key).is_err());
    }
}
