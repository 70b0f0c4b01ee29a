//! Lua scripting (issue 12, EVAL side): differential against the reference where the
//! reference can do the same. A corpus of EVAL / SCRIPT commands is sent to both
//! servers over RESP2 and again over RESP3 (HELLO 3) and the raw reply bytes must be
//! equal; then propagation (read back from the AOF of both servers), the 500-entry
//! LRU, ACL inside scripts, MONITOR order, the memory bound, and valkey-py's `Lock`.
//!
//! Environment: as tests/differential.rs (`VALKEY_REF`, `VALKEY_REF_SKIP=1`).

mod common;

use std::time::Duration;

use common::{escape, info_field, require_reference, Server};

/// One command per line (redis-cli quoting); `---` resets both servers (FLUSHALL,
/// SCRIPT FLUSH). Lines are compared byte for byte.
const CORPUS: &str = r##"
# Lua -> RESP
EVAL "return 1" 0
EVAL "return 3.99" 0
EVAL "return -3.99" 0
EVAL "return 0/0" 0
EVAL "return 1e300" 0
EVAL "return -1e300" 0
EVAL "return 2^63" 0
EVAL "return -2^63" 0
EVAL "return {double=0/0}" 0
EVAL "return {double=1/0}" 0
EVAL "return coroutine.wrap(function() return redis.call('ping') end)()" 0
EVAL "return 'str'" 0
EVAL "return true" 0
EVAL "return false" 0
EVAL "return nil" 0
EVAL "return {1,2,3,'x',{4,5}}" 0
EVAL "return {1,2,nil,4}" 0
EVAL "return {ok='fine'}" 0
EVAL "return {ok='a\r\nb'}" 0
EVAL "return {err='MYERR x'}" 0
EVAL "return {err='x'}" 0
EVAL "return {ok='x', err='y'}" 0
EVAL "return {1, {err='E inner'}, 3}" 0
EVAL "return {double=1.5}" 0
EVAL "return {double=3}" 0
EVAL "return {big_number='123'}" 0
EVAL "return {big_number='1\r\n2'}" 0
EVAL "return {verbatim_string={format='txt', string='hello'}}" 0
EVAL "return {map={a=1}}" 0
EVAL "return {set={a=true}}" 0
EVAL "return {map={}}" 0
EVAL "return {}" 0
EVAL "return function() end" 0
EVAL "redis.setresp(3); return true" 0
EVAL "redis.setresp(3); return false" 0
EVAL "redis.setresp(3); return {true, false, 1}" 0
EVAL "return redis.status_reply('a\r\nb')" 0
EVAL "return redis.error_reply('a\r\nb')" 0
EVAL "return redis.error_reply('x')" 0
EVAL "return redis.error_reply('-x')" 0
EVAL "return redis.error_reply('MYERR x')" 0
EVAL "return redis.error_reply(1)" 0
EVAL "return redis.status_reply()" 0
# KEYS / ARGV
EVAL "return {KEYS[1], KEYS[2], ARGV[1], ARGV[2], #KEYS, #ARGV}" 2 k1 k2 a1 a2
EVAL "return #KEYS" 0
EVAL "return 1" 1
EVAL "return 1" -1
EVAL "return 1" x
EVAL "return 1" 99999999999999999999
# RESP -> Lua
EVAL "return redis.call('set', KEYS[1], ARGV[1])" 1 k v
EVAL "return redis.call('get', KEYS[1])" 1 k
EVAL "return redis.call('get', 'nokey')" 0
EVAL "return type(redis.call('get', 'nokey'))" 0
EVAL "return redis.call('incr', 'n')" 0
EVAL "return redis.call('ping')" 0
EVAL "return redis.call('set', 'n2', 1.5)" 0
EVAL "return redis.call('set', 'n3', 1e20)" 0
EVAL "return {redis.call('get', 'n2'), redis.call('get', 'n3')}" 0
EVAL "redis.call('rpush', 'l', 'a', 'b', 'c'); return redis.call('lrange', 'l', 0, -1)" 0
EVAL "redis.call('hset', 'h', 'f', 'v'); return redis.call('hgetall', 'h')" 0
EVAL "redis.setresp(3); return redis.call('hgetall', 'h')" 0
EVAL "redis.setresp(3); local r = redis.call('hgetall', 'h'); return type(r.map)" 0
EVAL "redis.call('sadd', 's', 'm'); redis.setresp(3); local r = redis.call('smembers', 's'); return tostring(r.set.m)" 0
EVAL "redis.call('zadd', 'z', 1.5, 'm'); return redis.call('zscore', 'z', 'm')" 0
EVAL "redis.setresp(3); return redis.call('zscore', 'z', 'm')" 0
EVAL "redis.setresp(3); local r = redis.call('zscore', 'z', 'm'); return r.double * 2" 0
EVAL "redis.setresp(3); return type(redis.call('get', 'nokey'))" 0
EVAL "return redis.call('type', 'l')" 0
EVAL "return redis.call('type', 'l').ok" 0
EVAL "redis.setresp(3); return redis.call('exists', 'l')" 0
# Errors
EVAL "return redis.call()" 0
EVAL "return redis.call({})" 0
EVAL "return redis.call('get', {})" 0
EVAL "return redis.call('nosuch')" 0
EVAL "return redis.call('get')" 0
EVAL "return redis.call('multi')" 0
EVAL "return redis.call('eval', 'return 1', 0)" 0
EVAL "return redis.call('script', 'flush')" 0
EVAL "return redis.call('subscribe', 'c')" 0
EVAL "return redis.call('client', 'nosuchsub')" 0
EVAL "return redis.call('lpush', 'k', 'x')" 0
EVAL "return redis.pcall('lpush', 'k', 'x')" 0
EVAL "local r = redis.pcall('lpush', 'k', 'x'); return r.err" 0
EVAL "return redis.pcall('nosuch')" 0
EVAL "return {pcall(redis.call, 'nosuch')}" 0
EVAL "local ok, e = pcall(redis.call, 'nosuch'); return type(e)" 0
EVAL "local ok, e = pcall(error, {err='X y'}); return e" 0
EVAL "local ok, e = pcall(error, 'plain'); return e" 0
EVAL "error('boom')" 0
EVAL "error({err='MYERR x'})" 0
EVAL "error({})" 0
EVAL "error()" 0
EVAL "\n\nerror('line3')" 0
EVAL "return nosuchglobal" 0
EVAL "return print" 0
EVAL "return loadfile" 0
EVAL "return dofile" 0
EVAL "return io" 0
EVAL "return require" 0
EVAL "return debug" 0
EVAL "return setfenv" 0
EVAL "return newproxy" 0
EVAL "return os.execute" 0
EVAL "return type(os.clock())" 0
EVAL "x = 5" 0
EVAL "return redis.nosuch" 0
EVAL "return rawequal(redis, server)" 0
EVAL "return loadstring(string.dump(function() return 1 end))" 0
EVAL "return {loadstring('\27LuaQ')}" 0
EVAL "return loadstring('return 7')()" 0
EVAL "local function f() return f() + 1 end return f()" 0
EVAL "return 'unterminated" 0
EVAL "return unpack({}, 1, 2^31-1)" 0
EVAL "return redis.sha1hex('')" 0
EVAL "return redis.sha1hex('abc')" 0
EVAL "return redis.sha1hex()" 0
EVAL "return redis.sha1hex(1, 2)" 0
EVAL "return redis.set_repl()" 0
EVAL "return redis.set_repl(99)" 0
EVAL "return redis.setresp()" 0
EVAL "return redis.setresp(4)" 0
EVAL "return redis.log()" 0
EVAL "return redis.log('x', 'y')" 0
EVAL "return redis.log(99, 'y')" 0
EVAL "return redis.log(redis.LOG_WARNING, 'from a script')" 0
EVAL "return redis.acl_check_cmd('nosuch')" 0
EVAL "return redis.acl_check_cmd('get', 'x')" 0
EVAL "return redis.acl_check_cmd()" 0
EVAL "return redis.breakpoint()" 0
EVAL "return redis.debug('x')" 0
EVAL "return redis.replicate_commands()" 0
EVAL "return {redis.REPL_NONE, redis.REPL_AOF, redis.REPL_REPLICA, redis.REPL_SLAVE, redis.REPL_ALL}" 0
EVAL "return {redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING}" 0
EVAL "return {redis.REDIS_VERSION, redis.REDIS_VERSION_NUM, redis.SERVER_NAME}" 0
EVAL "return type(redis.VALKEY_VERSION)" 0
EVAL "return _VERSION" 0
EVAL "return type(__redis__err__handler)" 0
EVAL "return rawequal(__server__err__handler, __redis__err__handler)" 0
EVAL "return {math.mod(7, 3), string.rep('ab', 3), table.getn({1,2})}" 0
# Shebang flags
EVAL "#!lua\nreturn 1" 0
EVAL "#!lua flags=\nreturn 1" 0
EVAL "#!lua flags=no-writes\nreturn redis.call('set', 'x', 1)" 0
EVAL "#!lua flags=no-writes,allow-oom\nreturn redis.call('get', 'x')" 0
EVAL "#!lua flags=bad\nreturn 1" 0
EVAL "#!lua name=x\nreturn 1" 0
EVAL "#!notlua\nreturn 1" 0
EVAL "#!lua" 0
EVAL "#!lua\nerror('second line')" 0
EVAL "#!lua\nreturn redis.call('set', 'x', 1)" 0
EVAL_RO "return redis.call('get', 'x')" 0
EVAL_RO "return redis.call('set', 'x', 1)" 0
EVAL_RO "#!lua\nreturn 1" 0
EVAL_RO "#!lua flags=no-writes\nreturn redis.call('get', 'x')" 0
# SCRIPT
SCRIPT LOAD "return 'loaded'"
EVALSHA b534286061d4b9e4026607613b95c06c06015ae8 0
SCRIPT LOAD "return redis.call('get', KEYS[1])"
SCRIPT EXISTS 4e6d8fc8bb01276962cce5371fa795a7763657ae ffffffffffffffffffffffffffffffffffffffff x
EVAL "return 'cached'" 0
SCRIPT EXISTS 952f49ffc8f7b098d8ab5da45d3164ca36ed18b1
SCRIPT SHOW 952f49ffc8f7b098d8ab5da45d3164ca36ed18b1
SCRIPT SHOW 952F49FFC8F7B098D8AB5DA45D3164CA36ED18B1
SCRIPT SHOW ffffffffffffffffffffffffffffffffffffffff
EVALSHA 952F49FFC8F7B098D8AB5DA45D3164CA36ED18B1 0
EVALSHA ffffffffffffffffffffffffffffffffffffffff 0
EVALSHA short 0
EVALSHA_RO 952f49ffc8f7b098d8ab5da45d3164ca36ed18b1 0
SCRIPT LOAD "return 'unterminated"
SCRIPT LOAD "#!lua flags=bad\nreturn 1"
SCRIPT LOAD
SCRIPT EXISTS
SCRIPT KILL
SCRIPT DEBUG maybe
SCRIPT DEBUG no
SCRIPT NOSUCH
SCRIPT FLUSH BAD
SCRIPT FLUSH SYNC EXTRA
SCRIPT FLUSH ASYNC
SCRIPT EXISTS 952f49ffc8f7b098d8ab5da45d3164ca36ed18b1
SCRIPT FLUSH
SCRIPT FLUSH SYNC
EVAL
EVALSHA x
COMMAND INFO eval evalsha eval_ro evalsha_ro script
COMMAND DOCS eval evalsha eval_ro evalsha_ro script
---
# SELECT inside a script does not change the caller's db.
EVAL "redis.call('select', 1); redis.call('set', 'indb1', 'v'); return redis.call('get', 'indb1')" 0
GET indb1
SELECT 1
GET indb1
# Blocking commands do not block in a script.
EVAL "return redis.call('blpop', 'nolist', 0)" 0
EVAL "return redis.call('wait', 0, 0)" 0
# A runtime error keeps the writes done before it.
EVAL "redis.call('set', 'kept', 1); error('after write')" 0
GET kept
"##;

#[test]
fn corpus_matches_reference() {
    common::assert_corpus_matches(CORPUS, &[&["SCRIPT", "FLUSH"], &["FLUSHALL"]], true);
}

/// The commands of the AOF's incremental file(s), as argv lists.
fn aof_commands(s: &Server) -> Vec<Vec<Vec<u8>>> {
    let dir = s.dir.join("appendonlydir");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    let mut cmds = Vec::new();
    for f in files {
        if !f.to_string_lossy().ends_with(".incr.aof") {
            continue;
        }
        let data = std::fs::read(&f).unwrap_or_default();
        let mut p = 0;
        while p < data.len() && data[p] == b'*' {
            let line_end = |p: usize| p + data[p..].windows(2).position(|w| w == b"\r\n").unwrap();
            let e = line_end(p);
            let n: usize = std::str::from_utf8(&data[p + 1..e])
                .unwrap()
                .parse()
                .unwrap();
            p = e + 2;
            let mut argv = Vec::new();
            for _ in 0..n {
                let e = line_end(p);
                let len: usize = std::str::from_utf8(&data[p + 1..e])
                    .unwrap()
                    .parse()
                    .unwrap();
                argv.push(data[e + 2..e + 2 + len].to_vec());
                p = e + 2 + len + 2;
            }
            cmds.push(argv);
        }
    }
    cmds
}

/// The scripts' effects are propagated, one write bare, two or more in MULTI/EXEC,
/// set_repl honoured, EVAL itself never; read back from the AOF of both servers.
#[test]
fn propagation_in_aof() {
    let Some(bin) = require_reference() else {
        return;
    };
    let args = ["--appendonly", "yes", "--appendfsync", "always"];
    let mut got = Vec::new();
    for s in [Server::ours(&args), Server::reference(&bin, &args)] {
        let mut c = s.conn();
        c.call(&["EVAL", "return redis.call('get', 'nokey')", "0"]);
        c.call(&["EVAL", "redis.call('set', 'a', '1')", "0"]);
        c.call(&[
            "EVAL",
            "redis.call('set', 'b', '1'); redis.call('incr', 'b')",
            "0",
        ]);
        c.call(&[
            "EVAL",
            "redis.set_repl(redis.REPL_NONE); redis.call('set', 'c', '1'); \
             redis.set_repl(redis.REPL_ALL); redis.call('set', 'd', '1')",
            "0",
        ]);
        c.call(&["EVAL", "redis.call('set', 'e', '1'); error('x')", "0"]);
        c.call(&[
            "EVAL",
            "redis.call('select', 3); redis.call('set', 'f', '1')",
            "0",
        ]);
        c.call(&["MULTI"]);
        c.call(&["EVAL", "redis.call('set', 'g', '1')", "0"]);
        c.call(&["SET", "h", "1"]);
        c.call(&["EXEC"]);
        c.call(&[
            "EVAL",
            "redis.call('set', 'i', '1', 'EX', '100'); redis.call('expire', 'i', 0)",
            "0",
        ]);
        c.call(&["SET", "end", "1"]);
        let ok = common::wait_for(Duration::from_secs(5), || {
            aof_commands(&s).last().is_some_and(|a| {
                a.first().is_some_and(|x| x.eq_ignore_ascii_case(b"set"))
                    && a.get(1).is_some_and(|k| k == b"end")
            })
        });
        assert!(ok, "{}: AOF not written", s.kind.name());
        let cmds: Vec<String> = aof_commands(&s)
            .iter()
            .map(|a| {
                let mut words: Vec<String> = a
                    .iter()
                    .map(|x| String::from_utf8_lossy(x).to_lowercase())
                    .collect();
                // The absolute expire time differs by the run's clock.
                for j in 1..words.len() {
                    if words[j - 1] == "pxat" {
                        words[j] = "<time>".into();
                    }
                }
                words.join(" ")
            })
            .collect();
        got.push(cmds);
    }
    assert_eq!(got[0], got[1], "AOF contents differ (ours, reference)");
    assert!(got[0].iter().all(|l| !l.starts_with("eval")));
}

/// EVAL-added scripts are capped at 500 (oldest evicted, `evicted_scripts`), SCRIPT
/// LOAD ones never; INFO fields as the reference.
#[test]
fn script_cache_lru() {
    let Some(bin) = require_reference() else {
        return;
    };
    let mut res = Vec::new();
    for s in [Server::ours(&[]), Server::reference(&bin, &[])] {
        let mut c = s.conn();
        let loaded = c.call(&["SCRIPT", "LOAD", "return 'kept'"]);
        let sha_loaded = String::from_utf8_lossy(&loaded[5..45]).into_owned();
        let first = c.call(&["EVAL", "return 0", "0"]);
        let _ = first;
        for i in 1..510 {
            c.call(&["EVAL", &format!("return {}", i), "0"]);
        }
        let info = c.call(&["INFO"]);
        let cached = info_field(&info, "number_of_cached_scripts");
        let evicted = info_field(&info, "evicted_scripts");
        let old = c.call(&[
            "SCRIPT",
            "EXISTS",
            "06d3d9b2060dd51343d5f19f0e531f15c507e3d1",
        ]);
        let kept = c.call(&["SCRIPT", "EXISTS", &sha_loaded]);
        let vm = info_field(&info, "used_memory_vm_eval").unwrap_or(0);
        assert!(vm > 0, "{}: used_memory_vm_eval", s.kind.name());
        c.call(&["CONFIG", "RESETSTAT"]);
        let after = info_field(&c.call(&["INFO", "stats"]), "evicted_scripts");
        res.push((cached, evicted, old, kept, after));
    }
    assert_eq!(res[0], res[1]);
    assert_eq!(res[0].0, Some(501));
}

/// ACL inside scripts: the caller's user, the error text, the ACL LOG context.
#[test]
fn acl_in_scripts() {
    let Some(bin) = require_reference() else {
        return;
    };
    let mut res = Vec::new();
    for s in [Server::ours(&[]), Server::reference(&bin, &[])] {
        let mut admin = s.conn();
        admin.call(&[
            "ACL", "SETUSER", "u", "on", ">p", "+eval", "+get", "~*", "&*",
        ]);
        let mut c = s.conn();
        let mut out = vec![c.call(&["AUTH", "u", "p"])];
        out.push(c.call(&["EVAL", "return redis.call('set', 'k', 'v')", "0"]));
        out.push(c.call(&["EVAL", "return redis.pcall('set', 'k', 'v')", "0"]));
        out.push(c.call(&["EVAL", "return redis.call('get', 'k')", "0"]));
        out.push(c.call(&[
            "EVAL",
            "return {redis.acl_check_cmd('set', 'k', 'v'), redis.acl_check_cmd('get', 'k')}",
            "0",
        ]));
        let log = admin.call(&["ACL", "LOG", "1"]);
        let text = String::from_utf8_lossy(&log).into_owned();
        assert!(
            text.contains("lua"),
            "{}: ACL LOG context: {}",
            s.kind.name(),
            text
        );
        assert!(
            text.contains("\r\nset\r\n"),
            "{}: ACL LOG object: {}",
            s.kind.name(),
            text
        );
        res.push(out.iter().map(|r| escape(r)).collect::<Vec<_>>());
    }
    assert_eq!(res[0], res[1]);
}

/// MONITOR shows the EVAL, then the script's commands as `[db lua]`.
#[test]
fn monitor_order() {
    let s = Server::ours(&[]);
    let mut m = s.conn();
    m.call(&["MONITOR"]);
    let mut c = s.conn();
    c.call(&["EVAL", "redis.call('set', 'mk', 'v')", "0"]);
    c.call(&["PING"]);
    m.set_read_timeout(Duration::from_secs(5));
    let mut lines = Vec::new();
    while let Ok(l) = m.read_reply() {
        let l = escape(&l);
        let done = l.contains("PING");
        lines.push(l);
        if done {
            break;
        }
    }
    let eval = lines.iter().position(|l| l.contains("EVAL"));
    let set = lines
        .iter()
        .position(|l| l.contains("[0 lua]") && l.contains("mk"));
    assert!(eval.is_some() && set.is_some() && eval < set, "{lines:?}");
}

/// A script allocating without bound fails with a Lua error and the server lives;
/// so does deep recursion through C (string.gsub callbacks).
#[test]
fn memory_bound_and_recursion() {
    let s = Server::ours(&["--maxmemory", "64mb"]);
    let mut c = s.conn();
    c.set_read_timeout(Duration::from_secs(30));
    let r = c.call(&[
        "EVAL",
        "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1e6) .. i end",
        "0",
    ]);
    let t = escape(&r);
    assert!(t.starts_with("-") && t.contains("not enough memory"), "{t}");
    let r = c.call(&["EVAL", "return 'alive'", "0"]);
    assert_eq!(r, b"$5\r\nalive\r\n");
    let r = c.call(&[
        "EVAL",
        "local function f(s) return (string.gsub(s, '.', f)) end return f('x')",
        "0",
    ]);
    assert!(r.starts_with(b"-"), "{}", escape(&r));
    let r = c.call(&["PING"]);
    assert_eq!(r, b"+PONG\r\n");
}

/// Read-only tables (lua-patch's VM patch, vendor/lua-src): the globals, the library
/// tables and the string metatable can not be changed.
#[test]
fn readonly_tables() {
    let Some((ours, refs)) = common::ours_and_reference(&[]) else {
        return;
    };
    let cases = [
        "rawset(_G, 'x', 1)",
        "redis.call = function() end",
        "_G.redis = 1",
        "string.len = nil",
        "getmetatable('').__index = {}",
        "table.insert(string, 1)",
        "setmetatable(_G, nil)",
    ];
    let (mut a, mut b) = (ours.conn(), refs.conn());
    for code in cases {
        common::same(&mut a, &mut b, &["EVAL", code, "0"]);
    }
}

/// valkey-py's `Lock` (its acquire/extend/release scripts) against valkey-rs.
#[test]
fn valkey_py_lock() {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import valkey"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("valkey-py not installed: skipped (.ci/run installs it)");
        return;
    }
    let s = Server::ours(&[]);
    let prog = format!(
        r#"
import valkey, sys
r = valkey.Valkey(port={})
l = r.lock('res', timeout=10, blocking_timeout=0.5)
assert l.acquire(), 'acquire'
assert r.get('res') is not None
l2 = r.lock('res', timeout=10, blocking_timeout=0.2)
assert not l2.acquire(), 'second acquire must fail'
assert l.extend(5), 'extend'
assert l.owned(), 'owned'
l.reacquire()
l.release()
assert r.get('res') is None, 'released'
assert l.acquire(), 'acquire again'
r.set('res', 'stolen')
try:
    l.release()
    sys.exit('releasing a lock owned by another must raise')
except valkey.exceptions.LockNotOwnedError:
    pass
assert r.get('res') == b'stolen', 'release must not delete another owner\'s lock'
with r.lock('res2', timeout=5):
    assert r.exists('res2') == 1
print('ok')
"#,
        s.port
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &prog])
        .output()
        .expect("python3");
    assert!(
        out.status.success() && out.stdout.starts_with(b"ok"),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Script flags on a replica whose primary is unreachable (stale, read-only) and under
/// maxmemory, against the reference.
#[test]
fn flags_on_replica_and_oom() {
    let Some(bin) = require_reference() else {
        return;
    };
    let dead = common::free_port().to_string();
    let replica_cmds: &[&[&str]] = &[
        &["EVAL", "return 1", "0"],
        &["EVAL", "#!lua flags=no-writes\nreturn 1", "0"],
        &["EVAL", "#!lua flags=no-writes,allow-stale\nreturn 1", "0"],
        &[
            "EVAL",
            "#!lua flags=no-writes,allow-stale\nreturn redis.call('get', 'x')",
            "0",
        ],
        &[
            "EVAL",
            "#!lua flags=no-writes,allow-stale\nreturn redis.call('ping')",
            "0",
        ],
        &["EVAL", "#!lua flags=allow-stale\nreturn 1", "0"],
        &["CONFIG", "SET", "replica-serve-stale-data", "yes"],
        &["EVAL", "return redis.call('set', 'x', 1)", "0"],
        &["EVAL", "return redis.call('get', 'x')", "0"],
        &["EVAL", "#!lua\nreturn 1", "0"],
        &[
            "EVAL",
            "#!lua flags=no-writes\nreturn redis.call('get', 'x')",
            "0",
        ],
        &["EVAL_RO", "return redis.call('get', 'x')", "0"],
    ];
    let oom_cmds: &[&[&str]] = &[
        &["SET", "fill", "some-value"],
        &["CONFIG", "SET", "maxmemory", "1"],
        &["EVAL", "return redis.call('set', 'x', 1)", "0"],
        &["EVAL", "return redis.call('get', 'x')", "0"],
        &[
            "EVAL",
            "redis.call('del', 'nokey'); return redis.call('set', 'x', 1)",
            "0",
        ],
        &["EVAL", "#!lua\nreturn 1", "0"],
        &[
            "EVAL",
            "#!lua flags=no-writes\nreturn redis.call('get', 'x')",
            "0",
        ],
        &[
            "EVAL",
            "#!lua flags=allow-oom\nreturn redis.call('set', 'x', 1)",
            "0",
        ],
        &["CONFIG", "SET", "maxmemory", "0"],
    ];
    let mut res = Vec::new();
    for kind in 0..2 {
        let rep_args = [
            "--replicaof",
            "127.0.0.1",
            dead.as_str(),
            "--replica-serve-stale-data",
            "no",
        ];
        let (a, b) = if kind == 0 {
            (Server::ours(&rep_args), Server::ours(&[]))
        } else {
            (
                Server::reference(&bin, &rep_args),
                Server::reference(&bin, &[]),
            )
        };
        let mut out = Vec::new();
        let mut c = a.conn();
        for cmd in replica_cmds {
            out.push(format!("{:?} -> {}", cmd, escape(&c.call(cmd))));
        }
        let mut c = b.conn();
        for cmd in oom_cmds {
            out.push(format!("{:?} -> {}", cmd, escape(&c.call(cmd))));
        }
        res.push(out);
    }
    let diffs: Vec<String> = res[0]
        .iter()
        .zip(res[1].iter())
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("ours: {a}\n ref: {b}"))
        .collect();
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

/// A script running past busy-reply-threshold is logged as slow, with its sha, and
/// still completes.
#[test]
fn slow_script_logged() {
    let s = Server::ours(&["--busy-reply-threshold", "20"]);
    let mut c = s.conn();
    c.set_read_timeout(Duration::from_secs(60));
    let r = c.call(&[
        "EVAL",
        "local i = 0 while os.clock() < 0.2 + i * 0 do i = i + 1 end return 'done'",
        "0",
    ]);
    assert_eq!(r, b"$4\r\ndone\r\n");
    let ok = common::wait_for(Duration::from_secs(5), || {
        s.log()
            .contains("Slow script detected: still in execution after")
    });
    assert!(ok, "no slow-script line in the log:\n{}", s.log());
    // SCRIPT KILL with nothing running.
    assert_eq!(
        c.call(&["SCRIPT", "KILL"]),
        b"-NOTBUSY No scripts in execution right now.\r\n"
    );
}

/// Errors inside scripts are counted once (errorstats, failed/rejected calls) as
/// upstream: a command error is counted when the command fails, not again when the
/// script replies it.
#[test]
fn error_stats() {
    let Some(bin) = require_reference() else {
        return;
    };
    let mut res = Vec::new();
    for s in [Server::ours(&[]), Server::reference(&bin, &[])] {
        let mut c = s.conn();
        for code in [
            "return redis.call('nosuch')",
            "redis.call('set', 'x', 'a'); return redis.pcall('incr', 'x')",
            "return redis.call('incr', 'x')",
            "error('x')",
            "return {err='MY x'}",
            "return redis.call()",
            "#!lua flags=no-writes\nreturn redis.call('set', 'x', 1)",
        ] {
            c.call(&["EVAL", code, "0"]);
        }
        let strip = |b: Vec<u8>| -> Vec<String> {
            let mut v: Vec<String> = String::from_utf8_lossy(&b)
                .split("\r\n")
                .filter(|l| l.contains(':') && !l.starts_with('$'))
                .map(|l| {
                    let mut l = l.to_string();
                    if let Some(p) = l.find("usec=") {
                        if let Some(q) = l[p..].find(",rejected") {
                            l.replace_range(p..p + q, "");
                        }
                    }
                    l
                })
                .filter(|l| {
                    !l.starts_with("cmdstat_hello")
                        && !l.starts_with("cmdstat_info")
                        && !l.starts_with("cmdstat_config")
                })
                .collect();
            v.sort();
            v
        };
        let mut out = strip(c.call(&["INFO", "errorstats"]));
        out.extend(strip(c.call(&["INFO", "commandstats"])));
        let stats = c.call(&["INFO", "stats"]);
        out.push(format!(
            "total_error_replies={:?}",
            info_field(&stats, "total_error_replies")
        ));
        res.push(out);
    }
    assert_eq!(res[0], res[1]);
}

/// A script past busy-reply-threshold: other clients get -BUSY (allow-busy commands
/// run), SCRIPT KILL stops a read-only script and its caller gets the kill error; a
/// script that wrote is UNKILLABLE and only SHUTDOWN NOSAVE ends it. Same bytes as the
/// reference.
#[test]
fn busy_script_and_kill() {
    for s in common::servers(&["--busy-reply-threshold", "50"]) {
        let mut runner = s.conn();
        runner.set_read_timeout(Duration::from_secs(30));
        let mut other = s.conn();
        runner.send(&["EVAL", "while true do end", "0"]).unwrap();
        let busy = "-BUSY Valkey is busy running a script. You can only call SCRIPT KILL or \
                    SHUTDOWN NOSAVE.\r\n";
        let ok = common::wait_for(Duration::from_secs(10), || {
            other.call(&["GET", "k"]) == busy.as_bytes()
        });
        assert!(ok, "{}: no -BUSY while the script runs", s.kind.name());
        common::expect(&s, &other.call(&["PING"]), busy.as_bytes());
        common::expect(&s, &other.call(&["SCRIPT", "KILL"]), b"+OK\r\n");
        common::expect(
            &s,
            &runner.read_reply().unwrap(),
            b"-ERR Script killed by user with SCRIPT KILL. script: on @user_script:1.\r\n",
        );
        common::expect(&s, &other.call(&["GET", "k"]), b"$-1\r\n");
        common::expect(
            &s,
            &other.call(&["SCRIPT", "KILL"]),
            b"-NOTBUSY No scripts in execution right now.\r\n",
        );

        // A script that wrote can not be killed; SHUTDOWN NOSAVE ends the server.
        runner
            .send(&["EVAL", "redis.call('set','k','v') while true do end", "0"])
            .unwrap();
        let ok = common::wait_for(Duration::from_secs(10), || {
            other.call(&["GET", "k"]) == busy.as_bytes()
        });
        assert!(
            ok,
            "{}: no -BUSY while the writing script runs",
            s.kind.name()
        );
        common::expect(
            &s,
            &other.call(&["SCRIPT", "KILL"]),
            b"-UNKILLABLE Sorry the script already executed write commands against the \
              dataset. You can either wait the script termination or kill the server in a \
              hard way using the SHUTDOWN NOSAVE command.\r\n",
        );
        common::assert_shutdown_nosave(&s, &mut other);
    }
}

/// server.set_repl with every REPL_* constant, read back on both targets: the primary's
/// AOF and a replica of it (same implementation). Equal to the reference's.
#[test]
fn set_repl_targets() {
    let Some(bin) = require_reference() else {
        return;
    };
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--repl-diskless-sync-delay",
        "0",
    ];
    let script = "\
        redis.set_repl(redis.REPL_AOF); redis.call('set', 'a', '1'); \
        redis.set_repl(redis.REPL_REPLICA); redis.call('set', 'b', '1'); \
        redis.set_repl(redis.REPL_SLAVE); redis.call('set', 'c', '1'); \
        redis.set_repl(redis.REPL_NONE); redis.call('set', 'd', '1'); \
        redis.set_repl(redis.REPL_ALL); redis.call('set', 'e', '1')";
    let mut got = Vec::new();
    for reference in [false, true] {
        let start = |a: &[&str]| Server::either(reference, &bin, a);
        let p = start(&args);
        let r = start(&[]);
        let mut pc = p.conn();
        let mut rc = r.conn();
        rc.call(&["REPLICAOF", "127.0.0.1", &p.port.to_string()]);
        let up = common::wait_for(Duration::from_secs(10), || common::repl::link_up(&mut rc));
        assert!(up, "replica never synced");
        let mut out = vec![escape(&pc.call(&["EVAL", script, "0"]))];
        // One target for a whole script of two writes (MULTI/EXEC on that target only).
        out.push(escape(&pc.call(&[
            "EVAL",
            "redis.set_repl(redis.REPL_REPLICA); redis.call('set', 'f', '1'); \
             redis.call('set', 'g', '1')",
            "0",
        ])));
        out.push(escape(&pc.call(&[
            "EVAL",
            "redis.set_repl(redis.REPL_AOF); redis.call('set', 'h', '1'); \
             redis.call('set', 'i', '1')",
            "0",
        ])));
        pc.call(&["SET", "end", "1"]);
        let ok = common::wait_for(Duration::from_secs(5), || {
            rc.call(&["GET", "end"]) == b"$1\r\n1\r\n"
                && aof_commands(&p)
                    .last()
                    .is_some_and(|a| a.get(1).is_some_and(|k| k == b"end"))
        });
        assert!(ok, "replica or AOF never got the last write");
        let keys = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        let mut mget = vec!["MGET"];
        mget.extend(keys);
        out.push(format!("primary {}", escape(&pc.call(&mget))));
        out.push(format!("replica {}", escape(&rc.call(&mget))));
        for a in aof_commands(&p) {
            let words: Vec<String> = a
                .iter()
                .map(|x| String::from_utf8_lossy(x).to_lowercase())
                .collect();
            out.push(format!("aof {}", words.join(" ")));
        }
        got.push(out);
    }
    assert_eq!(got[0], got[1], "ours, reference");
    // Both targets saw something and missed something.
    assert!(got[0].iter().any(|l| l == "aof set a 1"));
    assert!(!got[0].iter().any(|l| l == "aof set b 1"));
}

/// More compiled scripts and functions than mlua has handle slots (~8000): 10000
/// SCRIPT LOADs and a library of 9000 functions. Ours used to panic at the 8000th
/// (every cached script held an mlua handle); replies equal the reference's.
#[test]
fn many_scripts_and_functions() {
    let Some(bin) = require_reference() else {
        return;
    };
    const N: usize = 10000;
    const F: usize = 9000;
    let mut got = Vec::new();
    for s in [Server::ours(&[]), Server::reference(&bin, &[])] {
        let mut c = s.conn();
        c.set_read_timeout(Duration::from_secs(30));
        let mut req = Vec::new();
        for i in 0..N {
            req.extend(common::encode_command(&[
                "SCRIPT",
                "LOAD",
                &format!("return {}", i),
            ]));
        }
        c.send_raw(&req).unwrap();
        let mut shas = Vec::new();
        for _ in 0..N {
            shas.push(c.read_reply().unwrap());
        }
        let sha = |r: &[u8]| String::from_utf8_lossy(&r[5..45]).into_owned();
        let mut out = Vec::new();
        for i in [0, N / 2, N - 1] {
            out.push(escape(&c.call(&["EVALSHA", &sha(&shas[i]), "0"])));
        }
        out.push(format!(
            "{:?}",
            info_field(&c.call(&["INFO", "memory"]), "number_of_cached_scripts")
        ));
        let mut lib = String::from("#!lua name=big\n");
        for i in 0..F {
            lib.push_str(&format!(
                "server.register_function('f{}', function() return {} end)\n",
                i, i
            ));
        }
        out.push(escape(&c.call(&["FUNCTION", "LOAD", &lib])));
        for i in [0, F - 1] {
            out.push(escape(&c.call(&["FCALL", &format!("f{}", i), "0"])));
        }
        out.push(escape(&c.call(&["SCRIPT", "FLUSH"])));
        out.push(escape(&c.call(&["EVALSHA", &sha(&shas[0]), "0"])));
        out.push(escape(&c.call(&["FUNCTION", "FLUSH"])));
        out.push(escape(&c.call(&["FCALL", "f0", "0"])));
        got.push(out);
    }
    assert_eq!(got[0], got[1], "ours, reference");
}

/// server.log at each LOG_* level lands in the server log with upstream's level mark, and
/// only at or above `loglevel`; the `<mark> <message>` tails equal the reference's.
#[test]
fn server_log_levels() {
    let Some(bin) = require_reference() else {
        return;
    };
    let script = "for i, l in ipairs({server.LOG_DEBUG, server.LOG_VERBOSE, \
                  server.LOG_NOTICE, server.LOG_WARNING}) do \
                  server.log(l, 'lua-msg-' .. i .. '-' .. ARGV[1]) end";
    let mut got = Vec::new();
    for s in [Server::ours(&[]), Server::reference(&bin, &[])] {
        let mut c = s.conn();
        for level in ["debug", "verbose", "notice", "warning"] {
            c.call(&["CONFIG", "SET", "loglevel", level]);
            assert_eq!(c.call(&["EVAL", script, "0", level]), b"$-1\r\n");
        }
        c.call(&["CONFIG", "SET", "loglevel", "notice"]);
        let mut lines = Vec::new();
        let ok = common::wait_for(Duration::from_secs(5), || {
            lines = s
                .log()
                .lines()
                .filter(|l| l.contains("lua-msg-"))
                .filter_map(|l| l.splitn(6, ' ').nth(5).map(str::to_string))
                .collect();
            lines.iter().any(|l| l.ends_with("-warning"))
        });
        assert!(ok, "{}: no script log line:\n{}", s.kind.name(), s.log());
        got.push(lines);
    }
    assert_eq!(got[0], got[1], "ours, reference");
}
