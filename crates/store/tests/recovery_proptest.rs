//! Recovery never panics, whatever bytes are on disk: it opens (possibly
//! after cutting a torn tail) or returns an error, and a log it opened is
//! fully readable.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use common::*;
use proptest::prelude::*;
use strata_store::{ReadLimits, SimStorage, Storage};

fn seg(base: u64) -> PathBuf {
    dir().join(format!("{base:020}.seg"))
}

/// Bytes of a valid segment holding offsets 0..n.
fn valid_segment(n: u64) -> Vec<u8> {
    let sim = SimStorage::new();
    let (log, _) = open(&sim, strata_store::LogConfig::default()).unwrap();
    if n > 0 {
        log.append(records(n)).unwrap();
    }
    log.close().unwrap();
    sim.read(&seg(0)).unwrap()
}

/// Opens the files and checks the outcome is consistent; returns the
/// records read when the log opened.
fn open_files(files: &[(PathBuf, Vec<u8>)]) -> Option<Vec<strata_store::Record>> {
    let sim = SimStorage::new();
    for (p, b) in files {
        sim.write_file(p, b).unwrap();
    }
    let (log, report) = open(&sim, small_config()).ok()?;
    let got = log
        .read(log.first_offset(), ReadLimits::records(usize::MAX))
        .expect("an opened log reads");
    assert_eq!(got.len() as u64, report.next_offset - report.first_offset);
    Some(got)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_as_the_only_segment(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        open_files(&[(seg(0), bytes)]);
    }

    #[test]
    fn valid_header_then_arbitrary_bytes(tail in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut bytes = valid_segment(0);
        bytes.extend_from_slice(&tail);
        open_files(&[(seg(0), bytes)]);
    }

    /// Mutations of a valid segment: what opens is a prefix of the original.
    #[test]
    fn damaged_valid_segment(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 0..4),
        cut in any::<prop::sample::Index>(),
        do_cut in any::<bool>(),
    ) {
        let original = valid_segment(20);
        let mut bytes = original.clone();
        for (at, bit) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        if do_cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        if let Some(got) = open_files(&[(seg(0), bytes)]) {
            let all = records(20);
            prop_assert!(got.len() <= all.len());
            for (i, r) in got.iter().enumerate() {
                assert_record(r, &all[i], i as u64);
            }
        }
    }

    #[test]
    fn arbitrary_sealed_segment_and_index(
        sealed in proptest::collection::vec(any::<u8>(), 0..1024),
        index in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut valid = valid_segment(3);
        valid.truncate(16);
        open_files(&[
            (seg(0), sealed),
            (dir().join(format!("{:020}.idx", 0)), index),
            (seg(3), valid),
        ]);
    }
}
