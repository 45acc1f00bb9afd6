//! What both backends write and read alike: the shared SQL fragments and the stored form of
//! values (job states, field names, schema listings).

use datavista_shared::protocol::JobState;

use super::{ListedFields, SchemaListing, StoreError, StoreResult};

/// A job that has not reached a final state ([`JobState::is_final`]): every state it names is
/// one that is not final. PostgreSQL's partial index `jobs_unfinished` (in a migration, which
/// cannot change for existing databases) has the same predicate and must stay equal to it, or
/// the queries that use this filter no longer use the index.
pub const UNFINISHED: &str = "state IN ('uploading', 'queued', 'validating')";

/// A job's columns, in the order the backends' `job_from_row` reads them.
pub const JOB_COLUMNS: &str =
    "id, file_name, schema_id, state, bytes_done, bytes_total, rows, errors, error_counts, reason, created_at, updated_at";

/// A token's columns, in the order the backends' `token_from_row` reads them.
pub const TOKEN_COLUMNS: &str = "id, owner_id, hint, created_at, expires_at";

/// A state as the `state` column holds it.
pub fn state(stored: String) -> StoreResult<JobState> {
    serde_json::from_value(serde_json::Value::String(stored.clone())).map_err(|source| {
        StoreError::Corrupt {
            what: "the job state",
            value: stored,
            source,
        }
    })
}

/// Counts per stored state, read as states.
pub fn counts_by_state(counts: Vec<(String, u64)>) -> StoreResult<Vec<(JobState, u64)>> {
    counts
        .into_iter()
        .map(|(stored, count)| Ok((state(stored)?, count)))
        .collect()
}

/// Field names as the store keeps them: a JSON array of strings.
pub fn field_names_json(fields: &[String]) -> String {
    // A list of strings always serializes.
    serde_json::to_string(fields).expect("strings serialize")
}

/// Field names from their stored column; none when they were not kept.
pub fn field_names(stored: Option<String>) -> Vec<String> {
    stored
        .and_then(|f| serde_json::from_str(&f).ok())
        .unwrap_or_default()
}

/// A listing from its stored columns: the names when they were kept, else the body.
pub fn listing(
    id: String,
    name: String,
    fields: Option<String>,
    body: Option<String>,
) -> SchemaListing {
    let fields = match fields.and_then(|f| serde_json::from_str(&f).ok()) {
        Some(names) => ListedFields::Names(names),
        None => ListedFields::InBody(body.unwrap_or_default()),
    };
    SchemaListing { id, name, fields }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every state. The match has no wildcard, so a new state stops compiling here until it
    /// is in the list too.
    fn every_state() -> [JobState; 7] {
        use JobState::*;
        let all = [
            Uploading, Queued, Validating, Valid, Invalid, Failed, Cancelled,
        ];
        for state in all {
            match state {
                Uploading | Queued | Validating | Valid | Invalid | Failed | Cancelled => {}
            }
        }
        all
    }

    #[test]
    fn unfinished_names_exactly_the_states_that_are_not_final() {
        for state in every_state() {
            let named = UNFINISHED.contains(&format!("'{}'", state.as_str()));
            assert_eq!(named, !state.is_final(), "{state:?}");
        }
        let names = UNFINISHED.matches('\'').count() / 2;
        let unfinished = every_state().iter().filter(|s| !s.is_final()).count();
        assert_eq!(names, unfinished, "{UNFINISHED} names something else too");
    }

    #[test]
    fn states_are_read_back_and_an_unknown_one_is_an_error() {
        for state in every_state() {
            assert_eq!(super::state(state.as_str().to_owned()).unwrap(), state);
        }
        let unknown = super::state("paused".to_owned()).unwrap_err();
        assert!(matches!(unknown, StoreError::Corrupt { .. }), "{unknown}");
    }
}
