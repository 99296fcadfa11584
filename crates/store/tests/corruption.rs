//! Damage on disk: a torn tail of the last segment is cut off and reported;
//! anything else refuses to open, naming the file, the byte position and
//! the offset expected there.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::*;
use strata_store::{Damage, Error, NewRecord, SimStorage, Storage};

/// Every record has a topic, properties and a payload, so every region
/// exists in every record.
fn full_record(i: u64) -> NewRecord {
    NewRecord {
        properties: Bytes::from(vec![0x26; 1 + (i % 3) as usize]),
        payload: Bytes::from(vec![i as u8; 1 + size_of(i)]),
        ..rec(i, 0)
    }
}

struct Fixture {
    sim: SimStorage,
    all: Vec<NewRecord>,
    segs: Vec<(u64, PathBuf)>,
}

impl Fixture {
    fn new() -> Fixture {
        let sim = SimStorage::new();
        let all: Vec<NewRecord> = (0..41).map(full_record).collect();
        let (log, _) = open(&sim, small_config()).unwrap();
        for r in &all {
            log.append(vec![r.clone()]).unwrap();
        }
        log.close().unwrap();
        let segs = segments(&sim, &dir());
        let f = Fixture { sim, all, segs };
        assert!(f.segs.len() >= 3);
        assert!(
            f.all.len() as u64 - f.last().0 >= 3,
            "last segment holds at least 3 records"
        );
        assert!(f.segs[1].0 >= 3, "first segment holds at least 3 records");
        f
    }

    fn last(&self) -> (u64, PathBuf) {
        self.segs[self.segs.len() - 1].clone()
    }

    fn pos(&self, base: u64, offset: u64) -> u64 {
        position_of(&self.all, base, offset)
    }

    /// Byte positions, relative to a record's start, of one byte in each
    /// region of record `offset`.
    fn regions(&self, offset: u64) -> Vec<(&'static str, u64)> {
        let r = &self.all[offset as usize];
        let t = r.topic.len() as u64;
        let p = r.properties.len() as u64;
        vec![
            ("length", 0),
            ("crc", 5),
            ("offset", 8),
            ("timestamp", 17),
            ("topic length", 24),
            ("topic", 26),
            ("properties length", 26 + t),
            ("properties", 26 + t + 4),
            ("payload length", 26 + t + 4 + p + 1),
            ("payload", 26 + t + 4 + p + 4),
        ]
    }
}

fn expect_corrupt(
    result: strata_store::Result<impl Sized>,
    path: &Path,
    position: u64,
    offset: u64,
    what: &str,
) -> Damage {
    match result {
        Err(Error::Corrupt {
            path: p,
            position: pos,
            expected_offset,
            damage,
        }) => {
            assert_eq!(
                (p.as_path(), pos, expected_offset),
                (path, position, offset),
                "{what}"
            );
            damage
        }
        Err(e) => panic!("{what}: expected corruption, got {e}"),
        Ok(_) => panic!("{what}: opened a damaged log"),
    }
}

#[test]
fn bit_flip_in_the_last_record_is_a_torn_tail() {
    let f0 = Fixture::new();
    let (base, path) = f0.last();
    let last = f0.all.len() as u64 - 1;
    let at = f0.pos(base, last);
    for (region, rel) in f0.regions(last) {
        for bit in 0..8 {
            let f = Fixture::new();
            flip(&f.sim, &path, at + rel, bit);
            let (log, report) =
                open(&f.sim, small_config()).unwrap_or_else(|e| panic!("{region} bit {bit}: {e}"));
            let t = report.truncated.expect("truncation reported");
            assert_eq!(t.path, path, "{region} bit {bit}");
            assert_eq!(t.position, at, "{region} bit {bit}");
            assert_eq!(t.offset, last);
            assert_eq!(t.bytes_dropped, f.all[last as usize].encoded_len());
            assert_eq!(log.next_offset(), last);
            assert_eq!(f.sim.read(&path).unwrap().len() as u64, at, "file cut");
            let got = read_all(&log);
            assert_eq!(got.len() as u64, last);
            // The cut is durable: a crash now changes nothing.
            drop(log);
            let after = f.sim.crash(strata_store::storage::CrashMode::DropUnsynced);
            let (_, report) = open(&after, small_config()).unwrap();
            assert_eq!((report.truncated, report.next_offset), (None, last));
        }
    }
}

#[test]
fn bit_flip_followed_by_valid_records_is_corruption() {
    let f0 = Fixture::new();
    let (base, path) = f0.last();
    for (region, rel) in f0.regions(base) {
        for bit in 0..8 {
            let f = Fixture::new();
            let at = f.pos(base, base);
            flip(&f.sim, &path, at + rel, bit);
            let what = format!("{region} bit {bit}");
            expect_corrupt(open(&f.sim, small_config()), &path, at, base, &what);
            // Refusing to open repairs nothing.
            assert_eq!(
                f.sim.read(&path).unwrap().len(),
                f0.sim.read(&path).unwrap().len(),
                "{what}"
            );
        }
    }
}

#[test]
fn bit_flip_in_a_sealed_segment_is_corruption() {
    let f0 = Fixture::new();
    let path = f0.segs[0].1.clone();
    let last_of_first = f0.segs[1].0 - 1;
    for offset in [1, last_of_first] {
        for (region, rel) in f0.regions(offset) {
            for bit in [0, 3, 7] {
                let f = Fixture::new();
                let at = f.pos(0, offset);
                flip(&f.sim, &path, at + rel, bit);
                let what = format!("offset {offset} {region} bit {bit}");
                expect_corrupt(open(&f.sim, small_config()), &path, at, offset, &what);
            }
        }
    }
}

#[test]
fn bit_flip_in_a_segment_header_is_corruption() {
    let f0 = Fixture::new();
    for (base, path) in [f0.segs[0].clone(), f0.last()] {
        for byte in 0..16 {
            for bit in 0..8 {
                let f = Fixture::new();
                flip(&f.sim, &path, byte, bit);
                let damage = expect_corrupt(open(&f.sim, small_config()), &path, 0, base, "header");
                let want = if byte < 8 {
                    Damage::BadMagic
                } else {
                    Damage::HeaderChecksum
                };
                assert_eq!(damage, want, "byte {byte} bit {bit}");
            }
        }
    }
}

#[test]
fn truncating_the_last_segment_mid_record_is_repaired() {
    let f0 = Fixture::new();
    let (base, path) = f0.last();
    let last = f0.all.len() as u64 - 1;
    let at = f0.pos(base, last);
    let len = f0.all[last as usize].encoded_len();
    for cut in at..at + len {
        let f = Fixture::new();
        let bytes = f.sim.read(&path).unwrap();
        f.sim.write_file(&path, &bytes[..cut as usize]).unwrap();
        let (log, report) = open(&f.sim, small_config()).unwrap();
        assert_eq!(log.next_offset(), last, "cut at {cut}");
        match report.truncated {
            None => assert_eq!(cut, at, "only a cut on a record boundary needs no repair"),
            Some(t) => {
                assert_eq!(
                    (t.path.as_path(), t.position, t.offset, t.bytes_dropped),
                    (path.as_path(), at, last, cut - at)
                );
                assert!(
                    matches!(t.damage, Damage::Incomplete { .. }),
                    "{:?}",
                    t.damage
                );
            }
        }
    }
}

#[test]
fn zeros_after_the_last_record_are_a_torn_tail_but_not_in_a_sealed_segment() {
    let f = Fixture::new();
    let (_, path) = f.last();
    let mut bytes = f.sim.read(&path).unwrap();
    let end = bytes.len() as u64;
    bytes.extend_from_slice(&[0; 4096]);
    f.sim.write_file(&path, &bytes).unwrap();
    let (_, report) = open(&f.sim, small_config()).unwrap();
    let t = report.truncated.unwrap();
    assert_eq!((t.position, t.bytes_dropped), (end, 4096));
    assert_eq!(t.damage, Damage::LengthOutOfRange { length: 0 });

    let f = Fixture::new();
    let path = f.segs[0].1.clone();
    let mut bytes = f.sim.read(&path).unwrap();
    let end = bytes.len() as u64;
    bytes.extend_from_slice(&[0; 10]);
    f.sim.write_file(&path, &bytes).unwrap();
    expect_corrupt(
        open(&f.sim, small_config()),
        &path,
        end,
        f.segs[1].0,
        "zeros in sealed",
    );
}

#[test]
fn truncating_a_sealed_segment_is_corruption() {
    let f = Fixture::new();
    let path = f.segs[0].1.clone();
    let bytes = f.sim.read(&path).unwrap();
    let at = f.pos(0, f.segs[1].0 - 1);
    f.sim.write_file(&path, &bytes[..at as usize + 3]).unwrap();
    expect_corrupt(
        open(&f.sim, small_config()),
        &path,
        at,
        f.segs[1].0 - 1,
        "cut sealed",
    );
}

#[test]
fn a_missing_segment_is_a_gap() {
    let f = Fixture::new();
    f.sim.remove(&f.segs[1].1).unwrap();
    let err = open(&f.sim, small_config()).expect_err("refused");
    let next = &f.segs[2];
    assert_eq!(
        err.to_string(),
        format!(
            "{}: corrupt at byte 0, where offset {} was expected: segment starts at offset {}, so offsets \
             are missing between it and the previous segment; Strata does not start on a damaged log: \
             move the file aside or restore it from a replica or backup, then start again",
            next.1.display(),
            f.segs[1].0,
            next.0
        )
    );
}

#[test]
fn an_unknown_version_refuses_to_open() {
    let f = Fixture::new();
    let (_, path) = f.last();
    let mut bytes = f.sim.read(&path).unwrap();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32c_of(&bytes[..12]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    f.sim.write_file(&path, &bytes).unwrap();
    let err = open(&f.sim, small_config()).expect_err("refused");
    assert!(matches!(
        err,
        Error::UnsupportedVersion {
            found: 2,
            supported: 1,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: segment format version 2 is not supported (this build reads version 1); open this log \
             with the Strata release that wrote it, or move the directory aside",
            path.display()
        )
    );
}

/// CRC32C (Castagnoli), bit by bit: independent of the crate under test.
fn crc32c_of(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_torn_header_of_the_last_segment_is_rewritten() {
    for keep in [0usize, 5, 15] {
        let f = Fixture::new();
        let (base, path) = f.last();
        let bytes = f.sim.read(&path).unwrap();
        f.sim.write_file(&path, &bytes[..keep]).unwrap();
        let (log, report) = open(&f.sim, small_config()).unwrap();
        let t = report.truncated.unwrap();
        assert_eq!(
            (t.position, t.offset, t.bytes_dropped),
            (0, base, keep as u64)
        );
        assert_eq!(f.sim.read(&path).unwrap(), &bytes[..16]);
        assert_eq!(log.next_offset(), base);
        assert_eq!(log.append(vec![rec(1, 1)]).unwrap(), base..base + 1);
    }
}

#[test]
fn indexes_are_rebuilt_when_missing_or_wrong_and_leftovers_removed() {
    let f = Fixture::new();
    let idx0 = dir().join("00000000000000000000.idx");
    let idx1 = f.segs[1].1.with_extension("idx");
    let good0 = f.sim.read(&idx0).unwrap();
    let good1 = f.sim.read(&idx1).unwrap();
    f.sim.remove(&idx0).unwrap();
    let mut bad = good1.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    f.sim.write_file(&idx1, &bad).unwrap();
    let orphan = dir().join("00000000000000099999.idx");
    let temp = dir().join("00000000000000000000.idx.tmp");
    let stale = f.last().1.with_extension("idx");
    for p in [&orphan, &temp, &stale] {
        f.sim.write_file(p, b"junk").unwrap();
    }
    f.sim
        .write_file(&dir().join("README"), b"not ours")
        .unwrap();

    let (log, mut report) = open(&f.sim, small_config()).unwrap();
    report.removed.sort();
    assert_eq!(report.indexes_rebuilt, vec![idx0.clone(), idx1.clone()]);
    let mut want = vec![orphan.clone(), temp.clone(), stale.clone()];
    want.sort();
    assert_eq!(report.removed, want);
    assert_eq!(f.sim.read(&idx0).unwrap(), good0);
    assert_eq!(f.sim.read(&idx1).unwrap(), good1);
    assert!(
        f.sim.read(&dir().join("README")).is_ok(),
        "foreign files are left alone"
    );
    assert_eq!(read_all(&log).len(), f.all.len());
}
