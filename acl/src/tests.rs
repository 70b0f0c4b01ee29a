use super::*;

const READ: u64 = 1 << 1;
const WRITE: u64 = 1 << 2;
const KEYSPACE: u64 = 1;
const STRING: u64 = 1 << 7;
const PUBSUB: u64 = 1 << 12;
const ADMIN: u64 = 1 << 13;
const FAST: u64 = 1 << 14;
const SLOW: u64 = 1 << 15;
const DANGEROUS: u64 = 1 << 17;
const CONNECTION: u64 = 1 << 18;

fn table() -> Arc<CommandTable> {
    let c = |id, name: &str, categories, parent, no_auth| CommandSpec {
        id,
        name: name.to_string(),
        categories,
        parent,
        no_auth,
    };
    Arc::new(
        CommandTable::new(vec![
            c(0, "get", READ | STRING | FAST, None, false),
            c(1, "set", WRITE | STRING | SLOW, None, false),
            c(2, "client", SLOW, None, false),
            c(
                3,
                "client|kill",
                ADMIN | SLOW | DANGEROUS | CONNECTION,
                Some(2),
                false,
            ),
            c(4, "client|id", SLOW | CONNECTION, Some(2), false),
            c(5, "select", FAST | CONNECTION, None, false),
            c(6, "debug", ADMIN | SLOW | DANGEROUS, None, false),
            c(7, "publish", PUBSUB | FAST, None, false),
            c(8, "psubscribe", PUBSUB | SLOW, None, false),
            c(9, "auth", FAST | CONNECTION, None, true),
            c(
                10,
                "flushall",
                KEYSPACE | WRITE | SLOW | DANGEROUS,
                None,
                false,
            ),
            c(11, "ping", FAST | CONNECTION, None, false),
        ])
        .unwrap(),
    )
}

fn acl() -> Acl {
    Acl::new(table())
}

fn set(a: &mut Acl, name: &str, rules: &str) -> Result<(), String> {
    let r: Vec<&[u8]> = rules
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::as_bytes)
        .collect();
    a.set_user(name.as_bytes(), &r).map_err(|e| e.to_string())
}

fn line(a: &Acl, name: &str) -> String {
    describe_user(a.get_user(name.as_bytes()).unwrap())
}

const RK: u32 = key_flags::RO | key_flags::ACCESS;
const WK: u32 = key_flags::RW | key_flags::UPDATE;

fn chk(
    a: &Acl,
    name: &str,
    cmd: usize,
    arg1: Option<&[u8]>,
    keys: &[(&[u8], u32)],
    chans: &[(&[u8], bool)],
    db: i64,
) -> Result<(), Denied> {
    let keys: Vec<CheckKey> = keys
        .iter()
        .enumerate()
        .map(|(i, (k, f))| CheckKey {
            key: k,
            flags: *f,
            pos: i + 1,
        })
        .collect();
    let chans: Vec<CheckChannel> = chans
        .iter()
        .enumerate()
        .map(|(i, (c, p))| CheckChannel {
            channel: c,
            is_pattern: *p,
            pos: i + 1,
        })
        .collect();
    let dbs = [CheckDb { db, pos: 0 }];
    let u = a.get_user(name.as_bytes()).unwrap();
    u.check_all_perm(
        a.table(),
        &CheckRequest {
            cmd_id: cmd,
            first_arg: arg1,
            keys: &keys,
            channels: &chans,
            dbs: &dbs,
        },
    )
}

#[test]
fn default_user() {
    let a = acl();
    // Observed on the reference (9.1.2): ACL LIST.
    assert_eq!(line(&a, "default"), "user default on nopass ~* &* +@all");
    let i = a.get_user(b"default").unwrap().getuser_info();
    assert_eq!(i.flags, vec!["on", "nopass"]);
    assert_eq!(i.root.databases, "alldbs");
    assert_eq!(i.root.channels, b"&*");
}

#[test]
fn reference_list_lines() {
    // Each pair: rules, then the reference's ACL LIST line.
    let cases = [
        ("on nopass ~* +@all db=0,1", "user u on nopass ~* resetchannels db=0,1 +@all"),
        ("db=5 db=3", "user u off resetchannels db=3 -@all"),
        ("(db=2 ~a* +get)", "user u off resetchannels -@all (~a* resetchannels db=2 -@all +get)"),
        ("resetdbs", "user u off resetchannels resetdbs -@all"),
        ("db=0 (db=1) alldbs", "user u off resetchannels -@all (resetchannels db=1 -@all)"),
        ("db=007,3", "user u off resetchannels db=3,7 -@all"),
        ("db=+3", "user u off resetchannels db=3 -@all"),
        ("DB=3,1,2", "user u off resetchannels db=1,2,3 -@all"),
        ("db=1 reset", "user u off resetchannels -@all"),
        ("db=2147483647", "user u off resetchannels db=2147483647 -@all"),
        ("sanitize-payload", "user u off resetchannels -@all"),
        ("skip-sanitize-payload", "user u off resetchannels -@all"),
        ("%RW", "user u off ~ resetchannels -@all"),
        ("%R~", "user u off %R~ resetchannels -@all"),
        ("%rw~a %R~a %W~b %RW~c %wr~d", "user u off ~a %W~b ~c ~d resetchannels -@all"),
        ("%W~x ~x", "user u off ~x resetchannels -@all"),
        ("+select|0 +debug|object +client|kill", "user u off resetchannels -@all +select|0 +debug|object +client|kill"),
        ("+@all -client +client|kill -@dangerous +get -get +GET", "user u off resetchannels +@all -client +client|kill -@dangerous +get"),
        ("-@all +client -client|kill +@read -@read", "user u off resetchannels -@all +client -client|kill -@read"),
        (">pw >pw #5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8", "user u off #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 #5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8 resetchannels -@all"),
        ("( +get ~a )", "user u off resetchannels -@all (~a resetchannels -@all +get)"),
        ("(+get ~a) clearselectors (~b)", "user u off resetchannels -@all (~b resetchannels -@all)"),
        ("+@ALL", "user u off resetchannels +@all"),
        ("+GET +Client|KILL", "user u off resetchannels -@all +get +client|kill"),
        ("+@all -debug +debug|object", "user u off resetchannels +@all -debug +debug|object"),
        ("()", "user u off resetchannels -@all (resetchannels -@all)"),
    ];
    for (rules, want) in cases {
        let mut a = acl();
        set(&mut a, "u", rules).unwrap_or_else(|e| panic!("{rules}: {e}"));
        assert_eq!(line(&a, "u"), want, "rules: {rules}");
    }
}

#[test]
fn reference_errors() {
    let cases = [
        ("db=", "Error in ACL SETUSER modifier 'db=': Syntax error"),
        ("db=abc", "Error in ACL SETUSER modifier 'db=abc': Syntax error"),
        ("db=-1", "Error in ACL SETUSER modifier 'db=-1': The provided database ID is out of range"),
        ("db=0,,1", "Error in ACL SETUSER modifier 'db=0,,1': Syntax error"),
        ("db=2147483648", "Error in ACL SETUSER modifier 'db=2147483648': The provided database ID is out of range"),
        ("db=12345678987654321", "Error in ACL SETUSER modifier 'db=12345678987654321': The provided database ID is out of range"),
        ("-select|0", "Error in ACL SETUSER modifier '-select|0': Unknown command or category name in ACL"),
        ("+client|kill|x", "Error in ACL SETUSER modifier '+client|kill|x': Allowing first-arg of a subcommand is not supported"),
        ("+client|kill|", "Error in ACL SETUSER modifier '+client|kill|': Allowing first-arg of a subcommand is not supported"),
        ("+select|", "Error in ACL SETUSER modifier '+select|': Syntax error"),
        ("+@foo", "Error in ACL SETUSER modifier '+@foo': Unknown command or category name in ACL"),
        ("+nosuch", "Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL"),
        ("foo", "Error in ACL SETUSER modifier 'foo': Syntax error"),
        ("~* ~a", "Error in ACL SETUSER modifier '~a': Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns"),
        ("&* &a", "Error in ACL SETUSER modifier '&a': Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels"),
        ("<nope", "Error in ACL SETUSER modifier '<nope': The password you are trying to remove from the user does not exist"),
        ("#abc", "Error in ACL SETUSER modifier '#abc': The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"),
        ("(+get", "Unmatched parenthesis in acl selector starting at '(+get'."),
        ("(~a +get", "Unmatched parenthesis in acl selector starting at '(~a'."),
        ("(x)", "Error in ACL SETUSER modifier '(x)': Syntax error"),
        (")", "Error in ACL SETUSER modifier ')': Syntax error"),
        ("(~* ~a)", "Error in ACL SETUSER modifier '(~* ~a)': Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns"),
        ("%X~a", "Error in ACL SETUSER modifier '%X~a': Syntax error"),
        ("%RR~a", "Error in ACL SETUSER modifier '%RR~a': Syntax error"),
        ("%~a", "Error in ACL SETUSER modifier '%~a': Syntax error"),
        ("+a|b|c", "Error in ACL SETUSER modifier '+a|b|c': Unknown command or category name in ACL"),
    ];
    for (rules, want) in cases {
        let mut a = acl();
        assert_eq!(set(&mut a, "u", rules).unwrap_err(), want, "rules: {rules}");
        assert!(
            a.get_user(b"u").is_none(),
            "nothing created on error: {rules}"
        );
    }
}

#[test]
fn atomic() {
    let mut a = acl();
    set(&mut a, "u", "on >p ~k +get").unwrap();
    let before = line(&a, "u");
    assert!(set(&mut a, "u", "off resetpass ~x +nosuch").is_err());
    assert_eq!(line(&a, "u"), before);
    assert!(a.check_credentials(b"u", b"p").is_ok());
    assert_eq!(
        a.check_credentials(b"u", b"q").err(),
        Some(AuthError::WrongPassword)
    );
    assert_eq!(
        a.check_credentials(b"x", b"q").err(),
        Some(AuthError::NoSuchUser)
    );
    set(&mut a, "u", "off").unwrap();
    assert_eq!(
        a.check_credentials(b"u", b"p").err(),
        Some(AuthError::Disabled)
    );
    assert!(!a.del_user(b"default"));
    assert!(a.del_user(b"u"));
}

#[test]
fn round_trip() {
    let rules = [
        "on nopass ~* +@all db=0,1",
        "on >a >b %R~r:* %W~w:* ~rw:* &ch:* -@all +get +client|kill +select|0 -@dangerous",
        "off resetchannels +@all -client +client|id (db=2 ~a* +get) (%R~x &y +@read -get)",
        "on nopass resetdbs allkeys allchannels",
    ];
    for r in rules {
        let mut a = acl();
        set(&mut a, "u", r).unwrap();
        let u = a.get_user(b"u").unwrap().clone();
        let l = describe_user(&u);
        let rest = l.strip_prefix("user u ").unwrap();
        let mut b = acl();
        let args = split_args(rest.as_bytes()).unwrap();
        let args: Vec<&[u8]> = args.iter().map(|v| v.as_slice()).collect();
        b.set_user(b"u", &args).unwrap();
        assert_eq!(b.get_user(b"u").unwrap(), &u, "{r} -> {l}");
        // The aclfile round trip too.
        let text = a.to_file_text();
        let c = a.load_from_text("/x.acl", &text).unwrap();
        assert_eq!(c.to_file_text(), text);
    }
}

#[test]
fn check_commands() {
    let mut a = acl();
    set(
        &mut a,
        "u",
        "on nopass ~* -@all +get +client|id +select|0 +@pubsub &*",
    )
    .unwrap();
    assert_eq!(chk(&a, "u", 0, None, &[(b"k", RK)], &[], 0), Ok(()));
    assert_eq!(
        chk(&a, "u", 1, None, &[], &[], 0).unwrap_err().reason,
        DenyReason::Cmd
    );
    assert!(chk(&a, "u", 4, None, &[], &[], 0).is_ok());
    assert!(chk(&a, "u", 3, None, &[], &[], 0).is_err());
    assert!(chk(&a, "u", 2, None, &[], &[], 0).is_err());
    assert!(chk(&a, "u", 5, Some(b"0"), &[], &[], 0).is_ok());
    assert!(chk(&a, "u", 5, Some(b"1"), &[], &[], 0).is_err());
    assert!(chk(&a, "u", 5, None, &[], &[], 0).is_err());
    assert!(chk(&a, "u", 7, None, &[], &[(b"c", false)], 0).is_ok());
    // no_auth commands pass command rules.
    assert!(chk(&a, "u", 9, None, &[], &[], 0).is_ok());
    // +client then -client|kill.
    set(&mut a, "v", "on nopass ~* +@all -client +client|kill").unwrap();
    assert!(chk(&a, "v", 3, None, &[], &[], 0).is_ok());
    assert!(chk(&a, "v", 4, None, &[], &[], 0).is_err());
    set(&mut a, "w", "on nopass ~* -@all +@dangerous -debug").unwrap();
    assert!(chk(&a, "w", 3, None, &[], &[], 0).is_ok());
    assert!(chk(&a, "w", 10, None, &[], &[], 0).is_ok());
    assert!(chk(&a, "w", 6, None, &[], &[], 0).is_err());
}

#[test]
fn check_keys_channels_dbs_selectors() {
    let mut a = acl();
    set(
        &mut a,
        "u",
        "on nopass +@all %R~r:* %W~w:* ~rw:* &news.* &lit",
    )
    .unwrap();
    assert!(chk(&a, "u", 0, None, &[(b"r:1", RK)], &[], 0).is_ok());
    assert!(chk(&a, "u", 0, None, &[(b"w:1", RK)], &[], 0).is_err());
    assert!(chk(&a, "u", 1, None, &[(b"w:1", WK)], &[], 0).is_ok());
    assert!(chk(&a, "u", 1, None, &[(b"r:1", WK)], &[], 0).is_err());
    assert!(chk(
        &a,
        "u",
        1,
        None,
        &[(b"rw:1", WK | key_flags::ACCESS)],
        &[],
        0
    )
    .is_ok());
    assert!(chk(
        &a,
        "u",
        1,
        None,
        &[(b"w:1", WK | key_flags::ACCESS)],
        &[],
        0
    )
    .is_err());
    // Second key denied: its position is reported.
    assert_eq!(
        chk(&a, "u", 0, None, &[(b"r:1", RK), (b"x", RK)], &[], 0),
        Err(Denied {
            reason: DenyReason::Key,
            pos: 2
        })
    );
    assert!(chk(&a, "u", 7, None, &[], &[(b"news.a", false)], 0).is_ok());
    assert!(chk(&a, "u", 8, None, &[], &[(b"news.*", true)], 0).is_ok());
    assert!(chk(&a, "u", 8, None, &[], &[(b"news.a*", true)], 0).is_err());
    assert!(
        chk(&a, "u", 7, None, &[], &[(b"other", false)], 0)
            .unwrap_err()
            .reason
            == DenyReason::Channel
    );
    // Databases.
    set(&mut a, "d", "on nopass ~* &* +@all db=0").unwrap();
    assert!(chk(&a, "d", 0, None, &[(b"k", RK)], &[], 0).is_ok());
    assert_eq!(
        chk(&a, "d", 0, None, &[(b"k", RK)], &[], 1),
        Err(Denied {
            reason: DenyReason::Db,
            pos: 0
        })
    );
    // Selectors are OR-ed; the highest-priority reason wins.
    set(&mut a, "s", "on nopass -@all (+get ~a:*) (+set ~b:* db=0)").unwrap();
    assert!(chk(&a, "s", 0, None, &[(b"a:1", RK)], &[], 3).is_ok());
    assert!(chk(&a, "s", 1, None, &[(b"b:1", WK)], &[], 0).is_ok());
    assert_eq!(
        chk(&a, "s", 1, None, &[(b"b:1", WK)], &[], 1)
            .unwrap_err()
            .reason,
        DenyReason::Cmd
    );
    assert_eq!(
        chk(&a, "s", 0, None, &[(b"b:1", RK)], &[], 0)
            .unwrap_err()
            .reason,
        DenyReason::Key
    );
    let u = a.get_user(b"s").unwrap();
    assert!(u.can_access_key(b"a:x", RK));
    assert!(!u.can_access_channel(b"x", false));
}

#[test]
fn getuser_fields() {
    let mut a = acl();
    set(
        &mut a,
        "u",
        "%rw~a %R~a %W~b &c &d db=2,1 +@all -get (~x +set)",
    )
    .unwrap();
    let i = a.get_user(b"u").unwrap().getuser_info();
    assert_eq!(i.flags, vec!["off"]);
    assert_eq!(i.root.keys, b"~a %W~b");
    assert_eq!(i.root.channels, b"&c &d");
    assert_eq!(i.root.databases, "db=1,2");
    assert_eq!(i.root.commands, "+@all -get");
    assert_eq!(i.selectors.len(), 1);
    assert_eq!(i.selectors[0].commands, "-@all +set");
    assert_eq!(i.selectors[0].channels, b"");
    assert_eq!(i.selectors[0].databases, "alldbs");
}

#[test]
fn aclfile() {
    let a = acl();
    let text = b"user default on nopass ~* &* +@all\n\n  user alice on >pw ~k:* (+get ~x) -@all +get  \r\n";
    let b = a.load_from_text("/tmp/users.acl", text).unwrap();
    assert_eq!(
        String::from_utf8(b.to_file_text()).unwrap(),
        "user alice on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~k:* resetchannels -@all +get (~x resetchannels -@all +get)\nuser default on nopass ~* &* +@all\n"
    );
    let bad = b"user a on\nuser b +nosuch\nfoo\nuser a off\nuser c (~x\nuser\nuser d \"x\n";
    assert_eq!(
        a.load_from_text("/p", bad).unwrap_err(),
        // Observed on the reference's ACL LOAD (9.1.2).
        "/p:2: Error in applying operation '+nosuch': Unknown command or category name in ACL. /p:3 should start with user keyword followed by the username. WARNING: Duplicate user 'a' found on line 4. /p:5: Unmatched parenthesis in selector definition./p:6 should start with user keyword followed by the username. /p:7: Syntax error. WARNING: ACL errors detected, no change to the previously active ACL rules was performed"
    );
    // Without a default user in the file, a fresh default one is created.
    let c = a.load_from_text("/p", b"user x on nopass").unwrap();
    assert_eq!(
        describe_user(c.get_user(b"default").unwrap()),
        "user default on nopass ~* &* +@all"
    );
}

#[test]
fn categories() {
    assert_eq!(category_flag(b"READ"), Some(1 << 1));
    assert_eq!(category_flag(b"scripting"), Some(1 << 20));
    assert_eq!(category_flag(b"all"), None);
    let t = table();
    assert_eq!(
        t.commands_in_category(DANGEROUS),
        vec!["client|kill", "debug", "flushall"]
    );
    assert_eq!(t.lookup(b"CLIENT|Kill"), Some(3));
    assert_eq!(t.lookup(b"client|kill|x"), None);
}

#[test]
fn pubsub_default_and_reset() {
    let mut a = acl();
    a.pubsub_default_all = true;
    set(&mut a, "u", "on (+get)").unwrap();
    assert_eq!(line(&a, "u"), "user u on &* -@all (&* -@all +get)");
    set(&mut a, "u", "reset").unwrap();
    assert_eq!(line(&a, "u"), "user u off &* -@all");
}

#[test]
fn hostile_inputs_do_not_panic() {
    let mut a = acl();
    for r in [
        "%", "~", "&", "+", "-", "+@", "-@", "(", ")", "(()", "+|", "-|", "+||", "db=,", "db=--1",
        "#", "!", ">", "<", "%R", "%W~\0",
    ] {
        let _ = a.set_user(b"u", &[r.as_bytes()]);
    }
    let _ = a.load_from_text("/p", b"user \"\\x\" '\n\"\"\"\n\xff\xfe");
}

#[test]
fn channels_may_shrink_as_upstream() {
    let mut a = acl();
    let shrink = |a: &mut Acl, from: &str, to: &str| {
        set(a, "u", &format!("reset {from}")).unwrap();
        let old = a.get_user(b"u").unwrap().clone();
        set(a, "u", to).unwrap();
        old.channels_may_shrink(a.get_user(b"u").unwrap())
    };
    assert!(!shrink(&mut a, "&a* &b*", "&c*"), "only additions");
    assert!(shrink(&mut a, "&a* &b*", "resetchannels &a*"));
    assert!(shrink(&mut a, "allchannels", "resetchannels &a*"));
    assert!(!shrink(&mut a, "&a*", "(allchannels)"));
    // A pattern moved to a selector is still there.
    assert!(!shrink(&mut a, "&a*", "resetchannels (&a* +get)"));
    assert!(shrink(&mut a, "&a* (&b*)", "clearselectors"));
    let u = a.get_user(b"u").unwrap();
    assert!(u.can_access_channel(b"a1", false));
    assert!(!u.can_access_channel(b"a*x", true));
}
