//! A real SMTP server on loopback for the mail tests: `tests/fixtures/smtp_server.py`, built
//! on aiosmtpd, runs as a child process on port 0. It appends every accepted message to a
//! JSON-lines file in its own temp dir, which the test reads back. The recipient's local part
//! scripts its answer to RCPT: `reject…` is refused for good (550), `busy…` is refused twice
//! (451) and then accepted, and anything else is accepted. The Python side needs
//! python3-aiosmtpd, which `.ci/run` installs.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

mod mime;

/// The server the tests run, next to the other fixtures.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/smtp_server.py");

/// What to do when the Python side is missing.
const INSTALL_HINT: &str = "install python3-aiosmtpd; bash .ci/run does";

/// How long the server may take to say it listens (Python starts in well under a second).
const START_LIMIT: Duration = Duration::from_secs(20);

/// How long [`SmtpServer::wait_for`] waits for mail before it fails the test.
const WAIT_LIMIT: Duration = Duration::from_secs(20);

/// How the server secures its connections. The certificate should be issued for
/// `localhost`, the name [`SmtpServer::url`] gives the TLS modes (e.g. `tls::server_pair()`).
pub enum SmtpTls {
    /// Plain SMTP, and AUTH allowed in the clear: the "tls=none" opt-out.
    None,
    /// Plain connection upgraded with STARTTLS, which the server requires before MAIL.
    StartTls { cert_pem: String, key_pem: String },
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit { cert_pem: String, key_pem: String },
}

/// A running SMTP server. Dropping it kills the server and removes its temp dir.
pub struct SmtpServer {
    /// The loopback port it listens on, chosen by the system.
    pub port: u16,
    /// Kept to build [`Self::url`] for this mode.
    tls: SmtpTls,
    /// The Python process, killed on drop.
    child: Child,
    /// Where the server appends each accepted message as one JSON line.
    out: PathBuf,
    /// The server's stderr, quoted in panics so a failure explains itself.
    stderr_log: PathBuf,
    /// Holds `out`, `stderr_log` and the PEM files. Dropped after `child` is killed.
    _dir: TempDir,
}

/// One message the server accepted (answered 250 to its DATA).
#[derive(Debug, Clone)]
pub struct Mail {
    /// The envelope sender (MAIL FROM), empty for the null sender.
    pub mail_from: String,
    /// The envelope recipients the server accepted (refused ones are not here).
    pub rcpt_tos: Vec<String>,
    /// The message as sent (headers, blank line, body), with its CRLF line breaks and
    /// without the SMTP dot-stuffing.
    pub data: String,
}

impl SmtpServer {
    /// Starts a server with no extra options and waits until it listens.
    pub fn start(tls: SmtpTls) -> Self {
        Self::start_with(tls, &[])
    }

    /// Starts a server with extra options for the script, such as `["--delay-ms", "500"]`
    /// (hold each message that long before accepting it) or `["--auth", "user:pass"]`
    /// (require AUTH PLAIN or LOGIN). Panics if it does not listen within 20 s.
    pub fn start_with(tls: SmtpTls, options: &[&str]) -> Self {
        let python = python();
        let dir = tempfile::tempdir().expect("a temp dir for the SMTP server");
        let out = dir.path().join("received.jsonl");
        let stderr_log = dir.path().join("stderr.log");
        let stderr = File::create(&stderr_log).expect("a file for the SMTP server's stderr");
        let mut child = Command::new(python)
            .arg(SCRIPT)
            .arg("--out")
            .arg(&out)
            .args(tls_args(&tls, dir.path()))
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python} {SCRIPT} ({e}): {INSTALL_HINT}"));
        let stdout = child
            .stdout
            .take()
            .expect("the SMTP server's stdout is piped");
        // From here a panic drops `server`, and its Drop kills the child.
        let mut server = Self {
            port: 0,
            tls,
            child,
            out,
            stderr_log,
            _dir: dir,
        };
        server.port = server.read_ready_line(stdout);
        server
    }

    /// The URL to configure hookd with: plain SMTP on the loopback address, or STARTTLS and
    /// SMTPS on `localhost`, the name the test certificates are issued for.
    pub fn url(&self) -> String {
        match self.tls {
            SmtpTls::None => format!("smtp://127.0.0.1:{}?tls=none", self.port),
            SmtpTls::StartTls { .. } => format!("smtp://localhost:{}", self.port),
            SmtpTls::Implicit { .. } => format!("smtps://localhost:{}", self.port),
        }
    }

    /// The messages accepted so far, oldest first.
    pub fn received(&self) -> Vec<Mail> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_else(|e| {
            panic!(
                "cannot read {} ({e}){}",
                self.out.display(),
                self.stderr_note()
            )
        });
        // A line without its newline is still being written; the next poll sees it whole.
        let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
        complete
            .lines()
            .filter(|line| !line.is_empty())
            .map(Mail::from_record)
            .collect()
    }

    /// Waits until at least `count` messages were accepted and returns all of them. Panics
    /// after 20 s, saying how many arrived.
    pub async fn wait_for(&self, count: usize) -> Vec<Mail> {
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            let mails = self.received();
            if mails.len() >= count {
                return mails;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {count} mail(s) at the SMTP server: {} arrived{}",
                mails.len(),
                self.stderr_note()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Reads the script's `ready <port>` line on a thread, so a server that hangs fails the
    /// test after [`START_LIMIT`] instead of blocking it forever.
    fn read_ready_line(&self, stdout: ChildStdout) -> u16 {
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = BufReader::new(stdout).read_line(&mut line);
            // The test may have stopped waiting; then nobody needs the line.
            let _ = sender.send(read.map(|_| line));
        });
        let line = match receiver.recv_timeout(START_LIMIT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => self.fail_start(&format!("its stdout could not be read ({e})")),
            Err(_) => self.fail_start("it did not say `ready <port>` within 20 s"),
        };
        let port = line
            .trim_end()
            .strip_prefix("ready ")
            .and_then(|port| port.parse::<u16>().ok());
        match port {
            Some(port) => port,
            None if line.is_empty() => self.fail_start("it exited before it was ready"),
            None => self.fail_start(&format!("it said {line:?} instead of `ready <port>`")),
        }
    }

    fn fail_start(&self, what: &str) -> ! {
        panic!(
            "the test SMTP server ({SCRIPT}) did not start: {what}{}",
            self.stderr_note()
        )
    }

    /// What the server wrote to stderr (a Python traceback, say), to append to a panic.
    fn stderr_note(&self) -> String {
        match std::fs::read_to_string(&self.stderr_log) {
            Ok(text) if !text.trim().is_empty() => {
                format!("\n--- the SMTP server's stderr ---\n{}", text.trim_end())
            }
            _ => String::new(),
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mail {
    /// The first header of this name (case-insensitive), unfolded: its continuation lines
    /// are joined with single spaces. Encoded words (`=?utf-8?...?=`) are left as sent.
    pub fn header(&self, name: &str) -> Option<String> {
        mime::header(&self.data, name)
    }

    /// The message's leaf parts as (media type, decoded body), in order. The media type is
    /// lower-cased without its parameters (`text/plain`); the body is decoded from
    /// quoted-printable or base64 as UTF-8, with `\n` line breaks. A multipart body is split
    /// on its boundary, with nested multiparts flattened. A single-part message is one part.
    pub fn parts(&self) -> Vec<(String, String)> {
        mime::leaf_parts(&self.data)
    }

    /// Parses one line of the script's output file.
    fn from_record(line: &str) -> Self {
        let record: Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!("the SMTP server wrote a line that is not JSON ({e}): {line}")
        });
        let rcpt_tos = record["rcptTos"]
            .as_array()
            .unwrap_or_else(|| panic!("the SMTP server wrote a record without rcptTos: {line}"))
            .iter()
            .map(|to| record_text(to, line))
            .collect();
        Self {
            mail_from: record_text(&record["mailFrom"], line),
            rcpt_tos,
            data: record_text(&record["data"], line),
        }
    }
}

/// A string field of a record, or a panic that shows the record.
fn record_text(value: &Value, line: &str) -> String {
    match value.as_str() {
        Some(text) => text.to_owned(),
        None => panic!("the SMTP server wrote a record of the wrong shape: {line}"),
    }
}

/// The interpreter to run the script with: `HOOKD_TEST_PYTHON` if set, else the first of
/// `python3` and `/usr/bin/python3` that has aiosmtpd (a pyenv `python3` often has not).
/// Looked up once per test binary.
fn python() -> &'static str {
    static PYTHON: OnceLock<Option<String>> = OnceLock::new();
    PYTHON
        .get_or_init(find_python)
        .as_deref()
        .unwrap_or_else(|| {
            panic!(
                "no Python that can import aiosmtpd for the test SMTP server (tried python3 and \
             /usr/bin/python3; HOOKD_TEST_PYTHON names another): {INSTALL_HINT}"
            )
        })
}

fn find_python() -> Option<String> {
    if let Ok(python) = std::env::var("HOOKD_TEST_PYTHON") {
        return Some(python);
    }
    ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|python| has_aiosmtpd(python))
        .map(str::to_owned)
}

fn has_aiosmtpd(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The script's `--tls` arguments; writes the PEM files into `dir` for the TLS modes.
fn tls_args(tls: &SmtpTls, dir: &Path) -> Vec<OsString> {
    let (mode, pair) = match tls {
        SmtpTls::None => ("none", None),
        SmtpTls::StartTls { cert_pem, key_pem } => ("starttls", Some((cert_pem, key_pem))),
        SmtpTls::Implicit { cert_pem, key_pem } => ("implicit", Some((cert_pem, key_pem))),
    };
    let mut args = vec![OsString::from("--tls"), OsString::from(mode)];
    if let Some((cert_pem, key_pem)) = pair {
        let cert = dir.join("server.crt");
        let key = dir.join("server.key");
        std::fs::write(&cert, cert_pem).expect("the SMTP server's certificate is written");
        std::fs::write(&key, key_pem).expect("the SMTP server's key is written");
        args.extend([
            OsString::from("--cert"),
            cert.into_os_string(),
            OsString::from("--key"),
            key.into_os_string(),
        ]);
    }
    args
}
