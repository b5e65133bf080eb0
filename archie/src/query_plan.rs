//! [`QueryPlan`]: how a search query (term, substring, regex) becomes posting-list keys
//! that narrow the candidates, and the exact test each candidate line must then pass.
//!
//! The postings only ever narrow: every plan's candidates are a superset of the answer
//! (the postings know which lines hold which tokens or trigrams, not where, and keys are
//! case-folded, tokens hashed), and [`Verifier::matches`] decides. That keeps the answer
//! exactly what a scan of the lines would give.

use regex_syntax::hir::{Hir, HirKind};

use crate::error::ArchieError;

/// How `q` is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Words, each of which must be one of the line's tokens (`q` is split by the same
    /// `contracts::tokenizer`, so `text/html` asks for `text` and `html`;
    /// case-insensitive). The default.
    #[default]
    Term,
    /// A literal substring, case-sensitive, as `grep -F` finds it.
    Substring,
    /// A regular expression (Rust `regex` syntax), as `grep -P` would mostly find it.
    Regex,
}

/// How a plan narrows the candidates before the verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Narrowing {
    /// Token keys ([`crate::token_postings`]): a line is a candidate when it holds every
    /// one.
    Terms(Vec<u32>),
    /// Trigram sets ([`crate::trigram_postings`]): a line is a candidate when it holds
    /// every trigram of at least one set.
    Trigrams(Vec<Vec<u32>>),
}

impl Narrowing {
    /// Its name in search stats.
    pub fn name(&self) -> &'static str {
        match self {
            Narrowing::Terms(_) => "terms",
            Narrowing::Trigrams(_) => "trigrams",
        }
    }
}

/// The exact test a line must pass.
#[derive(Debug, Clone)]
pub enum Verifier {
    /// Every line matches (no query: browse by time).
    All,
    /// Every word must be a token of the line.
    Terms(Vec<String>),
    /// The line contains this text.
    Substring(String),
    /// The regex matches the line.
    Regex(regex::Regex),
}

impl Verifier {
    /// Whether `line` matches.
    pub fn matches(&self, line: &str) -> bool {
        match self {
            Verifier::All => true,
            Verifier::Terms(words) => words
                .iter()
                .all(|w| contracts::tokenizer::has_token(line, w)),
            Verifier::Substring(s) => line.contains(s.as_str()),
            Verifier::Regex(r) => r.is_match(line),
        }
    }
}

/// A search's plan: an optional narrowing, then the verifier.
#[derive(Debug, Clone)]
pub struct QueryPlan {
    /// What narrows the candidates; `None` scans every line of the time range.
    pub narrowing: Option<Narrowing>,
    /// The exact test.
    pub verifier: Verifier,
}

impl QueryPlan {
    /// Plans `q` in `mode`; an empty `q` matches every line.
    pub fn new(q: &str, mode: SearchMode) -> Result<QueryPlan, ArchieError> {
        if q.is_empty() {
            return Ok(QueryPlan {
                narrowing: None,
                verifier: Verifier::All,
            });
        }
        match mode {
            SearchMode::Term => {
                let words: Vec<String> =
                    contracts::tokenizer::tokens(q).map(str::to_owned).collect();
                if words.is_empty() {
                    return Err(ArchieError::BadRequest(format!(
                        "term query {q:?} has no words (letters, digits); use mode=substring for punctuation"
                    )));
                }
                // The index keys the same tokens the verifier compares, so each word's
                // key narrows to the lines holding it (and a few hash collisions).
                let mut keys: Vec<u32> = words
                    .iter()
                    .map(|w| crate::token_postings::token_key(w))
                    .collect();
                keys.sort_unstable();
                keys.dedup();
                let narrowing = Some(Narrowing::Terms(keys));
                Ok(QueryPlan {
                    narrowing,
                    verifier: Verifier::Terms(words),
                })
            }
            SearchMode::Substring => Ok(QueryPlan {
                narrowing: trigram_set(q).map(|g| Narrowing::Trigrams(vec![g])),
                verifier: Verifier::Substring(q.to_owned()),
            }),
            SearchMode::Regex => {
                let regex = regex::RegexBuilder::new(q)
                    .size_limit(10 << 20)
                    .build()
                    .map_err(|e| ArchieError::BadRequest(format!("regex {q:?}: {e}")))?;
                let hir = regex_syntax::Parser::new()
                    .parse(q)
                    .map_err(|e| ArchieError::BadRequest(format!("regex {q:?}: {e}")))?;
                let narrowing = required_literals(&hir)
                    .and_then(|alts| {
                        let sets: Option<Vec<Vec<u32>>> =
                            alts.iter().map(|a| trigram_set(a)).collect();
                        sets
                    })
                    .filter(|s| !s.is_empty())
                    .map(Narrowing::Trigrams);
                Ok(QueryPlan {
                    narrowing,
                    verifier: Verifier::Regex(regex),
                })
            }
        }
    }
}

/// Most trigrams one literal contributes: the rarest few narrow as well as all of them,
/// and each costs a posting-list read per batch.
const MAX_TRIGRAMS_PER_LITERAL: usize = 16;

/// The trigrams every line containing `lit` holds, or `None` when `lit` is under 3 bytes
/// (no trigram can narrow it).
fn trigram_set(lit: &str) -> Option<Vec<u32>> {
    let mut g = Vec::new();
    crate::trigram_postings::grams(lit.as_bytes(), &mut g);
    if g.is_empty() {
        return None;
    }
    if g.len() > MAX_TRIGRAMS_PER_LITERAL {
        // Spread the picks over the sorted set: any subset is still a superset filter.
        let n = g.len();
        g = (0..MAX_TRIGRAMS_PER_LITERAL)
            .map(|i| g[i * (n - 1) / (MAX_TRIGRAMS_PER_LITERAL - 1)])
            .collect();
        g.dedup();
    }
    Some(g)
}

/// Literals one of which every match of `hir` contains, or `None` when there is no such
/// set (an empty-matching branch, a class, a case-insensitive piece...).
fn required_literals(hir: &Hir) -> Option<Vec<String>> {
    match hir.kind() {
        HirKind::Literal(lit) => std::str::from_utf8(&lit.0).ok().map(|s| vec![s.to_owned()]),
        HirKind::Capture(c) => required_literals(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => required_literals(&r.sub),
        HirKind::Concat(subs) => {
            // Any one child's set will do; keep the one whose shortest literal is longest,
            // since short literals narrow least.
            subs.iter()
                .filter_map(required_literals)
                .filter(|alts| !alts.is_empty())
                .max_by_key(|alts| alts.iter().map(|a| a.chars().count()).min().unwrap_or(0))
        }
        HirKind::Alternation(subs) => {
            let mut out = Vec::new();
            for s in subs {
                out.extend(required_literals(s)?);
            }
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_narrow_only_when_they_can() {
        let p = QueryPlan::new("www.example.com WWW.Example.COM", SearchMode::Term).unwrap();
        assert_eq!(
            p.narrowing,
            Some(Narrowing::Terms(vec![crate::token_postings::token_key(
                "www.example.com"
            )]))
        );
        assert!(p.verifier.matches("GET http://WWW.example.com/ 200"));
        assert!(!p.verifier.matches("GET http://www-example-com/ 200"));

        let narrows = |q: &str, m| QueryPlan::new(q, m).unwrap().narrowing;
        assert!(narrows("ab", SearchMode::Substring).is_none());
        let mut g = Vec::new();
        crate::trigram_postings::grams(b"abcd", &mut g);
        assert_eq!(
            narrows("ABcd", SearchMode::Substring),
            Some(Narrowing::Trigrams(vec![g]))
        );
        match narrows("foo(bar|bazz)\\d+", SearchMode::Regex) {
            Some(Narrowing::Trigrams(sets)) => assert_eq!(sets.len(), 2, "{sets:?}"),
            other => panic!("{other:?}"),
        }
        assert!(narrows("a.c", SearchMode::Regex).is_none());
        assert!(narrows("(?i)hello", SearchMode::Regex).is_none());
        assert!(narrows("x*hello?", SearchMode::Regex).is_some());
        assert!(QueryPlan::new("(", SearchMode::Regex).is_err());
    }
}
