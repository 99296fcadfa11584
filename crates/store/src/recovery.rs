//! Opening a log directory: check every segment, truncate a torn tail of the
//! last one, refuse anything else, and rebuild indexes that do not match.
//!
//! The rules (also in `docs/STORAGE_FORMAT.md`):
//! - every segment header must be whole and valid, except that the last
//!   segment may be shorter than a header and hold only a prefix of it or
//!   zeros (a crash while it was created): its header is rewritten;
//! - an unknown format version refuses to open;
//! - a sealed segment (any but the last) must hold only valid records, with
//!   contiguous offsets from its base, up to its exact end;
//! - in the last segment, the first invalid record starts a torn tail when no
//!   valid record follows it anywhere in the file: the tail is cut off and
//!   reported; a valid record after it means corruption, not a torn write;
//! - a well-formed record with the wrong offset is corruption wherever it is;
//! - each segment's base offset must equal the end of the previous segment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Damage, Error, Result};
use crate::format::{
    self, FileKind, HEADER_LEN, HeaderError, IndexBuilder, IndexEntry, MIN_RECORD_LEN,
};
use crate::log::{Active, LogConfig, SegmentView};
use crate::storage::{Storage, StorageFile};

/// What opening the log found and repaired.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecoveryReport {
    /// Segments in the log after recovery.
    pub segments: usize,
    /// The oldest offset in the log.
    pub first_offset: u64,
    /// The offset the next append gets.
    pub next_offset: u64,
    /// Whether the directory held no segment and a first one was created.
    pub created: bool,
    /// The torn tail cut off the last segment, if there was one.
    pub truncated: Option<TruncatedTail>,
    /// Index files rewritten because they were missing or did not match
    /// their segment.
    pub indexes_rebuilt: Vec<PathBuf>,
    /// Leftover files removed: temporary files, indexes without a segment,
    /// an index beside the active segment.
    pub removed: Vec<PathBuf>,
}

/// A torn tail cut off the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncatedTail {
    /// The segment file.
    pub path: PathBuf,
    /// Byte position the file was cut to (0 when a torn header was rewritten).
    pub position: u64,
    /// The offset the first dropped record would have had: the log's next
    /// offset.
    pub offset: u64,
    /// How many bytes were dropped.
    pub bytes_dropped: u64,
    /// What was wrong at `position`.
    pub damage: Damage,
}

/// The outcome of checking one segment's records.
struct Scan {
    /// Byte position after the last valid record.
    end: u64,
    next_offset: u64,
    index: IndexBuilder,
    first_timestamp: Option<i64>,
    max_timestamp: i64,
    /// Position and kind of the first invalid record.
    failure: Option<(u64, Damage)>,
}

/// Checks the records of a segment whose header is valid.
fn scan(bytes: &[u8], base: u64, index_interval: u32) -> Scan {
    let mut s = Scan {
        end: HEADER_LEN,
        next_offset: base,
        index: IndexBuilder::new(index_interval),
        first_timestamp: None,
        max_timestamp: i64::MIN,
        failure: None,
    };
    while let Some(rest) = bytes.get(s.end as usize..).filter(|r| !r.is_empty()) {
        match format::parse_record(rest) {
            Ok(rec) if rec.offset == s.next_offset => {
                s.index.observe(s.next_offset - base, s.end);
                s.first_timestamp.get_or_insert(rec.timestamp);
                s.max_timestamp = s.max_timestamp.max(rec.timestamp);
                s.end += rec.len as u64;
                s.next_offset += 1;
            }
            Ok(rec) => {
                s.failure = Some((s.end, Damage::OffsetMismatch { found: rec.offset }));
                break;
            }
            Err(damage) => {
                s.failure = Some((s.end, damage));
                break;
            }
        }
    }
    s
}

/// The first position after `from` where a valid record with an offset at
/// or past `expected` starts, if any. Offsets far beyond what the remaining
/// bytes could hold are skipped before the CRC is computed, which keeps this
/// linear on garbage.
fn valid_record_after(bytes: &[u8], from: u64, expected: u64) -> Option<u64> {
    let from = usize::try_from(from).ok()?;
    let room = (bytes.len().saturating_sub(from) as u64) / MIN_RECORD_LEN + 1;
    let offsets = expected..expected.saturating_add(room);
    (from + 1..bytes.len())
        .find(|&q| {
            let rest = &bytes[q..];
            format::plausible_record_at(rest, &offsets) && format::parse_record(rest).is_ok()
        })
        .map(|q| q as u64)
}

fn corrupt(path: &Path, position: u64, expected_offset: u64, damage: Damage) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        position,
        expected_offset,
        damage,
    }
}

/// Creates an empty segment holding only its header and makes its contents
/// durable. The caller syncs the directory.
pub(crate) fn create_segment(storage: &dyn Storage, path: &Path) -> Result<Box<dyn StorageFile>> {
    let file = storage
        .open(path, true)
        .map_err(|e| Error::io("create", path, e))?;
    file.truncate(0)
        .and_then(|()| file.write_at(0, &format::segment_header()))
        .and_then(|()| file.sync_data())
        .map_err(|e| Error::io("write header of", path, e))?;
    Ok(file)
}

/// Writes an index file through a temporary file: write, sync, rename. The
/// caller syncs the directory.
pub(crate) fn write_index(
    storage: &dyn Storage,
    path: &Path,
    entries: &[IndexEntry],
) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format::TEMP_SUFFIX);
    let tmp = PathBuf::from(tmp);
    let file = storage
        .open(&tmp, true)
        .map_err(|e| Error::io("create", &tmp, e))?;
    file.truncate(0)
        .and_then(|()| file.write_at(0, &format::encode_index(entries)))
        .and_then(|()| file.sync_data())
        .map_err(|e| Error::io("write", &tmp, e))?;
    storage
        .rename(&tmp, path)
        .map_err(|e| Error::io("rename", &tmp, e))
}

/// The recovered log: sealed segments and the active one (last in `views`),
/// the writer's state for the active segment, and the report.
pub(crate) struct Recovered {
    pub views: Vec<SegmentView>,
    pub active: Active,
    pub report: RecoveryReport,
}

pub(crate) fn recover(storage: &dyn Storage, dir: &Path, config: &LogConfig) -> Result<Recovered> {
    storage
        .create_dir_all(dir)
        .map_err(|e| Error::io("create directory", dir, e))?;
    let names = storage.list(dir).map_err(|e| Error::io("list", dir, e))?;
    let mut report = RecoveryReport::default();
    let mut dir_changed = false;
    let mut segments = BTreeMap::new();
    let mut indexes = BTreeSet::new();
    for name in names {
        let path = dir.join(&name);
        match format::parse_file_name(&name) {
            Some(FileKind::Segment(base)) => {
                segments.insert(base, path);
            }
            Some(FileKind::Index(base)) => {
                indexes.insert(base);
            }
            Some(FileKind::Temp) => {
                storage
                    .remove(&path)
                    .map_err(|e| Error::io("remove", &path, e))?;
                report.removed.push(path);
                dir_changed = true;
            }
            None if config
                .foreign_files
                .iter()
                .any(|f| path.file_name() == Some(f.as_ref())) => {}
            None => tracing::warn!(path = %path.display(), "ignoring a file the log does not own"),
        }
    }

    if segments.is_empty() {
        let path = dir.join(format::segment_file_name(0));
        drop(create_segment(storage, &path)?);
        segments.insert(0, path);
        report.created = true;
        dir_changed = true;
    }

    let last_base = segments.keys().next_back().copied().unwrap_or(0);
    let mut views: Vec<SegmentView> = Vec::with_capacity(segments.len());
    let mut active = None;
    for (&base, path) in &segments {
        let is_last = base == last_base;
        let file: Arc<dyn StorageFile> = Arc::from(
            storage
                .open(path, false)
                .map_err(|e| Error::io("open", path, e))?,
        );
        let mut bytes = storage.read(path).map_err(|e| Error::io("read", path, e))?;
        if let Some(prev) = views.last()
            && prev.next_offset != base
        {
            return Err(corrupt(
                path,
                0,
                prev.next_offset,
                Damage::OffsetGap { base },
            ));
        }

        match format::check_segment_header(&bytes) {
            Ok(()) => {}
            Err(HeaderError::Version(found)) => {
                return Err(Error::UnsupportedVersion {
                    path: path.clone(),
                    found,
                    supported: format::FORMAT_VERSION,
                });
            }
            Err(HeaderError::Damaged(damage)) if is_last && format::is_torn_header(&bytes) => {
                let header = format::segment_header();
                file.truncate(0)
                    .and_then(|()| file.write_at(0, &header))
                    .and_then(|()| file.sync_data())
                    .map_err(|e| Error::io("rewrite header of", path, e))?;
                tracing::warn!(path = %path.display(), "rewrote the torn header of the last segment");
                report.truncated = Some(TruncatedTail {
                    path: path.clone(),
                    position: 0,
                    offset: base,
                    bytes_dropped: bytes.len() as u64,
                    damage,
                });
                bytes = header.to_vec();
            }
            Err(HeaderError::Damaged(damage)) => return Err(corrupt(path, 0, base, damage)),
        }

        let s = scan(&bytes, base, config.index_interval_bytes);
        match s.failure {
            None => {}
            Some((position, damage)) => {
                let torn = is_last
                    && !matches!(damage, Damage::OffsetMismatch { .. })
                    && valid_record_after(&bytes, position, s.next_offset).is_none();
                if !torn {
                    return Err(corrupt(path, position, s.next_offset, damage));
                }
                let dropped = bytes.len() as u64 - position;
                file.truncate(position)
                    .and_then(|()| file.sync_data())
                    .map_err(|e| Error::io("truncate torn tail of", path, e))?;
                tracing::warn!(
                    path = %path.display(),
                    position,
                    offset = s.next_offset,
                    bytes_dropped = dropped,
                    %damage,
                    "cut a torn tail off the last segment"
                );
                report.truncated = Some(TruncatedTail {
                    path: path.clone(),
                    position,
                    offset: s.next_offset,
                    bytes_dropped: dropped,
                    damage,
                });
            }
        }

        let idx_path = dir.join(format::index_file_name(base));
        if is_last {
            if indexes.contains(&base) {
                storage
                    .remove(&idx_path)
                    .map_err(|e| Error::io("remove", &idx_path, e))?;
                report.removed.push(idx_path);
                dir_changed = true;
            }
        } else {
            let on_disk = indexes
                .contains(&base)
                .then(|| storage.read(&idx_path).ok())
                .flatten()
                .and_then(|b| format::decode_index(&b));
            if on_disk.as_deref() != Some(&s.index.entries[..]) {
                write_index(storage, &idx_path, &s.index.entries)?;
                report.indexes_rebuilt.push(idx_path);
                dir_changed = true;
            }
        }

        views.push(SegmentView {
            base,
            path: path.clone(),
            file: file.clone(),
            end: s.end,
            next_offset: s.next_offset,
            index: s.index.entries.clone(),
            max_timestamp: s.max_timestamp,
        });
        if is_last {
            active = Some(Active {
                base,
                path: path.clone(),
                file,
                pos: s.end,
                next_offset: s.next_offset,
                index: s.index,
                first_timestamp: s.first_timestamp,
                max_timestamp: s.max_timestamp,
            });
        }
    }

    for base in indexes.iter().filter(|b| !segments.contains_key(b)) {
        let path = dir.join(format::index_file_name(*base));
        storage
            .remove(&path)
            .map_err(|e| Error::io("remove", &path, e))?;
        report.removed.push(path);
        dir_changed = true;
    }
    if dir_changed {
        storage
            .sync_dir(dir)
            .map_err(|e| Error::io("sync directory", dir, e))?;
    }

    let active = active.ok_or_else(|| Error::Config("no segment after recovery".into()))?;
    report.segments = views.len();
    report.first_offset = views.first().map_or(0, |v| v.base);
    report.next_offset = active.next_offset;
    Ok(Recovered {
        views,
        active,
        report,
    })
}
