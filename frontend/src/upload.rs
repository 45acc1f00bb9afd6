//! Uploads with progress: `fetch` reports no upload progress, so this uses XMLHttpRequest and
//! its `upload.onprogress` events.

use datavista_shared::http::{ErrorBody, UploadsCreated};
use datavista_shared::protocol::Job;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{File, FormData, ProgressEvent, XmlHttpRequest};

use crate::error::ClientError;

/// An upload in flight; `abort` cancels it (the server then marks the job cancelled).
pub struct Upload {
    request: XmlHttpRequest,
}

impl Upload {
    /// Start sending `file`; `on_progress(sent, total)` fires as bytes leave, `on_done` once.
    pub fn start(
        file: &File,
        schema: Option<&str>,
        on_progress: impl Fn(f64, f64) + 'static,
        on_done: impl FnOnce(Result<Job, ClientError>) + 'static,
    ) -> Result<Upload, ClientError> {
        let js = ClientError::browser;
        let request = XmlHttpRequest::new().map_err(js)?;
        let url = match schema {
            Some(id) => format!("/api/uploads?schema={}", js_sys::encode_uri_component(id)),
            None => "/api/uploads".to_owned(),
        };
        request.open("POST", &url).map_err(js)?;
        let progress = Closure::<dyn Fn(ProgressEvent)>::new(move |event: ProgressEvent| {
            if event.length_computable() {
                on_progress(event.loaded(), event.total());
            }
        });
        request
            .upload()
            .map_err(js)?
            .set_onprogress(Some(progress.as_ref().unchecked_ref()));
        progress.forget(); // lives as long as the request object in JS
        let finished = request.clone();
        let on_done = std::cell::RefCell::new(Some(on_done));
        let done = Closure::<dyn Fn(web_sys::Event)>::new(move |event: web_sys::Event| {
            let Some(on_done) = on_done.borrow_mut().take() else {
                return;
            };
            on_done(outcome(&finished, &event.type_()));
        });
        request.set_onloadend(Some(done.as_ref().unchecked_ref()));
        done.forget();
        let form = FormData::new().map_err(js)?;
        form.append_with_blob_and_filename("file", file, &file.name())
            .map_err(js)?;
        request.send_with_opt_form_data(Some(&form)).map_err(js)?;
        Ok(Upload { request })
    }

    pub fn abort(&self) {
        let _ = self.request.abort();
    }
}

fn outcome(request: &XmlHttpRequest, _event: &str) -> Result<Job, ClientError> {
    let status = request.status().unwrap_or(0);
    let text = request.response_text().ok().flatten().unwrap_or_default();
    if status == 0 {
        return Err(ClientError::Interrupted);
    }
    if status == 201 {
        let created: UploadsCreated = serde_json::from_str(&text)
            .map_err(|e| ClientError::Decode(gloo_net::Error::from(e)))?;
        created.uploads.into_iter().next().ok_or_else(|| {
            ClientError::Decode(gloo_net::Error::GlooError(
                "the server created no upload".to_owned(),
            ))
        })
    } else {
        Err(ClientError::refused(
            status,
            serde_json::from_str::<ErrorBody>(&text).ok(),
        ))
    }
}
