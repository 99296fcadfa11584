//! Golden data directories of format version 1 (see `golden/README.md`).
//! A deterministic generator writes them; a test checks that the committed
//! files are exactly what it writes, so the format cannot drift silently.
//! To regenerate after a deliberate format change (with a new version):
//! `STRATA_BLESS=1 cargo test -p strata-store --test golden golden_files` (only that test: the others read the files).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use strata_store::{Error, FsStorage, Log, LogConfig, NewRecord, SimStorage, Storage};

const CASES: [&str; 3] = ["v1-valid", "v1-torn-tail", "v1-corrupt-middle"];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 256,
        index_interval_bytes: 64,
        ..LogConfig::default()
    }
}

/// Twelve small records with fixed timestamps.
fn golden_records() -> Vec<NewRecord> {
    (0..12u64)
        .map(|i| NewRecord {
            timestamp: 1_704_067_200_000 + i as i64 * 1000,
            topic: Bytes::from(format!("golden/{}", i % 3)),
            properties: Bytes::from(if i % 2 == 0 {
                vec![]
            } else {
                vec![0x01, i as u8]
            }),
            payload: Bytes::from(format!("message {i} {}", "x".repeat(i as usize * 3))),
        })
        .collect()
}

/// The files of one case, by name.
fn generate(case: &str) -> BTreeMap<String, Vec<u8>> {
    let sim = SimStorage::new();
    let (log, _) = Log::open(Arc::new(sim.clone()), DIR, config()).unwrap();
    for r in golden_records() {
        log.append(vec![r]).unwrap();
    }
    log.close().unwrap();
    let mut files: BTreeMap<String, Vec<u8>> = sim
        .list(&dir())
        .unwrap()
        .into_iter()
        .map(|n| (n.clone(), sim.read(&dir().join(&n)).unwrap()))
        .collect();
    let last = files.keys().rfind(|n| n.ends_with(".seg")).unwrap().clone();
    match case {
        "v1-valid" => {}
        // Half of one more record at the end of the last segment.
        "v1-torn-tail" => {
            let extra = NewRecord {
                payload: Bytes::from_static(b"never completed"),
                ..golden_records()[0].clone()
            };
            let seg = files.get_mut(&last).unwrap();
            let mut whole = Vec::new();
            whole.extend_from_slice(&(extra.encoded_len() as u32 - 4).to_le_bytes());
            whole.resize(extra.encoded_len() as usize / 2, 0x5A);
            seg.extend_from_slice(&whole);
        }
        // One payload byte of offset 1, in the first (sealed) segment.
        "v1-corrupt-middle" => {
            let seg = files.get_mut("00000000000000000000.seg").unwrap();
            let at = corrupt_position() as usize + golden_records()[1].encoded_len() as usize - 1;
            seg[at] ^= 0x01;
        }
        _ => unreachable!(),
    }
    files
}

/// Where offset 1 starts in the first segment.
fn corrupt_position() -> u64 {
    16 + golden_records()[0].encoded_len()
}

fn read_case(case: &str) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(golden_dir().join(case))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// A copy of a case in a temporary directory, opened on real files.
fn open_copy(
    case: &str,
) -> (
    tempfile::TempDir,
    strata_store::Result<(Log, strata_store::RecoveryReport)>,
) {
    let tmp = tempfile::tempdir().unwrap();
    for (name, bytes) in read_case(case) {
        std::fs::write(tmp.path().join(name), bytes).unwrap();
    }
    let opened = Log::open(Arc::new(FsStorage), tmp.path(), config());
    (tmp, opened)
}

#[test]
fn golden_files_are_what_the_generator_writes() {
    for case in CASES {
        let generated = generate(case);
        if std::env::var_os("STRATA_BLESS").is_some() {
            let d = golden_dir().join(case);
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            for (name, bytes) in &generated {
                std::fs::write(d.join(name), bytes).unwrap();
            }
        }
        let committed = read_case(case);
        assert_eq!(
            committed.keys().collect::<Vec<_>>(),
            generated.keys().collect::<Vec<_>>(),
            "{case}: file names"
        );
        for (name, bytes) in &generated {
            assert!(
                committed[name] == *bytes,
                "{case}/{name} differs from what the generator writes"
            );
        }
    }
}

#[test]
fn golden_valid_opens_and_reads_back() {
    let (_tmp, opened) = open_copy("v1-valid");
    let (log, report) = opened.unwrap();
    assert_eq!(report.truncated, None);
    assert!(report.indexes_rebuilt.is_empty() && report.removed.is_empty());
    assert_eq!(report.segments, 4);
    let got = read_all(&log);
    let want = golden_records();
    assert_eq!(got.len(), want.len());
    for (i, r) in got.iter().enumerate() {
        assert_record(r, &want[i], i as u64);
    }
}

#[test]
fn golden_torn_tail_is_cut_off() {
    let (tmp, opened) = open_copy("v1-torn-tail");
    let (log, report) = opened.unwrap();
    let t = report.truncated.expect("torn tail reported");
    let valid = read_case("v1-valid");
    let last = valid.keys().rfind(|n| n.ends_with(".seg")).unwrap();
    assert_eq!(t.path, tmp.path().join(last));
    assert_eq!(t.position, valid[last].len() as u64);
    assert_eq!(t.offset, 12);
    assert_eq!(
        t.bytes_dropped,
        read_case("v1-torn-tail")[last].len() as u64 - t.position
    );
    assert_eq!(std::fs::read(tmp.path().join(last)).unwrap(), valid[last]);
    assert_eq!(read_all(&log).len(), 12);
}

#[test]
fn golden_corrupt_middle_refuses_to_open() {
    let (tmp, opened) = open_copy("v1-corrupt-middle");
    let err = opened.expect_err("refused");
    let path = tmp.path().join("00000000000000000000.seg");
    assert!(
        matches!(&err, Error::Corrupt { path: p, position, expected_offset: 1, .. } if *p == path && *position == corrupt_position()),
        "{err:?}"
    );
    let msg = err.to_string();
    let want_prefix = format!(
        "{}: corrupt at byte {}, where offset 1 was expected: record checksum mismatch (stored 0x",
        path.display(),
        corrupt_position()
    );
    assert!(msg.starts_with(&want_prefix), "{msg}");
    assert!(msg.ends_with("; Strata does not start on a damaged log: move the file aside or restore it from a replica or backup, then start again"), "{msg}");
}
