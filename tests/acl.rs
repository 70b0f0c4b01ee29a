//! ACLs through the real binary: per rule kind allowed and denied (commands,
//! subcommands, categories, read vs write key patterns, channels, selectors, databases),
//! inside MULTI and at EXEC, ACL LOG content, AUTH errors, aclfile SAVE/LOAD and start-up,
//! and clients of a deleted user. Transcripts are compared with the reference when it is
//! installed.

mod common;

use std::time::Duration;

use common::{escape, expect, servers, step, Conn, Server, Transcript};

/// Runs `f` on every server; transcripts equal.
fn compare(f: impl Fn(&Server) -> Transcript) {
    common::compare_transcripts(&[], f)
}

/// Runs `steps` as user `u` (created with `rules`) and records the replies.
fn as_user(s: &Server, rules: &[&str], steps: &[&[&str]]) -> Transcript {
    let mut admin = s.conn();
    let mut t = Transcript::new();
    let mut argv = vec!["ACL", "SETUSER", "u", "reset", "on", ">pw"];
    argv.extend_from_slice(rules);
    step(&mut t, &mut admin, &argv);
    let mut c = s.conn();
    step(&mut t, &mut c, &["AUTH", "u", "pw"]);
    for st in steps {
        step(&mut t, &mut c, st);
    }
    t
}

#[test]
fn commands_subcommands_categories() {
    compare(|s| {
        as_user(
            s,
            &["~*", "+@string", "-set", "+client|getname", "+config|get"],
            &[
                &["GET", "k"],
                &["SET", "k", "v"],
                &["APPEND", "k", "v"],
                &["CLIENT", "GETNAME"],
                &["CLIENT", "SETNAME", "x"],
                &["CONFIG", "GET", "hz"],
                &["CONFIG", "SET", "hz", "10"],
                &["LPUSH", "l", "a"],
                &["FLUSHALL"],
            ],
        )
    });
}

#[test]
fn read_write_key_patterns_and_selectors() {
    compare(|s| {
        as_user(
            s,
            &["+@all", "%R~r:*", "%W~w:*", "~rw:*", "(+get ~sel:*)"],
            &[
                &["GET", "r:1"],
                &["SET", "r:1", "v"],
                &["SET", "w:1", "v"],
                &["GET", "w:1"],
                &["SET", "w:1", "v", "GET"],
                &["SET", "rw:1", "v", "GET"],
                &["COPY", "r:1", "w:2"],
                &["COPY", "w:1", "r:2"],
                &["MGET", "r:1", "x"],
                &["GET", "sel:1"],
                &["GET", "other"],
                &["LMOVE", "rw:1", "w:3", "LEFT", "RIGHT"],
            ],
        )
    });
}

#[test]
fn channels_and_databases() {
    compare(|s| {
        as_user(
            s,
            &["+@all", "~*", "resetchannels", "&news.*", "db=0,2"],
            &[
                &["PUBLISH", "news.a", "m"],
                &["PUBLISH", "sport", "m"],
                &["SPUBLISH", "sport", "m"],
                &["GET", "k"],
                &["SELECT", "1"],
                &["SELECT", "2"],
                &["GET", "k"],
                &["DBSIZE"],
                &["MOVE", "k", "1"],
                &["SWAPDB", "0", "1"],
                &["FLUSHALL"],
                &["PING"],
            ],
        )
    });
}

#[test]
fn multi_queue_and_exec_recheck() {
    compare(|s| {
        let mut t = as_user(
            s,
            &["+@all", "~*", "&*", "-lpush"],
            &[&["MULTI"], &["LPUSH", "l", "a"], &["EXEC"], &["MULTI"]],
        );
        // Queued while allowed, then the rules change before EXEC.
        let mut c = s.conn();
        step(&mut t, &mut c, &["AUTH", "u", "pw"]);
        step(&mut t, &mut c, &["MULTI"]);
        step(&mut t, &mut c, &["GET", "k"]);
        step(&mut t, &mut c, &["SET", "k", "v"]);
        step(&mut t, &mut c, &["PUBLISH", "ch", "m"]);
        let mut admin = s.conn();
        step(
            &mut t,
            &mut admin,
            &[
                "ACL",
                "SETUSER",
                "u",
                "-get",
                "resetkeys",
                "%R~k",
                "resetchannels",
            ],
        );
        step(&mut t, &mut c, &["EXEC"]);
        // The denials at EXEC are logged in the multi context.
        let log = admin.call(&["ACL", "LOG"]);
        t.push(("ACL LOG fields".into(), log_fields(&log).into_bytes()));
        t
    });
}

/// The fields of ACL LOG entries that do not depend on time or the connection.
fn log_fields(reply: &[u8]) -> String {
    let s = String::from_utf8_lossy(reply).into_owned();
    let lines: Vec<&str> = s.split("\r\n").collect();
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        if matches!(*l, "count" | "reason" | "context" | "object" | "username") {
            let v = match lines.get(i + 1) {
                Some(n) if n.starts_with(':') => Some(*n),
                _ => lines.get(i + 2).copied(),
            };
            if let Some(v) = v {
                out.push_str(&format!("{l}={v} "));
            }
        }
    }
    out
}

#[test]
fn acl_log_entries_and_auth_errors() {
    compare(|s| {
        let mut t = as_user(
            s,
            &["+get", "~k*", "resetchannels"],
            &[
                &["GET", "x"],
                &["SET", "k", "v"],
                &["SET", "k", "v"],
                &["MULTI"],
                &["DEL", "k"],
                &["DISCARD"],
            ],
        );
        let mut c = s.conn();
        step(&mut t, &mut c, &["AUTH", "nosuch", "pw"]);
        step(&mut t, &mut c, &["AUTH", "u", "wrong"]);
        step(&mut t, &mut c, &["AUTH", "pw"]);
        step(&mut t, &mut c, &["AUTH", "a", "b", "c"]);
        step(&mut t, &mut c, &["HELLO", "3", "AUTH", "u", "wrong"]);
        let mut admin = s.conn();
        let log = admin.call(&["ACL", "LOG"]);
        t.push(("ACL LOG fields".into(), log_fields(&log).into_bytes()));
        step(&mut t, &mut admin, &["ACL", "LOG", "RESET"]);
        step(&mut t, &mut admin, &["ACL", "LOG"]);
        t
    });
}

#[test]
fn requirepass_sets_default_password() {
    let s = Server::ours(&["--requirepass", "sekret"]);
    let mut c = s.conn();
    assert!(c.call(&["GET", "k"]).starts_with(b"-NOAUTH"));
    assert_eq!(
        c.call(&["AUTH", "bad"]),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(c.call(&["AUTH", "sekret"]), b"+OK\r\n");
    assert_eq!(c.call(&["AUTH", "default", "sekret"]), b"+OK\r\n");
    assert_eq!(
        c.call(&["CONFIG", "SET", "requirepass", "other"]),
        b"+OK\r\n"
    );
    let mut d = s.conn();
    assert_eq!(d.call(&["AUTH", "other"]), b"+OK\r\n");
    assert_eq!(c.call(&["CONFIG", "SET", "requirepass", ""]), b"+OK\r\n");
    let mut e = s.conn();
    assert_eq!(e.call(&["PING"]), b"+PONG\r\n");
}

#[test]
fn deleted_user_is_disconnected() {
    let s = Server::ours(&[]);
    let mut admin = s.conn();
    assert_eq!(
        admin.call(&["ACL", "SETUSER", "z", "on", "nopass", "+@all", "~*"]),
        b"+OK\r\n"
    );
    let mut c = s.conn();
    assert_eq!(c.call(&["AUTH", "z", "x"]), b"+OK\r\n");
    // Disabling does not disconnect (as upstream); deleting does.
    assert_eq!(admin.call(&["ACL", "SETUSER", "z", "off"]), b"+OK\r\n");
    assert_eq!(c.call(&["PING"]), b"+PONG\r\n");
    assert_eq!(admin.call(&["ACL", "DELUSER", "z"]), b":1\r\n");
    assert!(c.closed_within(Duration::from_secs(2)));
    // Deleting oneself: the reply, then the close.
    admin.call(&["ACL", "SETUSER", "z", "on", "nopass", "+@all", "~*"]);
    let mut c = s.conn();
    c.call(&["AUTH", "z", "x"]);
    assert_eq!(c.call(&["ACL", "DELUSER", "z"]), b":1\r\n");
    assert!(c.closed_within(Duration::from_secs(2)));
}

#[test]
fn aclfile_save_load_roundtrip() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("valkey-rs-acl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("users.acl");
    std::fs::write(&path, "user default on nopass ~* &* +@all\n").unwrap();
    let p = path.to_string_lossy().into_owned();
    let s = Server::ours(&["--aclfile", &p]);
    let mut c = s.conn();
    assert_eq!(
        c.call(&[
            "ACL",
            "SETUSER",
            "alice",
            "on",
            ">pw",
            "~a*",
            "+get",
            "(+set ~b*)"
        ]),
        b"+OK\r\n"
    );
    assert_eq!(c.call(&["ACL", "SAVE"]), b"+OK\r\n");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("user alice on #"), "{text}");
    let before = c.call(&["ACL", "LIST"]);
    assert_eq!(c.call(&["ACL", "DELUSER", "alice"]), b":1\r\n");
    assert_eq!(c.call(&["ACL", "LOAD"]), b"+OK\r\n");
    assert_eq!(c.call(&["ACL", "LIST"]), before);
    // A broken file changes nothing.
    std::fs::write(
        &path,
        "user default on nopass ~* &* +@all\nuser bob on +nosuch\n",
    )
    .unwrap();
    let r = c.call(&["ACL", "LOAD"]);
    assert!(r.starts_with(b"-ERR "), "{}", escape(&r));
    assert!(escape(&r).contains(":2: "), "{}", escape(&r));
    assert_eq!(c.call(&["ACL", "LIST"]), before);
    drop(c);
    drop(s);
    // At start-up a broken file refuses to start, naming the line.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_valkey-rs-server"))
        .args(["--port", "0", "--aclfile", &p])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains(":2: "), "{all}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A subscriber of user `u`: authenticates, subscribes with `cmd` to `chan`.
fn subscriber(s: &Server, resp3: bool, cmd: &str, chan: &str) -> Conn {
    let mut c = s.conn();
    if resp3 {
        let r = c.call(&["HELLO", "3", "AUTH", "u", "pw"]);
        assert!(r.starts_with(b"%"), "{}: {}", s.kind.name(), escape(&r));
    } else {
        expect(s, &c.call(&["AUTH", "u", "pw"]), b"+OK\r\n");
    }
    let r = c.call(&[cmd, chan]);
    assert!(
        escape(&r).contains(&cmd.to_ascii_lowercase()),
        "{}: {}",
        s.kind.name(),
        escape(&r)
    );
    c
}

/// Whether the connection still answers (PING works in subscribed mode too).
fn answers(c: &mut Conn) -> bool {
    c.send(&["PING"]).is_ok() && c.read_reply().is_ok_and(|r| !r.is_empty())
}

/// Subscribers whose channel rights are revoked by ACL SETUSER are disconnected, as
/// upstream's ACLKillPubsubClientsIfNeeded: channels (glob-matched), patterns (literal),
/// shard channels, rules moved into selectors, clearselectors, and the running client
/// itself (its reply, then the close). Subscribers still allowed and plain clients stay.
#[test]
fn revoked_subscribers_are_disconnected() {
    for s in servers(&[]) {
        let name = s.kind.name();
        let mut admin = s.conn();
        let setuser = |admin: &mut Conn, rules: &[&str]| {
            let mut argv = vec!["ACL", "SETUSER", "u"];
            argv.extend_from_slice(rules);
            expect(&s, &admin.call(&argv), b"+OK\r\n");
        };
        setuser(
            &mut admin,
            &[
                "reset",
                "on",
                ">pw",
                "+@all",
                "~*",
                "resetchannels",
                "&a*",
                "&b*",
            ],
        );
        let mut sub_a = subscriber(&s, false, "SUBSCRIBE", "a1");
        let mut sub_b = subscriber(&s, false, "SUBSCRIBE", "b1");
        let mut psub_b = subscriber(&s, false, "PSUBSCRIBE", "b*");
        let mut ssub_b = subscriber(&s, true, "SSUBSCRIBE", "b2");
        let mut plain = s.conn();
        expect(&s, &plain.call(&["AUTH", "u", "pw"]), b"+OK\r\n");
        // Adding a channel revokes nothing.
        setuser(&mut admin, &["&c*"]);
        for c in [&mut sub_a, &mut sub_b, &mut psub_b, &mut ssub_b] {
            assert!(answers(c), "{name}: closed after a grant");
        }
        setuser(&mut admin, &["resetchannels", "&a*"]);
        for c in [&mut sub_b, &mut psub_b, &mut ssub_b] {
            assert!(c.closed_within(Duration::from_secs(2)), "{name}: kept");
        }
        assert!(answers(&mut sub_a), "{name}: allowed subscriber closed");
        assert!(answers(&mut plain), "{name}: plain client closed");
        // A pattern is allowed only by the same pattern, not by one matching it.
        setuser(&mut admin, &["resetchannels", "&*x"]);
        assert!(sub_a.closed_within(Duration::from_secs(2)), "{name}");
        setuser(&mut admin, &["resetchannels", "&x*"]);
        let mut psub = subscriber(&s, false, "PSUBSCRIBE", "x*");
        setuser(&mut admin, &["resetchannels", "&x*y"]);
        assert!(psub.closed_within(Duration::from_secs(2)), "{name}");
        // A right kept only by a selector is still a right; clearselectors drops it.
        setuser(&mut admin, &["resetchannels", "&x*"]);
        let mut sub_x = subscriber(&s, false, "SUBSCRIBE", "x1");
        setuser(&mut admin, &["resetchannels", "(&x* +get)"]);
        assert!(answers(&mut sub_x), "{name}: selector right ignored");
        setuser(&mut admin, &["clearselectors"]);
        assert!(sub_x.closed_within(Duration::from_secs(2)), "{name}");
        // The running client revokes its own channel: reply, then close.
        setuser(&mut admin, &["resetchannels", "&x*"]);
        let mut me = subscriber(&s, true, "SUBSCRIBE", "x2");
        expect(
            &s,
            &me.call(&["ACL", "SETUSER", "u", "resetchannels"]),
            b"+OK\r\n",
        );
        assert!(me.closed_within(Duration::from_secs(2)), "{name}");
        assert!(answers(&mut plain), "{name}: plain client closed");
    }
}

/// ACL LOAD: clients of users gone from the file are closed; subscribers of kept users
/// only if their channels were revoked; other clients of changed users stay (as
/// upstream since 7.2).
#[test]
fn acl_load_closes_deleted_users_and_revoked_subscribers() {
    for (i, t) in common::targets().iter().enumerate() {
        let dir =
            std::env::temp_dir().join(format!("valkey-rs-acl-load-{}-{}", std::process::id(), i));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users.acl");
        let p = path.to_string_lossy().into_owned();
        std::fs::write(&path, "user default on nopass ~* &* +@all\n").unwrap();
        let s = t.start(&["--aclfile", &p]);
        let name = s.kind.name();
        let mut admin = s.conn();
        for rules in [
            &[
                "u",
                "on",
                ">pw",
                "+@all",
                "~*",
                "resetchannels",
                "&a*",
                "&z*",
            ][..],
            &["v", "on", ">pw", "+@all", "~*"][..],
        ] {
            let mut argv = vec!["ACL", "SETUSER"];
            argv.extend_from_slice(rules);
            expect(&s, &admin.call(&argv), b"+OK\r\n");
        }
        let mut sub_a = subscriber(&s, false, "SUBSCRIBE", "a1");
        let mut sub_z = subscriber(&s, false, "SUBSCRIBE", "z1");
        let mut plain = s.conn();
        expect(&s, &plain.call(&["AUTH", "u", "pw"]), b"+OK\r\n");
        let mut v = s.conn();
        expect(&s, &v.call(&["AUTH", "v", "pw"]), b"+OK\r\n");
        std::fs::write(
            &path,
            "user default on nopass ~* &* +@all\n\
             user u on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 \
             ~* resetchannels &z* +@all -get\n",
        )
        .unwrap();
        expect(&s, &admin.call(&["ACL", "LOAD"]), b"+OK\r\n");
        assert!(sub_a.closed_within(Duration::from_secs(2)), "{name}");
        assert!(v.closed_within(Duration::from_secs(2)), "{name}");
        assert!(answers(&mut sub_z), "{name}: allowed subscriber closed");
        assert!(answers(&mut plain), "{name}: plain client of u closed");
        // The new rules apply to the kept connection.
        assert!(
            plain.call(&["GET", "k"]).starts_with(b"-NOPERM"),
            "{name}: old rules still in force"
        );
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `acl-pubsub-default`: CONFIG GET/SET, the channel rights of new users and selectors
/// and of `reset`; existing users keep theirs.
#[test]
fn acl_pubsub_default_directive() {
    compare(|s| {
        let mut t = Transcript::new();
        let mut c = s.conn();
        for argv in [
            &["CONFIG", "GET", "acl-pubsub-default"][..],
            &["CONFIG", "SET", "acl-pubsub-default", "bogus"][..],
            &["ACL", "SETUSER", "n1", "(+get)"][..],
            &["CONFIG", "SET", "acl-pubsub-default", "allchannels"][..],
            &["CONFIG", "GET", "acl-pubsub-default"][..],
            &["ACL", "SETUSER", "n2", "(+get)"][..],
            &["ACL", "SETUSER", "n1", "(+set)"][..],
            &["ACL", "LIST"][..],
            &["ACL", "GETUSER", "n2"][..],
            &["CONFIG", "SET", "acl-pubsub-default", "resetchannels"][..],
            &["ACL", "SETUSER", "n2", "reset"][..],
            &["CONFIG", "SET", "acl-pubsub-default", "ALLCHANNELS"][..],
            &["ACL", "SETUSER", "n1", "reset", "&x"][..],
            &["ACL", "SETUSER", "n1", "reset"][..],
            &["ACL", "LIST"][..],
        ] {
            step(&mut t, &mut c, argv);
        }
        t
    });
    // In the config file, it applies to the `user` lines whatever their order.
    for s in servers(&[
        "--user",
        "w",
        "on",
        "nopass",
        "--acl-pubsub-default",
        "allchannels",
    ]) {
        let mut c = s.conn();
        let r = c.call(&["ACL", "LIST"]);
        assert!(
            escape(&r).contains("user w on nopass &* -@all"),
            "{}: {}",
            s.kind.name(),
            escape(&r)
        );
    }
}

/// CONFIG REWRITE without an aclfile writes the users as `user` lines (replacing the old
/// ones in place, blanking extra ones, appending new ones), as upstream's
/// rewriteConfigUserOption. The in-place part and the user lines equal the reference's.
#[test]
fn config_rewrite_writes_user_lines() {
    let mut bins = vec![std::path::PathBuf::from(env!(
        "CARGO_BIN_EXE_valkey-rs-server"
    ))];
    if let Some(r) = common::reference_binary() {
        bins.push(r);
    }
    let mut results: Vec<(String, Vec<String>)> = Vec::new();
    for (i, bin) in bins.iter().enumerate() {
        let dir = std::env::temp_dir().join(format!(
            "valkey-rs-acl-rewrite-{}-{}",
            std::process::id(),
            i
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("valkey.conf");
        let port = common::free_port();
        std::fs::write(
            &conf,
            format!(
                "port {port}\nuser zed on nopass +get\n# comment\n\
                 user default on nopass ~* &* +@all\nsave \"\"\nbind 127.0.0.1\n"
            ),
        )
        .unwrap();
        let mut child = std::process::Command::new(bin)
            .arg(&conf)
            .current_dir(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut c = None;
        common::wait_for(Duration::from_secs(5), || {
            c = Conn::try_connect(port).ok();
            c.is_some()
        });
        let mut c = c.expect("server did not start");
        let mut snapshots = Vec::new();
        for step in [
            &[
                &["ACL", "SETUSER", "amy", "on", ">x", "~a*"][..],
                &["ACL", "SETUSER", "zed", "off"][..],
            ][..],
            &[&["ACL", "DELUSER", "zed", "amy"][..]][..],
        ] {
            for argv in step {
                assert!(!c.call(argv).starts_with(b"-"), "{}", argv.join(" "));
            }
            assert_eq!(c.call(&["CONFIG", "REWRITE"]), b"+OK\r\n");
            let text = std::fs::read_to_string(&conf).unwrap();
            // The part before the signature, and the appended user lines.
            let (head, tail) = text
                .split_once("# Generated by CONFIG REWRITE")
                .unwrap_or((&text, ""));
            // (Upstream also puts a blank line before the signature: a general
            // CONFIG REWRITE difference, not about users.)
            let head = head
                .trim_end_matches('\n')
                .replace(&format!("port {port}"), "port P");
            let users: Vec<&str> = tail.lines().filter(|l| l.starts_with("user ")).collect();
            snapshots.push(format!("{head}|{}", users.join("\n")));
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        results.push((bin.display().to_string(), snapshots));
    }
    assert!(
        results[0].1[0].contains("user amy on #"),
        "{:?}",
        results[0]
    );
    for r in &results[1..] {
        assert_eq!(results[0].1, r.1, "{} vs {}", results[0].0, r.0);
    }
}

/// SORT's BY (with `*`) and GET patterns read keys the command does not declare: they
/// are refused unless one selector allows SORT with read access to every key.
#[test]
fn sort_by_get_patterns_need_full_key_access() {
    let steps: &[&[&str]] = &[
        &["SORT", "a2", "BY", "nosort", "GET", "secret*"],
        &["SORT", "a2", "BY", "nosort"],
        &["SORT", "a2", "GET", "#"],
        &["SORT", "a2", "BY", "x*", "ALPHA"],
        &["SORT_RO", "a2", "GET", "secret*"],
        &[
            "SORT", "a2", "BY", "nosort", "GET", "secret*", "STORE", "a3",
        ],
        &["SORT", "a2", "GET", "#", "LIMIT", "x", "y"],
        &["SORT", "a2", "BY", "w*", "GET", "#", "GET", "secret*"],
    ];
    compare(|s| {
        let mut admin = s.conn();
        let mut t = Transcript::new();
        step(&mut t, &mut admin, &["FLUSHALL"]);
        step(&mut t, &mut admin, &["SET", "secretkey", "TOPSECRET"]);
        step(&mut t, &mut admin, &["SET", "wkey", "1"]);
        step(&mut t, &mut admin, &["RPUSH", "a2", "key"]);
        for rules in [
            &["~a*", "&*", "+@all"][..],
            &["%R~*", "&*", "+@all"],
            &["%W~*", "~a*", "+@all"],
            &["~a*", "+@all", "(~* +get)"],
            &["~a*", "+@all", "(~* +sort +sort_ro)"],
            &["allkeys", "-@all", "+sort", "+sort_ro"],
        ] {
            t.extend(as_user(s, rules, steps));
        }
        t
    });
}

/// A refused EXEC ends the transaction: EXECABORT with the refusal (arity, NOPERM,
/// NOAUTH, the RESP2 subscriber context), as upstream's rejectCommand.
#[test]
fn refused_exec_aborts_the_transaction() {
    compare(|s| {
        let mut t = Transcript::new();
        let mut c = s.conn();
        for st in [
            &["MULTI"][..],
            &["SET", "a", "1"],
            &["EXEC", "x"],
            &["EXEC"],
            &["EXEC", "x"],
            &["GET", "a"],
        ] {
            step(&mut t, &mut c, st);
        }
        let mut admin = s.conn();
        step(
            &mut t,
            &mut admin,
            &["ACL", "SETUSER", "nx", "on", ">p", "~*", "+@all", "-exec"],
        );
        let mut n = s.conn();
        for st in [
            &["AUTH", "nx", "p"][..],
            &["MULTI"],
            &["SET", "a", "1"],
            &["EXEC"],
            &["EXEC"],
            &["PING"],
            &["GET", "a"],
        ] {
            step(&mut t, &mut n, st);
        }
        let mut sub = s.conn();
        step(&mut t, &mut sub, &["SUBSCRIBE", "ch"]);
        step(&mut t, &mut sub, &["EXEC"]);
        step(&mut t, &mut admin, &["CONFIG", "SET", "requirepass", "pw"]);
        let mut anon = s.conn();
        for st in [
            &["EXEC"][..],
            &["MULTI"],
            &["EXEC", "x"],
            &["AUTH", "pw"],
            &["EXEC"],
        ] {
            step(&mut t, &mut anon, st);
        }
        step(&mut t, &mut admin, &["CONFIG", "SET", "requirepass", ""]);
        step(&mut t, &mut admin, &["INFO", "errorstats"]);
        t
    });
}

/// ACL LOAD of broken files: upstream's error assembly byte for byte (the file path
/// replaced by `<path>`): lines split on single spaces, every rule tried, each unknown
/// command or category reported, other errors only the first of the line.
#[test]
fn acl_load_error_texts() {
    const D: &str = "user default on nopass ~* &* +@all\n";
    let files: &[&str] = &[
        "user x on bogus\n",
        "user x on +nosuch bogus +@nocat bogus2 ~* ~a*\n",
        "user x on \"quoted rule\"\n",
        "user x on \"unbalanced\n",
        "user x on ~* ~a* +nosuch >p <nope\n",
        "user x on\nuser x off\nfoo\nUSER z\nuser\n",
        "user x on +get|x|y +client|kill|a ~a* %Q~x\n",
        "user x\ty on\n",
        "user x on  >p\tresetkeys   ~k\n",
        "user x on >\"a b\"\n",
    ];
    let mut runs: Vec<(String, Vec<String>)> = Vec::new();
    for (i, t) in common::targets().iter().enumerate() {
        let dir =
            std::env::temp_dir().join(format!("valkey-rs-acl-errs-{}-{}", std::process::id(), i));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users.acl");
        let p = path.to_string_lossy().into_owned();
        std::fs::write(&path, D).unwrap();
        let s = t.start(&["--aclfile", &p]);
        let mut c = s.conn();
        let mut got = Vec::new();
        for f in files {
            std::fs::write(&path, format!("{D}{f}")).unwrap();
            let r = escape(&c.call(&["ACL", "LOAD"])).replace(&p, "<path>");
            let l = escape(&c.call(&["ACL", "LIST"]));
            got.push(format!("{f:?} => {r} / {l}"));
        }
        std::fs::remove_file(&path).unwrap();
        got.push(escape(&c.call(&["ACL", "LOAD"])).replace(&p, "<path>"));
        runs.push((s.kind.name().to_string(), got));
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let [(a, x), (b, y)] = &runs[..] {
        assert_eq!(x.len(), y.len());
        for (l, r) in x.iter().zip(y) {
            assert_eq!(l, r, "{a} vs {b}");
        }
    }
}

/// Config-file `user` lines: each user starts from scratch (`default` is reset first,
/// so it loses `+@all ~* &*` and gets the `acl-pubsub-default` channels).
#[test]
fn config_user_lines_start_from_scratch() {
    let cases: &[(&[&str], Option<&str>)] = &[
        (&["default", "on", ">pw", "+@read"], Some("pw")),
        (&["default", "on", "nopass", "~*", "+@all"], None),
        (&["default", "on", "nopass", "~a*", "+get"], None),
        (&["default", "on", "nopass", "&x", "~*", "+@all"], None),
    ];
    for (rules, pass) in cases {
        let mut runs: Vec<(String, Transcript)> = Vec::new();
        for t in common::targets() {
            let mut extra = vec!["--user"];
            extra.extend_from_slice(rules);
            let s = t.start(&extra);
            let mut c = s.conn();
            let mut tr = Transcript::new();
            if let Some(p) = pass {
                step(&mut tr, &mut c, &["AUTH", p]);
            }
            for st in [
                &["ACL", "LIST"][..],
                &["FLUSHALL"],
                &["GET", "a1"],
                &["GET", "b1"],
                &["PUBLISH", "x", "m"],
                &["PUBLISH", "y", "m"],
            ] {
                step(&mut tr, &mut c, st);
            }
            runs.push((s.kind.name().to_string(), tr));
        }
        if let [(a, x), (b, y)] = &runs[..] {
            assert_eq!(x.len(), y.len());
            for (l, r) in x.iter().zip(y) {
                assert_eq!(
                    escape(&l.1),
                    escape(&r.1),
                    "{:?} {}: {a} vs {b}",
                    rules,
                    l.0
                );
            }
        }
    }
}

/// Bad `user` directives and a bad aclfile: both servers refuse to start, with
/// upstream's texts (the fatal config error block; the ACL load errors).
#[test]
fn bad_user_directives_and_aclfile_refuse_to_start() {
    let dir = std::env::temp_dir().join(format!("valkey-rs-acl-start-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.acl");
    std::fs::write(&bad, "user x on bogus\n").unwrap();
    let missing = dir.join("missing.acl");
    let (bad, missing) = (
        bad.to_string_lossy().into_owned(),
        missing.to_string_lossy().into_owned(),
    );
    let cases: &[(&str, &[&str])] = &[
        ("user x on bogus\n", &[]),
        ("user x on >p +@all\nuser x on >q\n", &[]),
        ("user x on >p (~a* +get\n", &[]),
        ("user x on >p ~* ~a*\n", &[]),
        ("user x on >p +nosuchcmd\n", &[]),
        ("", &["--aclfile", &bad]),
        ("", &["--aclfile", &missing]),
    ];
    let mut bins = vec![(
        "valkey-rs".to_string(),
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_valkey-rs-server")),
    )];
    if let Some(r) = common::reference_binary() {
        bins.push(("reference".to_string(), r));
    }
    // The log lines that matter, without pid/time prefixes.
    let relevant = |out: &str| -> Vec<String> {
        out.lines()
            .filter_map(|l| {
                let l = match l.find(" # ") {
                    Some(i) => &l[i + 3..],
                    None => l,
                };
                let keep = l.starts_with("***")
                    || l.starts_with("Reading the configuration")
                    || l.starts_with(">>>")
                    || l.starts_with("Error")
                    || l.starts_with("Critical")
                    || l.starts_with("Aborting");
                keep.then(|| l.to_string())
            })
            .collect()
    };
    for (i, (conf, extra)) in cases.iter().enumerate() {
        let cfg = dir.join(format!("c{i}.conf"));
        std::fs::write(&cfg, conf).unwrap();
        let mut seen: Vec<(String, Vec<String>)> = Vec::new();
        for (name, bin) in &bins {
            let out = std::process::Command::new(bin)
                .arg(&cfg)
                .args(["--port", "0", "--save", ""])
                .args(*extra)
                .output()
                .unwrap();
            assert!(!out.status.success(), "{name}: case {i} started");
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let lines = relevant(&all);
            assert!(!lines.is_empty(), "{name}: case {i}: {all}");
            seen.push((name.clone(), lines));
        }
        if let [(a, x), (b, y)] = &seen[..] {
            assert_eq!(x, y, "case {i}: {a} vs {b}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
