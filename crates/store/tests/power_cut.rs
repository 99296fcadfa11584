//! Power cut at every sync point in turn, then recovery from what was
//! durable, checked against a model: every append that completed `Ok`
//! before the cut is there with its offset and bytes; what is there is a
//! contiguous run of what was submitted, in order; nothing else appears.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use strata_store::storage::{CrashMode, CutPoint, FaultPlan, PowerCut};
use strata_store::{FsyncPolicy, LogConfig, NewRecord, SimStorage};

/// Appends of 1 to 4 records of varied sizes: about 14 segment rolls with
/// 1 KiB segments, with retention run along the way.
fn workload() -> Vec<Vec<NewRecord>> {
    let mut i = 0;
    (0..40u64)
        .map(|b| {
            let n = 1 + b % 4;
            let batch = (0..n).map(|k| rec(i + k, size_of(i + k))).collect();
            i += n;
            batch
        })
        .collect()
}

fn config(fsync: FsyncPolicy) -> LogConfig {
    LogConfig {
        fsync,
        retention_bytes: Some(4096),
        ..small_config()
    }
}

struct Outcome {
    /// The storage as a restart after the crash finds it.
    after: SimStorage,
    /// Records whose append completed `Ok` before the cut.
    acked: u64,
    /// The highest `min_needed_offset` passed to retention.
    min_needed: u64,
}

fn run(plan: FaultPlan, mode: CrashMode, fsync: FsyncPolicy) -> Outcome {
    let sim = SimStorage::with_faults(plan);
    let mut out = Outcome {
        after: SimStorage::new(),
        acked: 0,
        min_needed: 0,
    };
    if let Ok((log, _)) = open(&sim, config(fsync)) {
        for (n, batch) in workload().into_iter().enumerate() {
            let len = batch.len() as u64;
            match log.append(batch) {
                Ok(range) => {
                    assert_eq!(range, out.acked..out.acked + len);
                    out.acked = range.end;
                }
                Err(_) => break,
            }
            if n % 10 == 9 {
                out.min_needed = out.acked / 2;
                if log.apply_retention(out.min_needed, 0).is_err() {
                    break;
                }
            }
        }
        drop(log);
    }
    out.after = sim.crash(mode);
    out
}

/// Returns whether recovery cut a torn tail.
fn check(o: &Outcome, durable_acks: bool, what: &str) -> bool {
    let all: Vec<NewRecord> = workload().into_iter().flatten().collect();
    let (log, report) = open(&o.after, config(FsyncPolicy::Always))
        .unwrap_or_else(|e| panic!("{what}: recovery failed: {e}"));
    let got = read_all(&log);
    let first = log.first_offset();
    let next = log.next_offset();
    assert_eq!(report.next_offset, next, "{what}");
    assert!(
        first <= o.min_needed,
        "{what}: retention dropped needed offsets ({first} > {})",
        o.min_needed
    );
    if durable_acks {
        assert!(
            next >= o.acked,
            "{what}: acknowledged appends lost: {next} < {}",
            o.acked
        );
    }
    assert!(
        next <= all.len() as u64,
        "{what}: records that were never appended"
    );
    assert_eq!(
        got.len() as u64,
        next - first,
        "{what}: offsets are contiguous"
    );
    for (k, r) in got.iter().enumerate() {
        let offset = first + k as u64;
        assert_record(r, &all[offset as usize], offset);
    }
    // The recovered log takes appends again.
    assert_eq!(
        log.append(vec![rec(999, 10)]).unwrap(),
        next..next + 1,
        "{what}"
    );
    report.truncated.is_some()
}

fn sync_points(fsync: FsyncPolicy) -> u64 {
    // Count on a fresh run: every sync_data and sync_dir from the start.
    let sim = SimStorage::new();
    let (log, _) = open(&sim, config(fsync)).unwrap();
    for (n, batch) in workload().into_iter().enumerate() {
        let acked = log.append(batch).unwrap();
        if n % 10 == 9 {
            log.apply_retention(acked.end / 2, 0).unwrap();
        }
    }
    log.close().unwrap();
    let s = sim.stats();
    s.syncs + s.dir_syncs
}

fn cut_everywhere(fsync: FsyncPolicy, durable_acks: bool) {
    let n = sync_points(fsync);
    assert!(n > 30, "the workload has {n} sync points");
    let total = workload().iter().flatten().count() as u64;
    let (mut runs, mut cut_short, mut torn) = (0, 0, 0);
    for at_sync in 1..=n + 1 {
        for point in [CutPoint::BeforeSync, CutPoint::AfterSync] {
            for mode in [
                CrashMode::DropUnsynced,
                CrashMode::KeepPrefix { seed: at_sync },
                CrashMode::TearWrite {
                    seed: at_sync * 7 + 1,
                },
            ] {
                let plan = FaultPlan {
                    power_cut: Some(PowerCut {
                        at_sync,
                        point,
                        mode,
                    }),
                    ..FaultPlan::default()
                };
                let o = run(plan, mode, fsync);
                runs += 1;
                cut_short += u32::from(o.acked < total);
                torn += u32::from(check(
                    &o,
                    durable_acks,
                    &format!("{fsync:?}, cut {point:?} sync #{at_sync}, {mode:?}"),
                ));
            }
        }
    }
    // The cuts really land mid-workload, and torn tails really happen.
    assert!(
        cut_short * 10 > runs * 9,
        "{cut_short} of {runs} runs were cut short"
    );
    assert!(torn >= 10, "only {torn} of {runs} runs had a torn tail");
}

#[test]
fn power_cut_at_every_sync_point_always() {
    cut_everywhere(FsyncPolicy::Always, true);
}

/// Under `Never` nothing promises durability, but recovery must still
/// succeed and find a contiguous prefix of what was written.
#[test]
fn power_cut_at_every_sync_point_never() {
    cut_everywhere(FsyncPolicy::Never, false);
}

/// A crash without a planned cut, at the end, tearing unsynced data in
/// many ways.
#[test]
fn crash_after_the_workload_with_torn_tails() {
    for seed in 0..200 {
        for fsync in [FsyncPolicy::Always, FsyncPolicy::Never] {
            let mode = if seed % 2 == 0 {
                CrashMode::TearWrite { seed }
            } else {
                CrashMode::KeepPrefix { seed }
            };
            let o = run(FaultPlan::default(), mode, fsync);
            check(
                &o,
                fsync == FsyncPolicy::Always,
                &format!("{fsync:?} seed {seed}"),
            );
        }
    }
}

/// Injected failures of each write and each sync: the failing append and
/// everything after it fail, and the log reopens to a good state.
#[test]
fn failure_of_each_write_and_sync() {
    for k in 1..60 {
        for plan in [
            FaultPlan {
                fail_write: Some(k),
                ..FaultPlan::default()
            },
            FaultPlan {
                fail_sync: Some(k),
                ..FaultPlan::default()
            },
        ] {
            let o = run(plan, CrashMode::KeepPrefix { seed: k }, FsyncPolicy::Always);
            check(&o, true, &format!("{plan:?}"));
        }
    }
}
