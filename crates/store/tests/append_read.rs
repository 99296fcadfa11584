//! Appends and reads: round trips across segment rolls, reads from the
//! middle, the index, limits, retention, fsync policies, reopen.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use strata_store::{Error, FsyncPolicy, LogConfig, NewRecord, ReadLimits, SimStorage, Storage};

#[test]
fn round_trip_across_segment_rolls() {
    let sim = SimStorage::new();
    let all = records(200);
    let (log, report) = open(&sim, small_config()).unwrap();
    assert!(report.created);
    assert_eq!(report.next_offset, 0);
    let mut next = 0;
    for chunk in all.chunks(3) {
        let range = log.append(chunk.to_vec()).unwrap();
        assert_eq!(
            range,
            next..next + chunk.len() as u64,
            "offsets are contiguous"
        );
        next = range.end;
    }
    assert_eq!(log.next_offset(), 200);
    let segs = segments(&sim, &dir());
    assert!(segs.len() > 10, "small segments roll: {}", segs.len());
    for w in segs.windows(2) {
        assert!(w[0].0 < w[1].0);
    }
    for (base, path) in &segs[..segs.len() - 1] {
        let len = sim.read(path).unwrap().len() as u64;
        let first = all[*base as usize].encoded_len();
        assert!(
            len <= 1024 || len == 16 + first,
            "{} is {len} bytes",
            path.display()
        );
    }
    let got = read_all(&log);
    assert_eq!(got.len(), 200);
    for (i, r) in got.iter().enumerate() {
        assert_record(r, &all[i], i as u64);
    }

    // Reopen: same records, sealed segments indexed, nothing repaired.
    log.close().unwrap();
    let (log, report) = open(&sim, small_config()).unwrap();
    assert_eq!(report.truncated, None);
    assert_eq!(report.indexes_rebuilt, Vec::<std::path::PathBuf>::new());
    assert_eq!(report.segments, segs.len());
    assert_eq!((report.first_offset, report.next_offset), (0, 200));
    assert_eq!(read_all(&log), got);
    assert_eq!(log.append(vec![rec(200, 3)]).unwrap(), 200..201);
}

#[test]
fn read_from_every_offset_with_limits() {
    let (sim, all) = build(60);
    let (log, _) = open(&sim, small_config()).unwrap();
    for from in 0..60 {
        let got = log.read(from, ReadLimits::records(5)).unwrap();
        let want = (60 - from).min(5) as usize;
        assert_eq!(got.len(), want, "from {from}");
        for (k, r) in got.iter().enumerate() {
            assert_record(r, &all[from as usize + k], from + k as u64);
        }
    }
    assert!(log.read(60, ReadLimits::records(5)).unwrap().is_empty());
    assert!(log.read(1000, ReadLimits::records(5)).unwrap().is_empty());
    assert!(log.read(0, ReadLimits::records(0)).unwrap().is_empty());

    // A byte limit smaller than one record still returns that record.
    let one = log
        .read(
            6,
            ReadLimits {
                max_records: 10,
                max_bytes: 1,
            },
        )
        .unwrap();
    assert_eq!(one.len(), 1);
    let budget = all[6].encoded_len() + all[7].encoded_len();
    let two = log
        .read(
            6,
            ReadLimits {
                max_records: 10,
                max_bytes: budget,
            },
        )
        .unwrap();
    assert_eq!(two.iter().map(|r| r.offset).collect::<Vec<_>>(), [6, 7]);
}

/// The index is used: damage early in a large segment does not disturb a
/// read further in, because the read starts at an index entry past it.
#[test]
fn reads_start_at_the_index_entry() {
    let sim = SimStorage::new();
    let config = LogConfig {
        index_interval_bytes: 1024,
        ..LogConfig::default()
    };
    let (log, _) = open(&sim, config).unwrap();
    let all: Vec<NewRecord> = (0..2000).map(|i| rec(i, 100)).collect();
    log.append(all.clone()).unwrap();
    assert_eq!(segments(&sim, &dir()).len(), 1, "one large segment");

    let path = segments(&sim, &dir())[0].1.clone();
    let file = sim.open(&path, false).unwrap();
    let pos = position_of(&all, 0, 10) + 40;
    file.write_at(pos, b"\xff").unwrap();

    let got = log.read(1500, ReadLimits::records(3)).unwrap();
    for (k, r) in got.iter().enumerate() {
        assert_record(r, &all[1500 + k], 1500 + k as u64);
    }
    match log.read(10, ReadLimits::records(1)) {
        Err(Error::Corrupt {
            path: p,
            position,
            expected_offset: 10,
            ..
        }) => {
            assert_eq!(p, path);
            assert_eq!(position, position_of(&all, 0, 10));
        }
        other => panic!("expected corruption at offset 10, got {other:?}"),
    }
}

#[test]
fn segments_roll_by_age() {
    let sim = SimStorage::new();
    let config = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let (log, _) = open(&sim, config).unwrap();
    let at = |ts: i64| NewRecord {
        timestamp: ts,
        ..rec(0, 10)
    };
    log.append(vec![at(0), at(500), at(999)]).unwrap();
    assert_eq!(segments(&sim, &dir()).len(), 1);
    log.append(vec![at(1000)]).unwrap();
    log.append(vec![at(1500)]).unwrap();
    log.append(vec![at(2000)]).unwrap();
    let bases: Vec<u64> = segments(&sim, &dir()).iter().map(|s| s.0).collect();
    assert_eq!(bases, [0, 3, 5]);
}

#[test]
fn retention_deletes_old_sealed_segments_but_keeps_what_is_needed() {
    let sim = SimStorage::new();
    let config = LogConfig {
        retention_bytes: Some(3000),
        ..small_config()
    };
    let (log, _) = open(&sim, config.clone()).unwrap();
    for r in records(200) {
        log.append(vec![r]).unwrap();
    }
    let before = segments(&sim, &dir());

    // Needed from offset 0: nothing may go.
    assert!(log.apply_retention(0, 0).unwrap().is_empty());
    assert_eq!(log.first_offset(), 0);

    // Needed from offset 100: segments wholly below 100 may go.
    let deleted = log.apply_retention(100, 0).unwrap();
    assert!(!deleted.is_empty());
    let first = log.first_offset();
    assert!(first <= 100 && first > 0, "first offset {first}");
    let after = segments(&sim, &dir());
    assert_eq!(after.len(), before.len() - deleted.len());
    assert!(
        sim.list(&dir())
            .unwrap()
            .iter()
            .all(|n| n[..20].parse::<u64>().unwrap() >= first)
    );
    assert!(matches!(
        log.read(0, ReadLimits::records(1)),
        Err(Error::OffsetTrimmed { requested: 0, first: f }) if f == first
    ));
    assert_eq!(
        log.read(first, ReadLimits::records(1)).unwrap()[0].offset,
        first
    );

    // Needed from the end: the size limit keeps about 3000 bytes, and the
    // active segment always stays.
    log.apply_retention(u64::MAX, 0).unwrap();
    let kept: u64 = segments(&sim, &dir())
        .iter()
        .map(|(_, p)| sim.read(p).unwrap().len() as u64)
        .sum();
    assert!(kept <= 3000 + 1024, "kept {kept} bytes");
    assert!(!segments(&sim, &dir()).is_empty());

    // It all survives a reopen.
    let first = log.first_offset();
    log.close().unwrap();
    let (log, report) = open(&sim, config).unwrap();
    assert_eq!(report.first_offset, first);
    assert_eq!(report.removed, Vec::<std::path::PathBuf>::new());
    assert_eq!(read_all(&log).len() as u64, 200 - first);
}

#[test]
fn retention_by_age() {
    let sim = SimStorage::new();
    let config = LogConfig {
        retention_ms: Some(1_000),
        ..small_config()
    };
    let (log, _) = open(&sim, config).unwrap();
    for r in records(100) {
        log.append(vec![r]).unwrap();
    }
    let last_ts = records(100)[99].timestamp;
    // Nothing is a second old yet.
    assert!(log.apply_retention(u64::MAX, last_ts).unwrap().is_empty());
    // A day later every sealed segment is old; the active one stays.
    log.apply_retention(u64::MAX, last_ts + 86_400_000).unwrap();
    assert_eq!(segments(&sim, &dir()).len(), 1);
    assert_eq!(log.next_offset(), 100);
}

#[test]
fn oversized_records_are_refused() {
    let sim = SimStorage::new();
    let (log, _) = open(
        &sim,
        LogConfig {
            max_record_bytes: 100,
            ..small_config()
        },
    )
    .unwrap();
    match log.append(vec![rec(0, 200)]) {
        Err(e @ Error::RecordTooLarge { max: 100, .. }) => assert_eq!(
            e.to_string(),
            "record of 248 bytes exceeds the limit of 100 bytes (LogConfig::max_record_bytes)"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(log.append(vec![rec(0, 10)]).unwrap(), 0..1);
}

#[test]
fn submit_then_reports_refusals_and_successes_to_the_callback() {
    let sim = SimStorage::new();
    let config = LogConfig {
        max_record_bytes: 100,
        ..small_config()
    };
    let (log, _) = open(&sim, config).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = tx.clone();
    log.submit_then(vec![rec(0, 200)], move |r| t.send(r).unwrap());
    let t = tx.clone();
    log.submit_then(vec![rec(0, 10)], move |r| t.send(r).unwrap());
    let wait = std::time::Duration::from_secs(10);
    assert!(matches!(
        rx.recv_timeout(wait).unwrap(),
        Err(Error::RecordTooLarge { max: 100, .. })
    ));
    assert_eq!(rx.recv_timeout(wait).unwrap().unwrap(), 0..1);
    // Each callback ran exactly once: nothing more arrives.
    log.close().unwrap();
    drop(tx);
    assert!(rx.recv_timeout(std::time::Duration::ZERO).is_err());
}

#[test]
fn invalid_config_is_refused() {
    let sim = SimStorage::new();
    let bad = LogConfig {
        segment_bytes: 10,
        ..LogConfig::default()
    };
    match open(&sim, bad) {
        Err(e) => assert_eq!(
            e.to_string(),
            "invalid log configuration: segment_bytes must be at least 50 and at most 4294967295 - max_record_bytes"
        ),
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn interval_and_never_policies() {
    for fsync in [
        FsyncPolicy::Interval(Duration::from_millis(5)),
        FsyncPolicy::Never,
    ] {
        let sim = SimStorage::new();
        let (log, _) = open(
            &sim,
            LogConfig {
                fsync,
                ..LogConfig::default()
            },
        )
        .unwrap();
        let syncs = sim.stats().syncs;
        for r in records(20) {
            log.append(vec![r]).unwrap();
        }
        // Completed appends are readable before any sync.
        assert_eq!(read_all(&log).len(), 20);
        if fsync == FsyncPolicy::Never {
            assert_eq!(sim.stats().syncs, syncs, "no sync under Never");
        } else {
            // The writer syncs within the interval; wait for it, bounded.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while sim.stats().syncs == syncs {
                assert!(std::time::Instant::now() < deadline, "no interval sync");
                std::thread::yield_now();
            }
        }
        // Close syncs: a crash after it loses nothing.
        log.close().unwrap();
        let after = sim.crash(strata_store::storage::CrashMode::DropUnsynced);
        let (log, _) = open(&after, LogConfig::default()).unwrap();
        assert_eq!(read_all(&log).len(), 20);
    }
}

#[test]
fn a_failed_write_stops_the_log_until_reopened() {
    let sim = SimStorage::new();
    let (log, _) = open(&sim, small_config()).unwrap();
    log.append(vec![rec(0, 10)]).unwrap();
    sim.set_faults(strata_store::storage::FaultPlan {
        fail_sync: Some(1),
        ..Default::default()
    });
    let err = log.append(vec![rec(1, 10)]).unwrap_err();
    assert!(matches!(err, Error::Io { op: "sync", .. }), "{err:?}");
    let err = log.append(vec![rec(2, 10)]).unwrap_err();
    assert!(matches!(err, Error::Stopped(_)), "{err:?}");
    assert!(err.to_string().starts_with("the log stopped taking writes after an earlier failure: sync /data/log/0/00000000000000000000.seg: injected failure of sync #1"), "{err}");
    // Readers see only the completed append.
    assert_eq!(read_all(&log).len(), 1);
    assert!(log.close().is_err());
    let (log, _) = open(&sim, small_config()).unwrap();
    assert!(!read_all(&log).is_empty());
    assert!(log.append(vec![rec(3, 10)]).is_ok());
}

#[test]
fn concurrent_appenders_get_unique_contiguous_offsets() {
    let sim = SimStorage::new();
    let (log, _) = open(&sim, small_config()).unwrap();
    let log = Arc::new(log);
    let per_thread = 200;
    let ranges: Vec<Vec<std::ops::Range<u64>>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|t| {
                let log = &log;
                s.spawn(move || {
                    (0..per_thread)
                        .map(|i| log.append(vec![rec(t * 1000 + i, 8)]).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut offsets: Vec<u64> = ranges.iter().flatten().map(|r| r.start).collect();
    for per in &ranges {
        assert!(
            per.windows(2).all(|w| w[0].start < w[1].start),
            "FIFO per caller"
        );
    }
    offsets.sort();
    assert_eq!(offsets, (0..8 * per_thread).collect::<Vec<_>>());
    let got = read_all(&log);
    assert_eq!(got.len() as u64, 8 * per_thread);
    assert!(sim.stats().syncs <= 8 * per_thread + 2 * segments(&sim, &dir()).len() as u64 + 2);
}

#[test]
fn a_read_while_appends_go_on_returns_each_record_once() {
    // A read that reaches the end of the segment as it was when the read
    // began, while appends grow it, goes on from where it stopped: it
    // must not start again at the index entry before that point and give
    // the records in between a second time.
    let sim = SimStorage::new();
    let config = LogConfig {
        segment_bytes: 8 << 20,
        index_interval_bytes: 256,
        ..LogConfig::default()
    };
    let (log, _) = open(&sim, config).unwrap();
    let total = 20_000u64;
    let reads = std::thread::scope(|s| {
        let log = &log;
        s.spawn(move || {
            for i in 0..total {
                log.append(vec![rec(i, 20)]).unwrap();
            }
        });
        let mut reads = 0;
        loop {
            let end = log.next_offset();
            let from = end.saturating_sub(300);
            let got = log.read(from, ReadLimits::records(usize::MAX)).unwrap();
            for (i, r) in got.iter().enumerate() {
                assert_eq!(
                    r.offset,
                    from + i as u64,
                    "read {reads} from {from}: record {i} of {}",
                    got.len()
                );
                assert_record(r, &rec(r.offset, 20), r.offset);
            }
            reads += 1;
            if end == total {
                return reads;
            }
        }
    });
    assert!(reads > 1);
}
