//! The group-commit writer: one std thread per log takes everything queued,
//! encodes it, writes it with one `write_at` per segment touched, syncs once
//! for the batch (under `FsyncPolicy::Always`), publishes the new lengths to
//! readers, then completes each caller.
//!
//! A std thread and not a tokio task: the work is blocking file I/O, and the
//! store must not depend on a runtime. The broker wraps completions into
//! oneshot channels (see `Log::submit_with`).
//!
//! After a failed write or sync the writer fails the batch and every later
//! append ([`Error::Stopped`]): what reached the disk is unknown until the
//! log is reopened and recovered.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::format::{self, IndexBuilder, NewRecord};
use crate::log::{Active, FsyncPolicy, Inner, SegmentView};
use crate::recovery;

/// What runs when an append completes.
pub(crate) type Completion = Box<dyn FnOnce(Result<Range<u64>>) + Send>;

pub(crate) struct Request {
    pub records: Vec<NewRecord>,
    pub bytes: u64,
    pub done: Completion,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("records", &self.records.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

/// The append queue, under `Inner::queue`.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    pub requests: VecDeque<Request>,
    /// Encoded bytes of the queued requests.
    pub bytes: u64,
    pub paused: bool,
    pub shutdown: bool,
    /// Set when the writer failed; submits fail with it from then on.
    pub stopped: Option<Error>,
}

struct Writer {
    inner: Arc<Inner>,
    active: Active,
    /// Bytes written to the active segment but not yet synced.
    dirty: bool,
    /// Under `FsyncPolicy::Interval`: when the unsynced bytes must be synced.
    sync_deadline: Option<Instant>,
    failed: Option<Error>,
}

pub(crate) fn spawn(inner: Arc<Inner>, active: Active) -> Result<JoinHandle<Result<()>>> {
    let dir = inner.dir.clone();
    let writer = Writer {
        inner,
        active,
        dirty: false,
        sync_deadline: None,
        failed: None,
    };
    thread::Builder::new()
        .name("strata-log-writer".into())
        .spawn(move || writer.run())
        .map_err(|e| Error::io("start the writer thread for", dir, e))
}

impl Writer {
    fn run(mut self) -> Result<()> {
        loop {
            let (batch, shutdown) = self.next_batch();
            if !batch.is_empty() {
                self.process(batch);
            }
            let sync_due = match self.inner.config.fsync {
                FsyncPolicy::Always => false,
                FsyncPolicy::Interval(_) => {
                    shutdown || self.sync_deadline.is_some_and(|d| Instant::now() >= d)
                }
                FsyncPolicy::Never => shutdown,
            };
            if self.dirty
                && sync_due
                && self.failed.is_none()
                && let Err(e) = self.sync_active()
            {
                self.fail(&e);
            }
            if shutdown {
                return self.failed.take().map_or(Ok(()), Err);
            }
        }
    }

    /// Waits for work and takes the whole queue. Returns with an empty batch
    /// when an interval sync is due, and `true` once shutting down (with
    /// whatever was still queued, which is written before the writer stops).
    fn next_batch(&mut self) -> (Vec<Request>, bool) {
        let inner = self.inner.clone();
        let mut q = inner.lock_queue();
        loop {
            if q.shutdown || (!q.paused && !q.requests.is_empty()) {
                let batch: Vec<Request> = q.requests.drain(..).collect();
                q.bytes = 0;
                let shutdown = q.shutdown;
                drop(q);
                inner.space.notify_all();
                return (batch, shutdown);
            }
            match self.sync_deadline.filter(|_| self.dirty) {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return (Vec::new(), false);
                    }
                    q = inner
                        .work
                        .wait_timeout(q, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                None => q = inner.work.wait(q).unwrap_or_else(PoisonError::into_inner),
            }
        }
    }

    fn process(&mut self, batch: Vec<Request>) {
        if let Some(e) = &self.failed {
            let e = Error::Stopped(Box::new(e.clone()));
            for r in batch {
                (r.done)(Err(e.clone()));
            }
            return;
        }
        match self.write_batch(&batch) {
            Ok(ranges) => {
                for (r, range) in batch.into_iter().zip(ranges) {
                    (r.done)(Ok(range));
                }
            }
            Err(e) => {
                self.fail(&e);
                for r in batch {
                    (r.done)(Err(e.clone()));
                }
            }
        }
    }

    fn fail(&mut self, e: &Error) {
        tracing::error!(error = %e, "log writer failed; the log takes no more appends until reopened");
        self.failed = Some(e.clone());
        self.inner.lock_queue().stopped = Some(e.clone());
        self.inner.space.notify_all();
    }

    fn write_batch(&mut self, batch: &[Request]) -> Result<Vec<Range<u64>>> {
        let mut buf = Vec::with_capacity(batch.iter().map(|r| r.bytes as usize).sum());
        let mut ranges = Vec::with_capacity(batch.len());
        for req in batch {
            let first = self.active.next_offset;
            for rec in &req.records {
                if self.should_roll(buf.len() as u64 + rec.encoded_len(), rec.timestamp) {
                    self.flush(&mut buf)?;
                    self.roll()?;
                }
                let a = &mut self.active;
                a.index
                    .observe(a.next_offset - a.base, a.pos + buf.len() as u64);
                format::encode_record(&mut buf, a.next_offset, rec);
                a.next_offset += 1;
                a.first_timestamp.get_or_insert(rec.timestamp);
                a.max_timestamp = a.max_timestamp.max(rec.timestamp);
            }
            ranges.push(first..self.active.next_offset);
        }
        self.flush(&mut buf)?;
        if self.inner.config.fsync == FsyncPolicy::Always && self.dirty {
            self.sync_active()?;
        }
        self.publish(None);
        Ok(ranges)
    }

    /// Whether the active segment must be sealed before a record of
    /// `pending` bytes (with what is buffered) and `timestamp` goes in. An
    /// empty segment always takes the record.
    fn should_roll(&self, pending: u64, timestamp: i64) -> bool {
        let a = &self.active;
        let config = &self.inner.config;
        a.next_offset > a.base
            && (a.pos + pending > config.segment_bytes
                || a.first_timestamp.is_some_and(|first| {
                    i128::from(timestamp) - i128::from(first) >= i128::from(config.segment_ms)
                }))
    }

    fn flush(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let a = &mut self.active;
        a.file
            .write_at(a.pos, buf)
            .map_err(|e| Error::io("write", &a.path, e))?;
        a.pos += buf.len() as u64;
        buf.clear();
        self.dirty = true;
        if let FsyncPolicy::Interval(every) = self.inner.config.fsync {
            self.sync_deadline
                .get_or_insert_with(|| Instant::now() + every);
        }
        Ok(())
    }

    fn sync_active(&mut self) -> Result<()> {
        self.active
            .file
            .sync_data()
            .map_err(|e| Error::io("sync", &self.active.path, e))?;
        self.dirty = false;
        self.sync_deadline = None;
        Ok(())
    }

    /// Seals the active segment and starts the next. The sealed segment is
    /// synced before the next one exists, so a crash can never leave a
    /// durable later segment after a short earlier one (which recovery would
    /// rightly call a gap).
    fn roll(&mut self) -> Result<()> {
        self.sync_active()?;
        let storage = &*self.inner.storage;
        let dir = &self.inner.dir;
        let old = &self.active;
        let idx_path = dir.join(format::index_file_name(old.base));
        recovery::write_index(storage, &idx_path, &old.index.entries)?;
        let base = old.next_offset;
        let path = dir.join(format::segment_file_name(base));
        let file: Arc<dyn crate::storage::StorageFile> =
            Arc::from(recovery::create_segment(storage, &path)?);
        storage
            .sync_dir(dir)
            .map_err(|e| Error::io("sync directory", dir, e))?;
        let next = Active {
            base,
            path,
            file,
            pos: format::HEADER_LEN,
            next_offset: base,
            index: IndexBuilder::new(self.inner.config.index_interval_bytes),
            first_timestamp: None,
            max_timestamp: i64::MIN,
        };
        let view = SegmentView {
            base,
            path: next.path.clone(),
            file: next.file.clone(),
            end: next.pos,
            next_offset: base,
            index: Vec::new(),
            max_timestamp: i64::MIN,
        };
        self.publish(Some(view));
        self.active = next;
        tracing::debug!(base, "rolled to a new segment");
        Ok(())
    }

    /// Makes what the writer completed visible to readers, and adds a new
    /// segment after it when one was rolled.
    fn publish(&self, new_segment: Option<SegmentView>) {
        let a = &self.active;
        let mut segs = self
            .inner
            .segments
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(last) = segs.last_mut().filter(|s| s.base == a.base) {
            last.end = a.pos;
            last.next_offset = a.next_offset;
            last.max_timestamp = a.max_timestamp;
            let known = last.index.len();
            last.index
                .extend_from_slice(a.index.entries.get(known..).unwrap_or(&[]));
        }
        segs.extend(new_segment);
    }
}
