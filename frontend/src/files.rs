//! Reading dropped files, always through `Blob.slice()` (never the whole file at once): the
//! first MiB for the pre-check, a schema file as text, and the whole-file check in the browser.

use datavista_shared::Schema;
use wasm_bindgen_futures::JsFuture;
use web_sys::File;

use crate::error::ClientError;
use crate::precheck::PRECHECK_BYTES;

/// A small text file (a schema), at most 1 MiB.
pub async fn read_text(file: &File) -> Result<String, ClientError> {
    if file.size() > PRECHECK_BYTES as f64 {
        return Err(ClientError::TooLargeForSchema { name: file.name() });
    }
    let bytes = read_range(file, 0.0, file.size()).await?;
    String::from_utf8(bytes).map_err(|source| ClientError::NotText {
        name: file.name(),
        source,
    })
}

async fn read_range(file: &File, start: f64, end: f64) -> Result<Vec<u8>, ClientError> {
    let blob = file
        .slice_with_f64_and_f64(start, end)
        .map_err(ClientError::browser)?;
    let buffer = JsFuture::from(blob.array_buffer())
        .await
        .map_err(ClientError::browser)?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// The whole file through the shared validator in the browser, one `Blob.slice()` of 1 MiB
/// at a time: memory stays at one chunk, and the page stays responsive because every read
/// returns to the event loop. `progress(done, total)` after each chunk.
pub async fn check_in_browser(
    file: &File,
    schema: Schema,
    progress: impl Fn(f64, f64),
) -> Result<datavista_shared::Report, ClientError> {
    let total = file.size();
    let mut validator = datavista_shared::Validator::new(
        schema,
        datavista_shared::Dialect::default(),
        datavista_shared::Limits::default(),
    );
    let mut at = 0.0;
    while at < total {
        let end = (at + PRECHECK_BYTES as f64).min(total);
        validator.feed(&read_range(file, at, end).await?);
        at = end;
        progress(at, total);
    }
    Ok(validator.finish())
}

/// The first MiB of a file, read with `Blob.slice()` (never the whole file).
pub async fn read_head(file: &File) -> Result<Vec<u8>, ClientError> {
    read_range(file, 0.0, file.size().min(PRECHECK_BYTES as f64)).await
}
