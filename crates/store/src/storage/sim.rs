//! [`Storage`] in memory, for tests: it keeps written and durable bytes
//! apart, fails a chosen write or sync, and cuts power at a chosen sync.
//!
//! The model:
//! - each file has durable contents and the list of writes and truncations
//!   made since its last `sync_data`; reads see everything written;
//! - each name (create, rename, remove) is durable after `sync_dir` on its
//!   directory; directories themselves are durable once created, and a
//!   directory's removal (with everything in it, at once) after `sync_dir`
//!   on its parent;
//! - a crash keeps the durable names and, per file, the durable contents
//!   plus, depending on [`CrashMode`], nothing, a prefix of the unsynced
//!   operations in order, or such a prefix and a torn next write;
//! - after a crash or power cut every operation on the old instance fails,
//!   so a writer thread still running cannot touch the recovered state.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Storage, StorageFile};

/// What survives of unsynced data when power goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Everything not synced is lost.
    DropUnsynced,
    /// For each file, a prefix (of a length drawn from `seed`) of the
    /// unsynced operations survives.
    KeepPrefix {
        /// Seed of the draw.
        seed: u64,
    },
    /// As `KeepPrefix`, and the first lost write survives up to a byte drawn
    /// from `seed`: a torn write.
    TearWrite {
        /// Seed of the draw.
        seed: u64,
    },
}

/// Whether a power cut lands just before or just after its sync takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutPoint {
    /// The sync does not happen; the call returns an error.
    BeforeSync,
    /// The sync happens and returns `Ok`; power goes right after.
    AfterSync,
}

/// Cut power at the Nth sync point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerCut {
    /// 1-based count of sync points (`sync_data` and `sync_dir` calls)
    /// since the plan was set.
    pub at_sync: u64,
    /// Before or after that sync takes effect.
    pub point: CutPoint,
    /// What survives of unsynced data.
    pub mode: CrashMode,
}

/// Faults to inject. Counts are 1-based and start when the plan is set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// The Nth sync point (`sync_data` or `sync_dir`) fails with an I/O
    /// error and makes nothing durable.
    pub fail_sync: Option<u64>,
    /// The Nth `write_at` fails with an I/O error and writes nothing.
    pub fail_write: Option<u64>,
    /// Power goes at a sync point.
    pub power_cut: Option<PowerCut>,
}

/// Operation counts since the storage was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// `write_at` calls.
    pub writes: u64,
    /// `sync_data` calls.
    pub syncs: u64,
    /// `sync_dir` calls.
    pub dir_syncs: u64,
}

/// In-memory [`Storage`] with a durability model and fault injection.
/// Clones share the same files.
#[derive(Clone)]
pub struct SimStorage {
    sim: Arc<Mutex<Sim>>,
}

#[derive(Debug, Clone)]
enum Op {
    Write { pos: u64, data: Vec<u8> },
    Truncate(u64),
}

#[derive(Debug, Clone, Default)]
struct SimFile {
    durable: Vec<u8>,
    current: Vec<u8>,
    unsynced: Vec<Op>,
}

#[derive(Debug, Default)]
struct Sim {
    powered_off: bool,
    next_id: u64,
    files: HashMap<u64, SimFile>,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    /// Directories removed whose removal is not durable yet: a crash
    /// brings them back, with their durable names.
    removed_dirs: BTreeSet<PathBuf>,
    plan: FaultPlan,
    sync_points: u64,
    writes_since_plan: u64,
    stats: SimStats,
    /// The state to restart from, taken when a planned power cut hit.
    image: Option<Box<Sim>>,
}

impl fmt::Debug for SimStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sim = self.lock();
        f.debug_struct("SimStorage")
            .field("files", &sim.names.len())
            .field("powered_off", &sim.powered_off)
            .field("stats", &sim.stats)
            .finish()
    }
}

impl Default for SimStorage {
    fn default() -> Self {
        SimStorage::new()
    }
}

impl SimStorage {
    /// An empty filesystem with no faults planned.
    pub fn new() -> SimStorage {
        SimStorage::from_sim(Sim::default())
    }

    /// An empty filesystem with `plan`.
    pub fn with_faults(plan: FaultPlan) -> SimStorage {
        let s = SimStorage::new();
        s.set_faults(plan);
        s
    }

    fn from_sim(sim: Sim) -> SimStorage {
        SimStorage {
            sim: Arc::new(Mutex::new(sim)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Sim> {
        // A panicking test thread must not hide the state from the others.
        self.sim.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the fault plan; its counts start from now.
    pub fn set_faults(&self, plan: FaultPlan) {
        let mut sim = self.lock();
        sim.plan = plan;
        sim.sync_points = 0;
        sim.writes_since_plan = 0;
    }

    /// Operation counts so far.
    pub fn stats(&self) -> SimStats {
        self.lock().stats
    }

    /// Whether a planned power cut has happened (or [`SimStorage::crash`]
    /// was called).
    pub fn is_powered_off(&self) -> bool {
        self.lock().powered_off
    }

    /// Cuts power now and returns the filesystem as it is after a restart.
    /// If a planned power cut already happened, returns the state from that
    /// moment instead (and `mode` is not used). This instance fails every
    /// operation from now on.
    pub fn crash(&self, mode: CrashMode) -> SimStorage {
        let mut sim = self.lock();
        sim.powered_off = true;
        let image = match sim.image.take() {
            Some(image) => *image,
            None => sim.image(mode),
        };
        SimStorage::from_sim(image)
    }

    /// Writes a whole file and makes it and its name durable (test setup).
    pub fn write_file(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        if let Some(dir) = path.parent() {
            self.create_dir_all(dir)?;
        }
        let file = self.open(path, true)?;
        file.truncate(0)?;
        file.write_at(0, bytes)?;
        file.sync_data()?;
        match path.parent() {
            Some(dir) => self.sync_dir(dir),
            None => Ok(()),
        }
    }
}

fn powered_off() -> io::Error {
    io::Error::other("simulated power cut: the storage is off")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

/// splitmix64: a tiny deterministic generator, so crash draws repeat.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn below(state: &mut u64, n: usize) -> usize {
    // n is small (a count of operations or bytes); modulo bias is harmless.
    (next_random(state) % (n as u64 + 1)) as usize
}

fn apply(content: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write { pos, data } => {
            let pos = *pos as usize;
            if content.len() < pos + data.len() {
                content.resize(pos + data.len(), 0);
            }
            content[pos..pos + data.len()].copy_from_slice(data);
        }
        Op::Truncate(len) => content.resize(*len as usize, 0),
    }
}

impl Sim {
    fn check_power(&self) -> io::Result<()> {
        if self.powered_off {
            Err(powered_off())
        } else {
            Ok(())
        }
    }

    /// The filesystem as a restart after a crash now would find it.
    fn image(&self, mode: CrashMode) -> Sim {
        let mut rng = match mode {
            CrashMode::DropUnsynced => 0,
            CrashMode::KeepPrefix { seed } | CrashMode::TearWrite { seed } => seed,
        };
        let mut files = HashMap::new();
        let ids: BTreeSet<u64> = self.durable_names.values().copied().collect();
        for id in ids {
            let Some(f) = self.files.get(&id) else {
                continue;
            };
            let mut content = f.durable.clone();
            if mode != CrashMode::DropUnsynced {
                let kept = below(&mut rng, f.unsynced.len());
                for op in &f.unsynced[..kept] {
                    apply(&mut content, op);
                }
                if let (CrashMode::TearWrite { .. }, Some(Op::Write { pos, data })) =
                    (mode, f.unsynced.get(kept))
                {
                    let cut = below(&mut rng, data.len());
                    let torn = Op::Write {
                        pos: *pos,
                        data: data[..cut].to_vec(),
                    };
                    apply(&mut content, &torn);
                }
            }
            files.insert(
                id,
                SimFile {
                    durable: content.clone(),
                    current: content,
                    unsynced: Vec::new(),
                },
            );
        }
        let mut dirs = self.dirs.clone();
        dirs.extend(self.removed_dirs.iter().cloned());
        Sim {
            next_id: self.next_id,
            files,
            names: self.durable_names.clone(),
            durable_names: self.durable_names.clone(),
            dirs,
            ..Sim::default()
        }
    }

    /// Counts a sync point and applies the plan: fail it, cut power before
    /// or after `sync` takes effect, or just run `sync`.
    fn sync_point(&mut self, sync: impl FnOnce(&mut Sim)) -> io::Result<()> {
        self.check_power()?;
        self.sync_points += 1;
        let n = self.sync_points;
        if self.plan.fail_sync == Some(n) {
            return Err(io::Error::other(format!("injected failure of sync #{n}")));
        }
        match self.plan.power_cut {
            Some(cut) if cut.at_sync == n => {
                if cut.point == CutPoint::AfterSync {
                    sync(self);
                }
                self.image = Some(Box::new(self.image(cut.mode)));
                self.powered_off = true;
                match cut.point {
                    CutPoint::AfterSync => Ok(()),
                    CutPoint::BeforeSync => Err(powered_off()),
                }
            }
            _ => {
                sync(self);
                Ok(())
            }
        }
    }

    fn file(&mut self, id: u64) -> io::Result<&mut SimFile> {
        self.files
            .get_mut(&id)
            .ok_or_else(|| io::Error::other("simulated file vanished"))
    }
}

#[derive(Debug)]
struct SimHandle {
    storage: SimStorage,
    id: u64,
}

impl Storage for SimStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut sim = self.lock();
        sim.check_power()?;
        for a in dir.ancestors() {
            sim.dirs.insert(a.to_path_buf());
            // Made again before its removal was durable: a crash keeps the
            // new one, empty, not the old one's contents.
            if sim.removed_dirs.contains(a) {
                sim.removed_dirs.retain(|r| !r.starts_with(a));
                sim.durable_names.retain(|p, _| !p.starts_with(a));
            }
        }
        Ok(())
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn StorageFile>> {
        let mut sim = self.lock();
        sim.check_power()?;
        let parent = path.parent().unwrap_or(Path::new(""));
        if !sim.dirs.contains(parent) {
            return Err(not_found(parent));
        }
        let id = match sim.names.get(path) {
            Some(&id) => id,
            None if create => {
                let id = sim.next_id;
                sim.next_id += 1;
                sim.files.insert(id, SimFile::default());
                sim.names.insert(path.to_path_buf(), id);
                id
            }
            None => return Err(not_found(path)),
        };
        Ok(Box::new(SimHandle {
            storage: self.clone(),
            id,
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut sim = self.lock();
        sim.check_power()?;
        let id = *sim.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(sim.file(id)?.current.clone())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut sim = self.lock();
        sim.check_power()?;
        let id = sim.names.remove(from).ok_or_else(|| not_found(from))?;
        sim.names.insert(to.to_path_buf(), id);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut sim = self.lock();
        sim.check_power()?;
        sim.names
            .remove(path)
            .map(drop)
            .ok_or_else(|| not_found(path))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let sim = self.lock();
        sim.check_power()?;
        if !sim.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(sim
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect())
    }

    fn list_dirs(&self, dir: &Path) -> io::Result<Vec<String>> {
        let sim = self.lock();
        sim.check_power()?;
        if !sim.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(sim
            .dirs
            .iter()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect())
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut sim = self.lock();
        sim.check_power()?;
        if !sim.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        sim.names.retain(|p, _| !p.starts_with(dir));
        let gone: Vec<PathBuf> = sim
            .dirs
            .iter()
            .filter(|d| d.starts_with(dir))
            .cloned()
            .collect();
        for d in gone {
            sim.dirs.remove(&d);
            sim.removed_dirs.insert(d);
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut sim = self.lock();
        sim.check_power()?;
        if !sim.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        sim.stats.dir_syncs += 1;
        sim.sync_point(|sim| {
            // Removed subdirectories are gone for good, with what they held.
            let removed: Vec<PathBuf> = sim
                .removed_dirs
                .iter()
                .filter(|d| d.parent() == Some(dir))
                .cloned()
                .collect();
            for d in removed {
                sim.removed_dirs.retain(|r| !r.starts_with(&d));
                sim.durable_names.retain(|p, _| !p.starts_with(&d));
            }
            sim.durable_names.retain(|p, _| p.parent() != Some(dir));
            let current: Vec<(PathBuf, u64)> = sim
                .names
                .iter()
                .filter(|(p, _)| p.parent() == Some(dir))
                .map(|(p, &id)| (p.clone(), id))
                .collect();
            sim.durable_names.extend(current);
        })
    }
}

impl StorageFile for SimHandle {
    fn size(&self) -> io::Result<u64> {
        let mut sim = self.storage.lock();
        sim.check_power()?;
        Ok(sim.file(self.id)?.current.len() as u64)
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut sim = self.storage.lock();
        sim.check_power()?;
        let content = &sim.file(self.id)?.current;
        let src = usize::try_from(pos)
            .ok()
            .and_then(|p| content.get(p..p.checked_add(buf.len())?))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()> {
        let mut sim = self.storage.lock();
        sim.check_power()?;
        sim.stats.writes += 1;
        sim.writes_since_plan += 1;
        let n = sim.writes_since_plan;
        if sim.plan.fail_write == Some(n) {
            return Err(io::Error::other(format!("injected failure of write #{n}")));
        }
        let op = Op::Write {
            pos,
            data: data.to_vec(),
        };
        let file = sim.file(self.id)?;
        apply(&mut file.current, &op);
        file.unsynced.push(op);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut sim = self.storage.lock();
        sim.stats.syncs += 1;
        let id = self.id;
        sim.sync_point(|sim| {
            if let Some(f) = sim.files.get_mut(&id) {
                f.durable = f.current.clone();
                f.unsynced.clear();
            }
        })
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        let mut sim = self.storage.lock();
        sim.check_power()?;
        let file = sim.file(self.id)?;
        let op = Op::Truncate(len);
        apply(&mut file.current, &op);
        file.unsynced.push(op);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (SimStorage, PathBuf) {
        let s = SimStorage::new();
        let dir = PathBuf::from("/d");
        s.create_dir_all(&dir).unwrap();
        (s, dir)
    }

    #[test]
    fn unsynced_data_and_names_are_lost() {
        let (s, dir) = setup();
        let a = dir.join("a");
        let f = s.open(&a, true).unwrap();
        f.write_at(0, b"durable").unwrap();
        f.sync_data().unwrap();
        s.sync_dir(&dir).unwrap();
        f.write_at(7, b"-lost").unwrap();
        let g = s.open(&dir.join("b"), true).unwrap();
        g.write_at(0, b"x").unwrap();
        g.sync_data().unwrap();

        let after = s.crash(CrashMode::DropUnsynced);
        assert_eq!(after.read(&a).unwrap(), b"durable");
        assert_eq!(after.list(&dir).unwrap(), vec!["a".to_string()]);
        assert!(f.write_at(0, b"z").is_err(), "old instance is off");
    }

    #[test]
    fn torn_write_keeps_a_prefix() {
        for seed in 0..50 {
            let (s, dir) = setup();
            let a = dir.join("a");
            let f = s.open(&a, true).unwrap();
            s.sync_dir(&dir).unwrap();
            f.write_at(0, b"0123456789").unwrap();
            let after = s.crash(CrashMode::TearWrite { seed });
            let got = after.read(&a).unwrap();
            assert!(b"0123456789".starts_with(&got), "seed {seed}: {got:?}");
        }
    }

    #[test]
    fn planned_power_cut_and_failures() {
        let (s, dir) = setup();
        let f = s.open(&dir.join("a"), true).unwrap();
        s.set_faults(FaultPlan {
            fail_write: Some(2),
            fail_sync: Some(1),
            power_cut: Some(PowerCut {
                at_sync: 3,
                point: CutPoint::AfterSync,
                mode: CrashMode::DropUnsynced,
            }),
        });
        f.write_at(0, b"a").unwrap();
        assert!(f.write_at(1, b"b").is_err());
        assert!(f.sync_data().is_err());
        s.sync_dir(&dir).unwrap();
        f.sync_data().unwrap();
        assert!(s.is_powered_off());
        assert!(f.write_at(1, b"c").is_err());
        let after = s.crash(CrashMode::DropUnsynced);
        assert_eq!(after.read(&dir.join("a")).unwrap(), b"a");
        assert_eq!(s.stats().syncs, 2);
    }
}
