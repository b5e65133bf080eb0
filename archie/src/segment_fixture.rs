//! Segment files for tests and the benchmark: segments written as the buck writes them
//! (`contracts::segment_sql`, the current schema version, lines parsed by `parsers` as the
//! tailer does) and a generator of real-looking Heritrix crawl.log lines, seeded so every
//! run makes the same data.

use std::path::Path;

use rusqlite::Connection;

use crate::error::ArchieError;

const SEGMENT_SCHEMA: &str = contracts::segment_schema::SEGMENT_SCHEMA_SQL;
const SCHEMA_VERSION: i64 = contracts::segment_schema::SEGMENT_SCHEMA_VERSION;

/// One event to write into a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureEvent {
    /// Event id (contract 1's text form, `TAILERHEX-SEQ-OFFSET`).
    pub id: String,
    /// Event time, microseconds since the epoch.
    pub time_us: i64,
    /// Host.
    pub host: String,
    /// App.
    pub app: String,
    /// The line.
    pub line: String,
}

/// Writes `events` (in the given order) into a new segment at `path`, with the meta rows
/// the buck writes.
pub fn write_segment(
    path: &Path,
    crawl: &str,
    day: &str,
    events: &[FixtureEvent],
) -> Result<(), ArchieError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ArchieError::io(dir, e))?;
    }
    let err = ArchieError::sqlite(path);
    let mut conn = Connection::open(path).map_err(&err)?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;")
        .map_err(&err)?;
    conn.execute_batch(SEGMENT_SCHEMA).map_err(&err)?;
    let tx = conn.transaction().map_err(&err)?;
    let version = SCHEMA_VERSION.to_string();
    for (k, v) in [
        ("schema_version", version.as_str()),
        ("crawl", crawl),
        ("day", day),
        ("part", "0"),
        ("state", "closed"),
    ] {
        tx.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)",
            (k, v),
        )
        .map_err(&err)?;
    }
    let crawl_id = contracts::CrawlId::parse(crawl)
        .map_err(|e| ArchieError::Internal(format!("fixture crawl: {e}")))?;
    let mut labels = contracts::segment_sql::Labels::new();
    for e in events {
        let id =
            e.id.parse()
                .map_err(|err| ArchieError::Internal(format!("fixture event id: {err}")))?;
        let p = parsers::parse_line(
            parsers::SourceFormat::CrawlLog,
            e.line.as_bytes(),
            e.time_us,
        );
        let ev = contracts::Event {
            id,
            time_us: e.time_us,
            flags: contracts::EventFlags::default(),
            original_len: e.line.len() as u64,
            format: p.format,
            crawl: crawl_id.clone(),
            host: e.host.clone(),
            app: e.app.clone(),
            fields: p.fields,
            raw: e.line.as_bytes().to_vec(),
        };
        contracts::segment_sql::insert_event(&tx, &mut labels, &ev).map_err(&err)?;
    }
    tx.commit().map_err(&err)?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;")
        .map_err(&err)?;
    Ok(())
}

/// A small deterministic generator (splitmix64): the fixtures must not change between
/// runs, and tests must not depend on a random crate's stream.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A value below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// A value below `n`, skewed to small ones (a rough Zipf: popular hosts and words).
    pub fn skewed(&mut self, n: u64) -> u64 {
        let a = self.below(n) + 1;
        self.below(a)
    }
}

const SYLLABLES: &[&str] = &[
    "ka", "ro", "mi", "ne", "to", "sa", "li", "ve", "da", "pu", "go", "re", "an", "el", "or", "ic",
    "us", "en", "ta", "bo", "ix", "ul", "em", "ya",
];
const TLDS: &[&str] = &["com", "org", "dk", "uk", "net", "de", "fr", "io"];
const MIMES: &[&str] = &[
    "text/html",
    "text/plain",
    "image/jpeg",
    "image/png",
    "application/javascript",
    "text/css",
    "text/dns",
    "application/pdf",
    "unknown",
];
const STATUSES: &[i64] = &[
    200, 200, 200, 200, 200, 301, 302, 404, 1, -5002, 500, 403, -61,
];
const HOPS: &[&str] = &["-", "P", "L", "LL", "E", "EP", "LE", "X", "R", "LLL"];
const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn word(rng: &mut Rng, n: u64) -> String {
    // Word k is the same text every time: a vocabulary of `n` words.
    let k = rng.skewed(n);
    let mut r = Rng::new(k.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let len = 2 + r.below(3);
    (0..len)
        .map(|_| SYLLABLES[r.below(SYLLABLES.len() as u64) as usize])
        .collect()
}

fn host(rng: &mut Rng) -> String {
    let k = rng.skewed(5_000);
    let mut r = Rng::new(k ^ 0xABCD_EF01);
    let w = word(&mut r, 3_000);
    let tld = TLDS[r.below(TLDS.len() as u64) as usize];
    if r.below(2) == 0 {
        format!("www.{w}.{tld}")
    } else {
        format!("{w}.{tld}")
    }
}

/// Makes crawl.log lines: Heritrix 3 format with hosts, paths, statuses, digests and
/// WARC annotations drawn from skewed vocabularies, and every `real_every`-th line one of
/// `real` (real crawl logs, verbatim) when any are given.
pub struct CrawlLogGenerator {
    rng: Rng,
    real: Vec<String>,
    real_every: u64,
    n: u64,
}

impl CrawlLogGenerator {
    /// A generator from `seed`, mixing in `real` lines.
    pub fn new(seed: u64, real: Vec<String>, real_every: u64) -> CrawlLogGenerator {
        CrawlLogGenerator {
            rng: Rng::new(seed),
            real,
            real_every: real_every.max(1),
            n: 0,
        }
    }

    /// Reads every `crawl.log`-like file under `dir` (lines that start with a year).
    pub fn real_lines(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
            entries.sort();
            for p in entries {
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "log")
                    && let Ok(text) = std::fs::read_to_string(&p)
                {
                    out.extend(
                        text.lines()
                            .filter(|l| l.len() > 24 && l.starts_with("20"))
                            .map(str::to_owned),
                    );
                }
            }
        }
        out
    }

    /// The next line, for an event at `time_us`.
    pub fn line(&mut self, time_us: i64) -> String {
        self.n += 1;
        if !self.real.is_empty() && self.n.is_multiple_of(self.real_every) {
            let i = self.rng.below(self.real.len() as u64) as usize;
            return self.real[i].clone();
        }
        let rng = &mut self.rng;
        let t = crate::index_reader::format_time(time_us);
        let t = format!("{}Z", &t[..23]);
        let status = STATUSES[rng.below(STATUSES.len() as u64) as usize];
        let size = rng.skewed(200_000);
        let h = host(rng);
        let depth = 1 + rng.below(4);
        let path: Vec<String> = (0..depth).map(|_| word(rng, 20_000)).collect();
        let ext = ["html", "php", "jpg", "css", "js", "pdf", ""][rng.below(7) as usize];
        let url = if ext.is_empty() {
            format!("http://{h}/{}/", path.join("/"))
        } else {
            format!("http://{h}/{}.{ext}", path.join("/"))
        };
        let hop = HOPS[rng.below(HOPS.len() as u64) as usize];
        let via = if hop == "-" {
            "-".to_owned()
        } else {
            format!("http://{h}/{}", word(rng, 20_000))
        };
        let mime = MIMES[rng.below(MIMES.len() as u64) as usize];
        let thread = rng.below(200);
        let fetch_ts = t.replace(['-', ':', 'T', '.', 'Z'], "");
        let dur = rng.skewed(5_000);
        let digest: String = (0..32)
            .map(|_| BASE32[rng.below(32) as usize] as char)
            .collect();
        let warc_off = rng.below(1_000_000_000);
        let warc_n = rng.below(100_000);
        format!(
            "{t} {status:>5} {size:>10} {url} {hop} {via} {mime} #{thread:03} {fetch_ts}+{dur} sha1:{digest} - content-size:{size} {{\"warcFilename\":\"SLUICE-{warc_n:05}.warc.gz\",\"warcFileOffset\":{warc_off}}}"
        )
    }
}
