//! CSV files for the built-in `people` schema (id, name, email, age, joined), generated in
//! 1 MiB pieces so a multi-GB file never sits in memory.

pub const HEADER: &str = "id,name,email,age,joined\n";

/// Rows `first..` appended to `out` until it holds at least `target` bytes; returns the next id.
fn rows_into(out: &mut String, mut id: u64, target: usize) -> u64 {
    use std::fmt::Write;
    while out.len() < target {
        let _ = writeln!(
            out,
            "{id},Person number {id},person{id}@example.org,{},2024-{:02}-{:02}",
            id % 90,
            id % 12 + 1,
            id % 28 + 1
        );
        id += 1;
    }
    id
}

/// A small valid file of about `bytes` bytes.
pub fn small(bytes: usize) -> Vec<u8> {
    let mut out = String::from(HEADER);
    rows_into(&mut out, 1, bytes);
    out.into_bytes()
}

/// Write a file of `total` bytes or a row more to `path`.
pub fn write_file(path: &std::path::Path, total: u64) -> std::io::Result<u64> {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut chunk = String::from(HEADER);
    let (mut written, mut next_id) = (0u64, 1u64);
    while written < total {
        let want = (total - written).min(1 << 20) as usize;
        next_id = rows_into(&mut chunk, next_id, want);
        file.write_all(chunk.as_bytes())?;
        written += chunk.len() as u64;
        chunk.clear();
    }
    file.flush()?;
    Ok(written)
}

/// A request body that streams `path` in 1 MiB reads. (reqwest's own `From<File>` reads
/// 4 KiB at a time, each a trip to tokio's blocking pool: it capped uploads at ~80 MB/s and
/// made the load generator, not the server, the bottleneck.)
pub async fn body(path: &std::path::Path) -> std::io::Result<reqwest::Body> {
    let file = tokio::fs::File::open(path).await?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
    Ok(reqwest::Body::wrap_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_asked_size_in_whole_valid_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        for total in [10_000u64, (1 << 20) + 7, 3 << 20] {
            let written = write_file(&path, total).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(text.len() as u64, written);
            assert!(written >= total && written <= total + 100);
            assert!(text.starts_with(HEADER) && text.ends_with('\n'));
            for line in text.lines().skip(1) {
                assert_eq!(line.split(',').count(), 5, "{line}");
            }
        }
    }
}
