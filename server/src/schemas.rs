//! The schemas users can validate against: a few built in, any in `--schema-dir`, and those
//! a user added through the API (theirs alone).
//!
//! A schema is parsed and compiled (its patterns' regexes and DFAs) once: shared ones at
//! start, a user's when it is added, or when it is first used after a restart. The compiled
//! form is kept in a cache bounded by memory, so no request parses or compiles a schema the
//! server already knows, and listing schemas reads no bodies.

use std::path::Path;
use std::sync::Arc;

pub use datavista_shared::http::SchemaInfo;
use datavista_shared::{Dialect, Schema, SchemaError};

use crate::jobs::Rules;
use crate::owner::OwnerId;
use crate::store::{JobStore, ListedFields, StoreError, StoreResult, StoredSchema};

/// Schemas one user may add.
const MAX_SCHEMAS_PER_OWNER: usize = 200;

/// Memory for users' compiled schemas. A schema the cache dropped is compiled again when
/// next used.
const CACHE_BYTES: u64 = 256 << 20;

const BUILT_IN: &[(&str, &str)] = &[
    ("people", include_str!("../schemas/people.json")),
    ("orders", include_str!("../schemas/orders.json")),
];

/// A schema ready to use, with everything the API serves of it.
pub struct CompiledSchema {
    /// `None` for the shared schemas; a user's schema is served to that user only.
    owner: Option<OwnerId>,
    pub info: SchemaInfo,
    pub schema: Schema,
    /// The JSON as it was given (the dashboard pre-checks files with it).
    pub body: String,
    /// The patterns' DFAs for the dashboard (`GET /api/schemas/{id}/patterns`).
    pub patterns: Vec<u8>,
}

impl CompiledSchema {
    fn compile(
        id: &str,
        body: &str,
        owner: Option<OwnerId>,
    ) -> Result<CompiledSchema, SchemaError> {
        let schema = Schema::from_json(body)?;
        let title = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("title").and_then(|t| t.as_str()).map(clean_name))
            .unwrap_or_else(|| id.to_owned());
        let fields = schema.fields.iter().map(|f| f.name.clone()).collect();
        Ok(CompiledSchema {
            info: SchemaInfo {
                id: id.to_owned(),
                name: title,
                shared: owner.is_none(),
                fields,
            },
            patterns: schema.compiled_patterns(),
            schema,
            body: body.to_owned(),
            owner,
        })
    }

    /// About the memory it holds: the parsed schema is a few times its JSON, and each field
    /// costs a few hundred bytes whatever its JSON (defaults such as boolean values).
    fn weight(&self) -> u64 {
        let parsed = 4 * self.body.len() + 512 * self.schema.fields.len();
        (parsed + self.schema.compiled_bytes() + self.patterns.len()) as u64
    }
}

#[derive(Clone)]
struct ByMemory;

impl quick_cache::Weighter<String, Arc<CompiledSchema>> for ByMemory {
    fn weight(&self, _id: &String, schema: &Arc<CompiledSchema>) -> u64 {
        schema.weight().max(1)
    }
}

pub struct SchemaCatalog {
    shared: Vec<Arc<CompiledSchema>>,
    /// Users' schemas by id, compiled.
    compiled: quick_cache::sync::Cache<String, Arc<CompiledSchema>, ByMemory>,
}

impl SchemaCatalog {
    pub fn load(schema_dir: Option<&Path>) -> Result<SchemaCatalog, SchemaLoadError> {
        let mut shared = Vec::new();
        let mut add = |id: &str, body: &str, place: &str| -> Result<(), SchemaLoadError> {
            let schema = CompiledSchema::compile(id, body, None).map_err(|source| {
                SchemaLoadError::Invalid {
                    place: place.to_owned(),
                    source,
                }
            })?;
            shared.push(Arc::new(schema));
            Ok(())
        };
        for (id, body) in BUILT_IN {
            add(id, body, &format!("built-in schema '{id}'"))?;
        }
        if let Some(dir) = schema_dir {
            let files = std::fs::read_dir(dir).map_err(|source| SchemaLoadError::ReadDir {
                dir: dir.to_owned(),
                source,
            })?;
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
                let body =
                    std::fs::read_to_string(&path).map_err(|source| SchemaLoadError::ReadFile {
                        path: path.clone(),
                        source,
                    })?;
                add(&id, &body, &path.display().to_string())?;
            }
        }
        Ok(SchemaCatalog {
            shared,
            // The cache's estimate of how many entries it holds, for its tables.
            compiled: quick_cache::sync::Cache::with_weighter(1_024, CACHE_BYTES, ByMemory),
        })
    }

    /// Shared schemas first, then the owner's. Reads no schema bodies (but of schemas
    /// stored before their field names were). Blocking.
    pub fn list(&self, store: &dyn JobStore, owner: &OwnerId) -> StoreResult<Vec<SchemaInfo>> {
        let mut list: Vec<SchemaInfo> = self.shared.iter().map(|e| e.info.clone()).collect();
        for stored in store.schemas(owner)? {
            let fields = match stored.fields {
                ListedFields::Names(names) => names,
                // Only the names are read: compiling the schema here would cost every list.
                ListedFields::InBody(body) => field_names(&body),
            };
            list.push(SchemaInfo {
                id: stored.id,
                name: stored.name,
                shared: false,
                fields,
            });
        }
        Ok(list)
    }

    /// The schema with this id, compiled, if the owner may use it. Blocking: on the first
    /// use after a restart it is read and compiled.
    pub fn find(
        &self,
        store: &dyn JobStore,
        owner: &OwnerId,
        id: &str,
    ) -> StoreResult<Option<Arc<CompiledSchema>>> {
        if let Some(schema) = self.shared.iter().find(|e| e.info.id == id) {
            return Ok(Some(schema.clone()));
        }
        // One compile however many ask for a schema at once (after a restart, say): the others
        // wait for it. Nothing is kept when it is not the owner's.
        let found = self.compiled.get_or_insert_with(id, || {
            let Some(stored) = store.schema(owner, id).map_err(Some)? else {
                return Err(None);
            };
            // Checked when added; one that no longer loads (a stricter server) is gone.
            let mut compiled =
                CompiledSchema::compile(id, &stored.body, Some(owner.clone())).map_err(|_| None)?;
            compiled.info.name = stored.name;
            Ok(Arc::new(compiled))
        });
        match found {
            Ok(schema) => Ok((schema.owner.as_ref() == Some(owner)).then_some(schema)),
            Err(None) => Ok(None),
            Err(Some(e)) => Err(e),
        }
    }

    /// The rules a file is validated by, under the schema with this id: the structural checks
    /// alone without one; `None` when the owner may use no schema with this id. The one place
    /// both a new upload and a job taken over resolve their schema. Blocking, as [`Self::find`].
    pub fn rules(
        &self,
        store: &dyn JobStore,
        owner: &OwnerId,
        schema_id: Option<&str>,
    ) -> StoreResult<Option<Rules>> {
        let Some(id) = schema_id else {
            return Ok(Some(Rules {
                schema: Schema::structural_only(),
                dialect: Dialect::default(),
            }));
        };
        Ok(self.find(store, owner, id)?.map(|compiled| Rules {
            schema: compiled.schema.clone(),
            dialect: Dialect::default(),
        }))
    }

    /// Check, compile and keep a user's schema; the error is the shared crate's reason.
    /// Blocking.
    pub fn add(
        &self,
        store: &dyn JobStore,
        owner: &OwnerId,
        name: Option<String>,
        body: String,
    ) -> Result<SchemaInfo, AddError> {
        let id = format!("s-{}", uuid::Uuid::new_v4());
        let mut compiled = CompiledSchema::compile(&id, &body, Some(owner.clone()))
            .map_err(|e| AddError::Invalid(e.to_string()))?;
        if let Some(name) = name.map(|n| clean_name(&n)).filter(|n| !n.is_empty()) {
            compiled.info.name = name;
        }
        let stored = StoredSchema {
            id: id.clone(),
            name: compiled.info.name.clone(),
            body,
            fields: compiled.info.fields.clone(),
        };
        let added = store.add_schema(owner, &stored, MAX_SCHEMAS_PER_OWNER)?;
        if !added {
            return Err(AddError::Invalid(format!(
                "you have {MAX_SCHEMAS_PER_OWNER} schemas already, the most one user may add"
            )));
        }
        let info = compiled.info.clone();
        self.compiled.insert(id, Arc::new(compiled));
        Ok(info)
    }
}

/// The async surface the routes call: each does its own blocking, as its blocking twin
/// above says.
impl SchemaCatalog {
    pub async fn list_async(
        self: &Arc<Self>,
        store: &Arc<dyn JobStore>,
        owner: &OwnerId,
    ) -> Result<Vec<SchemaInfo>, LookupError> {
        let (catalog, store, owner) = (self.clone(), store.clone(), owner.clone());
        Ok(tokio::task::spawn_blocking(move || catalog.list(store.as_ref(), &owner)).await??)
    }

    pub async fn find_async(
        self: &Arc<Self>,
        store: &Arc<dyn JobStore>,
        owner: &OwnerId,
        id: &str,
    ) -> Result<Option<Arc<CompiledSchema>>, LookupError> {
        let (catalog, store) = (self.clone(), store.clone());
        let (owner, id) = (owner.clone(), id.to_owned());
        let found = tokio::task::spawn_blocking(move || catalog.find(store.as_ref(), &owner, &id));
        Ok(found.await??)
    }

    pub async fn rules_async(
        self: &Arc<Self>,
        store: &Arc<dyn JobStore>,
        owner: &OwnerId,
        schema_id: Option<&str>,
    ) -> Result<Option<Rules>, LookupError> {
        let (catalog, store) = (self.clone(), store.clone());
        let (owner, id) = (owner.clone(), schema_id.map(str::to_owned));
        let rules = tokio::task::spawn_blocking(move || {
            catalog.rules(store.as_ref(), &owner, id.as_deref())
        });
        Ok(rules.await??)
    }

    pub async fn add_async(
        self: &Arc<Self>,
        store: &Arc<dyn JobStore>,
        owner: &OwnerId,
        name: Option<String>,
        body: String,
    ) -> Result<SchemaInfo, AddError> {
        let (catalog, store, owner) = (self.clone(), store.clone(), owner.clone());
        tokio::task::spawn_blocking(move || catalog.add(store.as_ref(), &owner, name, body)).await?
    }
}

/// Why a schema could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a schema lookup stopped: {0}")]
    Stopped(#[from] tokio::task::JoinError),
}

/// Why a user's schema was not added.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The schema cannot be used, or the user has as many as they may: the text says which.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("adding a schema stopped: {0}")]
    Stopped(#[from] tokio::task::JoinError),
}

/// Why the shared schemas (built in, and `--schema-dir`) could not be loaded at start.
#[derive(Debug, thiserror::Error)]
pub enum SchemaLoadError {
    #[error("{place}: {source}")]
    Invalid { place: String, source: SchemaError },
    #[error("cannot read the schema dir {}: {source}", dir.display())]
    ReadDir {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    ReadFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// The field names of a schema's JSON, without loading the schema.
fn field_names(body: &str) -> Vec<String> {
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let fields = json.get("fields").and_then(|f| f.as_array());
    fields
        .into_iter()
        .flatten()
        .filter_map(|field| Some(field.get("name")?.as_str()?.to_owned()))
        .collect()
}

/// A schema's name as a label: no control characters, 100 characters at most.
fn clean_name(name: &str) -> String {
    let clean: String = name.chars().filter(|c| !c.is_control()).take(100).collect();
    clean.trim().to_owned()
}
