//! [`Client`]: one owner's HTTP client (a browser session's cookie or a script's token) with
//! the calls tests make, reading the typed bodies of `datavista_shared::http`.

use std::time::{Duration, Instant};

use datavista_shared::http::{ErrorBody, JobPage, SchemaInfo, SchemaList, UploadsCreated};
use datavista_shared::protocol::Job;
use datavista_shared::Report;
use serde::de::DeserializeOwned;

use crate::PATIENCE;

#[derive(Clone)]
pub enum Auth {
    Cookie(String),
    Bearer(String),
}

#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub auth: Auth,
    pub owner: String,
}

impl Client {
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.auth {
            Auth::Cookie(cookie) => builder.header("cookie", cookie),
            Auth::Bearer(token) => builder.bearer_auth(token),
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
    }

    /// GET `path`, expect 200 and read its body as `T` (one of `datavista_shared::http`).
    pub async fn get_typed<T: DeserializeOwned>(&self, path: &str) -> T {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// Add a user schema (Table Schema JSON) by `name`; returns its id.
    pub async fn add_schema(&self, name: &str, schema: &str) -> String {
        let response = self
            .request(reqwest::Method::POST, &format!("/api/schemas?name={name}"))
            .header("content-type", "application/json")
            .body(schema.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "the schema {name} is added");
        let added: SchemaInfo = response.json().await.unwrap();
        added.id
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::DELETE, path)
            .send()
            .await
            .unwrap()
    }

    /// Upload files (name, bytes) with an optional schema id; returns the response.
    pub async fn upload(
        &self,
        schema: Option<&str>,
        files: &[(&str, Vec<u8>)],
    ) -> reqwest::Response {
        let path = match schema {
            Some(id) => format!("/api/uploads?schema={id}"),
            None => "/api/uploads".to_owned(),
        };
        self.request(reqwest::Method::POST, &path)
            .multipart(upload_form(files))
            .send()
            .await
            .unwrap()
    }

    pub async fn job(&self, id: &str) -> Job {
        self.get_typed(&format!("/api/uploads/{id}")).await
    }

    /// The caller's first page of jobs, newest first (`GET /api/uploads`).
    pub async fn jobs(&self) -> JobPage {
        self.get_typed("/api/uploads").await
    }

    /// The shared schemas, then the caller's own (`GET /api/schemas`).
    pub async fn schemas(&self) -> SchemaList {
        self.get_typed("/api/schemas").await
    }

    /// The report of a finished job (`GET /api/uploads/{id}/report.json`).
    pub async fn report(&self, id: &str) -> Report {
        self.get_typed(&format!("/api/uploads/{id}/report.json"))
            .await
    }

    /// Poll until the job is final (only used where no socket is open, e.g. across restarts).
    pub async fn wait_final(&self, id: &str) -> Job {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let job = self.job(id).await;
            if job.state.is_final() {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} stayed {:?}", job.state);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The multipart body of `POST /api/uploads`: one `file` part per (name, bytes).
pub fn upload_form(files: &[(&str, Vec<u8>)]) -> reqwest::multipart::Form {
    files
        .iter()
        .fold(reqwest::multipart::Form::new(), |form, (name, bytes)| {
            form.part(
                "file",
                reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_string()),
            )
        })
}

/// The body of a refusal (any status but 2xx): its `code` and `message`.
pub async fn error_body(response: reqwest::Response) -> ErrorBody {
    response.json().await.unwrap()
}

/// The id of the first file a 201 upload response accepted.
pub async fn created_id(response: reqwest::Response) -> String {
    created_ids(response).await.remove(0)
}

/// The ids of every file a 201 upload response accepted, in the order they were sent.
pub async fn created_ids(response: reqwest::Response) -> Vec<String> {
    assert_eq!(response.status(), 201);
    let created: UploadsCreated = response.json().await.unwrap();
    created.uploads.into_iter().map(|job| job.id).collect()
}
