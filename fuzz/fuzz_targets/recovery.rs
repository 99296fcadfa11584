//! Log recovery on arbitrary bytes: the input is the last segment of an
//! in-memory log directory, after a valid sealed segment. `Log::open` must
//! never panic; a log it opens must read back completely.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use strata_store::{Log, LogConfig, NewRecord, ReadLimits, SimStorage, Storage};

const DIR: &str = "/log";

fn sealed_segment() -> Vec<u8> {
    let sim = SimStorage::new();
    let Ok((log, _)) = Log::open(Arc::new(sim.clone()), DIR, LogConfig::default()) else {
        return Vec::new();
    };
    let record = NewRecord {
        timestamp: 0,
        topic: "fuzz/topic".into(),
        properties: Default::default(),
        payload: "sealed".into(),
    };
    let _ = log.append(vec![record.clone(), record.clone(), record]);
    let _ = log.close();
    sim.read(&Path::new(DIR).join("00000000000000000000.seg")).unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let sim = SimStorage::new();
    let dir = Path::new(DIR);
    if sim.write_file(&dir.join("00000000000000000000.seg"), &sealed_segment()).is_err()
        || sim.write_file(&dir.join("00000000000000000003.seg"), data).is_err()
    {
        return;
    }
    let config = LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 64,
        ..LogConfig::default()
    };
    if let Ok((log, report)) = Log::open(Arc::new(sim), DIR, config) {
        let got = log
            .read(report.first_offset, ReadLimits::records(usize::MAX))
            .expect("a log that opened reads back");
        assert_eq!(got.len() as u64, report.next_offset - report.first_offset);
    }
});
