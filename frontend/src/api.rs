//! Calls to the server's HTTP API (the session cookie goes along by itself).

use datavista_shared::{Schema, ValidationError};
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

async fn schema_body(id: &str) -> Result<String, String> {
    let response = Request::get(&format!("/api/schemas/{id}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.ok() {
        return Err(failure(response).await);
    }
    response.text().await.map_err(|e| e.to_string())
}

/// A schema ready to check files with: its JSON, with its `pattern` constraints loaded as the
/// DFAs the server compiled (the browser has no regex compiler). Should the patterns not
/// load, the schema still checks everything else, and `Schema::patterns_not_checked_here`
/// names what it leaves to the server.
pub async fn schema(id: &str) -> Result<Schema, String> {
    let schema = Schema::from_json(&schema_body(id).await?).map_err(|e| e.to_string())?;
    if schema
        .fields
        .iter()
        .any(|f| f.constraints.pattern.is_some())
    {
        if let Ok(compiled) = schema_patterns(id).await {
            let _ = schema.load_compiled_patterns(&compiled);
        }
    }
    Ok(schema)
}

async fn schema_patterns(id: &str) -> Result<Vec<u8>, String> {
    let response = Request::get(&format!("/api/schemas/{id}/patterns"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.ok() {
        return Err(failure(response).await);
    }
    response.binary().await.map_err(|e| e.to_string())
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
