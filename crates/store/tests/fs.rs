//! The log on real files.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::sync::Arc;

use common::*;
use strata_store::{Damage, FsStorage, Log, LogConfig, NewRecord};

fn open_fs(dir: &std::path::Path) -> (Log, strata_store::RecoveryReport) {
    Log::open(Arc::new(FsStorage), dir, small_config()).unwrap()
}

/// Appends under `Always`, then the process "dies": the log is leaked, not
/// closed or dropped. A second open of the directory finds everything.
#[test]
fn reopen_without_shutdown_finds_every_acknowledged_append() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let all = records(100);
    let (log, report) = open_fs(&dir);
    assert!(report.created);
    for chunk in all.chunks(7) {
        log.append(chunk.to_vec()).unwrap();
    }
    std::mem::forget(log);

    let (log, report) = open_fs(&dir);
    assert_eq!(report.truncated, None);
    assert_eq!(report.next_offset, 100);
    let got = read_all(&log);
    assert_eq!(got.len(), 100);
    for (i, r) in got.iter().enumerate() {
        assert_record(r, &all[i], i as u64);
    }
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().filter(|n| n.ends_with(".seg")).count() > 3);
    assert!(
        names
            .iter()
            .all(|n| n.ends_with(".seg") || n.ends_with(".idx")),
        "{names:?}"
    );
}

#[test]
fn a_torn_tail_in_a_real_file_is_cut_off() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (log, _) = open_fs(&dir);
    let all: Vec<NewRecord> = records(5);
    log.append(all.clone()).unwrap();
    log.close().unwrap();

    let seg = dir.join("00000000000000000000.seg");
    let good_len = std::fs::metadata(&seg).unwrap().len();
    // The first 20 bytes of a record of 200 bytes: a write torn by a crash.
    let mut torn = 196u32.to_le_bytes().to_vec();
    torn.extend_from_slice(&[0xAB; 16]);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(&torn)
        .unwrap();

    let (log, report) = open_fs(&dir);
    let t = report.truncated.expect("reported");
    assert_eq!(
        (t.path, t.position, t.offset, t.bytes_dropped),
        (seg.clone(), good_len, 5, 20)
    );
    assert_eq!(
        t.damage,
        Damage::Incomplete {
            needed: 200,
            available: 20
        }
    );
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), good_len);
    assert_eq!(read_all(&log).len(), 5);
    assert_eq!(log.append(vec![rec(5, 1)]).unwrap(), 5..6);
}

#[test]
fn default_config_round_trip_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(Arc::new(FsStorage), tmp.path(), LogConfig::default()).unwrap();
    let all = records(1000);
    log.append(all.clone()).unwrap();
    let got = log
        .read(500, strata_store::ReadLimits::records(10))
        .unwrap();
    for (k, r) in got.iter().enumerate() {
        assert_record(r, &all[500 + k], 500 + k as u64);
    }
    log.close().unwrap();
}
