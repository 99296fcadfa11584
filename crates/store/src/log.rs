//! [`Log`]: open (with recovery), append through the group-commit writer,
//! read, apply retention, close.
//!
//! Locks: the append queue (`Inner::queue`) and the segment list
//! (`Inner::segments`) are never held at the same time, by anyone, so there
//! is no lock order to keep. Neither is held across file I/O except the
//! writer's publication of lengths, which does no I/O.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;

use crate::error::{Damage, Error, Result};
use crate::format::{
    self, HEADER_LEN, IndexBuilder, IndexEntry, MIN_RECORD_LEN, NewRecord, Record,
};
use crate::recovery::{self, RecoveryReport};
use crate::storage::{Storage, StorageFile};
use crate::writer::{self, Completion, Queue, Request};

/// When appends are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// An append completes only after `fdatasync` covered it. One sync per
    /// writer batch (group commit). The default, and what QoS ≥ 1 needs.
    Always,
    /// An append completes once written; the writer syncs at most this long
    /// after the first unsynced write. A crash loses at most that window.
    Interval(Duration),
    /// An append completes once written; syncs happen only when a segment
    /// is sealed and at close.
    Never,
}

/// Log settings. Validated by [`Log::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A segment is sealed before an append would take it past this size
    /// (a segment always takes at least one record). At most
    /// `u32::MAX - max_record_bytes`, since index positions are 32-bit.
    pub segment_bytes: u64,
    /// A segment is sealed before a record whose timestamp is this many
    /// milliseconds past the segment's first record.
    pub segment_ms: u64,
    /// Index granularity: an index entry at least every this many bytes.
    pub index_interval_bytes: u32,
    /// Durability of appends.
    pub fsync: FsyncPolicy,
    /// Largest record on disk, length field included.
    pub max_record_bytes: u64,
    /// Retention: sealed segments are deleted, oldest first, while the log
    /// is larger than this. `None`: no size limit.
    pub retention_bytes: Option<u64>,
    /// Retention: sealed segments whose newest record is older than this
    /// many milliseconds are deleted. `None`: no age limit.
    pub retention_ms: Option<u64>,
    /// Append queue limit, in appends. A full queue blocks `submit`
    /// (back-pressure on producers); nothing is dropped.
    pub max_queued_appends: usize,
    /// Append queue limit, in encoded bytes; same policy. One append larger
    /// than this is still taken when the queue is empty.
    pub max_queued_bytes: u64,
    /// Files another layer keeps in the log's directory (the journal's
    /// `FORMAT`): left alone, without the warning any other stray file
    /// gets.
    pub foreign_files: &'static [&'static str],
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 128 << 20,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            fsync: FsyncPolicy::Always,
            max_record_bytes: 16 << 20,
            retention_bytes: None,
            retention_ms: None,
            max_queued_appends: 65_536,
            max_queued_bytes: 64 << 20,
            foreign_files: &[],
        }
    }
}

impl LogConfig {
    fn validate(&self) -> Result<()> {
        let fail = |what: &str| Err(Error::Config(what.to_string()));
        if self.max_record_bytes < MIN_RECORD_LEN || self.max_record_bytes > u64::from(u32::MAX) {
            return fail("max_record_bytes must be between 34 and 4294967295");
        }
        if self.segment_bytes < HEADER_LEN + MIN_RECORD_LEN
            || self.segment_bytes + self.max_record_bytes > u64::from(u32::MAX)
        {
            return fail(
                "segment_bytes must be at least 50 and at most 4294967295 - max_record_bytes",
            );
        }
        if self.segment_ms == 0 || self.index_interval_bytes == 0 {
            return fail("segment_ms and index_interval_bytes must be positive");
        }
        if self.max_queued_appends == 0 || self.max_queued_bytes == 0 {
            return fail("max_queued_appends and max_queued_bytes must be positive");
        }
        if self.fsync == FsyncPolicy::Interval(Duration::ZERO) {
            return fail("fsync interval must be positive (use FsyncPolicy::Always)");
        }
        Ok(())
    }
}

/// How much one [`Log::read`] returns. At least one record is returned when
/// one is available, even if it alone exceeds `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// At most this many records.
    pub max_records: usize,
    /// At most this many bytes, counted as their size on disk.
    pub max_bytes: u64,
}

impl ReadLimits {
    /// Up to `n` records, no byte limit.
    pub fn records(n: usize) -> ReadLimits {
        ReadLimits {
            max_records: n,
            max_bytes: u64::MAX,
        }
    }
}

/// One segment as readers see it: only what the writer has completed.
#[derive(Debug)]
pub(crate) struct SegmentView {
    pub base: u64,
    pub path: PathBuf,
    pub file: Arc<dyn StorageFile>,
    /// Bytes readers may read.
    pub end: u64,
    /// One past the last offset readers may read.
    pub next_offset: u64,
    pub index: Vec<IndexEntry>,
    pub max_timestamp: i64,
}

/// The writer's state for the segment it appends to.
#[derive(Debug)]
pub(crate) struct Active {
    pub base: u64,
    pub path: PathBuf,
    pub file: Arc<dyn StorageFile>,
    /// Bytes written.
    pub pos: u64,
    /// The offset the next record gets.
    pub next_offset: u64,
    pub index: IndexBuilder,
    pub first_timestamp: Option<i64>,
    pub max_timestamp: i64,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub dir: PathBuf,
    pub storage: Arc<dyn Storage>,
    pub config: LogConfig,
    pub segments: RwLock<Vec<SegmentView>>,
    pub queue: Mutex<Queue>,
    /// Wakes the writer: work queued, pause lifted, shutdown.
    pub work: Condvar,
    /// Wakes submitters waiting for queue space.
    pub space: Condvar,
}

impl Inner {
    pub fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        // Completions run user code on the writer thread; a panic there must
        // not wedge every later append, so a poisoned lock is taken as is.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A segmented, checksummed, append-only log in one directory.
///
/// Appends go through one writer thread that batches everything queued into
/// one write per segment and (under [`FsyncPolicy::Always`]) one
/// `fdatasync` per batch, then completes each caller. Reads run on the
/// caller's thread and see only completed appends.
///
/// The broker will drive it from tokio by passing a completion to
/// [`Log::submit_with`] that sends on a oneshot channel; nothing here blocks
/// except [`Log::append`], [`AppendHandle::wait`] and a `submit` that meets a
/// full queue.
#[derive(Debug)]
pub struct Log {
    inner: Arc<Inner>,
    writer: Option<JoinHandle<Result<()>>>,
}

/// Waits for one append; from [`Log::submit`].
#[derive(Debug)]
pub struct AppendHandle {
    rx: mpsc::Receiver<Result<Range<u64>>>,
}

impl AppendHandle {
    /// Blocks until the append completes; returns its offsets.
    pub fn wait(self) -> Result<Range<u64>> {
        self.rx.recv().unwrap_or(Err(Error::Closed))
    }

    /// Waits at most `timeout`; `None` if the append is still pending. Once
    /// it has returned `Some`, the handle is spent.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<Range<u64>>> {
        match self.rx.recv_timeout(timeout) {
            Ok(r) => Some(r),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(Err(Error::Closed)),
        }
    }
}

/// Holds the writer between batches while it lives; see [`Log::pause_writer`].
#[derive(Debug)]
pub struct WriterPause<'a> {
    inner: &'a Inner,
}

impl Drop for WriterPause<'_> {
    fn drop(&mut self) {
        self.inner.lock_queue().paused = false;
        self.inner.work.notify_all();
    }
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovering it first: see the
    /// crate documentation for what recovery repairs and what it refuses.
    pub fn open(
        storage: Arc<dyn Storage>,
        dir: impl Into<PathBuf>,
        config: LogConfig,
    ) -> Result<(Log, RecoveryReport)> {
        config.validate()?;
        let dir = dir.into();
        let recovered = recovery::recover(&*storage, &dir, &config)?;
        let inner = Arc::new(Inner {
            dir,
            storage,
            config,
            segments: RwLock::new(recovered.views),
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            space: Condvar::new(),
        });
        let writer = writer::spawn(inner.clone(), recovered.active)?;
        Ok((
            Log {
                inner,
                writer: Some(writer),
            },
            recovered.report,
        ))
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Appends `records` and blocks until the append completes under the
    /// fsync policy. Returns their offsets, contiguous, in order.
    pub fn append(&self, records: Vec<NewRecord>) -> Result<Range<u64>> {
        self.submit(records)?.wait()
    }

    /// Queues `records` for the writer and returns a handle to wait on.
    /// Blocks only while the queue is full.
    pub fn submit(&self, records: Vec<NewRecord>) -> Result<AppendHandle> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit_with(records, move |r| {
            // The waiter may have given up; nothing to do then.
            let _ = tx.send(r);
        })?;
        Ok(AppendHandle { rx })
    }

    /// Queues `records`; `done` runs on the writer thread with their offsets
    /// once the append completes, or with the error that failed it. `done`
    /// must be quick and must not block (send on a channel). When this
    /// returns `Err`, `done` is dropped without being called.
    pub fn submit_with(
        &self,
        records: Vec<NewRecord>,
        done: impl FnOnce(Result<Range<u64>>) + Send + 'static,
    ) -> Result<()> {
        self.enqueue(records, done).map_err(|(e, _)| e)
    }

    /// [`Log::submit_with`] where a refused append also goes to `done`, with
    /// its error: `done` is called exactly once, whatever happens.
    pub fn submit_then(
        &self,
        records: Vec<NewRecord>,
        done: impl FnOnce(Result<Range<u64>>) + Send + 'static,
    ) {
        if let Err((e, done)) = self.enqueue(records, done) {
            done(Err(e));
        }
    }

    /// Queues `records` with `done`, or gives `done` back with the reason.
    #[allow(clippy::type_complexity)]
    fn enqueue<F: FnOnce(Result<Range<u64>>) + Send + 'static>(
        &self,
        records: Vec<NewRecord>,
        done: F,
    ) -> std::result::Result<(), (Error, F)> {
        let max = self.inner.config.max_record_bytes;
        let mut bytes = 0;
        for r in &records {
            let size = r.encoded_len();
            if size > max {
                return Err((Error::RecordTooLarge { size, max }, done));
            }
            if r.topic.len() > usize::from(u16::MAX) {
                return Err((
                    Error::RecordTooLarge {
                        size: r.topic.len() as u64,
                        max: u64::from(u16::MAX),
                    },
                    done,
                ));
            }
            bytes += size;
        }
        let config = &self.inner.config;
        let mut q = self.inner.lock_queue();
        loop {
            if let Some(e) = &q.stopped {
                return Err((Error::Stopped(Box::new(e.clone())), done));
            }
            if q.shutdown {
                return Err((Error::Closed, done));
            }
            if q.requests.is_empty()
                || (q.requests.len() < config.max_queued_appends
                    && q.bytes + bytes <= config.max_queued_bytes)
            {
                break;
            }
            q = self
                .inner
                .space
                .wait(q)
                .unwrap_or_else(PoisonError::into_inner);
        }
        q.bytes += bytes;
        q.requests.push_back(Request {
            records,
            bytes,
            done: Box::new(done) as Completion,
        });
        drop(q);
        self.inner.work.notify_one();
        Ok(())
    }

    /// Appends waiting for the writer (for metrics, and for tests that
    /// build a batch deterministically with [`Log::pause_writer`]).
    pub fn queued_appends(&self) -> usize {
        self.inner.lock_queue().requests.len()
    }

    /// Stops the writer from taking a new batch until the guard is dropped;
    /// appends queue up meanwhile. A batch already being written finishes.
    /// For tests (deterministic group commit) and maintenance.
    pub fn pause_writer(&self) -> WriterPause<'_> {
        self.inner.lock_queue().paused = true;
        WriterPause { inner: &self.inner }
    }

    /// The oldest offset in the log.
    pub fn first_offset(&self) -> u64 {
        self.read_segments().first().map_or(0, |s| s.base)
    }

    /// One past the newest completed append: what a reader can read up to.
    pub fn next_offset(&self) -> u64 {
        self.read_segments().last().map_or(0, |s| s.next_offset)
    }

    fn read_segments(&self) -> std::sync::RwLockReadGuard<'_, Vec<SegmentView>> {
        self.inner
            .segments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads records from `from` on, within `limits`, checking each
    /// record's CRC. Returns an empty vector at the end of the log, and
    /// [`Error::OffsetTrimmed`] for an offset retention has deleted.
    pub fn read(&self, from: u64, limits: ReadLimits) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        let mut taken = 0u64;
        let mut next = from;
        while out.len() < limits.max_records {
            let Some(cursor) = self.cursor(next, out.is_empty())? else {
                break;
            };
            // From `next`, not `from`: a segment that grew since the last
            // pass is read again from its index entry at or before `next`,
            // and the records before `next` are already in `out`.
            let (end, full) = read_segment(&cursor, next, &limits, &mut out, &mut taken)?;
            if full || end == next {
                break;
            }
            next = end;
        }
        Ok(out)
    }

    /// Where reading `offset` starts: the segment holding it and the index
    /// entry at or before it. `None` at the end of the log.
    fn cursor(&self, offset: u64, first_read: bool) -> Result<Option<Cursor>> {
        let segs = self.read_segments();
        let Some(first) = segs.first() else {
            return Ok(None);
        };
        if offset < first.base {
            // Retention may run between two segments of one read; the
            // records already read stand.
            return match first_read {
                true => Err(Error::OffsetTrimmed {
                    requested: offset,
                    first: first.base,
                }),
                false => Ok(None),
            };
        }
        let i = segs.partition_point(|s| s.base <= offset).saturating_sub(1);
        let s = &segs[i];
        if offset >= s.next_offset {
            return Ok(None);
        }
        let (at, pos) = match format::index_lookup(&s.index, offset - s.base) {
            Some(e) => (s.base + u64::from(e.relative_offset), u64::from(e.position)),
            None => (s.base, HEADER_LEN),
        };
        Ok(Some(Cursor {
            path: s.path.clone(),
            file: s.file.clone(),
            end: s.end,
            pos,
            offset: at,
        }))
    }

    /// Deletes whole sealed segments, oldest first, while the log is over
    /// `retention_bytes` or the segment's newest record is older than
    /// `retention_ms` before `now_ms`; never the active segment, never a
    /// segment holding an offset at or past `min_needed_offset` (the lowest
    /// offset a session or consumer still needs). Returns the deleted
    /// segment files.
    pub fn apply_retention(&self, min_needed_offset: u64, now_ms: i64) -> Result<Vec<PathBuf>> {
        let config = &self.inner.config;
        let victims: Vec<(PathBuf, u64)> = {
            let mut segs = self
                .inner
                .segments
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let mut total: u64 = segs.iter().map(|s| s.end).sum();
            let sealed = segs.len().saturating_sub(1);
            let mut n = 0;
            for s in &segs[..sealed] {
                let over_size = config.retention_bytes.is_some_and(|max| total > max);
                let too_old = config.retention_ms.is_some_and(|ms| {
                    i128::from(s.max_timestamp) < i128::from(now_ms) - i128::from(ms)
                });
                if s.next_offset > min_needed_offset || !(over_size || too_old) {
                    break;
                }
                total -= s.end;
                n += 1;
            }
            segs.drain(..n).map(|s| (s.path, s.base)).collect()
        };
        if victims.is_empty() {
            return Ok(Vec::new());
        }
        let storage = &self.inner.storage;
        let dir = &self.inner.dir;
        let mut deleted = Vec::with_capacity(victims.len());
        for (path, base) in victims {
            // Segment first: an index left without its segment is removed
            // at the next open, a segment without its index is re-indexed.
            storage
                .remove(&path)
                .map_err(|e| Error::io("remove", &path, e))?;
            let idx = dir.join(format::index_file_name(base));
            match storage.remove(&idx) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io("remove", &idx, e));
                }
                _ => {}
            }
            tracing::info!(path = %path.display(), "retention deleted a segment");
            deleted.push(path);
        }
        storage
            .sync_dir(dir)
            .map_err(|e| Error::io("sync directory", dir, e))?;
        Ok(deleted)
    }

    /// Stops taking appends, completes everything already queued, syncs,
    /// and stops the writer. Returns the writer's first error, if any.
    pub fn close(mut self) -> Result<()> {
        self.stop_writer()
    }

    fn stop_writer(&mut self) -> Result<()> {
        let Some(handle) = self.writer.take() else {
            return Ok(());
        };
        self.inner.lock_queue().shutdown = true;
        self.inner.work.notify_all();
        self.inner.space.notify_all();
        handle.join().unwrap_or(Err(Error::Closed))
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        if let Err(e) = self.stop_writer() {
            tracing::warn!(error = %e, dir = %self.inner.dir.display(), "log writer stopped with an error");
        }
    }
}

/// A read position inside one segment, taken under the segment lock.
struct Cursor {
    path: PathBuf,
    file: Arc<dyn StorageFile>,
    end: u64,
    pos: u64,
    /// The offset of the record at `pos`.
    offset: u64,
}

/// Bytes read at once when the limits do not ask for more.
const READ_CHUNK: u64 = 64 << 10;

/// Reads records of one segment into `out`, from `cursor` to its end or
/// until the limits are reached. Returns the offset after the last record
/// looked at and whether the limits were reached.
fn read_segment(
    cursor: &Cursor,
    from: u64,
    limits: &ReadLimits,
    out: &mut Vec<Record>,
    taken: &mut u64,
) -> Result<(u64, bool)> {
    let corrupt = |position, expected_offset, damage| Error::Corrupt {
        path: cursor.path.clone(),
        position,
        expected_offset,
        damage,
    };
    let mut pos = cursor.pos;
    let mut expected = cursor.offset;
    let mut want = READ_CHUNK;
    while pos < cursor.end {
        let len = want.max(limits.max_bytes.saturating_sub(*taken).min(READ_CHUNK * 16));
        let len = len.min(cursor.end - pos);
        let mut buf = vec![0; usize::try_from(len).unwrap_or(usize::MAX)];
        cursor
            .file
            .read_at(pos, &mut buf)
            .map_err(|e| Error::io("read", &cursor.path, e))?;
        let chunk = Bytes::from(buf);
        let mut at = 0usize;
        while at < chunk.len() {
            let rest = chunk.slice(at..);
            let rec = match format::parse_record(&rest) {
                Ok(rec) => rec,
                Err(Damage::Incomplete { needed, .. })
                    if pos + at as u64 + needed <= cursor.end =>
                {
                    want = needed;
                    break;
                }
                Err(damage) => return Err(corrupt(pos + at as u64, expected, damage)),
            };
            if rec.offset != expected {
                let found = rec.offset;
                return Err(corrupt(
                    pos + at as u64,
                    expected,
                    Damage::OffsetMismatch { found },
                ));
            }
            if expected >= from {
                let size = rec.len as u64;
                if !out.is_empty() && taken.saturating_add(size) > limits.max_bytes {
                    return Ok((expected, true));
                }
                out.push(rec.record(&rest));
                *taken += size;
            }
            expected += 1;
            at += rec.len;
            if out.len() >= limits.max_records {
                return Ok((expected, true));
            }
        }
        pos += at as u64;
    }
    Ok((expected, false))
}
