//! `strata admin`: the admin HTTP API from the command line: `key create`
//! (adds an API key to a key file, no broker needed), and against a
//! running broker `status`, `metrics`, `clients`, `client ID`, `kick ID`,
//! `publish`, `retained [get|delete TOPIC]` and `reload`. The API's JSON is
//! printed as it comes, for scripts.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The admin listener.
    #[arg(long, default_value = "http://127.0.0.1:8080", global = true)]
    url: String,
    /// An API key (or set STRATA_ADMIN_KEY).
    #[arg(long, env = "STRATA_ADMIN_KEY", hide_env_values = true, global = true)]
    key: Option<String>,
    /// Print the API's JSON as it comes (for scripts) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// The broker's status, as JSON.
    Status,
    /// The broker's Prometheus metrics.
    Metrics,
    /// Exit 0 if the broker answers /healthz (a container's health check).
    Health,
    /// Exit 0 if the broker is ready (/readyz): replayed, listening, not
    /// draining.
    Ready,
    /// Sessions, connected or offline, a page at a time.
    Clients {
        /// Only those whose client id holds this.
        #[arg(long)]
        filter: Option<String>,
        /// Only connected (true) or offline (false) ones.
        #[arg(long)]
        connected: Option<bool>,
        #[arg(long, default_value_t = 1)]
        page: usize,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One session: its subscriptions and queue.
    Client { id: String },
    /// Disconnects a client (5.0: DISCONNECT 0x98).
    Kick { id: String },
    /// Publishes a message as the broker.
    Publish {
        #[arg(short = 't', long)]
        topic: String,
        #[arg(short = 'm', long, default_value = "")]
        message: String,
        #[arg(short = 'q', long, default_value_t = 0)]
        qos: u8,
        #[arg(short = 'r', long)]
        retain: bool,
    },
    /// Retained messages: a list under a filter, or one to get or delete.
    Retained {
        #[arg(long, default_value = "#")]
        filter: String,
        #[command(subcommand)]
        action: Option<RetainedCommand>,
    },
    /// Reloads certificates and the [auth] files.
    Reload,
}

#[derive(Debug, Subcommand)]
enum RetainedCommand {
    Get { topic: String },
    Delete { topic: String },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Makes a new key, prints it once, and adds its hash to FILE (the
    /// broker's `[admin] api_key_file`; created 0600 if missing).
    Create {
        #[arg(long)]
        file: PathBuf,
        /// A note kept beside the hash (who holds the key).
        #[arg(long, default_value = "")]
        comment: String,
    },
}

pub fn run_admin(args: AdminArgs) -> ExitCode {
    JSON.set(args.json).ok();
    match args.command {
        AdminCommand::Key {
            command: KeyCommand::Create { file, comment },
        } => key_create(&file, &comment),
        AdminCommand::Status => get(&args.url, "/api/v1/status", args.key.as_deref()),
        AdminCommand::Metrics => get(&args.url, "/metrics", args.key.as_deref()),
        AdminCommand::Health => get(&args.url, "/healthz", None),
        AdminCommand::Ready => get(&args.url, "/readyz", None),
        AdminCommand::Clients {
            filter,
            connected,
            page,
            limit,
        } => {
            let mut q = format!("page={page}&limit={limit}");
            if let Some(f) = filter {
                q.push_str(&format!("&id={}", encode(&f)));
            }
            if let Some(c) = connected {
                q.push_str(&format!("&connected={c}"));
            }
            get(
                &args.url,
                &format!("/api/v1/clients?{q}"),
                args.key.as_deref(),
            )
        }
        AdminCommand::Client { id } => get(
            &args.url,
            &format!("/api/v1/clients/{}", encode(&id)),
            args.key.as_deref(),
        ),
        AdminCommand::Kick { id } => request(
            &args.url,
            "DELETE",
            &format!("/api/v1/clients/{}", encode(&id)),
            args.key.as_deref(),
            None,
        ),
        AdminCommand::Publish {
            topic,
            message,
            qos,
            retain,
        } => {
            let body = serde_json::json!({"topic": topic, "payload": message, "qos": qos, "retain": retain});
            request(
                &args.url,
                "POST",
                "/api/v1/publish",
                args.key.as_deref(),
                Some(body.to_string()),
            )
        }
        AdminCommand::Retained { filter, action } => match action {
            None => get(
                &args.url,
                &format!("/api/v1/retained?filter={}", encode(&filter)),
                args.key.as_deref(),
            ),
            Some(RetainedCommand::Get { topic }) => get(
                &args.url,
                &format!("/api/v1/retained/{}", encode_path(&topic)),
                args.key.as_deref(),
            ),
            Some(RetainedCommand::Delete { topic }) => request(
                &args.url,
                "DELETE",
                &format!("/api/v1/retained/{}", encode_path(&topic)),
                args.key.as_deref(),
                None,
            ),
        },
        AdminCommand::Reload => request(
            &args.url,
            "POST",
            "/api/v1/reload",
            args.key.as_deref(),
            None,
        ),
    }
}

fn key_create(file: &std::path::Path, comment: &str) -> ExitCode {
    if comment.contains('\n') {
        eprintln!("strata admin key create: --comment is one line");
        return ExitCode::from(2);
    }
    let (key, line) = strata_auth::api_key::new_key(comment);
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(file).and_then(|mut f| {
        f.write_all(format!("{line}\n").as_bytes())?;
        f.sync_all()
    });
    match written {
        Ok(()) => {
            println!("{key}");
            eprintln!(
                "added to {}: the key is shown only this once (send it as Authorization: Bearer KEY)",
                file.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "strata admin key create: cannot write {}: {e}",
                file.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// `--json`: print bodies as they come.
static JSON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// A JSON answer as text for a person: a page of objects as a table with a
/// header, an object as `key: value` lines, anything else as it is.
fn human(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.to_owned();
    };
    let cell = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    if let Some(rows) = v.get("data").and_then(serde_json::Value::as_array) {
        let Some(first) = rows.first().and_then(serde_json::Value::as_object) else {
            return "(none)\n".to_owned();
        };
        let cols: Vec<&String> = first.keys().collect();
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| cols.iter().map(|c| cell(&r[c.as_str()])).collect())
            .collect();
        let widths: Vec<usize> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| {
                table
                    .iter()
                    .map(|r| r[i].len())
                    .chain([c.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<String>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            padded.join("  ").trim_end().to_owned() + "\n"
        };
        let mut out = line(cols.iter().map(|c| c.to_uppercase()).collect());
        for r in table {
            out.push_str(&line(r));
        }
        if let Some(meta) = v.get("meta") {
            out.push_str(&format!(
                "page {} of {} per page, {} in all\n",
                cell(&meta["page"]),
                cell(&meta["limit"]),
                cell(&meta["count"])
            ));
        }
        return out;
    }
    match v.as_object() {
        Some(o) => o
            .iter()
            .map(|(k, v)| format!("{k}: {}\n", cell(v)))
            .collect(),
        None => body.to_owned(),
    }
}

/// Percent-encodes a query value or path segment.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A topic as a path: its levels encoded, its slashes kept.
fn encode_path(topic: &str) -> String {
    topic.split('/').map(encode).collect::<Vec<_>>().join("/")
}

fn get(url: &str, path: &str, key: Option<&str>) -> ExitCode {
    request(url, "GET", path, key, None)
}

/// `method path` on the admin listener at `url` (plain http), with a JSON
/// body if given; prints the answer's body. Exit 1 on a failure status or
/// no answer.
fn request(
    url: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<String>,
) -> ExitCode {
    let Some(authority) = url.strip_prefix("http://").map(|a| a.trim_end_matches('/')) else {
        eprintln!("strata admin: --url {url}: use http://HOST:PORT");
        return ExitCode::from(2);
    };
    let rt = match crate::tools::runtime(false) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let answer = rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(authority).await?;
        let auth = key
            .map(|k| format!("Authorization: Bearer {k}\r\n"))
            .unwrap_or_default();
        let body = body.unwrap_or_default();
        let kind = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/json\r\n"
        };
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {authority}\r\n{auth}{kind}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf))
            .await
            .map_err(|_| std::io::Error::other("no answer within 10 s"))??;
        Ok::<_, std::io::Error>(buf)
    });
    let buf = match answer {
        Ok(b) => b,
        Err(e) => {
            eprintln!("strata admin: {url}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap_or("");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    if status.starts_with('2') {
        let json_body = head
            .to_ascii_lowercase()
            .contains("content-type: application/json");
        let body = if json_body && !JSON.get().copied().unwrap_or(false) {
            human(&body)
        } else {
            body
        };
        if !body.is_empty() {
            print!("{body}");
            if !body.ends_with('\n') {
                println!();
            }
        }
        ExitCode::SUCCESS
    } else {
        eprintln!("strata admin: {path}: HTTP {status}: {body}");
        ExitCode::FAILURE
    }
}

/// A chunked body, joined.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}
