//! Calls to the server's HTTP API (the session cookie goes along by itself).

use datavista_shared::http::{ErrorBody, SchemaList};
pub use datavista_shared::http::{ErrorPage, SchemaInfo};
use datavista_shared::Schema;
use gloo_net::http::{Request, Response};

async fn failure(response: Response) -> String {
    match response.json::<ErrorBody>().await {
        Ok(error) => error.message,
        Err(_) => format!("the server answered {}", response.status()),
    }
}

/// Send a request; a successful answer, or the server's reason for refusing it.
async fn answer(request: gloo_net::http::RequestBuilder) -> Result<Response, String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    if response.ok() {
        Ok(response)
    } else {
        Err(failure(response).await)
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(url: &str) -> Result<T, String> {
    answer(Request::get(url))
        .await?
        .json::<T>()
        .await
        .map_err(|e| e.to_string())
}

pub async fn schemas() -> Result<Vec<SchemaInfo>, String> {
    get_json::<SchemaList>("/api/schemas")
        .await
        .map(|list| list.schemas)
}

/// A schema ready to check files with: its JSON, with its `pattern` constraints loaded as the
/// DFAs the server compiled (the browser has no regex compiler). Should the patterns not
/// load, the schema still checks everything else, and `Schema::patterns_not_checked_here`
/// names what it leaves to the server.
pub async fn schema(id: &str) -> Result<Schema, String> {
    let body = answer(Request::get(&format!("/api/schemas/{id}")))
        .await?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    let schema = Schema::from_json(&body).map_err(|e| e.to_string())?;
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
    answer(Request::get(&format!("/api/schemas/{id}/patterns")))
        .await?
        .binary()
        .await
        .map_err(|e| e.to_string())
}

/// Add a schema; the error is the server's reason (the shared crate's, as in the browser).
pub async fn add_schema(body: String) -> Result<SchemaInfo, String> {
    let request = Request::post("/api/schemas")
        .body(body)
        .map_err(|e| e.to_string())?;
    let response = request.send().await.map_err(|e| e.to_string())?;
    if !response.ok() {
        return Err(failure(response).await);
    }
    response
        .json::<SchemaInfo>()
        .await
        .map_err(|e| e.to_string())
}

pub async fn errors(id: &str, offset: u64, limit: u64) -> Result<ErrorPage, String> {
    get_json(&format!(
        "/api/uploads/{id}/errors?offset={offset}&limit={limit}"
    ))
    .await
}

pub async fn delete(id: &str) -> Result<(), String> {
    answer(Request::delete(&format!("/api/uploads/{id}")))
        .await
        .map(|_| ())
}
