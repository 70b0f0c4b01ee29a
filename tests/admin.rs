//! Administration through the real binary, against the reference where it can do the
//! same: CONFIG GET * names, CONFIG REWRITE round trip, MONITOR lines, CLIENT LIST
//! fields, CLIENT KILL filters, CLIENT PAUSE, INFO everything sections and fields, LOLWUT.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{expect, require_reference, servers, Conn, Server};

/// The bulk strings of a flat RESP2 array reply (CONFIG GET).
fn bulks(reply: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = reply.iter().position(|&b| b == b'\n').map_or(0, |p| p + 1);
    while i < reply.len() {
        assert_eq!(
            reply[i],
            b'$',
            "not a bulk: {:?}",
            String::from_utf8_lossy(reply)
        );
        let nl = i + reply[i..].iter().position(|&b| b == b'\n').unwrap();
        let n: usize = std::str::from_utf8(&reply[i + 1..nl - 1])
            .unwrap()
            .parse()
            .unwrap();
        out.push(reply[nl + 1..nl + 1 + n].to_vec());
        i = nl + 1 + n + 2;
    }
    out
}

/// CONFIG GET * as (name, value) pairs, sorted by name.
fn config_all(c: &mut Conn) -> Vec<(String, String)> {
    let b = bulks(&c.call(&["CONFIG", "GET", "*"]));
    let mut v: Vec<(String, String)> = b
        .chunks(2)
        .map(|p| {
            (
                String::from_utf8_lossy(&p[0]).into_owned(),
                String::from_utf8_lossy(&p[1]).into_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Directives valkey-rs has and upstream does not (docs/administration.md).
const OUR_EXTRA_DIRECTIVES: &[&str] = &[
    "audit-log-file",
    "auth-failure-exempt-loopback",
    "auth-failure-threshold",
    "auth-failure-window",
    "auth-lockout-max",
    "config-get-secrets",
    "persistence-encryption-key-file",
    "persistence-encryption-old-key-file",
];

#[test]
fn config_get_names_match_reference() {
    let Some(bin) = require_reference() else {
        return;
    };
    let ours = Server::ours(&[]);
    let reference = Server::reference(&bin, &[]);
    let names = |s: &Server| -> BTreeSet<String> {
        config_all(&mut s.conn())
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    };
    let (a, b) = (names(&ours), names(&reference));
    let missing: Vec<&String> = b.difference(&a).collect();
    assert!(
        missing.is_empty(),
        "directives the reference has and we do not: {missing:?}"
    );
    let extra: Vec<&String> = a
        .difference(&b)
        .filter(|n| !OUR_EXTRA_DIRECTIVES.contains(&n.as_str()))
        .collect();
    assert!(extra.is_empty(), "undocumented extra directives: {extra:?}");
    // The defaults agree too (the port and dir differ by construction).
    let vals = |s: &Server| -> Vec<(String, String)> {
        config_all(&mut s.conn())
            .into_iter()
            .filter(|(n, _)| {
                !matches!(n.as_str(), "port" | "dir") && !OUR_EXTRA_DIRECTIVES.contains(&n.as_str())
            })
            .collect()
    };
    assert_eq!(vals(&ours), vals(&reference));
}

#[test]
fn immutable_directive_refused_as_upstream() {
    for s in servers(&[]) {
        let mut c = s.conn();
        for args in [
            &["CONFIG", "SET", "daemonize", "yes"][..],
            &["CONFIG", "SET", "hz", "20", "databases", "3"],
            &["CONFIG", "SET", "hz", "20", "hz", "30"],
            &["CONFIG", "SET", "hz", "abc"],
            &["CONFIG", "SET", "nosuch", "1"],
        ] {
            let got = c.call(args);
            let want = match args[2] {
                "daemonize" => &b"-ERR CONFIG SET failed (possibly related to argument 'daemonize') - can't set immutable config\r\n"[..],
                _ => b"",
            };
            if !want.is_empty() {
                expect(&s, &got, want);
            }
            assert!(got.starts_with(b"-ERR"), "{}: {:?}", s.kind.name(), got);
        }
        // A failed multi-parameter SET changes nothing.
        expect(
            &s,
            &c.call(&["CONFIG", "GET", "hz"]),
            b"*2\r\n$2\r\nhz\r\n$2\r\n10\r\n",
        );
    }
}

/// Starts `bin` on `conf` with a fresh port; returns the server (killed on drop).
struct FileServer {
    child: std::process::Child,
    port: u16,
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_with_file(bin: &Path, conf: &Path, dir: &Path) -> FileServer {
    let port = common::free_port();
    let mut child = Command::new(bin)
        .arg(conf)
        .args(["--port", &port.to_string(), "--dir"])
        .arg(dir)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(mut c) = Conn::try_connect(port) {
            if c.cmd(&["PING"]).is_ok() {
                return FileServer { child, port };
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{} did not start on {}", bin.display(), conf.display());
}

const CONF: &str = "# Test configuration: the comments and their order must survive.\n\
\n\
# Memory\n\
maxmemory 10mb\n\
\n\
\n\
# Timers\n\
hz 20\n\
save \"\"\n\
appendonly no\n\
bind 127.0.0.1\n\
# The end.\n";

/// The rewritten file after CONFIG SET hz 50, maxmemory-policy allkeys-lru, maxmemory 0.
type ConfigPairs = Vec<(String, String)>;

fn rewrite_on(bin: &Path, tag: &str) -> (String, ConfigPairs, ConfigPairs) {
    let dir = std::env::temp_dir().join(format!("valkey-rs-admin-{}-{}", std::process::id(), tag));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("valkey.conf");
    std::fs::write(&conf, CONF).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    let s = start_with_file(bin, &conf, &dir);
    let mut c = Conn::connect(s.port);
    assert_eq!(c.call(&["CONFIG", "SET", "hz", "50"]), b"+OK\r\n");
    assert_eq!(
        c.call(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]),
        b"+OK\r\n"
    );
    assert_eq!(c.call(&["CONFIG", "SET", "maxmemory", "0"]), b"+OK\r\n");
    assert_eq!(c.call(&["CONFIG", "REWRITE"]), b"+OK\r\n");
    let before = config_all(&mut c);
    drop(s);
    let text = std::fs::read_to_string(&conf).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777;
        if tag == "ours" {
            assert_eq!(mode, 0o640, "the rewrite keeps the file's mode");
        }
    }
    let s = start_with_file(bin, &conf, &dir);
    let after = config_all(&mut Conn::connect(s.port));
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
    let strip = |v: Vec<(String, String)>| -> Vec<(String, String)> {
        v.into_iter().filter(|(n, _)| n != "port").collect()
    };
    (text, strip(before), strip(after))
}

#[test]
fn config_rewrite_round_trip() {
    let ours_bin = Path::new(env!("CARGO_BIN_EXE_valkey-rs-server"));
    let (text, before, after) = rewrite_on(ours_bin, "ours");
    // Comments and blank lines stay where they were; the changed directive is rewritten
    // in its line; new ones follow the signature.
    let lines: Vec<&str> = text.lines().collect();
    let comments: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("# ") && !l.starts_with("# Generated"))
        .collect();
    assert_eq!(
        comments,
        [
            "# Test configuration: the comments and their order must survive.",
            "# Memory",
            "# Timers",
            "# The end."
        ]
    );
    let pos = |p: &str| {
        lines
            .iter()
            .position(|l| *l == p)
            .unwrap_or_else(|| panic!("no {p:?} in\n{text}"))
    };
    assert!(pos("# Timers") < pos("hz 50") && pos("hz 50") < pos("# The end."));
    // maxmemory back to its default keeps its line, with the default value.
    assert!(pos("# Memory") < pos("maxmemory 0") && pos("maxmemory 0") < pos("# Timers"));
    assert!(pos("# Generated by CONFIG REWRITE") < pos("maxmemory-policy allkeys-lru"));
    assert!(
        !text.contains("\n\n\n"),
        "runs of blank lines collapse:\n{text}"
    );
    assert_eq!(
        before, after,
        "restarting from the rewritten file gives the same config"
    );

    // The reference writes the same lines (as sets: it appends in hash order).
    let Some(bin) = require_reference() else {
        return;
    };
    let (rtext, _, _) = rewrite_on(&bin, "ref");
    let set = |t: &str| -> BTreeSet<String> {
        t.lines()
            .filter(|l| !l.starts_with("port ") && !l.starts_with("dir "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        set(&text),
        set(&rtext),
        "ours:\n{text}\nreference:\n{rtext}"
    );
}

/// Masks the timestamp and the client port of a MONITOR line.
fn mask_monitor(line: &[u8]) -> String {
    let s = String::from_utf8_lossy(line).into_owned();
    let s = s.trim_end().to_string();
    let rest = s.split_once(' ').map(|x| x.1).unwrap_or("");
    let (head, args) = rest.split_once("] ").unwrap_or((rest, ""));
    let db = head.trim_start_matches('[').split(' ').next().unwrap_or("");
    format!("[{db}] {args}")
}

fn monitor_lines(s: &Server) -> Vec<String> {
    let mut m = s.conn();
    expect(s, &m.call(&["MONITOR"]), b"+OK\r\n");
    let mut c = s.conn();
    let mut b = s.conn();
    c.call(&["SET", "a b", "x\"y\n\x01\u{7f}\\"]);
    c.call(&["GET", "a b"]);
    c.call(&["AUTH", "foo", "bar"]);
    c.call(&["AUTH", "onlypass"]);
    c.call(&["HELLO", "2", "AUTH", "default", "wrong"]);
    c.call(&["HELLO", "2", "SETNAME", "x"]);
    c.call(&["SELECT", "3"]);
    c.call(&["INCR", "n"]);
    c.call(&["MULTI"]);
    c.call(&["INCR", "n"]);
    c.call(&["SET", "m", "1"]);
    c.call(&["EXEC"]);
    c.call(&["CONFIG", "GET", "hz"]);
    c.call(&["CLIENT", "LIST"]);
    c.call(&["CLIENT", "INFO"]);
    c.call(&["NOSUCHCOMMAND"]);
    c.call(&["GET"]);
    b.send(&["BLPOP", "q", "0"]).unwrap();
    common::wait_blocked(s, &mut c, 1);
    c.call(&["SELECT", "0"]);
    c.call(&["RPUSH", "q", "v"]);
    b.read_reply().unwrap();
    c.call(&["ECHO", "done"]);
    let mut out = Vec::new();
    loop {
        let l = m.read_reply().unwrap();
        let masked = mask_monitor(&l);
        // INFO from wait_blocked polls: not part of the sequence.
        if masked.ends_with("\"INFO\" \"clients\"") {
            continue;
        }
        let done = masked.ends_with("\"ECHO\" \"done\"");
        out.push(masked);
        if done {
            break;
        }
    }
    // A monitor's own command is shown after its reply; keyspace commands are refused.
    m.send(&["PING"]).unwrap();
    expect(s, &m.read_reply().unwrap(), b"+PONG\r\n");
    out.push(mask_monitor(&m.read_reply().unwrap()));
    out.push(String::from_utf8_lossy(&m.call(&["GET", "x"])).into_owned());
    out.push(String::from_utf8_lossy(&m.call(&["RESET"])).into_owned());
    out
}

#[test]
fn monitor_matches_reference() {
    let ours = monitor_lines(&Server::ours(&[]));
    assert!(ours
        .iter()
        .any(|l| l.contains("\"AUTH\" \"(redacted)\" \"(redacted)\"")));
    assert!(!ours
        .iter()
        .any(|l| l.contains("CONFIG") || l.contains("\"LIST\"")));
    let Some(bin) = require_reference() else {
        return;
    };
    let reference = monitor_lines(&Server::reference(&bin, &[]));
    assert_eq!(ours, reference);
}

#[test]
fn monitor_needs_its_acl_and_is_refused_in_exec() {
    for s in servers(&[]) {
        let mut c = s.conn();
        c.call(&["ACL", "SETUSER", "u", "on", ">p", "+@all", "-@admin"]);
        c.call(&["AUTH", "u", "p"]);
        let got = c.call(&["MONITOR"]);
        assert!(got.starts_with(b"-NOPERM"), "{}: {:?}", s.kind.name(), got);
        let mut c = s.conn();
        c.call(&["MULTI"]);
        c.call(&["MONITOR"]);
        expect(
            &s,
            &c.call(&["EXEC"]),
            b"*1\r\n-ERR MONITOR isn't allowed for DENY BLOCKING client\r\n",
        );
    }
}

/// The field names of a CLIENT LIST / CLIENT INFO line.
fn field_names(reply: &[u8]) -> Vec<String> {
    let s = String::from_utf8_lossy(reply);
    let line = s.lines().nth(1).unwrap_or("").to_string();
    line.split(' ')
        .map(|kv| kv.split('=').next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn client_list_fields_match_reference() {
    let Some(bin) = require_reference() else {
        return;
    };
    let ours = Server::ours(&[]);
    let reference = Server::reference(&bin, &[]);
    for cmd in [&["CLIENT", "LIST"][..], &["CLIENT", "INFO"]] {
        let a = field_names(&ours.conn().call(cmd));
        let b = field_names(&reference.conn().call(cmd));
        assert!(a.len() > 30);
        assert_eq!(a, b);
    }
}

#[test]
fn client_kill_filters() {
    for s in servers(&[]) {
        let mut admin = s.conn();
        let mut victim = s.conn();
        victim.call(&["CLIENT", "SETNAME", "victim"]);
        let id = common::client_id(&mut victim);
        let info = String::from_utf8_lossy(&victim.call(&["CLIENT", "INFO"])).into_owned();
        let addr = info
            .split(' ')
            .find_map(|f| f.strip_prefix("addr="))
            .unwrap()
            .to_string();
        let cases: Vec<(Vec<&str>, &[u8])> = vec![
            (
                vec!["CLIENT", "KILL", "1.2.3.4:5"],
                b"-ERR No such client\r\n",
            ),
            (vec!["CLIENT", "KILL", "ID", "x"], b"-ERR syntax error\r\n"),
            (
                vec!["CLIENT", "KILL", "ID", "-1"],
                b"-ERR client-id should be greater than 0\r\n",
            ),
            (
                vec!["CLIENT", "KILL", "MAXAGE", "0"],
                b"-ERR maxage should be greater than 0\r\n",
            ),
            (
                vec!["CLIENT", "KILL", "ADDR", "1.1.1.1:1", "FOO", "bar"],
                b"-ERR syntax error\r\n",
            ),
            (vec!["CLIENT", "KILL", "ID", "1", "2"], b":0\r\n"),
            (
                vec!["CLIENT", "KILL", "ID", "0"],
                b"-ERR client-id should be greater than 0\r\n",
            ),
            (
                vec!["CLIENT", "KILL", "TYPE", "bogus"],
                b"-ERR Unknown client type 'bogus'\r\n",
            ),
            (
                vec!["CLIENT", "KILL", "USER", "nobody"],
                b"-ERR No such user 'nobody'\r\n",
            ),
            (
                vec!["CLIENT", "KILL", "SKIPME", "maybe"],
                b"-ERR syntax error\r\n",
            ),
            (
                vec!["CLIENT", "KILL", "MAXAGE", "x"],
                b"-ERR maxage is not an integer or out of range\r\n",
            ),
            (vec!["CLIENT", "KILL", "ID"], b"-ERR No such client\r\n"),
            (vec!["CLIENT", "KILL", "TYPE", "master"], b":0\r\n"),
            (vec!["CLIENT", "KILL", "TYPE", "replica"], b":0\r\n"),
            (vec!["CLIENT", "KILL", "TYPE", "pubsub"], b":0\r\n"),
            (vec!["CLIENT", "KILL", "MAXAGE", "1000"], b":0\r\n"),
            (vec!["CLIENT", "KILL", "LADDR", "1.2.3.4:5"], b":0\r\n"),
            (
                vec!["CLIENT", "KILL", "ID", "999999", "TYPE", "normal"],
                b":0\r\n",
            ),
            (
                vec![
                    "CLIENT", "KILL", "ID", &id, "USER", "default", "ADDR", &addr,
                ],
                b":1\r\n",
            ),
        ];
        for (args, want) in cases {
            let got = admin.call(&args);
            expect(&s, &got, want);
        }
        assert!(victim.closed_within(Duration::from_secs(2)));
        // The old form, and SKIPME no killing the caller itself.
        let mut v2 = s.conn();
        let info = String::from_utf8_lossy(&v2.call(&["CLIENT", "INFO"])).into_owned();
        let addr2 = info
            .split(' ')
            .find_map(|f| f.strip_prefix("addr="))
            .unwrap()
            .to_string();
        expect(&s, &admin.call(&["CLIENT", "KILL", &addr2]), b"+OK\r\n");
        assert!(v2.closed_within(Duration::from_secs(2)));
        let mut other = s.conn();
        other.call(&["PING"]);
        expect(
            &s,
            &admin.call(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]),
            b":1\r\n",
        );
        expect(
            &s,
            &admin.call(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no"]),
            b":1\r\n",
        );
        assert!(admin.closed_within(Duration::from_secs(2)));
    }
}

#[test]
fn client_pause_write_blocks_writes_not_reads() {
    for s in servers(&[]) {
        let mut admin = s.conn();
        let mut w = s.conn();
        admin.call(&["SET", "k", "old"]);
        admin.call(&["SET", "e", "v", "PX", "100"]);
        for args in [
            &["CLIENT", "PAUSE", "x"][..],
            &["CLIENT", "PAUSE", "-1"],
            &["CLIENT", "PAUSE", "10", "SOME"],
        ] {
            let got = admin.call(args);
            assert!(got.starts_with(b"-ERR"), "{}: {:?}", s.kind.name(), got);
        }
        expect(
            &s,
            &admin.call(&["CLIENT", "PAUSE", "100000", "WRITE"]),
            b"+OK\r\n",
        );
        let info = String::from_utf8_lossy(&admin.call(&["INFO", "clients"])).into_owned();
        assert!(
            info.contains("paused_reason:client_pause\r\npaused_actions:write\r\n"),
            "{info}"
        );
        w.send(&["SET", "k", "new"]).unwrap();
        common::assert_silent(&s, &mut w);
        // Reads run; the expired key reads as missing but is not deleted meanwhile.
        std::thread::sleep(Duration::from_millis(200));
        expect(&s, &admin.call(&["GET", "k"]), b"$3\r\nold\r\n");
        expect(&s, &admin.call(&["GET", "e"]), b"$-1\r\n");
        expect(&s, &admin.call(&["DBSIZE"]), b":2\r\n");
        let list = String::from_utf8_lossy(&admin.call(&["CLIENT", "LIST"])).into_owned();
        assert!(list.contains("flags=b "), "{list}");
        expect(&s, &admin.call(&["CLIENT", "UNPAUSE"]), b"+OK\r\n");
        expect(&s, &w.read_reply().unwrap(), b"+OK\r\n");
        expect(&s, &admin.call(&["GET", "k"]), b"$3\r\nnew\r\n");
        let info = String::from_utf8_lossy(&admin.call(&["INFO", "clients"])).into_owned();
        assert!(info.contains(
            "paused_reason:none\r\npaused_actions:none\r\npaused_timeout_milliseconds:0\r\n"
        ));
        // ALL holds reads too, until the timeout.
        expect(
            &s,
            &admin.call(&["CLIENT", "PAUSE", "300", "ALL"]),
            b"+OK\r\n",
        );
        w.send(&["GET", "k"]).unwrap();
        common::assert_silent(&s, &mut w);
        expect(&s, &w.read_reply().unwrap(), b"$3\r\nnew\r\n");
    }
}

/// Section headers and field names of INFO everything, without the per-command lines.
fn info_shape(c: &mut Conn) -> Vec<String> {
    let r = c.call(&["INFO", "everything"]);
    String::from_utf8_lossy(&r)
        .split("\r\n")
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split(':').next().unwrap().to_string())
        .filter(|n| !n.starts_with("cmdstat_") && !n.starts_with("latency_percentiles_usec_"))
        .filter(|n| !n.starts_with("errorstat_") && !n.starts_with("db"))
        .collect()
}

/// INFO fields valkey-rs has and upstream does not, and upstream's that depend on Lua
/// (its built-in module and scripting engine).
const INFO_OURS_ONLY: &[&str] = &[
    "auth_failures",
    "auth_throttled",
    "auth_lockouts",
    "auth_locked_ips",
    "auth_tracked_ips",
];
const INFO_REFERENCE_ONLY: &[&str] = &["module", "engine_0"];

#[test]
fn info_everything_matches_reference() {
    let Some(bin) = require_reference() else {
        return;
    };
    let ours = info_shape(&mut Server::ours(&[]).conn());
    let reference = info_shape(&mut Server::reference(&bin, &[]).conn());
    let ours: Vec<String> = ours
        .into_iter()
        .filter(|n| !INFO_OURS_ONLY.contains(&n.as_str()))
        .collect();
    let reference: Vec<String> = reference
        .into_iter()
        .filter(|n| !INFO_REFERENCE_ONLY.contains(&n.as_str()))
        .collect();
    assert_eq!(ours, reference);
}

#[test]
fn lolwut_matches_reference() {
    for s in servers(&[]) {
        let mut c = s.conn();
        let r = c.call(&["LOLWUT", "VERSION", "9", "40", "20", "0.4", "0.34"]);
        assert!(r.ends_with(b"Don't forget to have fun! Valkey ver. 9.1.2\n\r\n"));
        let julia = std::str::from_utf8(&r)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .to_string();
        assert_eq!(julia.len(), 40);
        expect(
            &s,
            &c.call(&["LOLWUT", "VERSION", "1"]),
            b"$17\r\nValkey ver.9.1.2\n\r\n",
        );
        expect(
            &s,
            &c.call(&["LOLWUT", "foo"]),
            b"-ERR Syntax error. Use: LOLWUT [columns rows] [real imaginary]\r\n",
        );
        expect(
            &s,
            &c.call(&["LOLWUT", "VERSION", "x"]),
            b"-ERR value is not an integer or out of range\r\n",
        );
    }
    let Some(bin) = require_reference() else {
        return;
    };
    let (ours, reference) = (Server::ours(&[]), Server::reference(&bin, &[]));
    let (mut a, mut b) = (ours.conn(), reference.conn());
    // Version 9 with given constants, and version 5 with two rows of squares (only
    // rows from the third on are randomised): byte for byte.
    for args in [
        &["LOLWUT", "VERSION", "9", "70", "30", "-0.8", "0.156"][..],
        &["LOLWUT", "VERSION", "5", "40", "5", "2"],
        &["LOLWUT", "VERSION", "5", "x"],
        // The version counts modulo 2^32, as upstream's "%u".
        &["LOLWUT", "VERSION", "4294967305", "30", "10", "0.3", "0.5"],
        &["LOLWUT", "VERSION", "4294967301", "10", "2", "2"],
        &["LOLWUT", "VERSION", "-4294967290", "7", "1"],
        &["LOLWUT", "VERSION", "-1", "7", "1"],
        // Version 6 with one row has no building on it: deterministic, and shows the
        // clamping of both arguments (columns 1..=1000, rows 1..=1000) and that further
        // arguments are ignored.
        &["LOLWUT", "VERSION", "6", "-5", "0"],
        &["LOLWUT", "VERSION", "6", "3000", "1", "zz"],
        &["LOLWUT", "VERSION", "6", "x"],
        &["LOLWUT", "VERSION", "6", "3", "y"],
        &["LOLWUT", "VERSION", "6", "3", "99999999999999999999"],
    ] {
        assert_eq!(
            String::from_utf8_lossy(&a.call(args)),
            String::from_utf8_lossy(&b.call(args))
        );
    }
    // Version 5 by default: the same size, the same first rows, the same footer.
    let (x, y) = (
        a.call(&["LOLWUT", "VERSION", "5"]),
        b.call(&["LOLWUT", "VERSION", "5"]),
    );
    let (x, y) = (String::from_utf8_lossy(&x), String::from_utf8_lossy(&y));
    let head = |t: &str| t.lines().take(8).collect::<Vec<_>>().join("\n");
    assert_eq!(head(&x), head(&y));
    assert_eq!(x.lines().count(), y.lines().count());
    assert_eq!(x.lines().last(), y.lines().last());
    // Version 6: the skyline is random, its frame is not. Same size (80x20 by default,
    // rows clamped to 1000), every cell one of the four colours, the top row above every
    // building (heights stay below 20), the same two footer lines.
    for (args, cols, rows) in [
        (&["LOLWUT", "VERSION", "6"][..], 80, 20),
        (&["LOLWUT", "VERSION", "6", "2", "5000"], 2, 1000),
        (&["LOLWUT", "VERSION", "6", "33", "7"], 33, 7),
    ] {
        let (x, y) = (a.call(args), b.call(args));
        let (x, y) = (String::from_utf8_lossy(&x), String::from_utf8_lossy(&y));
        let (xl, yl): (Vec<&str>, Vec<&str>) = (x.lines().collect(), y.lines().collect());
        assert_eq!(xl.len(), yl.len(), "{args:?}");
        assert_eq!(xl.len(), rows + 4, "{args:?}");
        assert_eq!(xl[1], yl[1], "{args:?}");
        assert_eq!(xl[xl.len() - 3..], yl[yl.len() - 3..]);
        const CELLS: [&str; 4] = [
            "\x1b[0;30;40m \x1b[0m",
            "\x1b[0;90;100m \x1b[0m",
            "\x1b[0;37;47m \x1b[0m",
            "\x1b[0;97;107m \x1b[0m",
        ];
        for t in [&xl, &yl] {
            for line in &t[1..=rows] {
                let mut rest: &str = line;
                let mut n = 0;
                while !rest.is_empty() {
                    let cell = CELLS.iter().find(|c| rest.starts_with(**c));
                    let Some(cell) = cell else {
                        panic!("{args:?}: bad cell in {line:?}")
                    };
                    rest = &rest[cell.len()..];
                    n += 1;
                }
                assert_eq!(n, cols, "{args:?}");
            }
        }
    }
}

#[test]
fn command_docs_match_reference() {
    let Some(bin) = require_reference() else {
        return;
    };
    let ours = Server::ours(&[]);
    let reference = Server::reference(&bin, &[]);
    // Commands without subcommands (upstream lists subcommands in hash order): every
    // field, byte for byte, in RESP2 and RESP3; GEORADIUS has doc_flags, deprecated_since
    // and replaced_by, SET a history.
    let names = [
        "set",
        "get",
        "xadd",
        "zadd",
        "getex",
        "monitor",
        "lolwut",
        "sort",
        "georadius",
        "blpop",
        "hsetex",
        "bitfield",
        "migrate",
        "restore",
        "zrangestore",
    ];
    for proto in ["2", "3"] {
        let (mut a, mut b) = (ours.conn(), reference.conn());
        a.call(&["HELLO", proto]);
        b.call(&["HELLO", proto]);
        for n in names {
            let (x, y) = (
                a.call(&["COMMAND", "DOCS", n]),
                b.call(&["COMMAND", "DOCS", n]),
            );
            // A command we do not have answers an empty map: skip it.
            if x.len() <= 4 {
                continue;
            }
            assert_eq!(
                String::from_utf8_lossy(&x),
                String::from_utf8_lossy(&y),
                "COMMAND DOCS {n} (RESP{proto})"
            );
        }
    }
}

#[test]
fn monitor_over_its_output_limit_is_closed() {
    for s in servers(&[]) {
        let mut c = s.conn();
        c.call(&[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "normal 256kb 0 0",
        ]);
        let mut m = s.conn();
        expect(&s, &m.call(&["MONITOR"]), b"+OK\r\n");
        let big = "x".repeat(100_000);
        for _ in 0..80 {
            c.call(&["SET", "k", &big]);
        }
        let gone = common::wait_for(Duration::from_secs(5), || {
            !String::from_utf8_lossy(&c.call(&["CLIENT", "LIST"])).contains("flags=O")
        });
        assert!(gone, "{}: the monitor was not closed", s.kind.name());
        let info = c.call(&["INFO", "stats"]);
        assert_eq!(
            common::info_field(&info, "client_output_buffer_limit_disconnections"),
            Some(1),
            "{}",
            s.kind.name()
        );
    }
}

#[test]
fn client_pause_holds_eviction() {
    for s in servers(&[]) {
        let mut c = s.conn();
        c.call(&["CONFIG", "SET", "maxmemory-policy", "allkeys-random"]);
        let val = "v".repeat(1000);
        for i in 0..2000 {
            c.call(&["SET", &format!("k{i}"), &val]);
        }
        expect(
            &s,
            &c.call(&["CLIENT", "PAUSE", "100000", "WRITE"]),
            b"+OK\r\n",
        );
        let used = common::used_memory(&mut c);
        let limit = (used - 1_000_000).to_string();
        expect(
            &s,
            &c.call(&["CONFIG", "SET", "maxmemory", &limit]),
            b"+OK\r\n",
        );
        std::thread::sleep(Duration::from_millis(300));
        expect(&s, &c.call(&["DBSIZE"]), b":2000\r\n");
        expect(&s, &c.call(&["CLIENT", "UNPAUSE"]), b"+OK\r\n");
        let evicted = common::wait_for(Duration::from_secs(5), || {
            common::info_field(&c.call(&["INFO", "stats"]), "evicted_keys").unwrap_or(0) > 0
        });
        assert!(
            evicted,
            "{}: nothing evicted after the pause",
            s.kind.name()
        );
    }
}

#[test]
fn client_pause_keeps_replica_pings() {
    // Upstream holds the PINGs to replicas only for a cluster manual failover, not for
    // CLIENT PAUSE: the offset keeps moving during a pause.
    for t in common::targets() {
        let p = t.start(&["--repl-ping-replica-period", "1"]);
        let port = p.port.to_string();
        let r = t.start(&["--replicaof", "127.0.0.1", &port]);
        let mut pc = p.conn();
        let mut rc = r.conn();
        let up = common::wait_for(Duration::from_secs(10), || {
            String::from_utf8_lossy(&rc.call(&["INFO", "replication"]))
                .contains("master_link_status:up")
        });
        assert!(up, "{}: the replica never connected", p.kind.name());
        let offset = |c: &mut Conn| {
            common::info_field(&c.call(&["INFO", "replication"]), "master_repl_offset")
        };
        expect(
            &p,
            &pc.call(&["CLIENT", "PAUSE", "100000", "WRITE"]),
            b"+OK\r\n",
        );
        let before = offset(&mut pc);
        let moved = common::wait_for(Duration::from_secs(5), || offset(&mut pc) != before);
        assert!(moved, "{}: no ping during the pause", p.kind.name());
        expect(&p, &pc.call(&["CLIENT", "UNPAUSE"]), b"+OK\r\n");
    }
}
