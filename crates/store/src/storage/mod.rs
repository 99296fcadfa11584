//! The one small trait all log I/O goes through, so tests can count syncs,
//! inject failures, cut power at a chosen sync and reopen from what was
//! durable.
//!
//! - [`FsStorage`]: the real filesystem (`fdatasync`, directory `fsync`).
//! - [`SimStorage`]: in memory, keeping written and durable bytes apart.

mod fs;
mod sim;

use std::fmt;
use std::io;
use std::path::Path;

pub use fs::FsStorage;
pub use sim::{CrashMode, CutPoint, FaultPlan, PowerCut, SimStats, SimStorage};

/// A filesystem: directories, names, whole-file operations.
///
/// A new name (create, rename, remove) is durable only after
/// [`Storage::sync_dir`] on its directory; file contents only after
/// [`StorageFile::sync_data`].
pub trait Storage: Send + Sync + fmt::Debug {
    /// Creates `dir` and its parents if they are missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Opens a file for reading and writing; creates it (empty) when
    /// `create` is true and it does not exist. Never truncates.
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn StorageFile>>;
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// The names of the files in `dir` (not subdirectories), in no order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// The names of the subdirectories of `dir`, in no order.
    fn list_dirs(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Removes `dir` and everything in it; durable once its parent is
    /// synced ([`Storage::sync_dir`]).
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Makes the names in `dir` durable (`fsync` on the directory).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// An open file. Methods take `&self` so the writer and readers can share
/// one handle: positions are explicit, there is no cursor.
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// The file's current length.
    fn size(&self) -> io::Result<u64>;
    /// Fills `buf` from `pos`; `UnexpectedEof` if the file ends first.
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes all of `data` at `pos`, extending the file if needed.
    fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()>;
    /// Makes the contents durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Cuts (or zero-extends) the file to `len` bytes.
    fn truncate(&self, len: u64) -> io::Result<()>;
}
