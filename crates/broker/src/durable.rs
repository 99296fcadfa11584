//! The broker's durable state: the journal of [`crate::journal`] in a
//! strata-store log under the data directory.
//!
//! Layout of the data directory: `LOCK` (held exclusively while a broker
//! runs on it), `log/` (the segment log). At start-up the log is replayed
//! into sessions, subscriptions, offline queues and retained messages, then
//! compacted: the live state is written to `log.compact/`, which replaces
//! `log/` by rename. A crash during the swap is finished at the next start.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use strata_codec::MqttStr;
use strata_router::ShareStrategy;
use strata_session::Message;
use strata_store::{FsStorage, FsyncPolicy, Log, LogConfig, Storage};

use crate::config::{Fsync, StorageConfig};
use crate::journal::{self, Entry, Recovered};

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[derive(Debug)]
pub(crate) struct Durable {
    log: Log,
    next_id: AtomicU64,
    /// Held for the broker's life: one broker per data directory.
    _lock: Option<File>,
}

fn io_err(what: impl std::fmt::Display) -> io::Error {
    io::Error::other(what.to_string())
}

fn log_config(fsync: Fsync) -> LogConfig {
    LogConfig {
        fsync: match fsync {
            Fsync::Always => FsyncPolicy::Always,
            Fsync::Interval(d) => FsyncPolicy::Interval(d),
            Fsync::Never => FsyncPolicy::Never,
        },
        ..LogConfig::default()
    }
}

/// Finishes a swap a crash interrupted, and clears leftovers.
fn settle_dirs(data: &Path) -> io::Result<()> {
    let (log, compact, old) = (
        data.join("log"),
        data.join("log.compact"),
        data.join("log.old"),
    );
    if !log.exists() && compact.exists() {
        std::fs::rename(&compact, &log)?;
    }
    for leftover in [compact, old] {
        if leftover.exists() {
            std::fs::remove_dir_all(leftover)?;
        }
    }
    Ok(())
}

fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

impl Durable {
    /// Opens (or creates) the data directory, replays and compacts the log.
    pub(crate) fn open(
        config: &StorageConfig,
        dir: &Path,
        share: ShareStrategy,
        backend: Option<Arc<dyn Storage>>,
    ) -> io::Result<(Durable, Recovered)> {
        if let Some(storage) = backend {
            return Durable::open_in(config, dir, share, storage);
        }
        std::fs::create_dir_all(dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create data directory {}: {e}", dir.display()),
            )
        })?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))?;
        if lock.try_lock().is_err() {
            return Err(io_err(format!(
                "data directory {} is in use by another broker (LOCK is held); stop it or use another --data-dir",
                dir.display()
            )));
        }
        settle_dirs(dir)?;
        let storage: Arc<dyn Storage> = Arc::new(FsStorage);
        let started = Instant::now();
        let log_dir: PathBuf = dir.join("log");
        let (log, report) =
            Log::open(storage.clone(), &log_dir, log_config(config.fsync)).map_err(io_err)?;
        if let Some(t) = &report.truncated {
            tracing::warn!(
                file = %t.path.display(),
                position = t.position,
                bytes = t.bytes_dropped,
                "a torn write at the end of the log was cut off"
            );
        }
        let recovered = journal::replay(&log, share, Instant::now(), now_ms()).map_err(io_err)?;
        log.close().map_err(io_err)?;
        // Compact: the live state only, in a fresh log that replaces the old.
        let compact_dir = dir.join("log.compact");
        let (compact, _) =
            Log::open(storage.clone(), &compact_dir, log_config(Fsync::Always)).map_err(io_err)?;
        journal::compact_into(&recovered, &compact, now_ms()).map_err(io_err)?;
        compact.close().map_err(io_err)?;
        std::fs::rename(&log_dir, dir.join("log.old"))?;
        std::fs::rename(&compact_dir, &log_dir)?;
        sync_dir(dir)?;
        std::fs::remove_dir_all(dir.join("log.old"))?;
        let (log, _) = Log::open(storage, &log_dir, log_config(config.fsync)).map_err(io_err)?;
        tracing::info!(
            records = recovered.records,
            sessions = recovered.sessions.len(),
            retained = recovered.retained.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "durable state recovered"
        );
        let next_id = AtomicU64::new(recovered.next_id.max(1));
        Ok((
            Durable {
                log,
                next_id,
                _lock: Some(lock),
            },
            recovered,
        ))
    }

    /// [`Durable::open`] on another storage: replay only (no lock file, no
    /// compaction, which renames directories).
    fn open_in(
        config: &StorageConfig,
        dir: &Path,
        share: ShareStrategy,
        storage: Arc<dyn Storage>,
    ) -> io::Result<(Durable, Recovered)> {
        storage.create_dir_all(dir)?;
        let (log, _) =
            Log::open(storage, dir.join("log"), log_config(config.fsync)).map_err(io_err)?;
        let recovered = journal::replay(&log, share, Instant::now(), now_ms()).map_err(io_err)?;
        let next_id = AtomicU64::new(recovered.next_id.max(1));
        Ok((
            Durable {
                log,
                next_id,
                _lock: None,
            },
            recovered,
        ))
    }

    /// A fresh message id.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Appends `entry`; nothing waits for it.
    pub(crate) fn record(&self, entry: &Entry) {
        let r = journal::encode(entry, now_ms());
        if let Err(e) = self.log.submit_with(vec![r], |r| {
            if let Err(e) = r {
                tracing::error!(error = %e, "durable append failed");
            }
        }) {
            tracing::error!(error = %e, "durable append refused");
        }
    }

    /// Appends `entries` as one batch; nothing waits for it.
    pub(crate) fn record_all(&self, entries: &[Entry]) {
        self.record_then(entries, |_| {});
    }

    /// Appends `entries` as one batch; `done(true)` once it is durable
    /// under the fsync policy, `done(false)` if it failed. `done` runs on
    /// the log's writer thread and must not block.
    pub(crate) fn record_then(&self, entries: &[Entry], done: impl FnOnce(bool) + Send + 'static) {
        let now = now_ms();
        let records = entries.iter().map(|e| journal::encode(e, now)).collect();
        self.log.submit_then(records, move |r| {
            if let Err(e) = &r {
                tracing::error!(error = %e, "durable append failed");
            }
            done(r.is_ok());
        });
    }

    /// Appends the stored message `m` (from a persistent session: its
    /// client id and inbound QoS 2 packet id, see `Entry::Published`) and
    /// the entries `then` about it, in one append; `done(true)` once it is durable
    /// under the fsync policy, `done(false)` if it could not be stored.
    /// `done` runs on the log's writer thread and must not block.
    pub(crate) fn record_message_then(
        &self,
        m: &Message,
        from: Option<(&MqttStr, u16)>,
        then: Vec<Entry>,
        done: impl FnOnce(bool) + Send + 'static,
    ) {
        let now = now_ms();
        let mut records = Vec::with_capacity(1 + then.len());
        records.push(journal::encode_message(m, now, from));
        records.extend(then.iter().map(|e| journal::encode(e, now)));
        self.log.submit_then(records, move |r| {
            if let Err(e) = &r {
                tracing::error!(error = %e, "durable append failed");
            }
            done(r.is_ok());
        });
    }
}
