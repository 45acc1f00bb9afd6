//! A schema's `pattern` constraints as the server compiled them, for the browser.
//!
//! The browser carries no regex compiler, so the server sends each pattern's dense DFA in
//! regex-automata's own wire form (which regex-automata checks when it reads it back). The
//! envelope around them:
//!
//! ```text
//! "DVP1" | number of patterns u32
//! per pattern: field index u32 | source length u32 | source | DFA length u32 | DFA
//! ```
//!
//! All integers are little-endian. A DFA length of 0 means the pattern is too big for a dense
//! DFA: the browser leaves it to the server.

use super::pattern::Matcher;
use super::Schema;

const MAGIC: &[u8; 4] = b"DVP1";

impl Schema {
    /// Every `pattern` of this schema, compiled for [`Schema::load_compiled_patterns`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn compiled_patterns(&self) -> Vec<u8> {
        let patterns: Vec<_> = (self.fields.iter().enumerate())
            .filter_map(|(index, field)| Some((index, field.constraints.pattern.as_ref()?)))
            .collect();
        let mut out = MAGIC.to_vec();
        put_u32(&mut out, patterns.len());
        for (index, pattern) in patterns {
            let dfa = pattern.to_dfa_bytes().unwrap_or_default();
            put_u32(&mut out, index);
            put_u32(&mut out, pattern.source.len());
            out.extend_from_slice(pattern.source.as_bytes());
            put_u32(&mut out, dfa.len());
            out.extend_from_slice(&dfa);
        }
        out
    }

    /// Match this schema's patterns (and its clones') with the DFAs in `bytes`, from
    /// [`Schema::compiled_patterns`] of the same schema. Returns how many were loaded.
    /// Bytes for another schema, truncated or damaged, are an error and load nothing.
    pub fn load_compiled_patterns(&self, bytes: &[u8]) -> Result<usize, String> {
        let mut rest = bytes
            .strip_prefix(MAGIC)
            .ok_or("the compiled patterns do not start with DVP1")?;
        // Read everything before loading anything, so a bad entry leaves no half-loaded schema.
        let mut dfas = Vec::new();
        for _ in 0..take_u32(&mut rest)? {
            let index = take_u32(&mut rest)?;
            let source_len = take_u32(&mut rest)?;
            let source = take(&mut rest, source_len)?;
            let dfa_len = take_u32(&mut rest)?;
            let dfa = take(&mut rest, dfa_len)?;
            let pattern = self
                .fields
                .get(index)
                .and_then(|field| field.constraints.pattern.as_ref())
                .filter(|pattern| pattern.source.as_bytes() == source)
                .ok_or_else(|| format!("compiled pattern {index} is not this schema's"))?;
            if !dfa.is_empty() {
                dfas.push((pattern, Matcher::from_bytes(dfa)?));
            }
        }
        if !rest.is_empty() {
            return Err("the compiled patterns have bytes past their end".into());
        }
        let loaded = dfas.len();
        for (pattern, matcher) in dfas {
            pattern.use_matcher(matcher);
        }
        Ok(loaded)
    }

    /// The fields whose `pattern` is not checked here: in the browser, those whose DFA was
    /// not loaded. Always empty on the server.
    pub fn patterns_not_checked_here(&self) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|field| {
                field
                    .constraints
                    .pattern
                    .as_ref()
                    .is_some_and(|pattern| !pattern.is_checked_here())
            })
            .map(|field| field.name.as_str())
            .collect()
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn put_u32(out: &mut Vec<u8>, value: usize) {
    let value = u32::try_from(value).expect("a schema's pattern is under 4 GiB");
    out.extend_from_slice(&value.to_le_bytes());
}

fn take<'a>(rest: &mut &'a [u8], len: usize) -> Result<&'a [u8], String> {
    if rest.len() < len {
        return Err("the compiled patterns are cut short".into());
    }
    let (head, tail) = rest.split_at(len);
    *rest = tail;
    Ok(head)
}

fn take_u32(rest: &mut &[u8]) -> Result<usize, String> {
    let bytes = take(rest, 4)?;
    let value = u32::from_le_bytes(bytes.try_into().expect("four bytes"));
    Ok(value as usize)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::super::Schema;

    fn regex_is_match(pattern: &str, cell: &str) -> bool {
        regex::Regex::new(&format!("^(?:{pattern})$"))
            .unwrap()
            .is_match(cell)
    }

    fn schema_json(patterns: &[&str]) -> String {
        let fields: Vec<_> = patterns
            .iter()
            .enumerate()
            .map(|(i, pattern)| serde_json::json!({"name": format!("f{i}"), "constraints": {"pattern": pattern}}))
            .collect();
        serde_json::json!({ "fields": fields }).to_string()
    }

    fn schema(patterns: &[&str]) -> Schema {
        Schema::from_json(&schema_json(patterns)).unwrap()
    }

    /// The schema as the browser loads it: no DFAs but those it is sent.
    fn browser_schema(patterns: &[&str]) -> Schema {
        Schema::from_json_without_dfas(&schema_json(patterns))
    }

    const PATTERNS: &[&str] = &[
        r"[a-z0-9.]+@[a-z]+\.(org|com|net)",
        "ORD-[0-9]{6}",
        r"\w+ \w+",
        "é+.ü",
        "",
    ];
    const CELLS: &[&str] = &[
        "",
        "x.y@example.org",
        "x@example.con",
        "ORD-123456",
        "ORD-12345",
        "hello wörld",
        "ééé✓ü",
    ];

    /// A fresh copy of the schema, as the browser parses it, matching with the loaded DFAs
    /// only: every answer must be the server's.
    #[test]
    fn loaded_patterns_give_the_servers_answers() {
        let server = schema(PATTERNS);
        let browser = browser_schema(PATTERNS);
        assert_eq!(
            browser.load_compiled_patterns(&server.compiled_patterns()),
            Ok(PATTERNS.len())
        );
        for (source, field) in PATTERNS.iter().zip(&browser.fields) {
            let loaded = field.constraints.pattern.as_ref().unwrap();
            assert!(loaded.has_dense_matcher());
            for cell in CELLS {
                assert_eq!(
                    loaded.is_match(cell),
                    regex_is_match(source, cell),
                    "{source:?} on {cell:?}"
                );
            }
        }
    }

    #[test]
    fn a_pattern_too_big_for_a_dfa_is_sent_without_one() {
        // Unicode word boundaries are beyond a DFA.
        let server = schema(&[r"\bword\b", "[0-9]+"]);
        let browser = browser_schema(&[r"\bword\b", "[0-9]+"]);
        assert_eq!(
            browser.load_compiled_patterns(&server.compiled_patterns()),
            Ok(1)
        );
        assert!(!browser.fields[0]
            .constraints
            .pattern
            .as_ref()
            .unwrap()
            .has_dense_matcher());
        assert!(browser.fields[1]
            .constraints
            .pattern
            .as_ref()
            .unwrap()
            .has_dense_matcher());
    }

    /// Patterns a DFA cannot express cost the schema's DFA budget nothing: the pattern after
    /// twenty of them still gets its DFA.
    #[test]
    fn patterns_beyond_a_dfa_leave_the_dfa_budget_to_the_others() {
        let mut patterns: Vec<String> = (0..20).map(|i| format!(r"\bword{i}\b")).collect();
        patterns.push("[0-9]+".into());
        let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
        let server = schema(&patterns);
        let last = server.fields[20].constraints.pattern.as_ref().unwrap();
        assert!(last.has_dense_matcher());
    }

    #[test]
    fn bytes_for_another_schema_are_refused() {
        let bytes = schema(&["[0-9]+"]).compiled_patterns();
        let other = browser_schema(&["[a-z]+"]);
        let error = other.load_compiled_patterns(&bytes).unwrap_err();
        assert_eq!(error, "compiled pattern 0 is not this schema's");
        assert!(!other.fields[0]
            .constraints
            .pattern
            .as_ref()
            .unwrap()
            .has_dense_matcher());
        assert!(schema(&[]).load_compiled_patterns(&bytes).is_err());
    }

    /// Every cut and every flipped byte gives an error or a working schema, never a panic.
    #[test]
    fn truncated_or_damaged_bytes_are_errors_not_panics() {
        let bytes = schema(&["ORD-[0-9]{6}", "[a-z]+"]).compiled_patterns();
        for cut in 0..bytes.len() {
            let truncated = browser_schema(&["ORD-[0-9]{6}", "[a-z]+"]);
            assert!(
                truncated.load_compiled_patterns(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x5a;
            let browser = browser_schema(&["ORD-[0-9]{6}", "[a-z]+"]);
            if browser.load_compiled_patterns(&damaged).is_ok() {
                // A flip regex-automata's checks let through still yields a usable DFA.
                let _ = browser.fields[0]
                    .constraints
                    .pattern
                    .as_ref()
                    .unwrap()
                    .is_match("ORD-1");
            }
        }
        assert_eq!(
            schema(&[]).load_compiled_patterns(b"nope"),
            Err("the compiled patterns do not start with DVP1".into())
        );
    }
}
