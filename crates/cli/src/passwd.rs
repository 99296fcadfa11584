//! `strata passwd`: Mosquitto's `mosquitto_passwd`, with its flags, for the
//! password files of `[auth] password_file`. Writes argon2id by default,
//! `-H sha512-pbkdf2` for files Mosquitto 2.0 must read too; `--scram`
//! writes the SCRAM credentials of `[auth] scram_file` instead.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use strata_auth::{Hash, HashKind, PasswordFile};

#[derive(Debug, Args)]
#[command(
    override_usage = "strata passwd [-H HASH] [-c | -D] FILE USER\n       strata passwd [-H HASH] [-c] -b FILE USER PASSWORD\n       strata passwd [-H HASH] -U FILE\n       strata passwd --scram [-c | -D] [-b] FILE USER [PASSWORD]"
)]
pub struct PasswdArgs {
    /// Create a new file (replacing one that exists).
    #[arg(short = 'c', conflicts_with_all = ["delete", "upgrade"])]
    create: bool,
    /// Batch mode: the password is the last argument.
    #[arg(short = 'b', conflicts_with_all = ["delete", "upgrade"])]
    batch: bool,
    /// Delete USER.
    #[arg(short = 'D', conflicts_with = "upgrade")]
    delete: bool,
    /// Hash every password of a plain-text `user:password` file, in place.
    #[arg(short = 'U')]
    upgrade: bool,
    /// The hash to write: argon2id (default) or sha512-pbkdf2 (which
    /// Mosquitto 2.0 reads).
    #[arg(short = 'H', value_name = "HASH", default_value = "argon2id")]
    hash: String,
    /// FILE is a SCRAM credentials file (`[auth] scram_file`): the user
    /// gets SCRAM-SHA-256 and SCRAM-SHA-512 keys.
    #[arg(long, conflicts_with = "upgrade")]
    scram: bool,
    /// The password file.
    file: PathBuf,
    /// The user to add, change or delete.
    user: Option<String>,
    /// With -b: the password.
    password: Option<String>,
}

/// A failure, and the exit code it gets: 2 for a mistake on the command
/// line, 1 otherwise.
struct Failed(u8, String);

pub fn run_passwd(args: PasswdArgs) -> ExitCode {
    match passwd(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failed(code, message)) => {
            eprintln!("strata passwd: {message}");
            ExitCode::from(code)
        }
    }
}

fn usage(message: &str) -> Failed {
    Failed(2, message.to_owned())
}

fn passwd(a: PasswdArgs) -> Result<(), Failed> {
    let kind = HashKind::from_name(&a.hash).ok_or_else(|| {
        usage(&format!(
            "-H {}: use argon2id or sha512-pbkdf2 (Mosquitto's sha512 is too weak to write; files with it are still read)",
            a.hash
        ))
    })?;
    if a.upgrade {
        if a.user.is_some() {
            return Err(usage("-U takes the file only"));
        }
        let text = read(&a.file)?;
        let file = PasswordFile::from_plain_text(&text, kind)
            .map_err(|e| Failed(1, format!("{}: {e}", a.file.display())))?;
        return write(&a.file, &file);
    }
    let user = a
        .user
        .ok_or_else(|| usage("give the file and a user name (see --help)"))?;
    if user.is_empty() || user.contains(':') {
        return Err(usage("a user name is not empty and has no ':'"));
    }
    match (a.batch, &a.password) {
        (true, None) => return Err(usage("-b needs the password after the user name")),
        (false, Some(_)) => return Err(usage("a password on the command line needs -b")),
        _ => {}
    }
    if a.scram {
        return scram(&a.file, &user, a.create, a.delete, a.password);
    }
    let mut file = if a.create {
        PasswordFile::default()
    } else {
        let text = read(&a.file)?;
        PasswordFile::parse(&text).map_err(|e| Failed(1, format!("{}: {e}", a.file.display())))?
    };
    if a.delete {
        if !file.remove(&user) {
            return Err(Failed(
                1,
                format!("user {user} is not in {}", a.file.display()),
            ));
        }
        return write(&a.file, &file);
    }
    let password = match a.password {
        Some(p) => p,
        None => ask()?,
    };
    if password.is_empty() {
        return Err(Failed(1, "the password is empty".to_owned()));
    }
    file.set(&user, Hash::new(kind, password.as_bytes()));
    write(&a.file, &file)
}

/// `--scram`: the same operations on a SCRAM credentials file.
fn scram(
    path: &Path,
    user: &str,
    create: bool,
    delete: bool,
    password: Option<String>,
) -> Result<(), Failed> {
    use strata_auth::scram::{Credentials, Mechanism, ScramFile};
    let mut file = if create {
        ScramFile::default()
    } else {
        ScramFile::parse(&read(path)?).map_err(|e| Failed(1, format!("{}: {e}", path.display())))?
    };
    if delete {
        if !file.remove(user) {
            return Err(Failed(
                1,
                format!("user {user} is not in {}", path.display()),
            ));
        }
    } else {
        let password = match password {
            Some(p) => p,
            None => ask()?,
        };
        if password.is_empty() {
            return Err(Failed(1, "the password is empty".to_owned()));
        }
        for m in Mechanism::ALL {
            file.set(user, m, Credentials::new(m, password.as_bytes()));
        }
    }
    replace(path, &file.to_text())
}

fn read(path: &Path) -> Result<String, Failed> {
    std::fs::read_to_string(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (-c creates it)"
        } else {
            ""
        };
        Failed(1, format!("cannot read {}: {e}{hint}", path.display()))
    })
}

fn write(path: &Path, file: &PasswordFile) -> Result<(), Failed> {
    replace(path, &file.to_text())
}

/// Replaces the file whole: a temporary file beside it (0600), synced,
/// renamed over it, so a crash leaves the old file or the new one.
fn replace(path: &Path, text: &str) -> Result<(), Failed> {
    let fail = |e: std::io::Error| Failed(1, format!("cannot write {}: {e}", path.display()));
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| usage("the file is a directory"))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&tmp).map_err(fail)?;
    f.write_all(text.as_bytes()).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The password from the terminal, typed twice without echo; from a pipe,
/// its first line.
fn ask() -> Result<String, Failed> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failed(1, format!("cannot read the password: {e}")))?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_owned());
    }
    let first = prompt("Password: ")?;
    let again = prompt("Reenter password: ")?;
    if first != again {
        return Err(Failed(1, "the passwords do not match".to_owned()));
    }
    Ok(first)
}

fn prompt(text: &str) -> Result<String, Failed> {
    eprint!("{text}");
    let _ = std::io::stderr().flush();
    let _quiet = NoEcho::new();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failed(1, format!("cannot read the password: {e}")))?;
    eprintln!();
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// The terminal's echo, off until dropped.
struct NoEcho {
    #[cfg(unix)]
    saved: Option<libc::termios>,
}

impl NoEcho {
    fn new() -> NoEcho {
        #[cfg(unix)]
        {
            // SAFETY: tcgetattr fills a zeroed termios for fd 0, and
            // tcsetattr reads one; neither keeps the pointer.
            unsafe {
                let mut t: libc::termios = std::mem::zeroed();
                if libc::tcgetattr(0, &mut t) != 0 {
                    return NoEcho { saved: None };
                }
                let saved = t;
                t.c_lflag &= !libc::ECHO;
                t.c_lflag |= libc::ECHONL;
                libc::tcsetattr(0, libc::TCSANOW, &t);
                NoEcho { saved: Some(saved) }
            }
        }
        #[cfg(not(unix))]
        NoEcho {}
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(t) = &self.saved {
            // SAFETY: restores the settings read in `new`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, t);
            }
        }
    }
}
