//! The schemas users can validate against: a few built in, any in `--schema-dir`, and those
//! a user added through the API (theirs alone).

use std::path::Path;

use datavista_shared::Schema;
use serde::Serialize;

use crate::identity::OwnerId;
use crate::store::{JobStore, StoreResult, StoredSchema};

/// Schemas one user may add.
const MAX_SCHEMAS_PER_OWNER: usize = 200;

const BUILT_IN: &[(&str, &str)] = &[
    ("people", include_str!("../schemas/people.json")),
    ("orders", include_str!("../schemas/orders.json")),
];

#[derive(Debug, Clone, Serialize)]
pub struct SchemaInfo {
    pub id: String,
    pub name: String,
    /// Shipped with the server or loaded from `--schema-dir` (shared by every user).
    pub shared: bool,
    pub fields: Vec<String>,
}

#[derive(Debug, Clone)]
struct Entry {
    info: SchemaInfo,
    schema: Schema,
    body: String,
}

/// The shared schemas, parsed once at start.
pub struct SchemaCatalog {
    shared: Vec<Entry>,
}

impl SchemaCatalog {
    pub fn load(schema_dir: Option<&Path>) -> Result<SchemaCatalog, String> {
        let mut shared = Vec::new();
        for (id, body) in BUILT_IN {
            shared.push(entry(id, body, true).map_err(|e| format!("built-in schema '{id}': {e}"))?);
        }
        if let Some(dir) = schema_dir {
            let files = std::fs::read_dir(dir)
                .map_err(|e| format!("cannot read the schema dir {}: {e}", dir.display()))?;
            let mut paths: Vec<_> = files.filter_map(|f| f.ok().map(|f| f.path())).collect();
            paths.sort();
            for path in paths
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
            {
                let id = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_owned();
                let body = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                shared
                    .push(entry(&id, &body, true).map_err(|e| format!("{}: {e}", path.display()))?);
            }
        }
        Ok(SchemaCatalog { shared })
    }

    /// Shared schemas first, then the owner's. Blocking.
    pub fn list(&self, store: &dyn JobStore, owner: &OwnerId) -> StoreResult<Vec<SchemaInfo>> {
        let mut list: Vec<SchemaInfo> = self.shared.iter().map(|e| e.info.clone()).collect();
        for stored in store.schemas(owner)? {
            if let Ok(e) = entry(&stored.id, &stored.body, false) {
                list.push(SchemaInfo {
                    name: stored.name,
                    ..e.info
                });
            }
        }
        Ok(list)
    }

    /// The schema with this id, if the owner may use it. Blocking.
    pub fn find(
        &self,
        store: &dyn JobStore,
        owner: &OwnerId,
        id: &str,
    ) -> StoreResult<Option<Schema>> {
        if let Some(entry) = self.shared.iter().find(|e| e.info.id == id) {
            return Ok(Some(entry.schema.clone()));
        }
        let stored = store.schemas(owner)?;
        Ok(stored
            .into_iter()
            .find(|s| s.id == id)
            .and_then(|s| Schema::from_json(&s.body).ok()))
    }

    /// The schema's JSON as it was given (the dashboard pre-checks files with it). Blocking.
    pub fn body(
        &self,
        store: &dyn JobStore,
        owner: &OwnerId,
        id: &str,
    ) -> StoreResult<Option<String>> {
        if let Some(entry) = self.shared.iter().find(|e| e.info.id == id) {
            return Ok(Some(entry.body.clone()));
        }
        Ok(store
            .schemas(owner)?
            .into_iter()
            .find(|s| s.id == id)
            .map(|s| s.body))
    }

    /// Check and keep a user's schema; the error is the shared crate's reason. Blocking.
    pub fn add(
        &self,
        store: &dyn JobStore,
        owner: &OwnerId,
        name: Option<String>,
        body: String,
    ) -> Result<SchemaInfo, AddError> {
        if store
            .schemas(owner)
            .map_err(|e| AddError::Store(e.to_string()))?
            .len()
            >= MAX_SCHEMAS_PER_OWNER
        {
            return Err(AddError::Invalid(format!(
                "you have {MAX_SCHEMAS_PER_OWNER} schemas already, the most one user may add"
            )));
        }
        let id = format!("s-{}", uuid::Uuid::new_v4());
        let parsed = entry(&id, &body, false).map_err(AddError::Invalid)?;
        let name = name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or(parsed.info.name.clone());
        let name: String = name.chars().filter(|c| !c.is_control()).take(100).collect();
        store
            .add_schema(
                owner,
                &StoredSchema {
                    id: id.clone(),
                    name: name.clone(),
                    body,
                },
            )
            .map_err(|e| AddError::Store(e.to_string()))?;
        Ok(SchemaInfo {
            name,
            ..parsed.info
        })
    }
}

pub enum AddError {
    Invalid(String),
    Store(String),
}

fn entry(id: &str, body: &str, shared: bool) -> Result<Entry, String> {
    let schema = Schema::from_json(body).map_err(|e| e.to_string())?;
    let title = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("title").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_else(|| id.to_owned());
    let fields = schema.fields.iter().map(|f| f.name.clone()).collect();
    Ok(Entry {
        info: SchemaInfo {
            id: id.to_owned(),
            name: title,
            shared,
            fields,
        },
        schema,
        body: body.to_owned(),
    })
}
