//! [`QueryPlan`]: how a search query (term, substring, regex) becomes an FTS5 `MATCH` that
//! narrows the candidates, and the exact test each candidate line must then pass.
//!
//! The full-text tables only ever narrow: every plan's `MATCH` is a superset of the
//! answer (the tables are contentless with `detail=none`, so they know which lines hold
//! which tokens or trigrams, not where), and [`Verifier::matches`] decides. That keeps the
//! answer exactly what a scan of the lines would give, whatever the tokenizers do with
//! case, diacritics or punctuation.

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

/// The FTS5 table a plan narrows with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FtsTable {
    /// `terms`: unicode61 tokens.
    Terms,
    /// `trigrams`: case-folded trigrams.
    Trigrams,
}

impl FtsTable {
    /// The table's name in each shard.
    pub fn name(self) -> &'static str {
        match self {
            FtsTable::Terms => "terms",
            FtsTable::Trigrams => "trigrams",
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

/// A search's plan: an optional FTS5 narrowing, then the verifier.
#[derive(Debug, Clone)]
pub struct QueryPlan {
    /// The table and `MATCH` expression that narrow the candidates; `None` scans every
    /// line of the time range.
    pub fts: Option<(FtsTable, String)>,
    /// The exact test.
    pub verifier: Verifier,
}

/// Most trigrams one literal contributes to a `MATCH`: a few spread over it narrow as
/// well as all of them, and each one costs a doclist read.
const MAX_TRIGRAMS_PER_LITERAL: usize = 8;

impl QueryPlan {
    /// Plans `q` in `mode`; an empty `q` matches every line.
    pub fn new(q: &str, mode: SearchMode) -> Result<QueryPlan, ArchieError> {
        if q.is_empty() {
            return Ok(QueryPlan {
                fts: None,
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
                // unicode61 splits on `.`, `_` and `-` where the contracts tokenizer does
                // not, so a token `www.example.com` is the adjacent unicode61 tokens
                // `www`, `example`, `com`: requiring all of them is a superset.
                let parts: Vec<String> = words
                    .iter()
                    .flat_map(|w| w.split(|c: char| !c.is_alphanumeric()))
                    .filter(|p| !p.is_empty())
                    .map(quote)
                    .collect();
                let fts = (!parts.is_empty()).then(|| (FtsTable::Terms, parts.join(" AND ")));
                Ok(QueryPlan {
                    fts,
                    verifier: Verifier::Terms(words),
                })
            }
            SearchMode::Substring => Ok(QueryPlan {
                fts: trigram_expr(q).map(|e| (FtsTable::Trigrams, e)),
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
                let fts = required_literals(&hir)
                    .and_then(|alts| {
                        let exprs: Option<Vec<String>> =
                            alts.iter().map(|a| trigram_expr(a)).collect();
                        exprs
                    })
                    .filter(|e| !e.is_empty())
                    .map(|exprs| {
                        let joined = exprs
                            .iter()
                            .map(|e| format!("({e})"))
                            .collect::<Vec<_>>()
                            .join(" OR ");
                        (FtsTable::Trigrams, joined)
                    });
                Ok(QueryPlan {
                    fts,
                    verifier: Verifier::Regex(regex),
                })
            }
        }
    }
}

/// An FTS5 string: double quotes doubled, so any text is one bareword-free token string.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The `MATCH` expression that every line containing `lit` satisfies (case-folded
/// trigrams, AND-ed), or `None` when `lit` is under 3 characters (the trigram table
/// cannot narrow it: FACTS.md).
fn trigram_expr(lit: &str) -> Option<String> {
    let chars: Vec<char> = lit.chars().collect();
    if chars.len() < 3 {
        return None;
    }
    let all: Vec<String> = chars.windows(3).map(|w| w.iter().collect()).collect();
    // Spread the picks over the literal, always keeping the first and the last.
    let n = all.len();
    let picks = n.min(MAX_TRIGRAMS_PER_LITERAL);
    let mut chosen: Vec<&String> = (0..picks)
        .map(|i| {
            if picks == 1 {
                &all[0]
            } else {
                &all[i * (n - 1) / (picks - 1)]
            }
        })
        .collect();
    chosen.dedup();
    Some(
        chosen
            .into_iter()
            .map(|t| quote(t))
            .collect::<Vec<_>>()
            .join(" AND "),
    )
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
        let p = QueryPlan::new("www.example.com", SearchMode::Term).unwrap();
        assert_eq!(
            p.fts,
            Some((
                FtsTable::Terms,
                "\"www\" AND \"example\" AND \"com\"".into()
            ))
        );
        assert!(p.verifier.matches("GET http://WWW.example.com/ 200"));
        assert!(!p.verifier.matches("GET http://www-example-com/ 200"));

        assert!(
            QueryPlan::new("ab", SearchMode::Substring)
                .unwrap()
                .fts
                .is_none()
        );
        let p = QueryPlan::new("abcd", SearchMode::Substring).unwrap();
        assert_eq!(p.fts.unwrap().1, "\"abc\" AND \"bcd\"");

        let p = QueryPlan::new("foo(bar|bazz)\\d+", SearchMode::Regex).unwrap();
        let (t, e) = p.fts.unwrap();
        assert_eq!(t, FtsTable::Trigrams);
        assert!(e.contains("OR"), "{e}");
        assert!(
            QueryPlan::new("a.c", SearchMode::Regex)
                .unwrap()
                .fts
                .is_none()
        );
        assert!(
            QueryPlan::new("(?i)hello", SearchMode::Regex)
                .unwrap()
                .fts
                .is_none()
        );
        assert!(
            QueryPlan::new("x*hello?", SearchMode::Regex)
                .unwrap()
                .fts
                .is_some()
        );
        assert!(QueryPlan::new("(", SearchMode::Regex).is_err());
    }
}
