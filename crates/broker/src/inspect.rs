//! `strata inspect`: a data directory's log, record by record, for a human.
//!
//! The log is opened through a read-only [`Storage`]: anything recovery
//! would change (a torn tail to cut, an index to rebuild, a leftover to
//! remove) fails with an error that says so, instead of touching the files.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use strata_store::{FsStorage, Log, LogConfig, ReadLimits, Record, Storage, StorageFile};

use strata_journal::Entry;

/// Files through [`FsStorage`], with every change refused.
#[derive(Debug)]
struct ReadOnly(FsStorage);

fn refused(what: &str, path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{what} {}: inspect never changes the log; start the broker on this directory to let recovery repair it, or inspect a copy",
            path.display()
        ),
    )
}

#[derive(Debug)]
struct ReadOnlyFile(Box<dyn StorageFile>, PathBuf);

impl StorageFile for ReadOnlyFile {
    fn size(&self) -> io::Result<u64> {
        self.0.size()
    }
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0.read_at(pos, buf)
    }
    fn write_at(&self, _: u64, _: &[u8]) -> io::Result<()> {
        Err(refused("writing", &self.1))
    }
    fn sync_data(&self) -> io::Result<()> {
        // Nothing was written: nothing to sync.
        Ok(())
    }
    fn truncate(&self, _: u64) -> io::Result<()> {
        Err(refused("truncating (a torn tail)", &self.1))
    }
}

impl Storage for ReadOnly {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not a directory", dir.display()),
            ))
        }
    }
    fn open(&self, path: &Path, _create: bool) -> io::Result<Box<dyn StorageFile>> {
        if !path.exists() {
            return Err(refused("creating", path));
        }
        Ok(Box::new(ReadOnlyFile(
            self.0.open(path, false)?,
            path.to_path_buf(),
        )))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.0.read(path)
    }
    fn rename(&self, from: &Path, _: &Path) -> io::Result<()> {
        Err(refused("renaming", from))
    }
    fn list_dirs(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.0.list_dirs(dir)
    }
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        Err(refused("removing", dir))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        Err(refused("removing", path))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.0.list(dir)
    }
    fn sync_dir(&self, _: &Path) -> io::Result<()> {
        Ok(())
    }
}

/// One record as a line of text.
fn describe(r: &Record, now: Instant, now_ms: i64) -> String {
    let mut s = format!("{:>10}  {}  ", r.offset, r.timestamp);
    let _ = match strata_journal::decode(r, now, now_ms) {
        Ok(Entry::Message(m)) => {
            write_message(&mut s, &m);
            Ok(())
        }
        Ok(Entry::Published {
            message,
            client,
            packet_id,
        }) => {
            write_message(&mut s, &message);
            write!(s, " from={client:?} inbound_packet_id={packet_id}")
        }
        Ok(Entry::Up { client, expiry }) => write!(s, "up client={client:?} expiry={expiry}s"),
        Ok(Entry::Resume { client, expiry }) => {
            write!(s, "resume client={client:?} expiry={expiry}s")
        }
        Ok(Entry::Down {
            client,
            expiry,
            at_ms,
        }) => write!(s, "down client={client:?} expiry={expiry}s at={at_ms}"),
        Ok(Entry::End { client }) => write!(s, "end client={client:?}"),
        Ok(Entry::Subscribe {
            client,
            filter,
            options,
        }) => write!(
            s,
            "subscribe client={client:?} filter={:?} qos={} no_local={} rap={} id={:?}",
            filter.as_str(),
            options.qos as u8,
            options.no_local,
            options.retain_as_published,
            options.subscription_id
        ),
        Ok(Entry::Unsubscribe { client, filter }) => {
            write!(
                s,
                "unsubscribe client={client:?} filter={:?}",
                filter.as_str()
            )
        }
        Ok(Entry::IdMark { ids }) => write!(s, "id-mark ids={ids:?}"),
        Ok(Entry::Pending {
            client,
            id,
            qos,
            on_subscribe,
            ..
        }) => {
            let how = if on_subscribe { " on-subscribe" } else { "" };
            write!(
                s,
                "pending client={client:?} id={id} qos={}{how}",
                qos as u8
            )
        }
        Ok(Entry::Will {
            client,
            due_ms,
            message,
        }) => {
            let _ = write!(s, "will client={client:?} due={due_ms} ");
            write_message(&mut s, &message);
            Ok(())
        }
        Ok(Entry::WillGone { client }) => write!(s, "will-gone client={client:?}"),
        Ok(Entry::Sent { client, sends }) => {
            let sends: Vec<String> = sends
                .iter()
                .map(|x| {
                    let how = marked(x.on_subscribe);
                    format!("{}@{}/qos{}{how}", x.id, x.packet_id, x.qos as u8)
                })
                .collect();
            write!(s, "sent client={client:?} id@packet=[{}]", sends.join(", "))
        }
        Ok(Entry::Released { client, flows }) => {
            write!(
                s,
                "released client={client:?} id@packet=[{}]",
                flows_text(&flows)
            )
        }
        Ok(Entry::Dropped { client, copies }) => {
            let ids: Vec<String> = copies
                .iter()
                .map(|c| format!("{}{}", c.id, marked(c.on_subscribe)))
                .collect();
            write!(s, "dropped client={client:?} ids=[{}]", ids.join(", "))
        }
        Ok(Entry::Completed { client, flows }) => {
            write!(
                s,
                "completed client={client:?} id@packet=[{}]",
                flows_text(&flows)
            )
        }
        Ok(Entry::Inbound { client, packet_ids }) => {
            write!(s, "inbound client={client:?} packet_ids={packet_ids:?}")
        }
        Ok(Entry::InboundDone { client, packet_ids }) => {
            write!(
                s,
                "inbound-done client={client:?} packet_ids={packet_ids:?}"
            )
        }
        Err(e) => write!(s, "undecodable: {e}"),
    };
    s
}

/// `/on-subscribe` after a copy that is a retained message sent to a new
/// subscription.
fn marked(on_subscribe: bool) -> &'static str {
    if on_subscribe { "/on-subscribe" } else { "" }
}

/// Flows as `id@packet` (packet 0: an old record without one).
fn flows_text(flows: &[strata_journal::Flow]) -> String {
    let v: Vec<String> = flows
        .iter()
        .map(|f| format!("{}@{}", f.id, f.packet_id))
        .collect();
    v.join(", ")
}

fn write_message(s: &mut String, m: &strata_session::Message) {
    let _ = write!(
        s,
        "message id={} topic={:?} qos={} retain={} payload={}B{}",
        m.id,
        m.topic.as_str(),
        m.qos as u8,
        m.retain,
        m.payload.len(),
        printable(&m.payload)
    );
}

/// A short text payload shown inline.
fn printable(p: &[u8]) -> String {
    match std::str::from_utf8(p) {
        Ok(t) if p.len() <= 64 && !t.chars().any(char::is_control) => format!(" {t:?}"),
        _ => String::new(),
    }
}

/// Writes a summary and every record of the log under `dir` (a data
/// directory or its `log/`) to `out`.
pub fn inspect(dir: &Path, out: &mut dyn io::Write) -> io::Result<()> {
    let current = crate::durable::current_log_dir(&FsStorage, dir)?;
    let log_dir = if current.is_dir() {
        current
    } else {
        dir.to_path_buf()
    };
    let storage: Arc<dyn Storage> = Arc::new(ReadOnly(FsStorage));
    let config = LogConfig {
        foreign_files: &[strata_journal::FORMAT_FILE],
        ..LogConfig::default()
    };
    let (log, report) =
        Log::open(storage, &log_dir, config).map_err(|e| io::Error::other(e.to_string()))?;
    writeln!(
        out,
        "{}: {} segment(s), offsets {}..{}",
        log_dir.display(),
        report.segments,
        report.first_offset,
        report.next_offset
    )?;
    writeln!(out, "{:>10}  {:<13}  entry", "offset", "time (ms)")?;
    let (now, now_ms) = (Instant::now(), crate::durable::now_ms());
    let mut from = log.first_offset();
    loop {
        let batch = log
            .read(from, ReadLimits::records(1024))
            .map_err(|e| io::Error::other(e.to_string()))?;
        let Some(last) = batch.last() else { break };
        from = last.offset + 1;
        for r in &batch {
            writeln!(out, "{}", describe(r, now, now_ms))?;
        }
    }
    Ok(())
}
