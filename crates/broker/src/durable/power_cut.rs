//! Power cut at every sync of a compaction, at start-up and while the
//! broker runs, before and after the sync takes effect: the data directory
//! always opens again with the state it had before the compaction.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use strata_codec::{MqttStr, QoS};
use strata_journal::{Entry, Recovered};
use strata_router::{ShareStrategy, SubOptions};
use strata_session::Message;
use strata_store::storage::{CrashMode, CutPoint, FaultPlan, PowerCut};
use strata_store::{SimStorage, Storage};

use super::*;

const DIR: &str = "/data";

fn open_sim(sim: &SimStorage) -> io::Result<(Durable, Recovered)> {
    let config = StorageConfig {
        data_dir: Some(DIR.into()),
        fsync: Fsync::Always,
        compact_after_records: 1,
    };
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    Durable::open(
        &config,
        Path::new(DIR),
        ShareStrategy::RoundRobin,
        Some(storage),
    )
}

/// Appends `records` and waits until they are durable.
fn append(d: &Durable, records: Vec<strata_store::NewRecord>) {
    let (tx, rx) = std::sync::mpsc::channel();
    d.append_then(records, move |ok| {
        let _ = tx.send(ok);
    });
    assert_eq!(rx.recv().ok(), Some(true), "append");
}

/// Two persistent sessions, one subscribed, queued messages, a retained
/// message and one cleared.
fn populate(d: &Durable) {
    let now = now_ms();
    let entry = |e: Entry| strata_journal::encode(&e, now);
    let sub = |c: &'static str, f: &'static str| Entry::Subscribe {
        client: MqttStr::from_static(c),
        filter: MqttStr::from_static(f),
        options: SubOptions {
            qos: QoS::AtLeastOnce,
            ..SubOptions::default()
        },
    };
    append(
        d,
        vec![
            entry(Entry::Up {
                client: MqttStr::from_static("a"),
                expiry: 3600,
            }),
            entry(sub("a", "t/#")),
            entry(Entry::Up {
                client: MqttStr::from_static("b"),
                expiry: 3600,
            }),
            entry(sub("b", "r/#")),
        ],
    );
    for (n, topic, retain) in [(1u8, "t/1", false), (2, "r/x", true), (3, "t/2", false)] {
        let m = Message {
            topic: MqttStr::from_static(topic),
            payload: Bytes::from(vec![n]),
            qos: QoS::AtLeastOnce,
            retain,
            properties: Default::default(),
            received: crate::clock::now(),
            id: d.next_id(),
        };
        append(d, vec![strata_journal::encode_message(&m, now, None)]);
    }
    for client in ["a", "b"] {
        append(
            d,
            vec![entry(Entry::Down {
                client: MqttStr::from_static(client),
                expiry: 3600,
                at_ms: now,
            })],
        );
    }
}

/// What must survive, leaving out the times that move with the clock.
fn state(r: &Recovered) -> Vec<String> {
    let mut out: Vec<String> = r
        .sessions
        .iter()
        .map(|s| {
            let pending: Vec<u64> = s.pending.iter().map(|d| d.message.id).collect();
            format!(
                "{} expiry {} subs {:?} pending {pending:?} inflight {} inbound {:?}",
                s.client_id,
                s.expiry,
                s.subscriptions,
                s.inflight.len(),
                s.inbound
            )
        })
        .collect();
    out.extend(
        r.retained
            .iter()
            .map(|m| format!("retained {} {:?}", m.topic, m.payload)),
    );
    out
}

/// The sync points (`sync_data` and `sync_dir`) `run` makes on `sim`.
fn syncs(sim: &SimStorage, run: impl FnOnce()) -> u64 {
    let before = sim.stats();
    run();
    let after = sim.stats();
    (after.syncs + after.dir_syncs) - (before.syncs + before.dir_syncs)
}

/// Every cut: each sync point, before and after it takes effect, losing
/// what was not synced or keeping a torn prefix of it.
fn cuts(n: u64) -> impl Iterator<Item = PowerCut> {
    (1..=n).flat_map(|at_sync| {
        [CutPoint::BeforeSync, CutPoint::AfterSync]
            .into_iter()
            .flat_map(move |point| {
                [
                    CrashMode::DropUnsynced,
                    CrashMode::TearWrite { seed: at_sync },
                ]
                .into_iter()
                .map(move |mode| PowerCut {
                    at_sync,
                    point,
                    mode,
                })
            })
    })
}

#[test]
fn a_power_cut_at_any_sync_of_a_runtime_compaction_keeps_the_state() {
    let sim = SimStorage::new();
    let (d, _) = open_sim(&sim).expect("open");
    populate(&d);
    let expected = {
        let after = sim.crash(CrashMode::DropUnsynced);
        drop(d);
        let (_, r) = open_sim(&after).expect("reopen");
        state(&r)
    };
    assert_eq!(
        expected.len(),
        3,
        "two sessions and a retained message: {expected:?}"
    );
    let n = {
        let sim = SimStorage::new();
        let (d, _) = open_sim(&sim).expect("open");
        populate(&d);
        assert!(d.start_compaction());
        syncs(&sim, || d.compact().expect("compaction"))
    };
    assert!(
        n >= 3,
        "the compacted log, CURRENT.tmp and the directory: {n}"
    );
    for cut in cuts(n) {
        let sim = SimStorage::new();
        let (d, _) = open_sim(&sim).expect("open");
        populate(&d);
        sim.set_faults(FaultPlan {
            power_cut: Some(cut),
            ..FaultPlan::default()
        });
        assert!(d.start_compaction());
        let _ = d.compact();
        let after = sim.crash(cut.mode);
        drop(d);
        let (_, r) = open_sim(&after).unwrap_or_else(|e| panic!("{cut:?}: {e}"));
        assert_eq!(state(&r), expected, "{cut:?}");
    }
}

#[test]
fn a_power_cut_at_any_sync_of_the_start_up_compaction_keeps_the_state() {
    // A data directory with a log to compact, as a broker left it.
    let written = || {
        let sim = SimStorage::new();
        let (d, _) = open_sim(&sim).expect("open");
        populate(&d);
        let image = sim.crash(CrashMode::DropUnsynced);
        drop(d);
        image
    };
    let (expected, n) = {
        let sim = written();
        let mut r = None;
        let n = syncs(&sim, || r = Some(open_sim(&sim).expect("reopen").1));
        (state(&r.expect("opened")), n)
    };
    assert_eq!(expected.len(), 3, "{expected:?}");
    assert!(n >= 3, "{n}");
    for cut in cuts(n) {
        let sim = written();
        sim.set_faults(FaultPlan {
            power_cut: Some(cut),
            ..FaultPlan::default()
        });
        let _ = open_sim(&sim);
        let after = sim.crash(cut.mode);
        let (_, r) = open_sim(&after).unwrap_or_else(|e| panic!("{cut:?}: {e}"));
        assert_eq!(state(&r), expected, "{cut:?}");
        // And the directory holds one log.
        let logs: Vec<String> = after
            .list_dirs(Path::new(DIR))
            .expect("list")
            .into_iter()
            .filter(|n| n.starts_with("log"))
            .collect();
        assert_eq!(logs.len(), 1, "{cut:?}: {logs:?}");
    }
}

#[test]
fn a_journal_of_another_format_version_is_refused_by_name() {
    let sim = SimStorage::new();
    let (d, _) = open_sim(&sim).expect("open");
    populate(&d);
    let after = sim.crash(CrashMode::DropUnsynced);
    drop(d);
    let live = current_log_dir(&after, Path::new(DIR)).expect("CURRENT");
    after
        .write_file(&live.join("FORMAT"), b"strata-journal 2\n")
        .expect("write");
    let e = open_sim(&after).expect_err("refused");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "{}: the journal is format version 2, and this build reads journal format version 1",
            live.display()
        )),
        "{text}"
    );
    // Without the file, a journal with segments is refused too.
    after.remove(&live.join("FORMAT")).expect("remove");
    let e = open_sim(&after).expect_err("refused");
    assert!(e.to_string().contains("without a FORMAT file"), "{e}");
}

#[test]
fn a_first_start_cut_short_at_any_sync_starts_again() {
    // A new data directory: the first start writes an empty log and
    // compacts it; a cut anywhere in that leaves a directory the next
    // start opens (a log with no FORMAT yet holds no record).
    let n = {
        let sim = SimStorage::new();
        syncs(&sim, || drop(open_sim(&sim).expect("open")))
    };
    assert!(n >= 3, "{n}");
    for cut in cuts(n) {
        let sim = SimStorage::with_faults(FaultPlan {
            power_cut: Some(cut),
            ..FaultPlan::default()
        });
        let _ = open_sim(&sim);
        let after = sim.crash(cut.mode);
        let (d, r) = open_sim(&after).unwrap_or_else(|e| panic!("{cut:?}: {e}"));
        assert!(state(&r).is_empty(), "{cut:?}");
        populate(&d);
    }
}
