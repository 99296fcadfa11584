//! Writing and reading the CA's files. Every write makes a new file and
//! never replaces one: a CA key overwritten by mistake cannot be recovered,
//! and every certificate it signed stops verifying.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::CaError;

/// One file to create.
pub(crate) struct NewFile<'a> {
    pub(crate) path: PathBuf,
    pub(crate) contents: &'a [u8],
    /// Private keys: mode 0600 on unix, from the moment the file exists.
    pub(crate) secret: bool,
}

/// Creates `dir` if needed, then every file in `files`, or none of them.
///
/// All paths are checked first so that a refusal leaves nothing behind;
/// each file is then opened with `create_new` (`O_EXCL`), so a file that
/// appears in between is refused rather than replaced. If a later file
/// fails, the ones this call created are removed again. Contents and the
/// directory entry are fsynced before returning.
///
/// `exists` builds the error for a path that is already taken, so each
/// caller can say how to proceed.
pub(crate) fn create_all(
    dir: &Path,
    files: &[NewFile<'_>],
    exists: fn(PathBuf) -> CaError,
) -> Result<(), CaError> {
    fs::create_dir_all(dir).map_err(|e| CaError::io("create directory", dir, e))?;
    for file in files {
        match fs::symlink_metadata(&file.path) {
            Ok(_) => return Err(exists(file.path.clone())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(CaError::io("inspect", &file.path, e)),
        }
    }
    for (done, file) in files.iter().enumerate() {
        if let Err(err) = create_one(file, exists) {
            for created in &files[..done] {
                // Best effort: the error being returned is the one to report.
                let _ = fs::remove_file(&created.path);
            }
            return Err(err);
        }
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| CaError::io("sync directory", dir, e))
}

fn create_one(file: &NewFile<'_>, exists: fn(PathBuf) -> CaError) -> Result<(), CaError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if file.secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut handle = match options.open(&file.path) {
        Ok(handle) => handle,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(exists(file.path.clone()));
        }
        Err(e) => return Err(CaError::io("create", &file.path, e)),
    };
    let written = handle
        .write_all(file.contents)
        .map_err(|e| CaError::io("write", &file.path, e))
        .and_then(|()| {
            handle
                .sync_all()
                .map_err(|e| CaError::io("sync", &file.path, e))
        });
    if written.is_err() {
        let _ = fs::remove_file(&file.path);
    }
    written
}

/// Reads a text file, telling a missing file apart from other failures.
pub(crate) fn read(path: &Path) -> Result<String, CaError> {
    fs::read_to_string(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => CaError::Missing {
            path: path.to_owned(),
        },
        _ => CaError::io("read", path, e),
    })
}
