//! Group commit: many callers' appends ride one write and one sync.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use strata_store::{LogConfig, SimStorage};

/// With the writer paused, 8 threads queue 1,000 appends each; released,
/// the writer takes all 8,000 as one batch: one write, one `fdatasync`.
#[test]
fn one_sync_for_a_batch_of_8000_appends() {
    let sim = SimStorage::new();
    let (log, _) = open(&sim, LogConfig::default()).unwrap();
    let log = Arc::new(log);
    let pause = log.pause_writer();
    let before = sim.stats();

    let handles: Vec<Vec<_>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8u64)
            .map(|t| {
                let log = &log;
                s.spawn(move || {
                    (0..1000)
                        .map(|i| log.submit(vec![rec(t * 1000 + i, 20)]).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(log.queued_appends(), 8000);
    assert_eq!(sim.stats(), before, "nothing written while paused");
    assert_eq!(log.next_offset(), 0);

    drop(pause);
    let mut offsets = Vec::new();
    for per_thread in handles {
        let mut prev = None;
        for h in per_thread {
            let r = h
                .wait_timeout(Duration::from_secs(30))
                .expect("append completes")
                .unwrap();
            assert_eq!(r.end, r.start + 1);
            assert!(
                prev < Some(r.start),
                "each caller's appends keep their order"
            );
            prev = Some(r.start);
            offsets.push(r.start);
        }
    }
    let after = sim.stats();
    assert_eq!(after.syncs - before.syncs, 1, "one fdatasync for the batch");
    assert_eq!(after.writes - before.writes, 1, "one write for the batch");
    offsets.sort();
    assert_eq!(offsets, (0..8000).collect::<Vec<_>>());
    assert_eq!(read_all(&log).len(), 8000);
}

/// A batch that crosses segment boundaries writes once per segment.
#[test]
fn one_write_per_segment_touched() {
    let sim = SimStorage::new();
    let (log, _) = open(
        &sim,
        LogConfig {
            segment_bytes: 4096,
            ..LogConfig::default()
        },
    )
    .unwrap();
    let pause = log.pause_writer();
    let before = sim.stats();
    // 100 records of 34 + 14 + 100 bytes: about 3.6 segments' worth.
    let handles: Vec<_> = (0..100)
        .map(|i| log.submit(vec![rec(i, 100)]).unwrap())
        .collect();
    drop(pause);
    for h in handles {
        h.wait().unwrap();
    }
    let segs = segments(&sim, &dir()).len() as u64;
    assert_eq!(segs, 4);
    let after = sim.stats();
    // Per segment: one records write; per roll: header and index writes.
    assert_eq!(after.writes - before.writes, segs + 2 * (segs - 1));
    // Per roll: sealed segment, index file, new header, directory; then
    // one sync for the batch's last segment.
    assert_eq!(after.syncs - before.syncs, 3 * (segs - 1) + 1);
    assert_eq!(after.dir_syncs - before.dir_syncs, segs - 1);
}
