//! A field's `pattern` constraint: compiled once, matched against the whole cell.
//!
//! The server compiles a pattern with `regex` and, where it fits, a dense DFA. The browser
//! has no regex compiler: its parser, engines and Unicode tables were half of the dashboard's
//! download. It loads the DFAs the server built instead ([`Pattern::to_dfa_bytes`], sent as
//! `Schema::compiled_patterns`), so both sides walk the same automaton.

use std::sync::{Arc, OnceLock};

#[cfg(not(target_arch = "wasm32"))]
use regex_automata::meta::Regex;

use super::limits::Budget;
pub(super) use dense::Matcher;

/// A compiled `pattern`: matched against the whole cell.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub source: String,
    /// The server's general matcher, for patterns too big for a dense DFA. The regex crate's
    /// engine itself (the `regex` crate wraps it), used directly because it tells how much
    /// memory it took, which the schema's compile budget counts.
    #[cfg(not(target_arch = "wasm32"))]
    regex: Regex,
    /// The same language as a dense DFA: walking its table costs a few instructions a byte,
    /// where `Regex::is_match` spends hundreds per call on setup. On the server it is built
    /// with the schema, within the schema's DFA budget (the server keeps schemas compiled);
    /// in the browser it is loaded from the server's bytes. Shared by clones.
    dense: Arc<OnceLock<Option<dense::Matcher>>>,
}

impl Pattern {
    /// On the server a pattern that does not compile, or compiles past the schema's budget,
    /// is an error (said as the end of "constraint 'pattern' …"). The browser cannot tell (it
    /// has no regex parser): it takes the source as it is, the server having checked it.
    #[cfg(not(target_arch = "wasm32"))]
    pub(super) fn new(source: &str, budget: &mut Budget) -> Result<Pattern, String> {
        let limit = budget.pattern_bytes_left();
        // Anchored: Table Schema patterns match the whole value. The engine runs in linear
        // time, so a hostile pattern cannot stall validation.
        let regex = Regex::builder()
            .configure(
                Regex::config()
                    .nfa_size_limit(Some(limit))
                    // Each thread matching the pattern keeps a lazy DFA cache this big.
                    .hybrid_cache_capacity(limit.max(1 << 16)),
            )
            .build(&anchored(source))
            .map_err(|e| match e.size_limit() {
                Some(_) => format!(
                    "is too big once compiled: a pattern may take {} KiB, and all of a schema's {} MiB",
                    super::limits::MAX_PATTERN_BYTES >> 10,
                    super::limits::MAX_COMPILED_BYTES >> 20
                ),
                None => format!("is not a valid regular expression: {e}"),
            })?;
        budget.add_compiled(regex.memory_usage());
        let dfa_limit = dense::SIZE_LIMIT.min(budget.dfa_bytes_left());
        let attempt = (dfa_limit > 0).then(|| dense::build_dfa(&anchored(source), dfa_limit));
        // What the attempt cost: a DFA's size, or its allowance when it grew past it. A
        // pattern a DFA cannot express (Unicode `\b`) is refused before it grows.
        budget.add_dfa(match &attempt {
            Some(Ok(dfa)) => dfa.memory_usage(),
            Some(Err(dense::NoDfa::TooBig)) => dfa_limit,
            _ => 0,
        });
        let matcher = attempt.and_then(Result::ok);
        // Left empty without a DFA: one loaded later (as in the browser) may still go in.
        let dense = Arc::new(OnceLock::new());
        if let Some(matcher) = matcher.and_then(dense::Matcher::from_dfa) {
            let _ = dense.set(Some(matcher));
        }
        Ok(Pattern {
            regex,
            source: source.to_owned(),
            dense,
        })
    }

    #[cfg(target_arch = "wasm32")]
    pub(super) fn new(source: &str, _budget: &mut Budget) -> Result<Pattern, String> {
        Ok(Pattern {
            source: source.to_owned(),
            dense: Default::default(),
        })
    }

    /// Whether the whole cell matches. In the browser, a pattern whose DFA was not loaded
    /// passes every cell: see [`Pattern::is_checked_here`].
    pub fn is_match(&self, cell: &str) -> bool {
        #[cfg(not(target_arch = "wasm32"))]
        if self.dense().is_none() {
            return self.regex.is_match(cell);
        }
        self.is_match_utf8(cell.as_bytes())
    }

    /// [`Pattern::is_match`] on the bytes of a cell that is known to be UTF-8.
    #[inline]
    pub fn is_match_utf8(&self, cell: &[u8]) -> bool {
        match self.dense() {
            Some(dense) => dense.is_match(cell),
            #[cfg(not(target_arch = "wasm32"))]
            None => std::str::from_utf8(cell).is_ok_and(|cell| self.regex.is_match(cell)),
            #[cfg(target_arch = "wasm32")]
            None => true,
        }
    }

    /// Whether cells are really held to this pattern here: always on the server; in the
    /// browser once its DFA is loaded (the server sends none for a pattern too big for one).
    pub fn is_checked_here(&self) -> bool {
        #[cfg(not(target_arch = "wasm32"))]
        return true;
        #[cfg(target_arch = "wasm32")]
        return self.dense().is_some();
    }

    /// The pattern's dense DFA in regex-automata's little-endian wire form, for the browser;
    /// `None` when the pattern is too big for one (or uses Unicode `\b`).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn to_dfa_bytes(&self) -> Option<Vec<u8>> {
        // Only a pattern given a DFA within the schema's budget gets one again here.
        self.dense()?;
        let dfa = dense::build_dfa(&anchored(&self.source), dense::SIZE_LIMIT).ok()?;
        let (bytes, padding) = dfa.to_bytes_little_endian();
        Some(bytes[padding..].to_vec())
    }

    /// Match with `matcher` from now on, in this pattern and its clones. Ignored when a
    /// matcher is already in place.
    pub(super) fn use_matcher(&self, matcher: Matcher) {
        let _ = self.dense.set(Some(matcher));
    }

    /// Whether a dense matcher is in place (built here or loaded).
    #[cfg(all(test, not(target_arch = "wasm32")))]
    pub(super) fn has_dense_matcher(&self) -> bool {
        self.dense.get().is_some_and(Option::is_some)
    }

    fn dense(&self) -> Option<&dense::Matcher> {
        self.dense.get().and_then(Option::as_ref)
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn anchored(source: &str) -> String {
    format!("^(?:{source})$")
}

mod dense {
    use std::collections::HashMap;

    use regex_automata::dfa::{dense, Automaton};
    use regex_automata::util::{primitives::StateID, start};
    use regex_automata::Anchored;

    /// Past this a pattern stays with `Regex`'s lazy DFA, which bounds its own memory. It also
    /// bounds the time spent trying: ~40 ms for a pattern that turns out too big.
    #[cfg(not(target_arch = "wasm32"))]
    pub const SIZE_LIMIT: usize = 1 << 19;

    /// Up to this many states the DFA is flattened into one table of 256 entries a state.
    const TABLE_STATES: usize = 256;

    /// Up to this many byte classes (bytes that no state tells apart share one), the table
    /// also gets a two-bytes-a-step form.
    const PAIR_CLASSES: usize = 16;

    /// 256 entries a state, for the states found (a few KiB for most patterns).
    type Transitions = Box<[u16]>;

    #[derive(Debug)]
    pub enum Matcher {
        Table(Box<Table>),
        Dfa {
            dfa: Box<dense::DFA<Vec<u32>>>,
            start: StateID,
        },
    }

    /// The DFA flattened: states are numbered in multiples of 256, so `state | byte` indexes a
    /// row. One load a step (its bounds check is off the chain of loads), where the DFA's own
    /// walk maps each byte to its class and checks for special states on every step.
    #[derive(Debug)]
    pub struct Table {
        /// `next[state | byte]`: the state after `byte`.
        next: Transitions,
        /// `accepts[state >> 8]`: the input may end in that state.
        accepts: Box<[bool; TABLE_STATES]>,
        pairs: Option<Pairs>,
    }

    /// Two bytes a step. Each step waits for the table load of the step before it (~5 cycles),
    /// so halving the steps nearly halves the time of a long cell.
    #[derive(Debug)]
    struct Pairs {
        class: [u8; 256],
        /// `next[state | class(a) << 4 | class(b)]`: the state after the bytes `a`, `b`.
        next: Transitions,
    }

    impl Matcher {
        /// A DFA in regex-automata's wire form, as [`build_dfa`]'s DFA serializes.
        pub fn from_bytes(bytes: &[u8]) -> Result<Matcher, String> {
            // The wire form is read in place as `u32`s, so it must start on a 4-byte
            // boundary; regex-automata skips up to 7 leading zero bytes, which is how it is
            // shifted there without `unsafe`.
            let mut aligned = vec![0u8; bytes.len() + 3];
            let padding = aligned.as_ptr().align_offset(4);
            if padding > 3 {
                return Err("cannot align the pattern's DFA".into());
            }
            aligned[padding..padding + bytes.len()].copy_from_slice(bytes);
            let (dfa, _) = dense::DFA::from_bytes(&aligned[..padding + bytes.len()])
                .map_err(|e| format!("the pattern's DFA is damaged: {e}"))?;
            Matcher::from_dfa(dfa.to_owned())
                .ok_or_else(|| "the pattern's DFA has no anchored start".into())
        }

        pub fn from_dfa(dfa: dense::DFA<Vec<u32>>) -> Option<Matcher> {
            let start = dfa
                .start_state(&start::Config::new().anchored(Anchored::Yes))
                .ok()?;
            match Table::build(&dfa, start) {
                Some(table) => Some(Matcher::Table(Box::new(table))),
                None => Some(Matcher::Dfa {
                    dfa: Box::new(dfa),
                    start,
                }),
            }
        }

        /// The pattern is anchored at both ends, so the cell matches exactly when the state
        /// after its last byte and the end of input is a match state.
        pub fn is_match(&self, bytes: &[u8]) -> bool {
            match self {
                Matcher::Table(table) => table.is_match(bytes),
                Matcher::Dfa { dfa, start } => {
                    let mut state = *start;
                    for &byte in bytes {
                        state = dfa.next_state(state, byte);
                        if dfa.is_dead_state(state) {
                            return false;
                        }
                    }
                    dfa.is_match_state(dfa.next_eoi_state(state))
                }
            }
        }

        /// Whether the cell walks two bytes a step (for the tests).
        #[cfg(all(test, not(target_arch = "wasm32")))]
        pub fn has_pairs(&self) -> bool {
            matches!(self, Matcher::Table(table) if table.pairs.is_some())
        }
    }

    /// Why a pattern has no dense DFA.
    #[cfg(not(target_arch = "wasm32"))]
    pub enum NoDfa {
        /// It grew past its size limit.
        TooBig,
        /// It uses what a DFA cannot express (Unicode `\b`).
        Inexpressible,
    }

    /// The dense DFA of an anchored pattern, within `size_limit` (at most `SIZE_LIMIT`).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn build_dfa(
        anchored_pattern: &str,
        size_limit: usize,
    ) -> Result<dense::DFA<Vec<u32>>, NoDfa> {
        use regex_automata::{dfa::StartKind, MatchKind};
        let config = dense::Config::new()
            // "Is there any match", with no leftmost-first pruning of other threads.
            .match_kind(MatchKind::All)
            .start_kind(StartKind::Anchored)
            .dfa_size_limit(Some(size_limit))
            .determinize_size_limit(Some(size_limit));
        dense::Builder::new()
            .configure(config)
            .build(anchored_pattern)
            .map_err(|e| match e.is_size_limit_exceeded() {
                true => NoDfa::TooBig,
                false => NoDfa::Inexpressible,
            })
    }

    impl Table {
        /// The states reachable from `start`, numbered in the order they are found (start is
        /// 0), with every transition; `None` past `TABLE_STATES`.
        fn build(dfa: &dense::DFA<Vec<u32>>, start: StateID) -> Option<Table> {
            let mut found = vec![start];
            let mut numbers = HashMap::from([(start, 0u16)]);
            let mut next = Vec::new();
            let mut accepts = Box::new([false; TABLE_STATES]);
            let mut row = 0;
            while let Some(&state) = found.get(row) {
                next.resize((row + 1) << 8, 0);
                for byte in 0..=255u8 {
                    let target = dfa.next_state(state, byte);
                    let number = match numbers.get(&target) {
                        Some(&number) => number,
                        None if found.len() < TABLE_STATES => {
                            let number = found.len() as u16;
                            found.push(target);
                            numbers.insert(target, number);
                            number
                        }
                        None => return None,
                    };
                    next[row << 8 | usize::from(byte)] = number << 8;
                }
                accepts[row] = dfa.is_match_state(dfa.next_eoi_state(state));
                row += 1;
            }
            let next = next.into_boxed_slice();
            let pairs = Pairs::build(&next, found.len());
            Some(Table {
                next,
                accepts,
                pairs,
            })
        }

        #[inline]
        fn is_match(&self, bytes: &[u8]) -> bool {
            // The dead state loops to itself: no need to stop early on short cells.
            let mut state = 0u16;
            let mut rest = bytes;
            if let Some(pairs) = &self.pairs {
                let mut steps = bytes.chunks_exact(2);
                for pair in &mut steps {
                    let a = pairs.class[usize::from(pair[0])];
                    let b = pairs.class[usize::from(pair[1])];
                    state = pairs.next[usize::from(state | u16::from(a << 4 | b))];
                }
                rest = steps.remainder();
            }
            for &byte in rest {
                state = self.next[usize::from(state | u16::from(byte))];
            }
            self.accepts[usize::from(state >> 8)]
        }
    }

    impl Pairs {
        /// `None` past `PAIR_CLASSES` classes.
        fn build(next: &Transitions, states: usize) -> Option<Pairs> {
            // A byte's column: where it leads from every state.
            let column = |byte: usize| -> Vec<u16> {
                (0..states).map(|state| next[state << 8 | byte]).collect()
            };
            let mut class = [0u8; 256];
            let mut examples: Vec<(Vec<u16>, usize)> = Vec::new();
            for (byte, class) in class.iter_mut().enumerate() {
                let column = column(byte);
                *class = match examples.iter().position(|(seen, _)| *seen == column) {
                    Some(known) => known as u8,
                    None if examples.len() < PAIR_CLASSES => {
                        examples.push((column, byte));
                        (examples.len() - 1) as u8
                    }
                    None => return None,
                };
            }
            let mut pairs = vec![0; states << 8].into_boxed_slice();
            for state in 0..states {
                for (a, &(_, first)) in examples.iter().enumerate() {
                    let middle = next[state << 8 | first];
                    for (b, &(_, second)) in examples.iter().enumerate() {
                        let target = next[usize::from(middle) | second];
                        pairs[state << 8 | a << 4 | b] = target;
                    }
                }
            }
            Some(Pairs { class, next: pairs })
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::{Budget, Pattern};

    /// The dense DFA must give `Regex`'s answer for every pattern it is built for.
    #[test]
    fn the_dense_matcher_agrees_with_regex() {
        let patterns = [
            r"[a-z0-9.]+@[a-z]+\.(org|com|net)",
            "a|ab",
            "a$|ab",
            r"(?m)a$\n?|.*",
            r"\d{3}-\d{4}",
            "[A-Z]{2}",
            r"\w+ \w+",
            "(foo)?bar|baz*",
            "é+.ü",
            "",
        ];
        let inputs = [
            "",
            "a",
            "ab",
            "abc",
            "a\n",
            "x.y@example.org",
            "x@example.con",
            "555-1234",
            "55-1234",
            "DE",
            "DEU",
            "hello wörld",
            "foobar",
            "bar",
            "bazzz",
            "ééé✓ü",
            "éü",
        ];
        let (mut tables, mut pairs) = (0, 0);
        for source in patterns {
            let pattern = Pattern::new(source, &mut Budget::default()).unwrap();
            let dense = pattern.dense().expect("builds as a dense DFA");
            tables += matches!(dense, super::dense::Matcher::Table(_)) as usize;
            pairs += dense.has_pairs() as usize;
            for input in inputs {
                assert_eq!(
                    pattern.is_match(input),
                    pattern.regex.is_match(input),
                    "pattern {source:?} on {input:?}"
                );
            }
        }
        // Every kind of matcher is held to the regex: small DFAs as one flat table, walked
        // two bytes a step when they have few byte classes, bigger ones (Unicode classes) in
        // the DFA's own form.
        assert!(tables > 0 && tables < patterns.len(), "{tables} tables");
        assert!(
            pairs > 0 && pairs < tables,
            "{pairs} of {tables} tables walk pairs"
        );
        assert!(Pattern::new(patterns[0], &mut Budget::default())
            .unwrap()
            .dense()
            .unwrap()
            .has_pairs());
    }

    proptest::proptest! {
        /// Random cells, odd and even lengths, through every kind of matcher.
        #[test]
        fn the_dense_matcher_agrees_with_regex_on_random_cells(cell in "[a-z0-9.@é ]{0,30}") {
            // Built once: a DFA for Unicode classes takes tens of milliseconds.
            static PATTERNS: std::sync::LazyLock<Vec<Pattern>> = std::sync::LazyLock::new(|| {
                [r"[a-z0-9.]+@[a-z]+\.(org|com|net)", "(ab|a.)*", r"\w+ \w+", "[a-z]*é?"]
                    .into_iter()
                    .map(|source| Pattern::new(source, &mut Budget::default()).unwrap())
                    .collect()
            });
            for pattern in PATTERNS.iter() {
                proptest::prop_assert_eq!(pattern.is_match(&cell), pattern.regex.is_match(&cell));
            }
        }
    }
}
