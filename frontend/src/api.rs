//! Calls to the server's HTTP API (the session cookie goes along by itself).

use datavista_shared::ValidationError;
use gloo_net::http::Request;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SchemaInfo {
    pub id: String,
    pub name: String,
    pub shared: bool,
    pub fields: Vec<String>,
}

#[derive(Deserialize)]
struct SchemaList {
    schemas: Vec<SchemaInfo>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ErrorPage {
    pub errors: Vec<ValidationError>,
    pub offset: u64,
    pub limit: u64,
    pub sample_size: u64,
    pub error_total: u64,
    pub sample_capped: bool,
}

#[derive(Deserialize)]
struct ApiError {
    message: String,
}

async fn failure(response: gloo_net::http::Response) -> String {
    match response.json::<ApiError>().await {
        Ok(error) => error.message,
        Err(_) => format!("the server answered {}", response.status()),
    }
}

pub async fn schemas() -> Result<Vec<SchemaInfo>, String> {
    let response = Request::get("/api/schemas")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.ok() {
        return Err(failure(response).await);
    }
    response
        .json::<SchemaList>()
        .await
        .map(|l| l.schemas)
        .map_err(|e| e.to_string())
}

pub async fn schema_body(id: &str) -> Result<String, String> {
    let response = Request::get(&format!("/api/schemas/{id}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.ok() {
        return Err(failure(response).await);
    }
    response.text().await.map_err(|e| e.to_string())
}

/// Add a schema; the error is the server's reason (the shared crate's, as in the browser).
pub async fn add_schema(body: String) -> Result<SchemaInfo, String> {
    let response = Request::post("/api/schemas")
        .body(body)
        .map_err(|e| e.to_string())?
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.ok() {
        return Err(failure(response).await);
    }
    response
        .json::<SchemaInfo>()
        .await
        .map_err(|e| e.to_string())
}

pub async fn errors(id: &str, offset: u64, limit: u64) -> Result<ErrorPage, String> {
    let url = format!("/api/uploads/{id}/errors?offset={offset}&limit={limit}");
    let response = Request::get(&url).send().await.map_err(|e| e.to_string())?;
    if !response.ok() {
        return Err(failure(response).await);
    }
    response
        .json::<ErrorPage>()
        .await
        .map_err(|e| e.to_string())
}

pub async fn delete(id: &str) -> Result<(), String> {
    let response = Request::delete(&format!("/api/uploads/{id}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.ok() {
        Ok(())
    } else {
        Err(failure(response).await)
    }
}
