//! Calls to the server's HTTP API (the session cookie goes along by itself).

use datavista_shared::http::{ErrorBody, ErrorPage, SchemaInfo, SchemaList};
use datavista_shared::Schema;
use gloo_net::http::{Request, Response};

use crate::error::ClientError;

async fn failure(response: Response) -> ClientError {
    ClientError::refused(response.status(), response.json::<ErrorBody>().await.ok())
}

/// Send a request; a successful answer, or the server's reason for refusing it.
async fn answer(request: gloo_net::http::RequestBuilder) -> Result<Response, ClientError> {
    let response = request.send().await.map_err(ClientError::Network)?;
    if response.ok() {
        Ok(response)
    } else {
        Err(failure(response).await)
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(url: &str) -> Result<T, ClientError> {
    answer(Request::get(url))
        .await?
        .json::<T>()
        .await
        .map_err(ClientError::Decode)
}

pub async fn schemas() -> Result<Vec<SchemaInfo>, ClientError> {
    get_json::<SchemaList>("/api/schemas")
        .await
        .map(|list| list.schemas)
}

/// A schema ready to check files with: its JSON, with its `pattern` constraints loaded as the
/// DFAs the server compiled (the browser has no regex compiler). Should the patterns not
/// load, the schema still checks everything else, and `Schema::patterns_not_checked_here`
/// names what it leaves to the server.
pub async fn schema(id: &str) -> Result<Schema, ClientError> {
    let body = answer(Request::get(&format!("/api/schemas/{id}")))
        .await?
        .text()
        .await
        .map_err(ClientError::Decode)?;
    let schema = Schema::from_json(&body)?;
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

async fn schema_patterns(id: &str) -> Result<Vec<u8>, ClientError> {
    answer(Request::get(&format!("/api/schemas/{id}/patterns")))
        .await?
        .binary()
        .await
        .map_err(ClientError::Decode)
}

/// Add a schema; the error is the server's reason (the shared crate's, as in the browser).
pub async fn add_schema(body: String) -> Result<SchemaInfo, ClientError> {
    let request = Request::post("/api/schemas")
        .body(body)
        .map_err(ClientError::Network)?;
    let response = request.send().await.map_err(ClientError::Network)?;
    if !response.ok() {
        return Err(failure(response).await);
    }
    response
        .json::<SchemaInfo>()
        .await
        .map_err(ClientError::Decode)
}

pub async fn errors(id: &str, offset: u64, limit: u64) -> Result<ErrorPage, ClientError> {
    get_json(&format!(
        "/api/uploads/{id}/errors?offset={offset}&limit={limit}"
    ))
    .await
}

pub async fn delete(id: &str) -> Result<(), ClientError> {
    answer(Request::delete(&format!("/api/uploads/{id}")))
        .await
        .map(|_| ())
}
