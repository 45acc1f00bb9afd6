//! `/api/schemas`: the schemas a user can validate against, and adding their own.

use actix_web::{web, HttpResponse};
use datavista_shared::http::SchemaList;
use futures_util::StreamExt;
use serde::Deserialize;

use crate::errors::ApiError;
use crate::routes::auth::Owner;
use crate::schemas::AddError;
use crate::state::AppState;

/// A schema body is JSON text; this is far above any real one.
const MAX_SCHEMA_BYTES: usize = 1 << 20;
/// A body of at most a MiB has this long to arrive: a client sending it a byte at a time
/// cannot hold a connection and a blocking thread's work for ever.
const SCHEMA_BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/api/schemas")
                .route(web::get().to(list))
                .route(web::post().to(add)),
        )
        .route("/api/schemas/{id}", web::get().to(get))
        .route("/api/schemas/{id}/patterns", web::get().to(patterns));
}

async fn list(state: web::Data<AppState>, owner: Owner) -> Result<HttpResponse, ApiError> {
    let schemas = state.schemas.list_async(&state.store, &owner.0).await?;
    Ok(HttpResponse::Ok().json(SchemaList { schemas }))
}

/// `GET /api/schemas/{id}`: the Table Schema JSON itself.
async fn get(
    state: web::Data<AppState>,
    owner: Owner,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let schema = state
        .schemas
        .find_async(&state.store, &owner.0, &id)
        .await?;
    let schema = schema.ok_or_else(|| ApiError::NotFound("no such schema".into()))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(schema.body.clone()))
}

/// `GET /api/schemas/{id}/patterns`: the schema's `pattern` constraints compiled to DFAs, so
/// the dashboard checks them without a regex compiler of its own (format: shared crate,
/// `schema::compiled`).
async fn patterns(
    state: web::Data<AppState>,
    owner: Owner,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // Compiled when the schema was added (or first used after a restart): usually cached.
    let schema = state
        .schemas
        .find_async(&state.store, &owner.0, &id)
        .await?;
    let schema = schema.ok_or_else(|| ApiError::NotFound("no such schema".into()))?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(schema.patterns.clone()))
}

#[derive(Deserialize)]
struct AddQuery {
    name: Option<String>,
}

/// `POST /api/schemas[?name=…]` with the Table Schema JSON as the body. A schema the shared
/// crate refuses answers 400 with its reason.
async fn add(
    state: web::Data<AppState>,
    owner: Owner,
    query: web::Query<AddQuery>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut body = Vec::new();
    let deadline = tokio::time::Instant::now() + SCHEMA_BODY_DEADLINE;
    let late = || {
        ApiError::Timeout(format!(
            "the schema did not arrive within {} seconds",
            SCHEMA_BODY_DEADLINE.as_secs()
        ))
    };
    while let Some(chunk) = tokio::time::timeout_at(deadline, payload.next())
        .await
        .map_err(|_| late())?
    {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > MAX_SCHEMA_BYTES {
            return Err(ApiError::TooLarge(format!(
                "a schema may be at most {} KiB",
                MAX_SCHEMA_BYTES / 1024
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body)
        .map_err(|_| ApiError::InvalidSchema("the schema is not UTF-8 text".into()))?;
    let name = query.into_inner().name;
    match state
        .schemas
        .add_async(&state.store, &owner.0, name, text)
        .await
    {
        Ok(info) => Ok(HttpResponse::Created().json(info)),
        Err(AddError::Invalid(reason)) => Err(ApiError::InvalidSchema(reason)),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}
