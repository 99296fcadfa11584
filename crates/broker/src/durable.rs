//! The broker's durable state: the journal of [`strata_journal`] in a
//! strata-store log under the data directory.
//!
//! Layout of the data directory: `LOCK` (held exclusively while a broker
//! runs on it), `CURRENT` (the name of the live log's directory), and that
//! directory: `log/` or `log-N/` (a strata-store segment log). Without
//! `CURRENT` the log is `log/` (a data directory no broker compacted yet).
//! Every file and directory operation but the lock goes through the
//! [`Storage`] trait, so tests cut power at each sync of a switch.
//!
//! Compaction writes the live state into a fresh `log-N+1/` and switches
//! `CURRENT` to it (write, fsync, rename, fsync the directory): a crash
//! before the switch leaves the old log in force, a crash after it the new
//! one; the next start removes whichever is not current. It runs at
//! start-up (after replay) and while the broker runs, whenever the log
//! holds `compact_after_records` records and twice what the last
//! compaction left ([`Durable::compact`]): the records before the cut are
//! compacted, the ones after are copied behind them, and appends are held
//! only while the last of them are copied and the new log is opened.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use strata_router::ShareStrategy;
use strata_store::{FsStorage, FsyncPolicy, Log, LogConfig, NewRecord, ReadLimits, Storage};

use crate::config::{Fsync, StorageConfig};
use strata_journal::Recovered;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[derive(Debug)]
pub(crate) struct Durable {
    /// Read-locked to append; write-locked only to switch to a compacted log.
    log: RwLock<Log>,
    next_id: AtomicU64,
    /// Held for the broker's life: one broker per data directory.
    _lock: Option<File>,
    /// Runtime compaction: on a real data directory only.
    compaction: Option<Compaction>,
}

#[derive(Debug)]
struct Compaction {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    share: ShareStrategy,
    fsync: Fsync,
    after_records: u64,
    /// The generation of the live log directory; held while compacting.
    generation: Mutex<u64>,
    /// Records the last compaction left.
    left: AtomicU64,
    running: AtomicBool,
    /// Appends since start, to look at the log's size every so often.
    appends: AtomicU64,
    /// Wakes the compactor task ([`Durable::compaction_wanted`]).
    wanted: tokio::sync::Notify,
}

/// The log directory of generation `g`.
fn log_name(g: u64) -> String {
    match g {
        0 => "log".to_string(),
        g => format!("log-{g}"),
    }
}

/// The generation `CURRENT` names (0 without it).
fn current_generation(storage: &dyn Storage, data: &Path) -> io::Result<u64> {
    let name = match storage.read(&data.join("CURRENT")) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let name = String::from_utf8_lossy(&name);
    let name = name.trim();
    match name {
        "log" => Ok(0),
        _ => name
            .strip_prefix("log-")
            .and_then(|g| g.parse().ok())
            .ok_or_else(|| {
                io_err(format!(
                    "{}: {name:?} is not a log directory name (log or log-N); \
                     write the name of the newest log directory into it",
                    data.join("CURRENT").display()
                ))
            }),
    }
}

/// The live log directory of the data directory `data`.
pub(crate) fn current_log_dir(storage: &dyn Storage, data: &Path) -> io::Result<PathBuf> {
    Ok(data.join(log_name(current_generation(storage, data)?)))
}

/// Points `CURRENT` at generation `g`, durably: `CURRENT.tmp` is written
/// and synced, renamed over `CURRENT` (the switch), and the directory
/// synced. Returns the result of that last sync: once the rename is done,
/// the new log is in force whatever happens next, but the old one may only
/// be removed once the switch is durable.
fn switch_to(storage: &dyn Storage, data: &Path, g: u64) -> io::Result<io::Result<()>> {
    let tmp = data.join("CURRENT.tmp");
    let f = storage.open(&tmp, true)?;
    f.truncate(0)?;
    f.write_at(0, log_name(g).as_bytes())?;
    f.sync_data()?;
    drop(f);
    storage.rename(&tmp, &data.join("CURRENT"))?;
    Ok(storage.sync_dir(data))
}

/// Copies the records `from..to` of `src` to the end of `dst`.
fn copy_records(src: &Log, mut from: u64, to: u64, dst: &Log) -> io::Result<()> {
    while from < to {
        let chunk = src.read(from, ReadLimits::records(4096)).map_err(io_err)?;
        let mut batch = Vec::with_capacity(chunk.len());
        for r in chunk {
            if r.offset >= to {
                break;
            }
            from = r.offset + 1;
            batch.push(NewRecord {
                timestamp: r.timestamp,
                topic: r.topic,
                properties: r.properties,
                payload: r.payload,
            });
        }
        if batch.is_empty() {
            break;
        }
        dst.append(batch).map_err(io_err)?;
    }
    Ok(())
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
        foreign_files: &[strata_journal::FORMAT_FILE],
        ..LogConfig::default()
    }
}

/// Creates the data directory on the real filesystem and takes its
/// `LOCK`, held for the broker's life: one broker per data directory.
fn lock_dir(dir: &Path) -> io::Result<File> {
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
    Ok(lock)
}

/// Writes the journal's `FORMAT` file into the new log directory `dir`,
/// durably, before a switch makes it the live one.
fn write_format(storage: &dyn Storage, dir: &Path) -> io::Result<()> {
    let f = storage.open(&dir.join(strata_journal::FORMAT_FILE), true)?;
    f.truncate(0)?;
    f.write_at(0, &strata_journal::format_file())?;
    f.sync_data()?;
    storage.sync_dir(dir)
}

/// Refuses a live log directory whose journal format this build does not
/// read. Returns whether the directory has no `FORMAT` file: then the log
/// must hold no record (a new data directory, or a first start cut short
/// before its compaction), which the caller checks once it is open.
fn check_format(storage: &dyn Storage, dir: &Path) -> io::Result<bool> {
    let contents = match storage.read(&dir.join(strata_journal::FORMAT_FILE)) {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e),
    };
    strata_journal::check_format(Some(&contents))
        .map(|_| false)
        .map_err(|e| io_err(format!("{}: {e}", dir.display())))
}

/// Clears what an interrupted compaction left (a log directory `CURRENT`
/// does not name, `CURRENT.tmp`) and returns the live generation.
fn settle_dirs(storage: &dyn Storage, data: &Path) -> io::Result<u64> {
    let g = current_generation(storage, data)?;
    let live = log_name(g);
    let mut removed = false;
    for name in storage.list_dirs(data)? {
        if (name == "log" || name.starts_with("log-") || name.starts_with("log.")) && name != live {
            storage.remove_dir_all(&data.join(&name))?;
            removed = true;
        }
    }
    if storage.list(data)?.iter().any(|n| n == "CURRENT.tmp") {
        storage.remove(&data.join("CURRENT.tmp"))?;
        removed = true;
    }
    if removed {
        storage.sync_dir(data)?;
    }
    Ok(g)
}

impl Durable {
    /// Opens (or creates) the data directory, replays and compacts the log.
    /// `backend` puts its files on another [`Storage`] than the real
    /// filesystem (tests inject faults there); it takes no `LOCK`.
    pub(crate) fn open(
        config: &StorageConfig,
        dir: &Path,
        share: ShareStrategy,
        backend: Option<Arc<dyn Storage>>,
    ) -> io::Result<(Durable, Recovered)> {
        let lock = match backend {
            Some(_) => None,
            None => Some(lock_dir(dir)?),
        };
        let storage = backend.unwrap_or_else(|| Arc::new(FsStorage));
        storage.create_dir_all(dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create data directory {}: {e}", dir.display()),
            )
        })?;
        let generation = settle_dirs(&*storage, dir)?;
        let started = Instant::now();
        let log_dir: PathBuf = dir.join(log_name(generation));
        let unformatted = check_format(&*storage, &log_dir)?;
        let (log, report) =
            Log::open(storage.clone(), &log_dir, log_config(config.fsync)).map_err(io_err)?;
        if unformatted && log.next_offset() > log.first_offset() {
            let e = strata_journal::check_format(None).err();
            return Err(io_err(format!(
                "{}: {}",
                log_dir.display(),
                e.map_or_else(String::new, |e| e.to_string())
            )));
        }
        if let Some(t) = &report.truncated {
            tracing::warn!(
                file = %t.path.display(),
                position = t.position,
                bytes = t.bytes_dropped,
                "a torn write at the end of the log was cut off"
            );
        }
        let recovered =
            strata_journal::replay(&log, share, crate::clock::now(), now_ms()).map_err(io_err)?;
        log.close().map_err(io_err)?;
        // Compact: the live state only, in a fresh log that replaces the old.
        let generation = generation + 1;
        let compact_dir = dir.join(log_name(generation));
        let (compact, _) =
            Log::open(storage.clone(), &compact_dir, log_config(Fsync::Always)).map_err(io_err)?;
        strata_journal::compact_into(&recovered, &compact, now_ms()).map_err(io_err)?;
        compact.close().map_err(io_err)?;
        write_format(&*storage, &compact_dir)?;
        // Not started unless the switch is durable: the old log goes only
        // then.
        switch_to(&*storage, dir, generation)??;
        storage.remove_dir_all(&log_dir)?;
        let (log, _) =
            Log::open(storage.clone(), &compact_dir, log_config(config.fsync)).map_err(io_err)?;
        let left = log.next_offset() - log.first_offset();
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
                log: RwLock::new(log),
                next_id,
                _lock: lock,
                compaction: Some(Compaction {
                    storage,
                    dir: dir.to_path_buf(),
                    share,
                    fsync: config.fsync,
                    after_records: config.compact_after_records,
                    generation: Mutex::new(generation),
                    left: AtomicU64::new(left),
                    running: AtomicBool::new(false),
                    appends: AtomicU64::new(0),
                    wanted: tokio::sync::Notify::new(),
                }),
            },
            recovered,
        ))
    }

    fn log(&self) -> RwLockReadGuard<'_, Log> {
        self.log.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves when the log has grown enough for [`Durable::compact`]
    /// (looked at every 256 appends); never without runtime compaction.
    pub(crate) async fn compaction_wanted(&self) {
        match &self.compaction {
            Some(c) => c.wanted.notified().await,
            None => std::future::pending().await,
        }
    }

    /// Called per append: every so often, wakes the compactor if the log
    /// has grown enough.
    fn note_append(&self) {
        if let Some(c) = &self.compaction
            && c.appends.fetch_add(1, Ordering::Relaxed) % 256 == 255
            && self.start_compaction()
        {
            c.wanted.notify_one();
        }
    }

    /// Whether the log has grown enough for [`Durable::compact`]; marks it
    /// as started when it has, so that one compaction runs at a time.
    pub(crate) fn start_compaction(&self) -> bool {
        let Some(c) = &self.compaction else {
            return false;
        };
        let records = {
            let log = self.log();
            log.next_offset() - log.first_offset()
        };
        let due = records >= c.after_records.max(2 * c.left.load(Ordering::Relaxed));
        due && !c.running.swap(true, Ordering::AcqRel)
    }

    /// Compacts the log while the broker runs (see the module docs), after
    /// [`Durable::start_compaction`] said so. Blocks: run it off the async
    /// threads. On failure the old log stays in force.
    pub(crate) fn compact(&self) -> io::Result<()> {
        let Some(c) = &self.compaction else {
            return Ok(());
        };
        let r = self.compact_inner(c, &|| {});
        c.running.store(false, Ordering::Release);
        r
    }

    /// `during` runs after the prefix is compacted, before the records
    /// after it are copied (tests append there).
    fn compact_inner(&self, c: &Compaction, during: &dyn Fn()) -> io::Result<()> {
        let mut generation = c.generation.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let (now, now_ms) = (crate::clock::now(), now_ms());
        // The cut goes between appends: with appends held, an empty
        // append completes after every earlier one. (A segment roll makes
        // the end of the log visible in the middle of a batch.)
        let cut = {
            let live = self.log.write().unwrap_or_else(|e| e.into_inner());
            live.append(Vec::new()).map_err(io_err)?;
            live.next_offset()
        };
        let (mut state, before) = {
            let log = self.log();
            let state =
                strata_journal::replay_prefix(&log, c.share, cut, now, now_ms).map_err(io_err)?;
            (state, cut - log.first_offset())
        };
        // Ids for the compaction's own records that no message has: at most
        // one per message held.
        let held: usize = state
            .sessions
            .iter()
            .map(|s| s.pending.len() + s.inflight.len())
            .sum();
        state.next_id = self.next_id.fetch_add(held as u64 + 1, Ordering::Relaxed);
        let next_gen = *generation + 1;
        let next_name = log_name(next_gen);
        let next_dir = c.dir.join(&next_name);
        let storage = c.storage.clone();
        if storage.list_dirs(&c.dir)?.contains(&next_name) {
            storage.remove_dir_all(&next_dir)?;
        }
        let result = (|| {
            let (next, _) =
                Log::open(storage.clone(), &next_dir, log_config(Fsync::Always)).map_err(io_err)?;
            strata_journal::compact_into(&state, &next, now_ms).map_err(io_err)?;
            write_format(&*storage, &next_dir)?;
            during();
            // What was appended meanwhile, while appends go on.
            let mut from = cut;
            loop {
                let to = self.log().next_offset();
                if to - from < 1024 {
                    break;
                }
                copy_records(&self.log(), from, to, &next)?;
                from = to;
            }
            // The rest, with appends held.
            let mut live = self.log.write().unwrap_or_else(|e| e.into_inner());
            // An empty append completes after every earlier one.
            live.append(Vec::new()).map_err(io_err)?;
            let to = live.next_offset();
            copy_records(&live, from, to, &next)?;
            let fresh = match c.fsync {
                // Written with that policy already.
                Fsync::Always => next,
                // Everything is durable now; appends from here on follow
                // the configured policy.
                _ => {
                    next.close().map_err(io_err)?;
                    Log::open(storage.clone(), &next_dir, log_config(c.fsync))
                        .map_err(io_err)?
                        .0
                }
            };
            // The switch. Once the rename is done the new log is the one
            // in force, whatever happens next.
            let synced = switch_to(&*storage, &c.dir, next_gen)?;
            let after = fresh.next_offset() - fresh.first_offset();
            let old = std::mem::replace(&mut *live, fresh);
            drop(live);
            if let Err(e) = old.close() {
                tracing::warn!(error = %e, "closing the log compacted away");
            }
            Ok::<_, io::Error>((after, synced))
        })();
        let old_dir = c.dir.join(log_name(*generation));
        match result {
            Ok((after, synced)) => {
                *generation = next_gen;
                c.left.store(after, Ordering::Relaxed);
                match synced {
                    // The old log goes only once the switch is durable; if
                    // it is not, a machine crash may bring the old CURRENT
                    // back, and its log with it.
                    Ok(()) => storage.remove_dir_all(&old_dir)?,
                    Err(e) => {
                        tracing::error!(error = %e, dir = %old_dir.display(), "the switch to the compacted log may not be durable: the old log is kept")
                    }
                }
                tracing::info!(
                    records_before = before,
                    records_after = after,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "journal compacted"
                );
                Ok(())
            }
            Err(e) => {
                let _ = storage.remove_dir_all(&next_dir);
                Err(e)
            }
        }
    }

    /// A fresh message id.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Appends encoded `records` as one batch: every append goes through
    /// here. `done(true)` once it is durable under the fsync policy,
    /// `done(false)` if it failed or was refused. `done` runs on the log's
    /// writer thread (or here, on a refusal) and must not block.
    pub(crate) fn append_then(
        &self,
        records: Vec<NewRecord>,
        done: impl FnOnce(bool) + Send + 'static,
    ) {
        self.note_append();
        self.log().submit_then(records, move |r| {
            if let Err(e) = &r {
                tracing::error!(error = %e, "durable append failed");
            }
            done(r.is_ok());
        });
    }
}

#[cfg(test)]
mod power_cut;

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use strata_codec::MqttStr;
    use strata_codec::QoS;
    use strata_journal::Entry;
    use strata_router::SubOptions;
    use strata_session::Message;

    fn open(dir: &Path) -> (Durable, Recovered) {
        let config = StorageConfig {
            data_dir: Some(dir.to_path_buf()),
            fsync: Fsync::Always,
            compact_after_records: 1,
        };
        Durable::open(&config, dir, ShareStrategy::RoundRobin, None).unwrap()
    }

    fn message(d: &Durable, n: u8) -> Message {
        Message {
            topic: MqttStr::from_static("t/x"),
            payload: Bytes::from(vec![n]),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
            received: Instant::now(),
            id: d.next_id(),
        }
    }

    fn stored(d: &Durable, m: &Message) {
        let (tx, rx) = std::sync::mpsc::channel();
        let record = strata_journal::encode_message(m, now_ms(), None);
        d.append_then(vec![record], move |ok| tx.send(ok).unwrap());
        assert!(rx.recv().unwrap());
    }

    fn record_all(d: &Durable, entries: &[Entry]) {
        let now = now_ms();
        let records = entries.iter().map(|e| strata_journal::encode(e, now));
        d.append_then(records.collect(), |_| {});
    }

    #[test]
    fn appends_made_while_compacting_are_carried_over() {
        // Runtime compaction: what is appended while the prefix is being
        // compacted lands after it in the new log, and the switch keeps
        // one log directory.
        let dir = std::env::temp_dir().join(format!("strata-compact-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (d, _) = open(&dir);
        let client = MqttStr::from_static("x");
        record_all(
            &d,
            &[
                Entry::Up {
                    client: client.clone(),
                    expiry: 600,
                },
                Entry::Subscribe {
                    client: client.clone(),
                    filter: MqttStr::from_static("t/#"),
                    options: SubOptions {
                        qos: QoS::AtLeastOnce,
                        ..SubOptions::default()
                    },
                },
            ],
        );
        let early: Vec<Message> = (0..3).map(|n| message(&d, n)).collect();
        for m in &early {
            stored(&d, m);
        }
        assert!(d.start_compaction());
        let c = d.compaction.as_ref().unwrap();
        let late: Vec<Message> = (3..2000u16).map(|n| message(&d, n as u8)).collect();
        d.compact_inner(c, &|| {
            // Enough to be copied in both phases.
            for m in &late {
                stored(&d, m);
            }
            record_all(
                &d,
                &[Entry::Dropped {
                    client: client.clone(),
                    copies: [early[0].id, late[0].id]
                        .map(|id| strata_journal::Unsent {
                            id,
                            qos: QoS::AtLeastOnce,
                            retain: false,
                            subscription_ids: vec![],
                            on_subscribe: false,
                        })
                        .to_vec(),
                }],
            );
        })
        .unwrap();
        c.running.store(false, Ordering::Release);
        assert_eq!(current_generation(&FsStorage, &dir).unwrap(), 2);
        let logs = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("log")
            })
            .count();
        assert_eq!(logs, 1);
        // And the new log takes appends.
        let last = message(&d, 9);
        stored(&d, &last);
        drop(d);
        let (_, r) = open(&dir);
        let ids: Vec<u64> = r.sessions[0].pending.iter().map(|p| p.message.id).collect();
        let mut expected: Vec<u64> = early[1..].iter().chain(&late[1..]).map(|m| m.id).collect();
        expected.push(last.id);
        assert_eq!(ids, expected);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
