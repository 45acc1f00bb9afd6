//! The soak's small data disk: a size-limited tmpfs, so the server really meets a full disk.

/// A size-limited tmpfs for the data dir, so the disk really fills; unmounted on drop.
pub struct SmallDisk {
    mount_point: tempfile::TempDir,
}

impl SmallDisk {
    pub fn mount(megabytes: u64) -> Result<SmallDisk, String> {
        let mount_point = tempfile::Builder::new()
            .prefix("datavista-soak-disk")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(mount_point.path())
            .status()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !status.success() {
            return Err(format!(
                "cannot mount a {megabytes} MB tmpfs (the soak needs root for its small data disk)"
            ));
        }
        Ok(SmallDisk { mount_point })
    }

    /// A temp dir on the small disk for the server's data dir.
    pub fn dir(&self) -> Result<tempfile::TempDir, String> {
        tempfile::tempdir_in(self.mount_point.path()).map_err(|e| e.to_string())
    }

    /// Write `path` until only `leave` bytes are free; returns what is left.
    pub fn fill(&self, path: &std::path::Path, leave: u64) -> Result<u64, String> {
        let free = free_bytes(self.mount_point.path())?;
        let size = free.saturating_sub(leave);
        let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
        // tmpfs allocates on write, so write real bytes.
        let mut writer = std::io::BufWriter::new(file);
        let block = vec![0u8; 1 << 20];
        let mut written = 0;
        while written < size {
            let n = (size - written).min(block.len() as u64) as usize;
            if std::io::Write::write_all(&mut writer, &block[..n]).is_err() {
                break;
            }
            written += n as u64;
        }
        let _ = std::io::Write::flush(&mut writer);
        free_bytes(self.mount_point.path())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.mount_point.path())
            .status();
    }
}

fn free_bytes(path: &std::path::Path) -> Result<u64, String> {
    let output = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run df: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .nth(1)
        .and_then(|line| line.trim().parse().ok())
        .ok_or_else(|| "df printed no free space".to_owned())
}
