//! `strata-store`: Strata's durable log. Messages that must survive a crash
//! are appended once to a segmented, CRC32C-checked log; sessions and
//! consumers read it back by offset.
//!
//! Modules:
//! - [`storage`]: the [`Storage`] trait all file I/O goes through, with
//!   [`FsStorage`] (real files, `fdatasync`) and [`SimStorage`] (in memory,
//!   with a durability model, injected failures and power cuts).
//! - `format` (private, re-exported items): the on-disk bytes, version 1;
//!   described byte by byte in `docs/STORAGE_FORMAT.md`.
//! - `log`: [`Log`] and its configuration: open, append, read, retention.
//! - `writer` (private): the group-commit writer thread.
//! - `recovery` (private): what [`Log::open`] checks and repairs, reported
//!   in a [`RecoveryReport`].
//! - `error`: [`Error`], one enum with the file and byte position.
//!
//! Durability: an append completes after one `write` per segment and, under
//! [`FsyncPolicy::Always`], one `fdatasync` for the whole batch it rode in.
//! Recovery cuts a torn tail off the last segment (a crash mid-write) and
//! refuses to open on damage anywhere else, naming the file and position.
//!
//! Layout of a log directory: `<base-offset:020>.seg` segment files, each
//! sealed one with a `<base-offset:020>.idx` offset index beside it (the
//! index is rebuilt from its segment whenever it is missing or disagrees).

mod error;
mod format;
mod log;
mod recovery;
pub mod storage;
mod writer;

pub use error::{Damage, Error, Result};
pub use format::{FORMAT_VERSION, IndexEntry, NewRecord, Record, SEGMENT_MAGIC};
pub use log::{AppendHandle, FsyncPolicy, Log, LogConfig, ReadLimits, WriterPause};
pub use recovery::{RecoveryReport, TruncatedTail};
pub use storage::{FsStorage, SimStorage, Storage, StorageFile};
