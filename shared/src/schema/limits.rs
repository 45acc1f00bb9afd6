//! Bounds on what one schema may ask for. A schema is user input: the server parses and
//! compiles every schema it is given, and keeps them. Each bound is checked while the schema
//! loads, and a schema past one is refused with a message that names the limit, so a few
//! kilobytes of JSON can never cost gigabytes of memory or seconds of compiling.

use super::SchemaError;

/// Fields in one schema: as many as the cells a row may have
/// ([`crate::Limits::max_cells_per_row`]'s default). Each field costs little, since lists
/// shared by fields are not copied.
pub const MAX_FIELDS: usize = 100_000;

/// Characters in a field name or a `format`: they are echoed in every error message.
pub const MAX_NAME_CHARS: usize = 200;

/// Characters in a title or a description.
pub const MAX_TEXT_CHARS: usize = 10_000;

/// Entries in one `missingValues`, `trueValues` or `falseValues` list.
pub const MAX_LIST_VALUES: usize = 1_000;

/// `enum` values in one schema, all fields together (country or postcode lists fit).
pub const MAX_ENUM_VALUES: usize = 100_000;

/// Fields with a `pattern` in one schema.
pub const MAX_PATTERNS: usize = 64;

/// Memory one compiled `pattern` may take (the regex crate's default is 10 MiB).
pub const MAX_PATTERN_BYTES: usize = 1 << 20;

/// Memory all of a schema's compiled patterns may take together.
pub const MAX_COMPILED_BYTES: usize = 8 << 20;

/// Memory (and so time: building a DFA is linear in its size) spent on the dense DFAs that
/// speed patterns up and let the browser check them. Past it, a pattern is still checked on
/// the server, by its regex: this budget degrades speed, never a verdict.
pub const MAX_DFA_BYTES: usize = 8 << 20;

/// What loading one schema has used of the limits above.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    patterns: usize,
    enum_values: usize,
    compiled_bytes: usize,
    dfa_bytes: usize,
}

impl Budget {
    /// A budget with no room for DFAs.
    #[cfg(all(test, not(target_arch = "wasm32")))]
    pub(crate) fn without_dfas() -> Budget {
        Budget {
            dfa_bytes: MAX_DFA_BYTES,
            ..Budget::default()
        }
    }

    pub(crate) fn add_pattern(&mut self) -> Result<(), SchemaError> {
        self.patterns += 1;
        check(self.patterns, MAX_PATTERNS, "fields with a 'pattern'")
    }

    pub(crate) fn add_enum_values(&mut self, count: usize) -> Result<(), SchemaError> {
        self.enum_values += count;
        check(self.enum_values, MAX_ENUM_VALUES, "'enum' values in all")
    }

    /// How much the next compiled pattern may take.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub(crate) fn pattern_bytes_left(&self) -> usize {
        MAX_PATTERN_BYTES.min(MAX_COMPILED_BYTES.saturating_sub(self.compiled_bytes))
    }

    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub(crate) fn add_compiled(&mut self, bytes: usize) {
        self.compiled_bytes += bytes;
    }

    /// How big the next dense DFA may grow.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub(crate) fn dfa_bytes_left(&self) -> usize {
        MAX_DFA_BYTES.saturating_sub(self.dfa_bytes)
    }

    /// An attempt at a DFA costs what it built, or its whole allowance when it gave up.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub(crate) fn add_dfa(&mut self, bytes: usize) {
        self.dfa_bytes += bytes;
    }

    /// What the schema's patterns took, compiled: regexes and DFAs.
    pub(crate) fn compiled_bytes(&self) -> usize {
        self.compiled_bytes + self.dfa_bytes
    }
}

fn check(count: usize, limit: usize, what: &str) -> Result<(), SchemaError> {
    if count > limit {
        return Err(SchemaError::new(format!(
            "the schema has more than {limit} {what}, the most one schema may have"
        )));
    }
    Ok(())
}

/// A list of strings (`missingValues`, `trueValues`, …) within [`MAX_LIST_VALUES`].
pub(crate) fn check_list(len: usize, property: &str) -> Result<(), String> {
    if len > MAX_LIST_VALUES {
        return Err(format!(
            "'{property}' has {len} entries; at most {MAX_LIST_VALUES} are allowed"
        ));
    }
    Ok(())
}

/// A name or a text within its limit of characters.
pub(crate) fn check_chars(text: &str, limit: usize, property: &str) -> Result<(), String> {
    // Bytes bound characters from above: count only when that is not enough.
    if text.len() > limit && text.chars().count() > limit {
        return Err(format!(
            "'{property}' is longer than {limit} characters, the most allowed"
        ));
    }
    Ok(())
}
