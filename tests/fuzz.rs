//! Hostile-input differential fuzzer for the collection commands (lists, hashes with field
//! expiration, sets, sorted sets, SORT, blocking pops). Where tests/random.rs sends valid
//! commands, this one sends argument vectors built to hurt: wrong arity, missing, extra,
//! repeated and conflicting options, numbers at and beyond the i64/u64/f64 limits and in
//! forms `string2ll`/`strtod` must reject (" 1", "0x10", "1.5" for an integer, "nan"),
//! numkeys larger than the argument count or negative, huge random counts (the
//! CVE-2023-22458 class), binary and large (>64 bytes, >8KB) members, and keys of every
//! type. Every command goes to valkey-rs and to the reference; replies must match byte for
//! byte (canonicalized where upstream leaves the order unspecified, reduced to their shape
//! where the reply is random). Every few commands both servers must answer PING, every few
//! hundred their typed keyspace dumps must match, and at the end valkey-rs's peak RSS must
//! stay small.
//!
//! A mismatch does not stop the run: it is recorded (the first example per command and
//! reply kind), the keyspaces are resynchronized if they diverged, and the test fails at the
//! end listing all of them. A crash, a hang (10 s read timeout) or a broken connection
//! stops the run.
//!
//! Environment: `FUZZ_SEED=n` runs only that seed, `FUZZ_OPS=n` commands per pass
//! (default 2500; seeds 1 and 2), `FUZZ_LOG=path` writes every command to `path.<seed>.<pass>`. `make fuzz`
//! runs many long seeds.
//!
//! Exclusions (upstream leaves these unspecified, so the generator avoids them):
//! - lex ranges on a sorted set with different scores: every key of a lex command
//!   (ZRANGEBYLEX, ZREVRANGEBYLEX, ZLEXCOUNT, ZREMRANGEBYLEX, ZRANGE/ZRANGESTORE ... BYLEX)
//!   is redirected to `zlex`, a key only `ZADD zlex 0 ...` writes;
//! - hashtable iteration order: SMEMBERS/SINTER/SUNION/SDIFF/HKEYS/HVALS/HGETALL are
//!   compared sorted, SCAN contents only when a full scan from cursor 0 ends in one call on
//!   both, SORT ... BY <constant> (set order) by shape only;
//! - SORT ... ALPHA BY <pattern>: elements with equal weights compare equal and upstream's
//!   qsort leaves their order unspecified (shape only; with STORE the ALPHA is dropped);
//! - random replies (SPOP, SRANDMEMBER, HRANDFIELD, ZRANDMEMBER): errors exactly, otherwise
//!   the reply type and length; SPOP's key is then deleted on both servers;
//! - hash field TTLs: relative times are never small positive (no field expires between
//!   the two servers' executions), remaining TTLs are compared as "positive".

mod common;

use common::{escape_short, resp_items, show_argv, Conn, Rng, Server};
use std::io::Write;
use std::time::{Duration, Instant};

type Argv = Vec<Vec<u8>>;

fn b(s: impl AsRef<[u8]>) -> Vec<u8> {
    s.as_ref().to_vec()
}

const LIST_CMDS: &[&str] = &[
    "LPUSH",
    "RPUSH",
    "LPUSHX",
    "RPUSHX",
    "LPOP",
    "RPOP",
    "LLEN",
    "LRANGE",
    "LINDEX",
    "LSET",
    "LINSERT",
    "LREM",
    "LTRIM",
    "LPOS",
    "LMOVE",
    "RPOPLPUSH",
    "LMPOP",
    "BLPOP",
    "BRPOP",
    "BLMOVE",
    "BRPOPLPUSH",
    "BLMPOP",
];
const HASH_CMDS: &[&str] = &[
    "HSET",
    "HSETNX",
    "HMSET",
    "HGET",
    "HMGET",
    "HGETALL",
    "HDEL",
    "HLEN",
    "HSTRLEN",
    "HEXISTS",
    "HKEYS",
    "HVALS",
    "HINCRBY",
    "HINCRBYFLOAT",
    "HRANDFIELD",
    "HSCAN",
    "HEXPIRE",
    "HPEXPIRE",
    "HEXPIREAT",
    "HPEXPIREAT",
    "HTTL",
    "HPTTL",
    "HEXPIRETIME",
    "HPEXPIRETIME",
    "HPERSIST",
    "HGETEX",
    "HSETEX",
    "HGETDEL",
];
const SET_CMDS: &[&str] = &[
    "SADD",
    "SREM",
    "SMEMBERS",
    "SISMEMBER",
    "SMISMEMBER",
    "SCARD",
    "SPOP",
    "SRANDMEMBER",
    "SMOVE",
    "SINTER",
    "SINTERCARD",
    "SINTERSTORE",
    "SUNION",
    "SUNIONSTORE",
    "SDIFF",
    "SDIFFSTORE",
    "SSCAN",
];
const ZSET_CMDS: &[&str] = &[
    "BZMPOP",
    "BZPOPMAX",
    "BZPOPMIN",
    "ZADD",
    "ZCARD",
    "ZCOUNT",
    "ZDIFF",
    "ZDIFFSTORE",
    "ZINCRBY",
    "ZINTER",
    "ZINTERCARD",
    "ZINTERSTORE",
    "ZLEXCOUNT",
    "ZMPOP",
    "ZMSCORE",
    "ZPOPMAX",
    "ZPOPMIN",
    "ZRANDMEMBER",
    "ZRANGE",
    "ZRANGEBYLEX",
    "ZRANGEBYSCORE",
    "ZRANGESTORE",
    "ZRANK",
    "ZREM",
    "ZREMRANGEBYLEX",
    "ZREMRANGEBYRANK",
    "ZREMRANGEBYSCORE",
    "ZREVRANGE",
    "ZREVRANGEBYLEX",
    "ZREVRANGEBYSCORE",
    "ZREVRANK",
    "ZSCAN",
    "ZSCORE",
    "ZUNION",
    "ZUNIONSTORE",
];
const SORT_CMDS: &[&str] = &["SORT", "SORT_RO"];

/// Keys of every family (the dump reads them all). `k0` holds a string.
const KEYS: &[&str] = &[
    "l0", "l1", "h0", "h1", "s0", "s1", "z0", "z1", "k0", "nokey",
];
/// The sorted set lex commands use: only `ZADD zlex 0 ...` writes it (equal scores).
const LEX_KEY: &str = "zlex";
/// A key nothing ever creates: random commands with huge negative counts go there.
const MISSING: &str = "never:created";

/// Integers and floats at and beyond the limits, and forms the parsers must reject.
const NUMS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "3",
    "-2",
    "10",
    "100",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "4294967296",
    "2147483648",
    "-2147483649",
    "4611686018427387904",
    "1e308",
    "1e309",
    "-1e309",
    "inf",
    "-inf",
    "+inf",
    "nan",
    "-nan",
    "",
    " 1",
    "1 ",
    "0x10",
    "1.5",
    "-0",
    "+1",
    "01",
    "1e3",
    "0.0",
    "-0.0",
    "abc",
    "1\x00",
    "99999999999999999999999",
];

/// Scores and increments.
const FLOATS: &[&str] = &[
    "0",
    "1",
    "-1",
    "1.5",
    "-2.5",
    "0.1",
    "inf",
    "-inf",
    "+inf",
    "nan",
    "1e308",
    "1e309",
    "-1e309",
    "1.7976931348623157e308",
    "4.9e-324",
    "1e-320",
    "-0",
    "0x10",
    " 1",
    "",
    "1e16",
    "9007199254740993",
    "(1",
    "abc",
    "3.0000000000000004",
    "9223372036854775807",
    "-9223372036854775808",
];

const SCORE_BOUNDS: &[&str] = &[
    "-inf", "+inf", "(1", "(-1", "0", "5", "(inf", "(-inf", "inf", "nan", "(nan", "[1", "((1", "",
    "1e309", "(1e309", "0x10", "(0x10", " 5", "(", "1.5", "-0",
];

const LEX_BOUNDS: &[&[u8]] = &[
    b"-", b"+", b"[a", b"(a", b"[b", b"(c", b"[", b"(", b"a", b"[\x00", b"(\xff", b"+inf", b"-inf",
    b"[m1", b"(z", b"", b"[1", b"(5",
];

/// Words that are options somewhere: appended, repeated and misplaced.
const KEYWORDS: &[&str] = &[
    "WITHSCORES",
    "WITHSCORE",
    "LIMIT",
    "COUNT",
    "RANK",
    "MAXLEN",
    "BEFORE",
    "AFTER",
    "LEFT",
    "RIGHT",
    "MIN",
    "MAX",
    "NX",
    "XX",
    "GT",
    "LT",
    "CH",
    "INCR",
    "BYSCORE",
    "REV",
    "WEIGHTS",
    "AGGREGATE",
    "SUM",
    "WITHVALUES",
    "FIELDS",
    "EX",
    "PX",
    "EXAT",
    "PXAT",
    "PERSIST",
    "KEEPTTL",
    "FNX",
    "FXX",
    "MATCH",
    "NOVALUES",
    "NOSCORES",
    "TYPE",
    "BY",
    "GET",
    "ASC",
    "DESC",
    "ALPHA",
    "STORE",
    "#",
    "nosort",
    "withscores",
    "limit",
];

/// Blocking timeouts that are small or invalid: the command may be sent directly.
const SAFE_TIMEOUTS: &[&str] = &["0.01", "0.005", "1e-2", "-1", "abc", "-9223372036854775808"];
/// Timeouts that could block long (or forever): only sent inside MULTI.
const MULTI_TIMEOUTS: &[&str] = &[
    "0",
    "-0",
    "1e9",
    "inf",
    "+inf",
    "-inf",
    "nan",
    "9223372036854775807",
    "9223372036854775.807",
    "9223372036854776",
    "1e309",
    "0x10",
    "1.5",
    " 1",
    "",
    "9223372036854775808",
    "0.0000001",
    "-0.0000001",
    "100",
];

/// Relative field TTLs: never small positive (a field must not expire between the two
/// servers' executions).
const TTLS: &[&str] = &[
    "0",
    "-1",
    "-100",
    "100000",
    "100000000",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "1e3",
    "abc",
    "",
    "1.5",
    " 100000",
    "4611686018427387903",
    "4611686018427387904",
    "9223372036854775",
    "281474976710655",
    "281474976710656",
    "100000000000000",
];
/// Absolute field expiration times: in the past or far in the future.
const AT_TIMES: &[&str] = &[
    "0",
    "1",
    "1000",
    "-1",
    "4000000000",
    "4000000000000",
    "281474976710655",
    "281474976710656",
    "9223372036854775807",
    "9223372036854775808",
    "abc",
    "1.5",
];

const BINARY: &[&[u8]] = &[
    b"\x00",
    b"a\r\nb",
    b"\xff\xfe\xfd",
    b"\x00\x00",
    b"\r\n",
    b" ",
    b"*",
    b"\t",
    b"a\x00b",
    b"\xc0\x80",
    b"$-1\r\n",
];

struct Gen {
    r: Rng,
}

/// How the two replies are compared.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Cmp {
    Exact,
    /// Elements in unspecified order.
    Sorted,
    /// Field/value pairs in unspecified order.
    Pairs,
    /// Random contents: errors exactly, otherwise type and length.
    Shape,
    /// Like Shape, then the key (argv[1]) is deleted on both servers (SPOP).
    ShapeThenDel,
    /// SCAN: errors exactly; contents (pairs or not) when both scanned everything at once.
    Scan {
        pairs: bool,
        from_zero: bool,
    },
    /// Field TTLs: positive integers compare equal.
    Ttl,
    /// SORT ... ALPHA: upstream compares with strcoll(), so elements equal up to their
    /// first NUL byte tie, in unspecified order: the elements as a multiset, and their
    /// order cut at the first NUL (only that with LIMIT: the window may cut between ties).
    Alpha {
        limit: bool,
    },
}

impl Gen {
    fn num(&mut self) -> Vec<u8> {
        b(self.r.pick(NUMS))
    }

    /// A count or index: mostly small, often hostile.
    fn cnt(&mut self) -> Vec<u8> {
        if self.r.chance(60) {
            b(self.r.range(-3, 6).to_string())
        } else {
            self.num()
        }
    }

    /// Counts for the random commands: around the CVE-2023-22458 limits too.
    fn rand_count(&mut self) -> Vec<u8> {
        if self.r.chance(25) {
            b(self.r.pick(&[
                "-9223372036854775808",
                "-9223372036854775807",
                "-4611686018427387904",
                "-4611686018427387903",
                "-4611686018427387905",
                "4611686018427387904",
                "9223372036854775807",
                "-2147483648",
                "-100000",
            ]))
        } else {
            self.cnt()
        }
    }

    fn score(&mut self) -> Vec<u8> {
        match self.r.below(10) {
            0..=4 => b(self.r.range(-3, 6).to_string()),
            // Any double: its formatting in replies (%.17g-like shortest forms) must match.
            5 => b(format!(
                "{}e{}",
                self.r.range(-99, 99),
                self.r.range(-330, 310)
            )),
            6 => b(format!(
                "{}.{}",
                self.r.range(-99_999_999, 99_999_999),
                self.r.below(1_000_000_000)
            )),
            _ => b(self.r.pick(FLOATS)),
        }
    }

    fn member(&mut self) -> Vec<u8> {
        match self.r.below(20) {
            0..=5 => b(self.r.pick(&["a", "b", "c", "d", "e", "f", "g", "h"])),
            6..=9 => b(self.r.range(-3, 12).to_string()),
            10 | 11 => self.num(),
            12 | 13 => b(self.r.pick(BINARY)),
            14 | 15 => b(format!("m{}", self.r.below(30))),
            16 | 17 => b(format!("{}{}", "x".repeat(64), self.r.below(4))),
            18 => b(format!("{}{}", "y".repeat(200), self.r.below(3))),
            _ => {
                if self.r.chance(20) {
                    b(format!("{}{}", "Z".repeat(9000), self.r.below(2)))
                } else {
                    b("")
                }
            }
        }
    }

    fn members(&mut self, min: u64, max: u64) -> Vec<Vec<u8>> {
        let n = min + self.r.below(max - min + 1);
        (0..n).map(|_| self.member()).collect()
    }

    /// A key for a command of `fam` ('l', 'h', 's', 'z'): mostly its own pair.
    fn key(&mut self, fam: char) -> Vec<u8> {
        let own: &[&str] = match fam {
            'l' => &["l0", "l1"],
            'h' => &["h0", "h1"],
            's' => &["s0", "s1"],
            _ => &["z0", "z1"],
        };
        if self.r.chance(85) {
            b(self.r.pick(own))
        } else {
            b(self.r.pick(KEYS))
        }
    }

    fn keys(&mut self, fam: char, min: u64, max: u64) -> Vec<Vec<u8>> {
        let n = min + self.r.below(max - min + 1);
        (0..n).map(|_| self.key(fam)).collect()
    }

    /// numkeys for `n` keys: mostly right, often wrong.
    fn numkeys(&mut self, n: usize) -> Vec<u8> {
        if self.r.chance(70) {
            return b(n.to_string());
        }
        match self.r.below(4) {
            0 => b((n + 1).to_string()),
            1 => b(n.saturating_sub(1).to_string()),
            2 => b(self.r.pick(&[
                "0",
                "-1",
                "1000",
                "2147483648",
                "9223372036854775807",
                "-9223372036854775808",
                "abc",
                "",
                "1.0",
            ])),
            _ => self.num(),
        }
    }

    fn dir(&mut self, a: &[&str]) -> Vec<u8> {
        if self.r.chance(90) {
            b(self.r.pick(a))
        } else {
            b(self.r.pick(&["UP", "", "left", "Right", "MIDDLE"]))
        }
    }

    fn timeout(&mut self, safe: bool) -> Vec<u8> {
        if safe {
            b(self.r.pick(SAFE_TIMEOUTS))
        } else {
            b(self.r.pick(MULTI_TIMEOUTS))
        }
    }

    fn lex(&mut self) -> Vec<u8> {
        b(self.r.pick(LEX_BOUNDS))
    }

    fn sbound(&mut self) -> Vec<u8> {
        b(self.r.pick(SCORE_BOUNDS))
    }

    fn token(&mut self) -> Vec<u8> {
        match self.r.below(3) {
            0 => b(self.r.pick(KEYWORDS)),
            1 => self.num(),
            _ => self.member(),
        }
    }

    /// `FIELDS n f...` for the hash field-expiration commands.
    fn fields(&mut self, v: &mut Argv, with_values: bool) {
        let fs = self.members(1, 3);
        if self.r.chance(95) {
            v.push(b("FIELDS"));
        }
        v.push(self.numkeys(fs.len()));
        for f in fs {
            v.push(f);
            if with_values {
                v.push(self.member());
            }
        }
    }

    /// Options from `opts` (each with its arguments) in random order, some repeated.
    fn options(&mut self, v: &mut Argv, opts: &[&dyn Fn(&mut Gen) -> Argv]) {
        let mut chosen: Vec<Argv> = Vec::new();
        for o in opts {
            if self.r.chance(35) {
                chosen.push(o(self));
            }
            if self.r.chance(5) {
                chosen.push(o(self));
            }
        }
        for i in (1..chosen.len()).rev() {
            let j = self.r.below(i as u64 + 1) as usize;
            chosen.swap(i, j);
        }
        for c in chosen {
            v.extend(c);
        }
    }

    /// A well-formed (mostly) command, its comparison, and whether it blocks.
    fn command(&mut self) -> (Argv, Cmp, bool) {
        let fam = self.r.below(100);
        let name = match fam {
            0..=24 => self.r.pick(LIST_CMDS),
            25..=49 => self.r.pick(HASH_CMDS),
            50..=69 => self.r.pick(SET_CMDS),
            70..=96 => self.r.pick(ZSET_CMDS),
            _ => self.r.pick(SORT_CMDS),
        };
        let mut v: Argv = vec![b(name)];
        let mut cmp = Cmp::Exact;
        let mut blocking = false;
        let safe_to = self.r.chance(50);
        match name {
            "LPUSH" | "RPUSH" | "LPUSHX" | "RPUSHX" => {
                v.push(self.key('l'));
                v.extend(self.members(1, 5));
                if self.r.chance(3) {
                    v.extend(self.members(100, 200));
                }
            }
            "LPOP" | "RPOP" => {
                v.push(self.key('l'));
                if self.r.chance(60) {
                    v.push(self.cnt());
                }
            }
            "LLEN" => v.push(self.key('l')),
            "LRANGE" | "LTRIM" => {
                v.push(self.key('l'));
                v.push(self.cnt());
                v.push(self.cnt());
            }
            "LINDEX" => {
                v.push(self.key('l'));
                v.push(self.cnt());
            }
            "LSET" => {
                v.push(self.key('l'));
                v.push(self.cnt());
                v.push(self.member());
            }
            "LINSERT" => {
                v.push(self.key('l'));
                v.push(self.dir(&["BEFORE", "AFTER"]));
                v.push(self.member());
                v.push(self.member());
            }
            "LREM" => {
                v.push(self.key('l'));
                v.push(self.cnt());
                v.push(self.member());
            }
            "LPOS" => {
                v.push(self.key('l'));
                v.push(self.member());
                self.options(
                    &mut v,
                    &[
                        &|g: &mut Gen| vec![b("RANK"), g.cnt()],
                        &|g: &mut Gen| vec![b("COUNT"), g.cnt()],
                        &|g: &mut Gen| vec![b("MAXLEN"), g.cnt()],
                    ],
                );
            }
            "LMOVE" => {
                v.push(self.key('l'));
                v.push(self.key('l'));
                v.push(self.dir(&["LEFT", "RIGHT"]));
                v.push(self.dir(&["LEFT", "RIGHT"]));
            }
            "RPOPLPUSH" => {
                v.push(self.key('l'));
                v.push(self.key('l'));
            }
            "LMPOP" | "BLMPOP" => {
                if name == "BLMPOP" {
                    blocking = true;
                    v.push(self.timeout(safe_to));
                }
                let ks = self.keys('l', 1, 3);
                v.push(self.numkeys(ks.len()));
                v.extend(ks);
                v.push(self.dir(&["LEFT", "RIGHT"]));
                if self.r.chance(60) {
                    v.push(b("COUNT"));
                    v.push(self.cnt());
                }
                if self.r.chance(10) {
                    v.push(b("COUNT"));
                    v.push(self.cnt());
                }
            }
            "BLPOP" | "BRPOP" => {
                blocking = true;
                v.extend(self.keys('l', 1, 3));
                v.push(self.timeout(safe_to));
            }
            "BLMOVE" => {
                blocking = true;
                v.push(self.key('l'));
                v.push(self.key('l'));
                v.push(self.dir(&["LEFT", "RIGHT"]));
                v.push(self.dir(&["LEFT", "RIGHT"]));
                v.push(self.timeout(safe_to));
            }
            "BRPOPLPUSH" => {
                blocking = true;
                v.push(self.key('l'));
                v.push(self.key('l'));
                v.push(self.timeout(safe_to));
            }
            // Hashes
            "HSET" | "HMSET" => {
                v.push(self.key('h'));
                for _ in 0..1 + self.r.below(3) {
                    v.push(self.member());
                    v.push(self.member());
                }
                if self.r.chance(3) {
                    for _ in 0..150 {
                        v.push(self.member());
                        v.push(self.member());
                    }
                }
            }
            "HSETNX" => {
                v.push(self.key('h'));
                v.push(self.member());
                v.push(self.member());
            }
            "HGET" | "HSTRLEN" | "HEXISTS" => {
                v.push(self.key('h'));
                v.push(self.member());
            }
            "HMGET" | "HDEL" => {
                v.push(self.key('h'));
                v.extend(self.members(1, 4));
            }
            "HGETALL" => {
                v.push(self.key('h'));
                cmp = Cmp::Pairs;
            }
            "HLEN" => v.push(self.key('h')),
            "HKEYS" | "HVALS" => {
                v.push(self.key('h'));
                cmp = Cmp::Sorted;
            }
            "HINCRBY" => {
                v.push(self.key('h'));
                v.push(self.member());
                v.push(self.cnt());
            }
            "HINCRBYFLOAT" => {
                v.push(self.key('h'));
                v.push(self.member());
                v.push(self.score());
            }
            "HRANDFIELD" => {
                v.push(self.key('h'));
                if self.r.chance(70) {
                    v.push(self.rand_count());
                    if self.r.chance(50) {
                        v.push(b("WITHVALUES"));
                    }
                }
                cmp = Cmp::Shape;
            }
            "HSCAN" | "SSCAN" | "ZSCAN" => {
                let fam = match name {
                    "HSCAN" => 'h',
                    "SSCAN" => 's',
                    _ => 'z',
                };
                v.push(self.key(fam));
                let cursor = if self.r.chance(70) {
                    b("0")
                } else {
                    b(self.r.pick(&[
                        "1",
                        "abc",
                        "-1",
                        "18446744073709551615",
                        "18446744073709551616",
                        "9223372036854775808",
                        "",
                        " 0",
                    ]))
                };
                let from_zero = cursor == b"0";
                v.push(cursor);
                self.options(
                    &mut v,
                    &[
                        &|g: &mut Gen| {
                            vec![
                                b("MATCH"),
                                b(g.r.pick(&["*", "a*", "[", "\\", "*\x00*", "[a-", "x*", "?"])),
                            ]
                        },
                        &|g: &mut Gen| {
                            vec![b("COUNT"), if g.r.chance(50) { b("1000") } else { g.cnt() }]
                        },
                        &|_g: &mut Gen| vec![b("NOVALUES")],
                        &|_g: &mut Gen| vec![b("NOSCORES")],
                    ],
                );
                let novalues = v.iter().any(|a| {
                    a.eq_ignore_ascii_case(b"NOVALUES") || a.eq_ignore_ascii_case(b"NOSCORES")
                });
                cmp = Cmp::Scan {
                    pairs: fam != 's' && !novalues,
                    from_zero,
                };
            }
            "HEXPIRE" | "HPEXPIRE" | "HEXPIREAT" | "HPEXPIREAT" => {
                v.push(self.key('h'));
                if name.ends_with("AT") {
                    v.push(b(self.r.pick(AT_TIMES)));
                } else {
                    v.push(b(self.r.pick(TTLS)));
                }
                if self.r.chance(40) {
                    v.push(b(self.r.pick(&["NX", "XX", "GT", "LT", "nx"])));
                    if self.r.chance(20) {
                        v.push(b(self.r.pick(&["NX", "XX", "GT", "LT"])));
                    }
                }
                self.fields(&mut v, false);
            }
            "HTTL" | "HPTTL" | "HEXPIRETIME" | "HPEXPIRETIME" | "HPERSIST" | "HGETDEL" => {
                v.push(self.key('h'));
                self.fields(&mut v, false);
                if name != "HPERSIST" && name != "HGETDEL" {
                    cmp = Cmp::Ttl;
                }
            }
            "HGETEX" => {
                v.push(self.key('h'));
                self.options(
                    &mut v,
                    &[
                        &|g: &mut Gen| vec![b("EX"), b(g.r.pick(TTLS))],
                        &|g: &mut Gen| vec![b("PX"), b(g.r.pick(TTLS))],
                        &|g: &mut Gen| vec![b("EXAT"), b(g.r.pick(AT_TIMES))],
                        &|g: &mut Gen| vec![b("PXAT"), b(g.r.pick(AT_TIMES))],
                        &|_g: &mut Gen| vec![b("PERSIST")],
                    ],
                );
                self.fields(&mut v, false);
            }
            "HSETEX" => {
                v.push(self.key('h'));
                self.options(
                    &mut v,
                    &[
                        &|g: &mut Gen| vec![b(g.r.pick(&["NX", "XX"]))],
                        &|g: &mut Gen| vec![b(g.r.pick(&["FNX", "FXX"]))],
                        &|g: &mut Gen| vec![b("EX"), b(g.r.pick(TTLS))],
                        &|g: &mut Gen| vec![b("PX"), b(g.r.pick(TTLS))],
                        &|g: &mut Gen| vec![b("EXAT"), b(g.r.pick(AT_TIMES))],
                        &|g: &mut Gen| vec![b("PXAT"), b(g.r.pick(AT_TIMES))],
                        &|_g: &mut Gen| vec![b("KEEPTTL")],
                    ],
                );
                self.fields(&mut v, true);
            }
            // Sets
            "SADD" => {
                v.push(self.key('s'));
                v.extend(self.members(1, 5));
                if self.r.chance(3) {
                    if self.r.chance(50) {
                        for _ in 0..200 {
                            v.push(b(self.r.range(-1000, 1000).to_string()));
                        }
                    } else {
                        v.extend(self.members(150, 200));
                    }
                }
            }
            "SREM" | "SMISMEMBER" => {
                v.push(self.key('s'));
                v.extend(self.members(1, 4));
            }
            "SMEMBERS" => {
                v.push(self.key('s'));
                cmp = Cmp::Sorted;
            }
            "SISMEMBER" => {
                v.push(self.key('s'));
                v.push(self.member());
            }
            "SCARD" => v.push(self.key('s')),
            "SPOP" | "SRANDMEMBER" => {
                v.push(self.key('s'));
                if self.r.chance(70) {
                    v.push(self.rand_count());
                }
                cmp = if name == "SPOP" {
                    Cmp::ShapeThenDel
                } else {
                    Cmp::Shape
                };
            }
            "SMOVE" => {
                v.push(self.key('s'));
                v.push(self.key('s'));
                v.push(self.member());
            }
            "SINTER" | "SUNION" | "SDIFF" => {
                v.extend(self.keys('s', 1, 4));
                cmp = Cmp::Sorted;
            }
            "SINTERSTORE" | "SUNIONSTORE" | "SDIFFSTORE" => {
                v.push(self.key('s'));
                v.extend(self.keys('s', 1, 3));
            }
            "SINTERCARD" | "ZINTERCARD" => {
                let fam = if name == "SINTERCARD" { 's' } else { 'z' };
                let ks = self.keys(fam, 1, 3);
                v.push(self.numkeys(ks.len()));
                v.extend(ks);
                if self.r.chance(50) {
                    v.push(b("LIMIT"));
                    v.push(self.cnt());
                }
                if self.r.chance(10) {
                    v.push(b("LIMIT"));
                    v.push(self.cnt());
                }
            }
            // Sorted sets
            "ZADD" => {
                if self.r.chance(12) {
                    // The lex key: equal scores only (see LEX_KEY).
                    v = vec![b("ZADD"), b(LEX_KEY)];
                    for m in self.members(1, 4) {
                        v.push(b("0"));
                        v.push(m);
                    }
                    return (v, Cmp::Exact, false);
                }
                v.push(self.key('z'));
                for o in ["NX", "XX", "GT", "LT", "CH", "INCR"] {
                    if self.r.chance(15) {
                        v.push(b(o));
                    }
                }
                if self.r.chance(5) {
                    v.push(b(self.r.pick(&["NX", "XX", "GT", "LT", "CH", "INCR"])));
                }
                for _ in 0..1 + self.r.below(3) {
                    v.push(self.score());
                    v.push(self.member());
                }
                if self.r.chance(3) {
                    for i in 0..150 {
                        v.push(b(i.to_string()));
                        v.push(self.member());
                    }
                }
            }
            "ZCARD" => v.push(self.key('z')),
            "ZCOUNT" | "ZREMRANGEBYSCORE" => {
                v.push(self.key('z'));
                v.push(self.sbound());
                v.push(self.sbound());
            }
            "ZLEXCOUNT" | "ZREMRANGEBYLEX" => {
                v.push(self.key('z'));
                v.push(self.lex());
                v.push(self.lex());
            }
            "ZRANGEBYLEX" | "ZREVRANGEBYLEX" => {
                v.push(self.key('z'));
                v.push(self.lex());
                v.push(self.lex());
                if self.r.chance(40) {
                    v.extend([b("LIMIT"), self.cnt(), self.cnt()]);
                }
            }
            "ZRANGEBYSCORE" | "ZREVRANGEBYSCORE" => {
                v.push(self.key('z'));
                v.push(self.sbound());
                v.push(self.sbound());
                self.options(
                    &mut v,
                    &[&|_g: &mut Gen| vec![b("WITHSCORES")], &|g: &mut Gen| {
                        vec![b("LIMIT"), g.cnt(), g.cnt()]
                    }],
                );
            }
            "ZDIFF" | "ZDIFFSTORE" | "ZINTER" | "ZINTERSTORE" | "ZUNION" | "ZUNIONSTORE" => {
                if name.ends_with("STORE") {
                    v.push(self.key('z'));
                }
                let ks: Argv = (0..1 + self.r.below(3))
                    .map(|_| {
                        if self.r.chance(25) {
                            self.key('s')
                        } else {
                            self.key('z')
                        }
                    })
                    .collect();
                let n = ks.len();
                v.push(self.numkeys(n));
                v.extend(ks);
                self.options(
                    &mut v,
                    &[
                        &|g: &mut Gen| {
                            let mut w = vec![b("WEIGHTS")];
                            let m = if g.r.chance(80) {
                                n
                            } else {
                                g.r.below(n as u64 + 2) as usize
                            };
                            for _ in 0..m {
                                w.push(g.score());
                            }
                            w
                        },
                        &|g: &mut Gen| {
                            vec![
                                b("AGGREGATE"),
                                b(g.r.pick(&["SUM", "MIN", "MAX", "max", "AVG", ""])),
                            ]
                        },
                        &|_g: &mut Gen| vec![b("WITHSCORES")],
                    ],
                );
            }
            "ZINCRBY" => {
                v.push(self.key('z'));
                v.push(self.score());
                v.push(self.member());
            }
            "ZMPOP" | "BZMPOP" => {
                if name == "BZMPOP" {
                    blocking = true;
                    v.push(self.timeout(safe_to));
                }
                let ks = self.keys('z', 1, 3);
                v.push(self.numkeys(ks.len()));
                v.extend(ks);
                v.push(self.dir(&["MIN", "MAX"]));
                if self.r.chance(60) {
                    v.push(b("COUNT"));
                    v.push(self.cnt());
                }
                if self.r.chance(10) {
                    v.push(b("COUNT"));
                    v.push(self.cnt());
                }
            }
            "BZPOPMAX" | "BZPOPMIN" => {
                blocking = true;
                v.extend(self.keys('z', 1, 3));
                v.push(self.timeout(safe_to));
            }
            "ZMSCORE" | "ZREM" => {
                v.push(self.key('z'));
                v.extend(self.members(1, 4));
            }
            "ZSCORE" => {
                v.push(self.key('z'));
                v.push(self.member());
            }
            "ZPOPMAX" | "ZPOPMIN" => {
                v.push(self.key('z'));
                if self.r.chance(60) {
                    v.push(self.cnt());
                }
            }
            "ZRANDMEMBER" => {
                v.push(self.key('z'));
                if self.r.chance(70) {
                    v.push(self.rand_count());
                    if self.r.chance(50) {
                        v.push(b("WITHSCORES"));
                    }
                }
                cmp = Cmp::Shape;
            }
            "ZRANGE" | "ZRANGESTORE" => {
                if name == "ZRANGESTORE" {
                    v.push(self.key('z'));
                }
                v.push(self.key('z'));
                let by = self.r.below(3);
                match by {
                    0 => {
                        v.push(self.cnt());
                        v.push(self.cnt());
                    }
                    1 => {
                        v.push(self.sbound());
                        v.push(self.sbound());
                    }
                    _ => {
                        v.push(self.lex());
                        v.push(self.lex());
                    }
                }
                let byword = ["", "BYSCORE", "BYLEX"][by as usize];
                self.options(
                    &mut v,
                    &[
                        &|g: &mut Gen| {
                            if by == 0 || g.r.chance(10) {
                                vec![b(g.r.pick(&["BYSCORE", "BYLEX"]))]
                            } else {
                                vec![b(byword)]
                            }
                        },
                        &|_g: &mut Gen| vec![b("REV")],
                        &|g: &mut Gen| vec![b("LIMIT"), g.cnt(), g.cnt()],
                        &|_g: &mut Gen| vec![b("WITHSCORES")],
                    ],
                );
                if by != 0 && self.r.chance(80) && !v.iter().any(|a| a == byword.as_bytes()) {
                    v.push(b(byword));
                }
            }
            "ZRANK" | "ZREVRANK" => {
                v.push(self.key('z'));
                v.push(self.member());
                if self.r.chance(40) {
                    v.push(b("WITHSCORE"));
                }
            }
            "ZREMRANGEBYRANK" => {
                v.push(self.key('z'));
                v.push(self.cnt());
                v.push(self.cnt());
            }
            "ZREVRANGE" => {
                v.push(self.key('z'));
                v.push(self.cnt());
                v.push(self.cnt());
                if self.r.chance(50) {
                    v.push(b("WITHSCORES"));
                }
            }
            // SORT
            _ => {
                let fam = self.r.pick(&["l", "s", "z"]).chars().next().unwrap_or('l');
                v.push(self.key(fam));
                let ro = name == "SORT_RO";
                self.options(
                    &mut v,
                    &[
                        &|g: &mut Gen| {
                            vec![
                                b("BY"),
                                b(g.r
                                    .pick(&["nosort", "w_*", "*", "wh_*->f", "k0", "w_*->", "#"])),
                            ]
                        },
                        &|g: &mut Gen| vec![b("LIMIT"), g.cnt(), g.cnt()],
                        &|g: &mut Gen| {
                            vec![
                                b("GET"),
                                b(g.r.pick(&["#", "w_*", "wh_*->f", "k0", "*->", "wh_*->"])),
                            ]
                        },
                        &|g: &mut Gen| vec![b(g.r.pick(&["ASC", "DESC"]))],
                        &|_g: &mut Gen| vec![b("ALPHA")],
                        &|g: &mut Gen| {
                            if ro && g.r.chance(80) {
                                vec![]
                            } else {
                                vec![b("STORE"), g.key('l')]
                            }
                        },
                    ],
                );
            }
        }
        (v, cmp, blocking)
    }

    /// Breaks a command: truncates it, appends tokens, repeats, replaces or drops an
    /// argument.
    fn mutate(&mut self, v: &mut Argv, ttl_cmd: bool) {
        let n = v.len();
        let kind = if ttl_cmd {
            // A replaced or appended number could be a small positive TTL.
            [0, 2, 4][self.r.below(3) as usize]
        } else {
            self.r.below(5)
        };
        match kind {
            0 => v.truncate(1 + self.r.below(n as u64) as usize),
            1 => {
                for _ in 0..1 + self.r.below(2) {
                    let t = self.token();
                    v.push(t);
                }
            }
            2 if n > 1 => {
                let i = 1 + self.r.below(n as u64 - 1) as usize;
                let a = v[i].clone();
                v.insert(i, a);
            }
            3 if n > 1 => {
                let i = 1 + self.r.below(n as u64 - 1) as usize;
                v[i] = self.token();
            }
            4 if n > 1 => {
                let i = 1 + self.r.below(n as u64 - 1) as usize;
                v.remove(i);
            }
            _ => v.push(self.token()),
        }
    }

    /// The next command to send: argv, comparison, and whether it must go inside MULTI.
    fn next(&mut self) -> (Argv, Cmp, bool) {
        let (mut v, mut cmp, blocking) = self.command();
        let name = String::from_utf8_lossy(&v[0]).to_ascii_uppercase();
        let ttl_cmd = matches!(
            name.as_str(),
            "HEXPIRE" | "HPEXPIRE" | "HEXPIREAT" | "HPEXPIREAT" | "HGETEX" | "HSETEX"
        );
        let lexzadd = name == "ZADD" && v.get(1).is_some_and(|k| k == LEX_KEY.as_bytes());
        let mut mutated = false;
        if !lexzadd && self.r.chance(30) {
            self.mutate(&mut v, ttl_cmd);
            mutated = true;
        }
        if self.r.chance(4) {
            // Mixed-case command names.
            let mut s = v[0].clone();
            for c in s.iter_mut() {
                if self.r.chance(50) {
                    *c = c.to_ascii_lowercase();
                }
            }
            v[0] = s;
        }
        if let Cmp::Scan { .. } = cmp {
            // The mutation may have moved the cursor or added NOVALUES.
            let novalues = v.iter().any(|a| {
                a.eq_ignore_ascii_case(b"NOVALUES") || a.eq_ignore_ascii_case(b"NOSCORES")
            });
            cmp = Cmp::Scan {
                pairs: name != "SSCAN" && !novalues,
                from_zero: v.get(2).is_some_and(|c| c == b"0"),
            };
        }
        // Lex ranges only on the equal-score key.
        let lex = matches!(
            name.as_str(),
            "ZRANGEBYLEX" | "ZREVRANGEBYLEX" | "ZLEXCOUNT" | "ZREMRANGEBYLEX"
        ) || v.iter().any(|a| a.eq_ignore_ascii_case(b"BYLEX"));
        if lex {
            // Any key of the pool may hold a sorted set by now (store commands, RENAME).
            for a in v.iter_mut().skip(1) {
                if KEYS.iter().any(|k| k.as_bytes() == &a[..]) {
                    *a = b(LEX_KEY);
                }
            }
        }
        // Huge negative counts on random commands: upstream really builds a reply of up to
        // 2^63 elements for the counts it accepts, so those go to a key without elements.
        // The ones it rejects (i64::MIN; below -i64::MAX/2 with WITHSCORES/WITHVALUES: the
        // CVE-2023-22458 fix) keep their key.
        if matches!(name.as_str(), "HRANDFIELD" | "SRANDMEMBER" | "ZRANDMEMBER") {
            let count = v
                .get(2)
                .and_then(|c| std::str::from_utf8(c).ok())
                .and_then(|c| c.parse::<i64>().ok());
            let with = v.len() == 4
                && name != "SRANDMEMBER"
                && (v[3].eq_ignore_ascii_case(b"WITHSCORES")
                    || v[3].eq_ignore_ascii_case(b"WITHVALUES"));
            let valid_shape = v.len() == 3 || with;
            if let Some(c) = count {
                let rejected = c == i64::MIN || (with && c < -(i64::MAX / 2));
                if c < -2000 && !rejected && valid_shape {
                    v[1] = b(MISSING);
                }
            }
        }
        if name == "SORT" || name == "SORT_RO" {
            // The last BY pattern is used, but a constant one anywhere turns sorting off.
            let bys: Vec<&Vec<u8>> = v
                .windows(2)
                .filter(|w| w[0].eq_ignore_ascii_case(b"BY"))
                .map(|w| &w[1])
                .collect();
            let by_pattern = bys.last().is_some_and(|p| p.contains(&b'*'));
            let by_const = bys.iter().any(|p| !p.contains(&b'*'));
            let store = v.iter().any(|a| a.eq_ignore_ascii_case(b"STORE"));
            if by_pattern && store {
                // ALPHA BY <pattern>: ties in unspecified order, and STORE would keep it.
                v.retain(|a| !a.eq_ignore_ascii_case(b"ALPHA"));
            } else if (by_pattern && v.iter().any(|a| a.eq_ignore_ascii_case(b"ALPHA")))
                || (by_const && !store)
            {
                cmp = Cmp::Shape;
            } else if !store && v.iter().any(|a| a.eq_ignore_ascii_case(b"ALPHA")) {
                let get_pattern = v
                    .windows(2)
                    .any(|w| w[0].eq_ignore_ascii_case(b"GET") && w[1].as_slice() != b"#");
                // Tied elements (see Cmp::Alpha) fetch different GET values.
                let limit = v.iter().any(|a| a.eq_ignore_ascii_case(b"LIMIT"));
                cmp = if get_pattern {
                    Cmp::Sorted
                } else {
                    Cmp::Alpha { limit }
                };
            }
        }
        let multi = blocking
            && (mutated
                || !v
                    .iter()
                    .skip(1)
                    .any(|a| SAFE_TIMEOUTS.iter().any(|t| t.as_bytes() == &a[..]))
                || self.r.chance(10));
        (v, cmp, multi)
    }
}

/// Puts an unordered reply in canonical order (elements, or pairs, sorted by bytes).
fn canonical(reply: &[u8], pairs: bool) -> Vec<u8> {
    let Some((head, its)) = resp_items(reply) else {
        return reply.to_vec();
    };
    let mut out = head.to_vec();
    if pairs || reply[0] == b'%' {
        let mut ps: Vec<Vec<u8>> = its.chunks(2).map(|c| c.concat()).collect();
        ps.sort();
        out.extend(ps.concat());
    } else {
        let mut its = its;
        its.sort();
        out.extend(its.concat());
    }
    out
}

/// Errors exactly; anything else by its type byte and (for aggregates) length.
fn shape(reply: &[u8]) -> Vec<u8> {
    if reply.first() == Some(&b'-') {
        return reply.to_vec();
    }
    match reply.first() {
        Some(b'*' | b'~' | b'%' | b'$') => {
            let e = reply
                .windows(2)
                .position(|w| w == b"\r\n")
                .unwrap_or(reply.len());
            let mut v = reply[..e].to_vec();
            if reply[0] == b'$' && &reply[..e] != b"$-1" {
                v.truncate(1);
            }
            v
        }
        Some(&c) => vec![c],
        None => Vec::new(),
    }
}

/// Field TTL replies with every positive integer replaced by `:P`.
fn ttl_canon(reply: &[u8]) -> Vec<u8> {
    let Some((head, its)) = resp_items(reply) else {
        return reply.to_vec();
    };
    let mut out = head.to_vec();
    for it in its {
        let positive = it.len() > 3
            && it[0] == b':'
            && it[1] != b'-'
            && it[1] != b'0'
            && it[1..it.len() - 2].iter().all(u8::is_ascii_digit);
        if positive {
            out.extend_from_slice(b":P\r\n");
        } else {
            out.extend_from_slice(it);
        }
    }
    out
}

/// See [`Cmp::Alpha`].
fn alpha_canon(reply: &[u8], limit: bool) -> Vec<u8> {
    let Some((head, its)) = resp_items(reply) else {
        return reply.to_vec();
    };
    let mut out = if limit {
        Vec::new()
    } else {
        canonical(reply, false)
    };
    out.extend_from_slice(b" order: ");
    out.extend_from_slice(head);
    for it in its {
        let payload = match it.iter().position(|&c| c == b'\n') {
            Some(e) if it[0] == b'$' && it.len() >= e + 3 => &it[e + 1..it.len() - 2],
            _ => it,
        };
        let z = payload
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(payload.len());
        out.extend_from_slice(&payload[..z]);
        out.push(b'\n');
    }
    out
}

/// SCAN replies: errors exactly; the elements (canonical) when both scans started at 0
/// and finished in one call, else only the shape.
fn scan_canon(reply: &[u8], pairs: bool, from_zero: bool) -> Vec<u8> {
    let Some((_, its)) = resp_items(reply) else {
        return reply.to_vec();
    };
    if its.len() == 2 && its[0] == b"$1\r\n0\r\n" && from_zero {
        let mut out = b"scan-complete ".to_vec();
        out.extend(canonical(its[1], pairs));
        out
    } else {
        b"scan-partial".to_vec()
    }
}

fn compare_form(reply: &[u8], cmp: Cmp) -> Vec<u8> {
    match cmp {
        Cmp::Exact => reply.to_vec(),
        Cmp::Sorted => canonical(reply, false),
        Cmp::Pairs => canonical(reply, true),
        Cmp::Shape | Cmp::ShapeThenDel => shape(reply),
        Cmp::Scan { pairs, from_zero } => scan_canon(reply, pairs, from_zero),
        Cmp::Ttl => ttl_canon(reply),
        Cmp::Alpha { limit } => alpha_canon(reply, limit),
    }
}

/// A typed dump of the keyspace: what both servers must agree on.
fn dump(c: &mut Conn) -> Vec<String> {
    let mut out = Vec::new();
    let keys = canonical(&c.call(&["KEYS", "*"]), false);
    out.push(format!("KEYS {}", escape_short(&keys, 300)));
    for k in KEYS.iter().chain([&LEX_KEY, &MISSING]) {
        let t = c.call(&["TYPE", k]);
        let enc = c.call(&["OBJECT", "ENCODING", k]);
        let (val, pairs) = match &t[..] {
            b"+string\r\n" => (c.call(&["GET", k]), None),
            b"+list\r\n" => (c.call(&["LRANGE", k, "0", "-1"]), None),
            b"+set\r\n" => (c.call(&["SMEMBERS", k]), Some(false)),
            b"+hash\r\n" => (c.call(&["HGETALL", k]), Some(true)),
            b"+zset\r\n" => (c.call(&["ZRANGE", k, "0", "-1", "WITHSCORES"]), None),
            _ => (Vec::new(), None),
        };
        let val = match pairs {
            Some(p) => canonical(&val, p),
            None => val,
        };
        out.push(format!(
            "{} {} {} {}",
            k,
            escape_short(&t, 40),
            escape_short(&enc, 40),
            escape_short(&val, 3000)
        ));
    }
    out
}

/// Both strings cut to the region around their first difference.
fn around_difference(p: &str, q: &str) -> (String, String) {
    let first = p
        .bytes()
        .zip(q.bytes())
        .position(|(x, y)| x != y)
        .unwrap_or(p.len().min(q.len()));
    let cut = |s: &str| {
        let mut lo = first.saturating_sub(120);
        while !s.is_char_boundary(lo) {
            lo -= 1;
        }
        let mut hi = (first + 200).min(s.len());
        while !s.is_char_boundary(hi) {
            hi -= 1;
        }
        format!(
            "{}{}{}",
            if lo > 0 { "..." } else { "" },
            &s[lo..hi],
            if hi < s.len() { "..." } else { "" }
        )
    };
    let head: String = p.chars().take(60).collect();
    (
        format!("{} | {}", head, cut(p)),
        format!("{} | {}", q.chars().take(60).collect::<String>(), cut(q)),
    )
}

/// Everything a run found.
#[derive(Default)]
struct Findings {
    /// (signature, report) of reply mismatches, first example per signature.
    mismatches: Vec<(String, String)>,
    /// Total mismatching commands (including repeats of a signature).
    total: usize,
}

impl Findings {
    fn add(&mut self, sig: String, report: String) {
        self.total += 1;
        if !self.mismatches.iter().any(|(s, _)| *s == sig) {
            self.mismatches.push((sig, report));
        }
    }
}

fn reply_kind(r: &[u8]) -> String {
    match r.first() {
        Some(b'-') => {
            let e = r.iter().position(|&c| c == b' ').unwrap_or(r.len());
            String::from_utf8_lossy(&r[..e]).into_owned()
        }
        Some(&c) => (c as char).to_string(),
        None => "empty".into(),
    }
}

/// Sends `argv` on both connections; Err on I/O failure (crash, hang).
fn both(a: &mut Conn, x: &mut Conn, argv: &[Vec<u8>]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let t = Instant::now();
    let ra = a
        .cmd(argv)
        .map_err(|e| format!("valkey-rs: {}: {}", show_argv(argv), e))?;
    let ta = t.elapsed();
    let t = Instant::now();
    let rb = x
        .cmd(argv)
        .map_err(|e| format!("reference: {}: {}", show_argv(argv), e))?;
    let tb = t.elapsed();
    if ta > Duration::from_secs(1) && ta > tb * 10 {
        return Err(format!(
            "valkey-rs slow: {} took {:?} (reference {:?})",
            show_argv(argv),
            ta,
            tb
        ));
    }
    Ok((ra, rb))
}

/// Creates missing collections with a random size (small, around, above the listpack
/// thresholds) so that commands find data.
fn populate(g: &mut Gen, a: &mut Conn, x: &mut Conn, f: &mut Findings) -> Result<(), String> {
    for k in ["l0", "l1", "h0", "h1", "s0", "s1", "z0", "z1", "k0"] {
        let (ea, eb) = both(a, x, &[b("EXISTS"), b(k)])?;
        if ea != eb {
            f.add(format!("EXISTS {}", k), format!("EXISTS {}: differ", k));
        }
        if ea != b":0\r\n" || !g.r.chance(70) {
            continue;
        }
        let n = *g.r.pick(&[&3u64, &20, &140, &600]);
        let ints = g.r.chance(40);
        let mut v: Argv = match &k[..1] {
            "l" => vec![b("RPUSH"), b(k)],
            "h" => vec![b("HSET"), b(k)],
            "s" => vec![b("SADD"), b(k)],
            "z" => vec![b("ZADD"), b(k)],
            _ => vec![b("SET"), b(k), g.member()],
        };
        if k != "k0" {
            for i in 0..n {
                match &k[..1] {
                    "h" => {
                        v.push(g.member());
                        v.push(g.member());
                    }
                    "z" => {
                        let sc = if g.r.chance(20) {
                            format!("{}.5", g.r.range(-50, 50))
                        } else {
                            g.r.range(-50, 50).to_string()
                        };
                        v.push(b(sc));
                        v.push(if ints { b(i.to_string()) } else { g.member() });
                    }
                    _ => v.push(if ints {
                        b(g.r.range(-1000, 1000).to_string())
                    } else {
                        g.member()
                    }),
                }
            }
        }
        let (ra, rb) = both(a, x, &v)?;
        if ra != rb {
            f.add(
                format!("populate {}", k),
                format!(
                    "populate: {}\n  valkey-rs: {}\n  reference: {}",
                    escape_short(show_argv(&v).as_bytes(), 300),
                    escape_short(&ra, 300),
                    escape_short(&rb, 300)
                ),
            );
        }
    }
    Ok(())
}

fn setup(a: &mut Conn, x: &mut Conn, tiny: bool, resp3: bool) -> Result<(), String> {
    let cfg: &[&str] = if tiny {
        &[
            "CONFIG",
            "SET",
            "list-max-listpack-size",
            "4",
            "hash-max-listpack-entries",
            "4",
            "hash-max-listpack-value",
            "16",
            "set-max-intset-entries",
            "4",
            "set-max-listpack-entries",
            "4",
            "set-max-listpack-value",
            "16",
            "zset-max-listpack-entries",
            "4",
            "zset-max-listpack-value",
            "16",
        ]
    } else {
        &[
            "CONFIG",
            "SET",
            "list-max-listpack-size",
            "-2",
            "hash-max-listpack-entries",
            "128",
            "hash-max-listpack-value",
            "64",
            "set-max-intset-entries",
            "512",
            "set-max-listpack-entries",
            "128",
            "set-max-listpack-value",
            "64",
            "zset-max-listpack-entries",
            "128",
            "zset-max-listpack-value",
            "64",
        ]
    };
    let steps: Vec<Vec<&str>> = vec![
        vec!["HELLO", if resp3 { "3" } else { "2" }],
        vec!["FLUSHALL"],
        cfg.to_vec(),
        vec![
            "MSET", "w_a", "3", "w_b", "abc", "w_1", "-1", "w_2", "2.5", "w_x", "1e400",
        ],
        vec!["HSET", "wh_a", "f", "10", "g", "x"],
        vec!["HSET", "wh_1", "f", "-3"],
    ];
    for s in steps {
        let s: Argv = s.iter().map(b).collect();
        let (ra, rb) = both(a, x, &s)?;
        // HELLO replies carry the server's name and version.
        if ra != rb && !s[0].eq_ignore_ascii_case(b"HELLO") {
            return Err(format!(
                "setup {}: {} vs {}",
                show_argv(&s),
                escape_short(&ra, 200),
                escape_short(&rb, 200)
            ));
        }
    }
    Ok(())
}

/// Peak resident memory of the server answering on `c`, in KB (Linux only).
fn peak_rss_kb(c: &mut Conn) -> Option<u64> {
    let info = c.cmd(&["INFO", "server"]).ok()?;
    let pid = common::info_field(&info, "process_id")?;
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn run_pass(
    seed: u64,
    ops: usize,
    tiny: bool,
    resp3: bool,
    ours: u16,
    theirs: u16,
    f: &mut Findings,
) -> Result<(), String> {
    let mut a = Conn::connect(ours);
    let mut x = Conn::connect(theirs);
    // valgrind makes valkey-rs much slower.
    a.set_read_timeout(Duration::from_secs(120));
    setup(&mut a, &mut x, tiny, resp3)?;
    let mut g = Gen {
        r: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
    };
    let mut history: Vec<String> = Vec::new();
    // FUZZ_LOG=path: every command of the pass, to replay a finding.
    let mut log = std::env::var("FUZZ_LOG").ok().and_then(|p| {
        std::fs::File::create(format!(
            "{}.{}.{}",
            p,
            seed,
            if tiny { "tiny" } else { "default" }
        ))
        .ok()
    });
    let tail = |h: &Vec<String>| h[h.len().saturating_sub(12)..].join("\n    ");
    for i in 0..ops {
        if i % 100 == 0 {
            populate(&mut g, &mut a, &mut x, f)?;
        }
        let (argv, cmp, multi) = g.next();
        history.push(escape_short(show_argv(&argv).as_bytes(), 400));
        if let Some(l) = log.as_mut() {
            let _ = writeln!(
                l,
                "{} {}{}",
                i,
                if multi { "(MULTI) " } else { "" },
                show_argv(&argv)
            );
        }
        let (ra, rb) = if multi {
            let (m1, m2) = both(&mut a, &mut x, &[b("MULTI")])?;
            let (q1, q2) = both(&mut a, &mut x, &argv)?;
            let (e1, e2) = both(&mut a, &mut x, &[b("EXEC")])?;
            ([m1, q1, e1].concat(), [m2, q2, e2].concat())
        } else {
            both(&mut a, &mut x, &argv)?
        };
        let (mut ca, mut cb) = (compare_form(&ra, cmp), compare_form(&rb, cmp));
        if ca.starts_with(b"scan-partial") || cb.starts_with(b"scan-partial") {
            // COUNT is a hint: one side may finish in one call where the other does not.
            ca.truncate(4);
            cb.truncate(4);
        }
        if ca != cb {
            let name = String::from_utf8_lossy(&argv[0]).to_ascii_uppercase();
            let timeout_err = |r: &[u8]| r.windows(12).any(|w| w == b"-ERR timeout");
            let sig = if timeout_err(&ra) || timeout_err(&rb) {
                // One parsing difference shows in every blocking command.
                format!(
                    "blocking timeout {} / {}",
                    timeout_err(&ra),
                    timeout_err(&rb)
                )
            } else {
                format!("{} {} / {}", name, reply_kind(&ra), reply_kind(&rb))
            };
            f.add(
                sig,
                format!(
                    "seed {} tiny={} resp3={} op {}{}: {}\n  valkey-rs: {}\n  reference: {}\n  last commands:\n    {}",
                    seed,
                    tiny,
                    resp3,
                    i,
                    if multi { " (in MULTI)" } else { "" },
                    escape_short(show_argv(&argv).as_bytes(), 600),
                    escape_short(&ra, 400),
                    escape_short(&rb, 400),
                    tail(&history)
                ),
            );
        }
        if cmp == Cmp::ShapeThenDel && argv.len() > 1 && ra.first() != Some(&b'-') {
            both(&mut a, &mut x, &[b("DEL"), argv[1].clone()])?;
        }
        if i % 25 == 24 {
            let (pa, pb) = both(&mut a, &mut x, &[b("PING")])?;
            if pa != b"+PONG\r\n" || pb != b"+PONG\r\n" {
                return Err(format!(
                    "PING after op {}: {} / {}",
                    i,
                    escape_short(&pa, 100),
                    escape_short(&pb, 100)
                ));
            }
        }
        if ca != cb || i % 200 == 199 || i + 1 == ops {
            let (da, db) = (dump(&mut a), dump(&mut x));
            if da != db && ca != cb {
                // The mismatching command explains it: resynchronize quietly.
                setup(&mut a, &mut x, tiny, resp3)?;
            } else if da != db {
                let diff: Vec<String> = da
                    .iter()
                    .zip(db.iter())
                    .filter(|(p, q)| p != q)
                    .map(|(p, q)| {
                        let (p, q) = around_difference(p, q);
                        format!("valkey-rs: {}\n    reference: {}", p, q)
                    })
                    .collect();
                let name = history.last().cloned().unwrap_or_default();
                f.add(
                    format!("dump after {}", name.split(' ').next().unwrap_or("")),
                    format!(
                        "seed {} tiny={} resp3={} dump after op {} differs:\n    {}\n  last commands:\n    {}",
                        seed,
                        tiny,
                        resp3,
                        i,
                        diff.join("\n    "),
                        tail(&history)
                    ),
                );
                // Resynchronize and go on.
                setup(&mut a, &mut x, tiny, resp3)?;
            }
        }
    }
    Ok(())
}

#[test]
fn hostile_commands_match_reference() {
    let Some(ref_bin) = common::require_reference() else {
        return;
    };
    let ops = common::repl::env_num("FUZZ_OPS", 2500) as usize;
    let seeds = common::repl::env_seeds("FUZZ_SEED", &[1, 2]);
    // FUZZ_OURS_PORT=n: fuzz a valkey-rs started by hand (e.g. under valgrind) instead.
    let external: Option<u16> = std::env::var("FUZZ_OURS_PORT")
        .ok()
        .and_then(|s| s.parse().ok());
    let mut ours = if external.is_none() {
        Some(Server::ours(&[]))
    } else {
        None
    };
    let ours_port = external.unwrap_or_else(|| ours.as_ref().map_or(0, |s| s.port));
    let theirs = Server::reference(&ref_bin, &[]);
    let mut f = Findings::default();
    let mut fatal = None;
    'seeds: for &seed in &seeds {
        for (tiny, resp3) in [(false, false), (true, true)] {
            if let Err(e) = run_pass(seed, ops, tiny, resp3, ours_port, theirs.port, &mut f) {
                fatal = Some(format!("seed {} tiny={}: {}", seed, tiny, e));
                break 'seeds;
            }
        }
    }
    let alive = ours.as_mut().is_none_or(|s| s.alive());
    let rss = Conn::try_connect(ours_port)
        .ok()
        .and_then(|mut c| peak_rss_kb(&mut c));
    let mut report = Vec::new();
    if let Some(e) = fatal {
        report.push(format!("FATAL: {}", e));
    }
    if !alive {
        let log = ours.as_ref().map(|s| s.log()).unwrap_or_default();
        report.push(format!(
            "valkey-rs died; log:\n{}",
            escape_short(log.as_bytes(), 4000)
        ));
    }
    // The keyspace stays small (a few MB); a peak far above it is a huge allocation.
    if let Some(kb) = rss {
        if kb > 512 * 1024 && external.is_none() {
            report.push(format!("valkey-rs peak RSS {} KB", kb));
        }
    }
    for (_, m) in &f.mismatches {
        report.push(m.clone());
    }
    assert!(
        report.is_empty(),
        "{} mismatching commands, {} distinct:\n\n{}",
        f.total,
        f.mismatches.len(),
        report.join("\n\n")
    );
}

#[test]
fn canonical_forms() {
    let r = b"*3\r\n$1\r\nc\r\n$1\r\na\r\n:5\r\n";
    assert_eq!(canonical(r, false), b"*3\r\n$1\r\na\r\n$1\r\nc\r\n:5\r\n");
    assert_eq!(shape(b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"), b"*3");
    assert_eq!(shape(b"$1\r\na\r\n"), b"$");
    assert_eq!(shape(b"-ERR x\r\n"), b"-ERR x\r\n");
    assert_eq!(
        ttl_canon(b"*3\r\n:-2\r\n:1000\r\n:-1\r\n"),
        b"*3\r\n:-2\r\n:P\r\n:-1\r\n"
    );
    assert_eq!(
        scan_canon(
            b"*2\r\n$1\r\n0\r\n*2\r\n$1\r\nb\r\n$1\r\na\r\n",
            false,
            true
        ),
        b"scan-complete *2\r\n$1\r\na\r\n$1\r\nb\r\n"
    );
}
