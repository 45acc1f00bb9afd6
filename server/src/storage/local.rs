//! Uploads and reports as files in a local directory: the default, for one node.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::{checked, ignore_missing, Storage, UploadWriter};

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

    fn upload_path(&self, id: &str) -> io::Result<PathBuf> {
        Ok(self.uploads.join(format!("{}.csv", checked(id)?)))
    }

    fn report_path(&self, id: &str) -> io::Result<PathBuf> {
        Ok(self.reports.join(format!("{}.json", checked(id)?)))
    }
}

impl UploadWriter for File {
    fn finish(self: Box<Self>) -> io::Result<()> {
        Ok(()) // unbuffered: every byte is already in the file
    }
}

impl Storage for LocalDisk {
    fn follows_uploads(&self) -> bool {
        true
    }

    fn create_upload(&self, id: &str) -> io::Result<Box<dyn UploadWriter>> {
        Ok(Box::new(File::create_new(self.upload_path(id)?)?))
    }

    fn open_upload(&self, id: &str) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(File::open(self.upload_path(id)?)?))
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
