#![no_main]
//! Cluster file parsing and routing on arbitrary text: never panics.
use contracts::{ClusterFile, CrawlId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(c) = ClusterFile::parse(text, std::path::Path::new("fuzz.toml")) {
        if let Ok(crawl) = CrawlId::parse("c") {
            for b in &c.bucks {
                let _ = c.home_bucks(&crawl, b.since);
            }
        }
    }
    let _ = CrawlId::parse(text);
});
