//! Servers on a data directory: a scratch directory removed on drop, and a server process
//! started on it that may refuse to start (the persistence, AOF and operations tests, which
//! restart a server on the files a previous one left).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{base_args, free_port, spawn_logged, wait_for, Conn};

/// The valkey-rs binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_valkey-rs-server");

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// The permission bits of `p` (`0o600`, ...).
pub fn file_mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

/// A scratch directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new empty directory whose name carries `tag`, the process id and a counter.
    pub fn new(tag: &str) -> TempDir {
        let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!(
            "valkey-rs-test-{}-{}-{}",
            tag,
            std::process::id(),
            n
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A file in the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// A file in the directory's `appendonlydir`.
    pub fn aof(&self, name: &str) -> PathBuf {
        self.0.join("appendonlydir").join(name)
    }

    /// The directory as a `--dir` argument.
    pub fn dir_arg(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server process on a directory, killed on drop (the directory stays). Its stdout and
/// stderr go to `server-<port>.log` in that directory.
pub struct Proc {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `bin` (valkey-rs or the reference) on `dir` with `extra` directives after
    /// port, bind, dir and the debug/protected-config switches; `umask` runs it through
    /// `sh -c 'umask 000; exec ...'`. Ok once it answers PING; Err(log) if it exited.
    pub fn try_start(bin: &Path, dir: &Path, extra: &[&str], umask: bool) -> Result<Proc, String> {
        let port = free_port();
        let log = dir.join(format!("server-{}.log", port));
        let mut args = base_args(port, dir);
        args.extend(["--enable-protected-configs".into(), "yes".into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut cmd = if umask {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg("umask 000; exec \"$0\" \"$@\"")
                .arg(bin)
                .args(&args);
            c
        } else {
            let mut c = Command::new(bin);
            c.args(&args);
            c
        };
        let child = spawn_logged(&mut cmd, dir, &log, false).expect("spawn");
        let mut p = Proc { child, port, log };
        let up = wait_for(Duration::from_secs(10), || {
            if let Ok(Some(_)) = p.child.try_wait() {
                return true;
            }
            Conn::try_connect(port)
                .and_then(|mut c| c.cmd(&["PING"]))
                .is_ok_and(|r| r == b"+PONG\r\n")
        });
        match p.child.try_wait() {
            Ok(None) if up => Ok(p),
            _ => Err(p.log_text()),
        }
    }

    /// Starts valkey-rs on `dir`; panics with the log if it does not come up.
    pub fn start(dir: &Path, extra: &[&str]) -> Proc {
        Proc::try_start(Path::new(BIN), dir, extra, false)
            .unwrap_or_else(|log| panic!("start failed:\n{log}"))
    }

    pub fn conn(&self) -> Conn {
        Conn::connect(self.port)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process with SIGKILL (a crash: nothing is saved).
    pub fn sigkill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SHUTDOWN, then waits for the exit.
    pub fn shutdown(mut self) {
        let mut c = self.conn();
        let _ = c.send(&["SHUTDOWN"]);
        let ok = wait_for(Duration::from_secs(10), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        assert!(ok, "no exit after SHUTDOWN; log:\n{}", self.log_text());
    }

    /// Waits for the process to exit; its status code (None when killed by a signal).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let mut code = None;
        let done = wait_for(limit, || match self.child.try_wait() {
            Ok(Some(st)) => {
                code = st.code();
                true
            }
            _ => false,
        });
        assert!(done, "server did not exit; log:\n{}", self.log_text());
        code
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pids whose parent is `ppid` (from /proc/<pid>/stat).
pub fn children_of(ppid: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i64>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|x| x.1) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<i64>().ok()) == Some(ppid) {
            out.push(pid);
        }
    }
    out
}
