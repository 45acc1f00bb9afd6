//! Where uploaded files and reports live, behind a trait: local disk by default, with room
//! for S3-compatible storage. Keys are server-made ids, never a user's file name.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

pub trait Storage: Send + Sync + 'static {
    /// A new upload's bytes; appended to as they arrive.
    fn create_upload(&self, id: &str) -> io::Result<Box<dyn Write + Send>>;
    /// Read an upload from the start; reading past what is written so far returns 0 bytes,
    /// and later reads see what was appended since (validation follows the upload).
    fn open_upload(&self, id: &str) -> io::Result<Box<dyn Read + Send>>;
    fn upload_exists(&self, id: &str) -> bool;
    fn upload_len(&self, id: &str) -> io::Result<u64>;
    fn remove_upload(&self, id: &str) -> io::Result<()>;
    fn write_report(&self, id: &str, json: &[u8]) -> io::Result<()>;
    fn read_report(&self, id: &str) -> io::Result<Vec<u8>>;
    fn remove_report(&self, id: &str) -> io::Result<()>;
    /// Bytes free for new uploads.
    fn available_bytes(&self) -> io::Result<u64>;
}

pub struct LocalDisk {
    uploads: PathBuf,
    reports: PathBuf,
}

impl LocalDisk {
    pub fn new(data_dir: &Path) -> io::Result<LocalDisk> {
        let uploads = data_dir.join("uploads");
        let reports = data_dir.join("reports");
        fs::create_dir_all(&uploads)?;
        fs::create_dir_all(&reports)?;
        Ok(LocalDisk { uploads, reports })
    }

    /// Ids are UUIDs we made; anything else never reaches the file system.
    fn checked(id: &str) -> io::Result<&str> {
        uuid::Uuid::parse_str(id)
            .map(|_| id)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "not a storage id"))
    }

    fn upload_path(&self, id: &str) -> io::Result<PathBuf> {
        Ok(self.uploads.join(format!("{}.csv", Self::checked(id)?)))
    }

    fn report_path(&self, id: &str) -> io::Result<PathBuf> {
        Ok(self.reports.join(format!("{}.json", Self::checked(id)?)))
    }
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

impl Storage for LocalDisk {
    fn create_upload(&self, id: &str) -> io::Result<Box<dyn Write + Send>> {
        Ok(Box::new(File::create_new(self.upload_path(id)?)?))
    }

    fn open_upload(&self, id: &str) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(File::open(self.upload_path(id)?)?))
    }

    fn upload_exists(&self, id: &str) -> bool {
        self.upload_path(id).is_ok_and(|path| path.exists())
    }

    fn upload_len(&self, id: &str) -> io::Result<u64> {
        Ok(fs::metadata(self.upload_path(id)?)?.len())
    }

    fn remove_upload(&self, id: &str) -> io::Result<()> {
        ignore_missing(fs::remove_file(self.upload_path(id)?))
    }

    fn write_report(&self, id: &str, json: &[u8]) -> io::Result<()> {
        // Write then rename, so a crash never leaves half a report.
        let path = self.report_path(id)?;
        let partial = path.with_extension("json.partial");
        fs::write(&partial, json)?;
        fs::rename(partial, path)
    }

    fn read_report(&self, id: &str) -> io::Result<Vec<u8>> {
        fs::read(self.report_path(id)?)
    }

    fn remove_report(&self, id: &str) -> io::Result<()> {
        ignore_missing(fs::remove_file(self.report_path(id)?))
    }

    fn available_bytes(&self) -> io::Result<u64> {
        fs4::available_space(&self.uploads)
    }
}
