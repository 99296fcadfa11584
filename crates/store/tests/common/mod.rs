//! Helpers shared by the integration tests: deterministic records, a model
//! check, file surgery on a `SimStorage`.
#![allow(dead_code, clippy::unwrap_used)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use strata_store::{
    Log, LogConfig, NewRecord, ReadLimits, Record, RecoveryReport, SimStorage, Storage,
};

pub const DIR: &str = "/data/log/0";

pub fn dir() -> PathBuf {
    PathBuf::from(DIR)
}

/// Record `i` of a deterministic stream; `size` bytes of payload.
pub fn rec(i: u64, size: usize) -> NewRecord {
    NewRecord {
        timestamp: 1_700_000_000_000 + i as i64 * 10,
        topic: Bytes::from(format!("sensors/{}/temp", i % 7)),
        properties: Bytes::from(vec![0x26; (i % 3) as usize]),
        payload: Bytes::from(
            (0..size)
                .map(|j| (i as usize * 31 + j) as u8)
                .collect::<Vec<_>>(),
        ),
    }
}

/// Varied sizes, from empty to a few hundred bytes.
pub fn size_of(i: u64) -> usize {
    [0, 5, 40, 300, 17, 120, 650, 1][(i % 8) as usize]
}

pub fn records(n: u64) -> Vec<NewRecord> {
    (0..n).map(|i| rec(i, size_of(i))).collect()
}

/// Small segments so a few dozen records span several.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

pub fn open(
    storage: &SimStorage,
    config: LogConfig,
) -> strata_store::Result<(Log, RecoveryReport)> {
    Log::open(Arc::new(storage.clone()), DIR, config)
}

pub fn read_all(log: &Log) -> Vec<Record> {
    log.read(log.first_offset(), ReadLimits::records(usize::MAX))
        .expect("read")
}

pub fn assert_record(got: &Record, want: &NewRecord, offset: u64) {
    assert_eq!(got.offset, offset);
    assert_eq!(got.timestamp, want.timestamp, "timestamp of {offset}");
    assert_eq!(got.topic, want.topic, "topic of {offset}");
    assert_eq!(got.properties, want.properties, "properties of {offset}");
    assert_eq!(got.payload, want.payload, "payload of {offset}");
}

/// The segment files, oldest first, with their base offsets.
pub fn segments(storage: &dyn Storage, dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = storage
        .list(dir)
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .map(|n| (n[..20].parse().unwrap(), dir.join(n)))
        .collect();
    v.sort();
    v
}

/// Byte position of record `offset` in its segment, given every record's
/// encoding and the segment's base.
pub fn position_of(all: &[NewRecord], base: u64, offset: u64) -> u64 {
    16 + (base..offset)
        .map(|i| all[i as usize].encoded_len())
        .sum::<u64>()
}

/// Flips one bit of a file, durably.
pub fn flip(storage: &SimStorage, path: &Path, pos: u64, bit: u8) {
    let mut bytes = storage.read(path).unwrap();
    bytes[pos as usize] ^= 1 << bit;
    storage.write_file(path, &bytes).unwrap();
}

/// A closed log of `n` records from [`records`] in small segments.
pub fn build(n: u64) -> (SimStorage, Vec<NewRecord>) {
    let sim = SimStorage::new();
    let all = records(n);
    let (log, _) = open(&sim, small_config()).unwrap();
    for r in &all {
        log.append(vec![r.clone()]).unwrap();
    }
    log.close().unwrap();
    (sim, all)
}
