//! Lua functions (issue 12, FUNCTION / FCALL side): differential against the
//! reference. A corpus of FUNCTION / FCALL commands is sent to both servers over
//! RESP2 and RESP3 and the raw reply bytes must be equal; then FUNCTION KILL of a
//! looping function from another client.
//!
//! Environment: as tests/differential.rs (`VALKEY_REF`, `VALKEY_REF_SKIP=1`).

mod common;

use std::time::Duration;

use common::proc::TempDir;
use common::{escape, require_reference, Conn, Server};

/// One command per line (redis-cli quoting); `---` resets both servers (FLUSHALL,
/// FUNCTION FLUSH). FUNCTION LIST replies are compared only for one-function
/// libraries (the order of a library's functions is a hash order upstream).
const CORPUS: &str = r##"
FUNCTION LOAD "#!lua name=lib1\nserver.register_function('f1', function(keys, args) return server.call('set', keys[1], args[1]) end)"
FCALL f1 1 k v
FCALL_RO f1 1 k v
FCALL f1 5 k
FCALL f1 -1
FCALL f1 x
FCALL nope 0
GET k
FUNCTION LIST
FUNCTION LIST WITHCODE
FUNCTION LIST LIBRARYNAME lib*
FUNCTION LIST LIBRARYNAME nomatch*
FUNCTION LIST LIBRARYNAME
FUNCTION LIST foo
FUNCTION STATS
FUNCTION LOAD "#!lua name=lib2\nserver.register_function{function_name='f2', callback=function(keys, args) return {keys[1], args[1], #keys, #args} end, flags={'no-writes'}, description='my desc'}"
FCALL_RO f2 2 a b c
FCALL f2 0
FUNCTION LIST LIBRARYNAME lib2
FUNCTION STATS
FUNCTION LOAD "#!lua name=lib1\nserver.register_function('f1', function() return 1 end)"
FUNCTION LOAD REPLACE "#!lua name=lib1\nserver.register_function('f1', function() return 2 end)"
FCALL f1 0
FUNCTION LOAD "#!lua name=lib3\nserver.register_function('f1', function() return 1 end)"
FUNCTION LOAD "return 1"
FUNCTION LOAD "#!lua\nreturn 1"
FUNCTION LOAD "#!lua name=x"
FUNCTION LOAD "#!lua name=x foo=bar\nreturn 1"
FUNCTION LOAD "#!lua name=x name=y\nreturn 1"
FUNCTION LOAD "#!lua name=a-b\nreturn 1"
FUNCTION LOAD "#!lua name=\nreturn 1"
FUNCTION LOAD "#!foo name=x\nreturn 1"
FUNCTION LOAD "#!lua name=x\nreturn 1"
FUNCTION LOAD "#!lua name=x\ny = 1"
FUNCTION LOAD "#!lua name=x\nserver.call('ping')"
FUNCTION LOAD "#!lua name=x\nserver.register_function('a-b', function() end)"
FUNCTION LOAD "#!lua name=x\nserver.register_function('a', function() end) server.register_function('a', function() end)"
FUNCTION LOAD "#!lua name=x\nserver.register_function{function_name='z', callback=function() end, flags={'bad'}}"
FUNCTION LOAD "#!lua name=x\nserver.register_function{function_name='z', callback=function() end, foo=1}"
FUNCTION LOAD "#!lua name=x\nserver.register_function(1)"
FUNCTION LOAD "#!lua name=x\nwhile true do end"
FUNCTION LOAD foo bar
FUNCTION LOAD REPLACE
FUNCTION LOAD "#!lua name=x\nserver.register_function('g', function() return KEYS end)"
FCALL g 0
FUNCTION LOAD "#!lua name=y\nserver.register_function('h', function(keys, args) return server.setresp(3) end)"
FUNCTION LOAD "#!lua name=w\nserver.register_function{function_name='ro', callback=function() return server.call('set', 'q', '1') end, flags={'no-writes'}}"
FCALL ro 0
FUNCTION LOAD "#!lua name=w2\nserver.register_function{function_name='fl', callback=function() return 'x' end, flags={'allow-oom', 'allow-stale', 'no-cluster', 'allow-cross-slot-keys'}}"
FCALL fl 0
FUNCTION LIST LIBRARYNAME w2
FUNCTION DELETE nope
FUNCTION DELETE lib3
FUNCTION DELETE lib1
FCALL f1 0
FUNCTION FLUSH bad
FUNCTION FLUSH SYNC ASYNC
FUNCTION FLUSH ASYNC
FUNCTION LIST
FUNCTION STATS
FUNCTION KILL
FUNCTION HELP
FUNCTION NOPE
COMMAND INFO fcall fcall_ro
"##;

#[test]
fn corpus_matches_reference() {
    common::assert_corpus_matches(CORPUS, &[&["FUNCTION", "FLUSH"], &["FLUSHALL"]], false);
}

#[test]
fn function_kill() {
    for s in common::servers(&["--busy-reply-threshold", "50"]) {
        let mut runner = s.conn();
        runner.set_read_timeout(Duration::from_secs(30));
        let mut other = s.conn();
        let lib = "#!lua name=loop\nserver.register_function('loop', function() while true do end end)\n\
                   server.register_function('wloop', function() server.call('set','k','v') while true do end end)";
        common::expect(
            &s,
            &other.call(&["FUNCTION", "LOAD", lib]),
            b"$4\r\nloop\r\n",
        );
        runner.send(&["FCALL", "loop", "0"]).unwrap();
        let busy = "-BUSY Valkey is busy running a script. You can only call FUNCTION KILL or \
                    SHUTDOWN NOSAVE.\r\n";
        let ok = common::wait_for(Duration::from_secs(10), || {
            other.call(&["GET", "k"]) == busy.as_bytes()
        });
        assert!(ok, "{}: no -BUSY while the function runs", s.kind.name());
        let stats = other.call(&["FUNCTION", "STATS"]);
        assert!(
            escape(&stats).contains("loop"),
            "{}: FUNCTION STATS {}",
            s.kind.name(),
            escape(&stats)
        );
        common::expect(&s, &other.call(&["SCRIPT", "KILL"]), busy.as_bytes());
        common::expect(&s, &other.call(&["FUNCTION", "KILL"]), b"+OK\r\n");
        // 9.1.2 names no function here (checked on the reference), only the line.
        common::expect(
            &s,
            &runner.read_reply().unwrap(),
            b"-ERR Script killed by user with FUNCTION KILL. script: on @user_function:2.\r\n",
        );
        common::expect(
            &s,
            &other.call(&["FUNCTION", "KILL"]),
            b"-NOTBUSY No scripts in execution right now.\r\n",
        );
        runner.send(&["FCALL", "wloop", "0"]).unwrap();
        let ok = common::wait_for(Duration::from_secs(10), || {
            other.call(&["PING"]) == busy.as_bytes()
        });
        assert!(ok, "{}: no -BUSY while the writer runs", s.kind.name());
        let r = other.call(&["FUNCTION", "KILL"]);
        assert!(
            r.starts_with(b"-UNKILLABLE"),
            "{}: {}",
            s.kind.name(),
            escape(&r)
        );
        common::assert_shutdown_nosave(&s, &mut other);
    }
}

/// The replies of a persistence sequence: DEBUG RELOAD (RDB save + load), an AOF
/// rewrite without RDB preamble + DEBUG LOADAOF, FUNCTION DUMP and RESTORE errors.
fn persistence_sequence(s: &Server) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
    let mut c = s.conn();
    c.set_read_timeout(Duration::from_secs(20));
    let lib =
        "#!lua name=plib\nserver.register_function('pf', function(keys, args) return 'pf-ok' end)";
    let mut out = Vec::new();
    let mut run = |c: &mut Conn, argv: &[&str]| {
        let r = c.call(argv);
        out.push((argv.join(" "), r));
    };
    run(&mut c, &["FUNCTION", "LOAD", lib]);
    run(&mut c, &["DEBUG", "RELOAD"]);
    run(&mut c, &["FCALL", "pf", "0"]);
    run(&mut c, &["FUNCTION", "LIST", "WITHCODE"]);
    run(&mut c, &["BGREWRITEAOF"]);
    let done = common::wait_for(Duration::from_secs(10), || common::aof_rewrite_idle(&mut c));
    assert!(done, "{}: rewrite did not finish", s.kind.name());
    run(&mut c, &["DEBUG", "LOADAOF"]);
    run(&mut c, &["FCALL", "pf", "0"]);
    let dump = c.call(&["FUNCTION", "DUMP"]);
    run(&mut c, &["FUNCTION", "RESTORE", "xyz"]);
    run(&mut c, &["FUNCTION", "RESTORE", "0123456789abcdef"]);
    let info = c.call(&["INFO", "memory"]);
    for f in ["number_of_functions", "number_of_libraries"] {
        let v = common::info_field(&info, f);
        out.push((f.to_string(), format!("{v:?}").into_bytes()));
    }
    assert!(
        common::info_field(&info, "used_memory_vm_functions").unwrap_or(0) > 0,
        "{}: used_memory_vm_functions",
        s.kind.name()
    );
    (out, dump)
}

/// The payload of a bulk reply.
fn bulk_payload(r: &[u8]) -> Vec<u8> {
    let nl = r.iter().position(|&b| b == b'\n').expect("bulk header");
    r[nl + 1..r.len() - 2].to_vec()
}

#[test]
fn persistence_dump_restore() {
    let args = [
        "--enable-debug-command",
        "yes",
        "--appendonly",
        "yes",
        "--aof-use-rdb-preamble",
        "no",
    ];
    let Some((ours, refs)) = common::ours_and_reference(&args) else {
        return;
    };
    let (a, dump_a) = persistence_sequence(&ours);
    let (b, dump_b) = persistence_sequence(&refs);
    for ((line, ra), (_, rb)) in a.iter().zip(b.iter()) {
        assert_eq!(escape(ra), escape(rb), "{}", line);
    }
    assert_eq!(escape(&dump_a), escape(&dump_b), "FUNCTION DUMP");
    // Each server restores the other's payload.
    for (s, payload) in [
        (&ours, bulk_payload(&dump_b)),
        (&refs, bulk_payload(&dump_a)),
    ] {
        let mut c = s.conn();
        let pl: &[u8] = &payload;
        common::expect(
            s,
            &c.call(&[b"FUNCTION".as_slice(), b"RESTORE", pl]),
            b"-ERR Library plib already exists\r\n",
        );
        common::expect(
            s,
            &c.call(&[b"FUNCTION".as_slice(), b"RESTORE", pl, b"BAD"]),
            b"-ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.\r\n",
        );
        common::expect(s, &c.call(&["FUNCTION", "FLUSH"]), b"+OK\r\n");
        common::expect(
            s,
            &c.call(&[b"FUNCTION".as_slice(), b"RESTORE", pl]),
            b"+OK\r\n",
        );
        common::expect(
            s,
            &c.call(&[b"FUNCTION".as_slice(), b"RESTORE", pl, b"REPLACE"]),
            b"+OK\r\n",
        );
        common::expect(
            s,
            &c.call(&[b"FUNCTION".as_slice(), b"RESTORE", pl, b"FLUSH"]),
            b"+OK\r\n",
        );
        common::expect(s, &c.call(&["FCALL", "pf", "0"]), b"$5\r\npf-ok\r\n");
    }
}

/// A replica of ours gets the primary's libraries in the full sync (its own libraries
/// are replaced, as its keys are) and then FUNCTION LOAD / DELETE through the stream;
/// the primary is the reference, then ours.
#[test]
fn replica_receives_libraries() {
    let mut primaries = vec![Server::ours(&[])];
    if let Some(bin) = require_reference() {
        primaries.push(Server::reference(&bin, &[]));
    }
    for p in &primaries {
        let mut pc = p.conn();
        let lib = "#!lua name=plib\nserver.register_function{function_name='pget', \
                   callback=function(keys) return server.call('get', keys[1]) end, \
                   flags={'no-writes'}}";
        assert_eq!(pc.call(&["FUNCTION", "LOAD", lib]), b"$4\r\nplib\r\n");
        assert_eq!(pc.call(&["SET", "k", "v1"]), b"+OK\r\n");

        let r = Server::ours(&[]);
        let mut rc = r.conn();
        let own = "#!lua name=mine\nserver.register_function{function_name='mine', \
                   callback=function() return 1 end, flags={'no-writes'}}";
        assert_eq!(rc.call(&["FUNCTION", "LOAD", own]), b"$4\r\nmine\r\n");
        common::repl::attach(&mut rc, p);
        let synced = common::wait_for(Duration::from_secs(20), || {
            common::repl::link_up(&mut rc) && rc.call(&["GET", "k"]) == b"$2\r\nv1\r\n"
        });
        assert!(
            synced,
            "{}: replica not in sync\n{}",
            p.kind.name(),
            r.log()
        );
        assert_eq!(
            rc.call(&["FCALL_RO", "pget", "1", "k"]),
            b"$2\r\nv1\r\n",
            "{}",
            p.kind.name()
        );
        assert_eq!(
            rc.call(&["FCALL_RO", "mine", "0"]),
            b"-ERR Function not found\r\n",
            "{}: the replica kept its own library",
            p.kind.name()
        );

        // Through the stream: a new library, then the first one deleted.
        let lib2 = "#!lua name=plib2\nserver.register_function{function_name='two', \
                    callback=function() return 2 end, flags={'no-writes'}}";
        assert_eq!(pc.call(&["FUNCTION", "LOAD", lib2]), b"$5\r\nplib2\r\n");
        assert_eq!(pc.call(&["FUNCTION", "DELETE", "plib"]), b"+OK\r\n");
        let streamed = common::wait_for(Duration::from_secs(10), || {
            rc.call(&["FCALL_RO", "two", "0"]) == b":2\r\n"
                && rc.call(&["FCALL_RO", "pget", "1", "k"]) == b"-ERR Function not found\r\n"
        });
        assert!(
            streamed,
            "{}: FUNCTION LOAD/DELETE not applied from the stream: {}",
            p.kind.name(),
            escape(&rc.call(&["FUNCTION", "LIST"]))
        );
        assert_eq!(pc.call(&["FUNCTION", "FLUSH"]), b"+OK\r\n");
    }
}

/// `lazyfreed_objects` of INFO memory, once nothing is pending.
fn lazyfreed(c: &mut Conn) -> i64 {
    let mut v = 0;
    let done = common::wait_for(Duration::from_secs(10), || {
        let info = c.call(&["INFO", "memory"]);
        v = common::info_field(&info, "lazyfreed_objects").unwrap_or(-1);
        common::info_field(&info, "lazyfree_pending_objects") == Some(0)
    });
    assert!(done, "lazyfree never drained");
    v
}

/// The lazyfree side of SCRIPT FLUSH and FUNCTION FLUSH: ASYNC (or no mode, with
/// lazyfree-lazy-user-flush) hands a state holding more than 64 scripts or functions to
/// the lazyfree thread, which counts them in `lazyfreed_objects`; SYNC and small states
/// are freed at once. The counts, and the replies around them, equal the reference's.
#[test]
fn flush_async_lazyfree() {
    let Some(bin) = require_reference() else {
        return;
    };
    let run = |s: &Server| -> Vec<String> {
        let mut c = s.conn();
        let mut out = Vec::new();
        let note = |c: &mut Conn, what: &str, base: &mut i64| -> String {
            let now = lazyfreed(c);
            let line = format!("{}: {}", what, now - *base);
            *base = now;
            line
        };
        let mut base = lazyfreed(&mut c);
        let load_scripts = |c: &mut Conn, n: usize| {
            for i in 0..n {
                let r = c.call(&["SCRIPT", "LOAD", &format!("return {}", i)]);
                assert_eq!(r[0], b'$');
            }
        };
        let lib = |n: usize| {
            let mut l = String::from("#!lua name=many\n");
            for i in 0..n {
                l.push_str(&format!(
                    "server.register_function('f{}', function() return {} end)\n",
                    i, i
                ));
            }
            l
        };
        for (n, mode) in [
            (70, Some("ASYNC")),
            (64, None),
            (65, Some("SYNC")),
            (65, None),
            (3, Some("ASYNC")),
        ] {
            load_scripts(&mut c, n);
            let mut argv = vec!["SCRIPT", "FLUSH"];
            argv.extend(mode);
            out.push(escape(&c.call(&argv)));
            out.push(note(
                &mut c,
                &format!("script flush {} {:?}", n, mode),
                &mut base,
            ));
            out.push(escape(&c.call(&[
                "SCRIPT",
                "EXISTS",
                "06d3d9b2060dd51343d5f19f0e531f15c507e3d1",
            ])));
            out.push(escape(&c.call(&["EVAL", "return 7", "0"])));
        }
        for (n, mode) in [
            (65, Some("ASYNC")),
            (65, None),
            (64, Some("ASYNC")),
            (65, Some("SYNC")),
        ] {
            out.push(escape(&c.call(&["FUNCTION", "LOAD", &lib(n)])));
            out.push(escape(&c.call(&["FCALL", "f3", "0"])));
            let mut argv = vec!["FUNCTION", "FLUSH"];
            argv.extend(mode);
            out.push(escape(&c.call(&argv)));
            out.push(note(
                &mut c,
                &format!("function flush {} {:?}", n, mode),
                &mut base,
            ));
            out.push(escape(&c.call(&["FCALL", "f3", "0"])));
        }
        // Without lazyfree-lazy-user-flush, no mode means SYNC.
        c.call(&["CONFIG", "SET", "lazyfree-lazy-user-flush", "no"]);
        load_scripts(&mut c, 70);
        c.call(&["SCRIPT", "FLUSH"]);
        out.push(note(&mut c, "script flush, lazy-user-flush no", &mut base));
        c.call(&["FUNCTION", "LOAD", &lib(70)]);
        c.call(&["FUNCTION", "FLUSH"]);
        out.push(note(
            &mut c,
            "function flush, lazy-user-flush no",
            &mut base,
        ));
        out.push(escape(&c.call(&["INFO", "keyspace"])));
        out
    };
    let ours = run(&Server::ours(&[]));
    let reference = run(&Server::reference(&bin, &[]));
    assert_eq!(ours, reference);
    // The counts are not all zero (the test can fail).
    assert!(ours.iter().any(|l| l.ends_with(": 70")), "{:?}", ours);
}

/// Libraries for the restart test: flags, a description, a library replaced and one
/// deleted before the restart, so the AOF holds every kind of FUNCTION command. One
/// function per library: upstream lists the functions of a library (and the libraries)
/// in the order of a hash table seeded at random per process (three starts of the
/// reference, three orders), so only one-function replies compare byte for byte.
const RESTART_LIBS: &[&str] = &[
    "#!lua name=rlib1\nserver.register_function('r1', function(keys, args) \
     return server.call('incr', keys[1]) end)",
    "#!lua name=rlib4\nserver.register_function{function_name='r1ro', \
     callback=function(keys, args) return server.call('get', keys[1]) end, \
     flags={'no-writes'}, description='reads'}",
    "#!lua name=rlib2\nserver.register_function('r2', function() return 'old' end)",
    "#!lua name=rlib3\nserver.register_function('r3', function() return 'gone' end)",
];

/// FUNCTION LOAD, then a real restart of the server on its directory: from the RDB
/// (SAVE), from the AOF with a rewrite (RDB preamble, then more commands after it) and
/// without one (plain AOF, no preamble). The replies after the restart equal the
/// reference's for the same sequence.
#[test]
fn restart_keeps_functions() {
    let Some(bin) = require_reference() else {
        return;
    };
    let run = |reference: bool, mode: &str| -> Vec<String> {
        let dir = TempDir::new(&format!("fnrestart-{}-{}", mode, reference));
        let d = dir.dir_arg();
        let mut args = vec!["--dir", d.as_str()];
        match mode {
            "rdb" => {}
            "aof-rewrite" => args.extend(["--appendonly", "yes"]),
            _ => args.extend(["--appendonly", "yes", "--aof-use-rdb-preamble", "no"]),
        }
        let start = |args: &[&str]| Server::either(reference, &bin, args);
        let s = start(&args);
        let mut c = s.conn();
        c.set_read_timeout(Duration::from_secs(20));
        let mut out = Vec::new();
        let mut call = |c: &mut Conn, argv: &[&str]| {
            out.push(format!("{} -> {}", argv.join(" "), escape(&c.call(argv))));
        };
        call(&mut c, &["FUNCTION", "LOAD", RESTART_LIBS[0]]);
        call(&mut c, &["FUNCTION", "LOAD", RESTART_LIBS[1]]);
        call(&mut c, &["FCALL", "r1", "1", "k"]);
        if mode == "aof-rewrite" {
            call(&mut c, &["BGREWRITEAOF"]);
            let done =
                common::wait_for(Duration::from_secs(10), || common::aof_rewrite_idle(&mut c));
            assert!(done, "rewrite did not finish");
        }
        call(&mut c, &["FUNCTION", "LOAD", RESTART_LIBS[3]]);
        call(&mut c, &["FUNCTION", "LOAD", RESTART_LIBS[2]]);
        call(
            &mut c,
            &[
                "FUNCTION",
                "LOAD",
                "REPLACE",
                "#!lua name=rlib2\nserver.register_function('r2', function() return 'new' end)",
            ],
        );
        call(&mut c, &["FUNCTION", "DELETE", "rlib3"]);
        call(&mut c, &["FCALL", "r1", "1", "k"]);
        if mode == "rdb" {
            call(&mut c, &["SAVE"]);
            c.send(&["SHUTDOWN", "NOSAVE"]).unwrap();
        } else {
            c.send(&["SHUTDOWN"]).unwrap();
        }
        assert!(c.closed_within(Duration::from_secs(10)), "no shutdown");
        drop(s);
        let files: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".rdb") || n.starts_with("appendonly"))
            .collect();
        assert!(!files.is_empty(), "nothing written in {}", d);
        let s = start(&args);
        let mut c = s.conn();
        for lib in ["rlib1", "rlib2", "rlib3", "rlib4"] {
            call(
                &mut c,
                &["FUNCTION", "LIST", "LIBRARYNAME", lib, "WITHCODE"],
            );
        }
        call(&mut c, &["FCALL", "r1", "1", "k"]);
        call(&mut c, &["FCALL_RO", "r1ro", "1", "k"]);
        call(&mut c, &["FCALL", "r2", "0"]);
        call(&mut c, &["FCALL", "r3", "0"]);
        call(&mut c, &["FUNCTION", "STATS"]);
        let info = c.call(&["INFO", "memory"]);
        for f in ["number_of_functions", "number_of_libraries"] {
            out.push(format!("{} {:?}", f, common::info_field(&info, f)));
        }
        drop(s);
        out
    };
    for mode in ["rdb", "aof-rewrite", "aof"] {
        let ours = run(false, mode);
        let reference = run(true, mode);
        for (o, r) in ours.iter().zip(&reference) {
            assert_eq!(o, r, "{}: reply differs from the reference", mode);
        }
        assert_eq!(ours.len(), reference.len());
    }
}
