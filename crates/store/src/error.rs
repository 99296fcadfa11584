//! One error enum for the store, carrying the file and byte position where
//! the problem is, and what an operator can do about it.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// What went wrong, where.
///
/// `Clone` so that one failed batch can fail every caller in it with the same
/// error (the I/O error is shared behind an `Arc`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// An operation on a file or directory failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done: "open", "write", "sync", ...
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: Arc<io::Error>,
    },

    /// A segment was written by a format version this build does not read.
    #[error(
        "{}: segment format version {found} is not supported (this build reads version {supported}); \
         open this log with the Strata release that wrote it, or move the directory aside",
        path.display()
    )]
    UnsupportedVersion {
        /// The segment file.
        path: PathBuf,
        /// The version in its header.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },

    /// The log is damaged somewhere a crash cannot explain: a sealed segment,
    /// a bad record with valid records after it, a gap between segments.
    #[error(
        "{}: corrupt at byte {position}, where offset {expected_offset} was expected: {damage}; \
         Strata does not start on a damaged log: move the file aside or restore it from a replica \
         or backup, then start again",
        path.display()
    )]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte position in the file where the damage starts.
        position: u64,
        /// The log offset the record at that position should have carried.
        expected_offset: u64,
        /// What is wrong there.
        damage: Damage,
    },

    /// An append held a record larger than the configured limit.
    #[error(
        "record of {size} bytes exceeds the limit of {max} bytes (LogConfig::max_record_bytes)"
    )]
    RecordTooLarge {
        /// Encoded size of the record.
        size: u64,
        /// The limit.
        max: u64,
    },

    /// A configuration value is out of range.
    #[error("invalid log configuration: {0}")]
    Config(String),

    /// A read asked for an offset that retention has already deleted.
    #[error("offset {requested} is no longer in the log; the oldest offset kept is {first}")]
    OffsetTrimmed {
        /// The offset asked for.
        requested: u64,
        /// The oldest offset still in the log.
        first: u64,
    },

    /// The log was closed.
    #[error("the log is closed")]
    Closed,

    /// An earlier write or sync failed; the log takes no more writes until
    /// it is reopened (and recovered), instead of guessing what reached disk.
    #[error("the log stopped taking writes after an earlier failure: {0}")]
    Stopped(Box<Error>),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }
}

/// The kinds of damage recovery and reads recognise in a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// The file is shorter than the 16-byte segment header.
    ShortHeader {
        /// The file's length.
        len: u64,
    },
    /// The header does not start with `STRATLOG`.
    BadMagic,
    /// The header checksum does not match.
    HeaderChecksum,
    /// A record's length field is smaller than the smallest record.
    LengthOutOfRange {
        /// The length field.
        length: u32,
    },
    /// A record runs past the end of the file.
    Incomplete {
        /// Bytes the record needs from its start.
        needed: u64,
        /// Bytes left in the file from its start.
        available: u64,
    },
    /// A record's CRC32C does not match its contents.
    Checksum {
        /// The CRC stored in the record.
        stored: u32,
        /// The CRC of the bytes as read.
        computed: u32,
    },
    /// The field lengths inside a record do not add up to its length.
    Layout,
    /// A well-formed record carries the wrong offset.
    OffsetMismatch {
        /// The offset it carries.
        found: u64,
    },
    /// The segment's base offset does not continue the previous segment.
    OffsetGap {
        /// The segment's base offset (from its file name).
        base: u64,
    },
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::ShortHeader { len } => {
                write!(
                    f,
                    "file of {len} bytes is shorter than the 16-byte segment header"
                )
            }
            Damage::BadMagic => f.write_str("segment header does not start with STRATLOG"),
            Damage::HeaderChecksum => f.write_str("segment header checksum mismatch"),
            Damage::LengthOutOfRange { length } => {
                write!(
                    f,
                    "record length {length} is smaller than the smallest record"
                )
            }
            Damage::Incomplete { needed, available } => write!(
                f,
                "record needs {needed} bytes but only {available} remain in the file"
            ),
            Damage::Checksum { stored, computed } => write!(
                f,
                "record checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            Damage::Layout => f.write_str("record field lengths do not add up to its length"),
            Damage::OffsetMismatch { found } => write!(f, "record carries offset {found}"),
            Damage::OffsetGap { base } => write!(
                f,
                "segment starts at offset {base}, so offsets are missing between it and the previous segment"
            ),
        }
    }
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
