//! Configuration: the directive table, the config file parser, CONFIG GET/SET semantics,
//! CONFIG REWRITE and logging, as upstream's `config.c`.
//!
//! # Layout
//! - [`TABLE`] lists every directive upstream Valkey 9 knows: its name, alias, flags, type
//!   (bool, number with bounds and units, enum, string or special) and default. The
//!   defaults are the values `CONFIG GET` reports on a freshly started upstream server.
//! - [`Config`] holds typed fields for the directives the server reads (others read them
//!   directly: `srv.config.hz`); every other directive lives as its canonical text in
//!   `Config::extra`, so it is accepted, reported and rewritten like upstream.
//! - [`Config::set_directive`] validates and stores one directive from its arguments (config
//!   file, command line, CONFIG SET); [`Config::get_directive`] renders the value CONFIG GET
//!   reports.
//! - [`load_from_args`] is `loadServerConfig`: the file, then `--name value` options.
//! - [`rewrite_config`] is `rewriteConfig` (CONFIG REWRITE).
//! - [`init_logging`] installs the logger writing upstream's log line format.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

/// The upstream release whose behaviour we mirror (error banners, INFO).
const VERSION: &str = "9.1.2";

/// `enable-debug-command` and friends: no, yes, local.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnableMode {
    No,
    Yes,
    Local,
}

/// `sanitize-dump-payload`: deep-check RESTORE payloads never, always, or for
/// clients other than the primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SanitizeDump {
    No,
    Yes,
    Clients,
}

/// Directive flags, as upstream's `*_CONFIG` flags.
pub mod dflags {
    /// Can only be set at startup.
    pub const IMMUTABLE: u32 = 1 << 0;
    /// The value is a secret (redacted from logs, slowlog, MONITOR).
    pub const SENSITIVE: u32 = 1 << 1;
    /// CONFIG SET needs `enable-protected-configs`.
    pub const PROTECTED: u32 = 1 << 2;
    /// Only an exact name finds it in CONFIG GET.
    pub const HIDDEN: u32 = 1 << 3;
    /// Takes several arguments (a single one is split on spaces).
    pub const MULTI_ARG: u32 = 1 << 4;
    /// Refused while loading data.
    pub const DENY_LOADING: u32 = 1 << 5;
    /// Listed by DEBUG CONFIG-DEBUG-INFO upstream.
    pub const DEBUG: u32 = 1 << 6;
}
use dflags::*;

/// How a number is written and parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumFmt {
    /// Plain integer (`string2ll`).
    Plain,
    /// Bytes with optional units: 1k 1kb 1m 1mb 1g 1gb.
    Memory,
    /// Memory, or a percentage (`10%`, stored negated).
    MemoryPercent,
    /// Octal (unixsocketperm).
    Octal,
}

/// The type of a directive and its default.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Bool(bool),
    Num {
        min: i64,
        max: i64,
        default: i64,
        fmt: NumFmt,
        /// Bounds compared as unsigned (upstream's unsigned int, unsigned long long and
        /// size_t types): a negative input wraps and fails the upper bound.
        unsigned: bool,
    },
    Enum {
        items: &'static [(&'static str, i32)],
        default: i32,
    },
    Str {
        default: &'static str,
    },
    /// A directive with its own parser (save, bind, dir, client-output-buffer-limit...).
    Special {
        default: &'static str,
    },
}

/// One directive of the table.
#[derive(Clone, Copy, Debug)]
pub struct Directive {
    pub name: &'static str,
    pub alias: Option<&'static str>,
    pub flags: u32,
    pub kind: Kind,
}

const fn bool_(name: &'static str, alias: Option<&'static str>, flags: u32, d: bool) -> Directive {
    Directive {
        name,
        alias,
        flags,
        kind: Kind::Bool(d),
    }
}

#[allow(clippy::too_many_arguments)]
const fn num_(
    name: &'static str,
    alias: Option<&'static str>,
    flags: u32,
    min: i64,
    max: i64,
    default: i64,
    fmt: NumFmt,
    unsigned: bool,
) -> Directive {
    Directive {
        name,
        alias,
        flags,
        kind: Kind::Num {
            min,
            max,
            default,
            fmt,
            unsigned,
        },
    }
}

/// A signed plain integer.
const fn int_(
    name: &'static str,
    alias: Option<&'static str>,
    flags: u32,
    min: i64,
    max: i64,
    d: i64,
) -> Directive {
    num_(name, alias, flags, min, max, d, NumFmt::Plain, false)
}

/// An unsigned plain integer.
const fn uint_(
    name: &'static str,
    alias: Option<&'static str>,
    flags: u32,
    min: i64,
    max: i64,
    d: i64,
) -> Directive {
    num_(name, alias, flags, min, max, d, NumFmt::Plain, true)
}

/// A memory value (signed bounds unless `unsigned`).
const fn mem_(
    name: &'static str,
    alias: Option<&'static str>,
    flags: u32,
    min: i64,
    max: i64,
    d: i64,
    unsigned: bool,
) -> Directive {
    num_(name, alias, flags, min, max, d, NumFmt::Memory, unsigned)
}

const fn enum_(
    name: &'static str,
    flags: u32,
    items: &'static [(&'static str, i32)],
    default: i32,
) -> Directive {
    Directive {
        name,
        alias: None,
        flags,
        kind: Kind::Enum { items, default },
    }
}

const fn str_(
    name: &'static str,
    alias: Option<&'static str>,
    flags: u32,
    default: &'static str,
) -> Directive {
    Directive {
        name,
        alias,
        flags,
        kind: Kind::Str { default },
    }
}

const fn special_(
    name: &'static str,
    alias: Option<&'static str>,
    flags: u32,
    default: &'static str,
) -> Directive {
    Directive {
        name,
        alias,
        flags,
        kind: Kind::Special { default },
    }
}

const M: u32 = 0; // modifiable
const I32MAX: i64 = i32::MAX as i64;
const I32MIN: i64 = i32::MIN as i64;
const U32MAX: i64 = u32::MAX as i64;
const I64MAX: i64 = i64::MAX;

pub const MAXMEMORY_POLICY: &[(&str, i32)] = &[
    ("volatile-lru", 0),
    ("volatile-lfu", 1),
    ("volatile-random", 2),
    ("volatile-ttl", 3),
    ("allkeys-lru", 4),
    ("allkeys-lfu", 5),
    ("allkeys-random", 6),
    ("noeviction", 7),
];
const SYSLOG_FACILITY: &[(&str, i32)] = &[
    ("user", 8),
    ("local0", 128),
    ("local1", 136),
    ("local2", 144),
    ("local3", 152),
    ("local4", 160),
    ("local5", 168),
    ("local6", 176),
    ("local7", 184),
];
pub const LOGLEVEL: &[(&str, i32)] = &[
    ("debug", 0),
    ("verbose", 1),
    ("notice", 2),
    ("warning", 3),
    ("nothing", 4),
];
const SUPERVISED: &[(&str, i32)] = &[("upstart", 1), ("systemd", 2), ("auto", 3), ("no", 0)];
const AOF_FSYNC: &[(&str, i32)] = &[("everysec", 2), ("always", 1), ("no", 0)];
/// Bit flags (shutdown-on-sigint/sigterm take several).
const SHUTDOWN_ON_SIG: &[(&str, i32)] = &[
    ("default", 0),
    ("save", 1),
    ("nosave", 2),
    ("now", 4),
    ("force", 8),
    ("safe", 16),
    ("failover", 32),
];
const REPL_DISKLESS_LOAD: &[(&str, i32)] = &[
    ("disabled", 0),
    ("on-empty-db", 1),
    ("swapdb", 2),
    ("flush-before-load", 3),
];
const TLS_AUTH_CLIENTS: &[(&str, i32)] = &[("no", 0), ("yes", 1), ("optional", 2)];
const TLS_AUTH_CLIENTS_USER: &[(&str, i32)] = &[("CN", 1), ("URI", 2), ("off", 0)];
const OOM_SCORE_ADJ: &[(&str, i32)] = &[("no", 0), ("yes", 1), ("relative", 1), ("absolute", 2)];
const ACL_PUBSUB_DEFAULT: &[(&str, i32)] = &[("allchannels", 1), ("resetchannels", 0)];
const PROTECTED_ACTION: &[(&str, i32)] = &[("no", 0), ("yes", 1), ("local", 2)];
const CLUSTER_ENDPOINT: &[(&str, i32)] = &[("ip", 0), ("hostname", 1), ("unknown-endpoint", 2)];
const PROPAGATION_ERR: &[(&str, i32)] = &[("ignore", 0), ("panic", 1), ("panic-on-replicas", 2)];
const LOG_FORMAT: &[(&str, i32)] = &[("legacy", 0), ("logfmt", 1), ("json", 2)];
const LOG_TIMESTAMP_FORMAT: &[(&str, i32)] = &[("legacy", 0), ("iso8601", 1), ("milliseconds", 2)];
const RDB_VERSION_CHECK: &[(&str, i32)] = &[("strict", 0), ("relaxed", 1)];
const SANITIZE_DUMP: &[(&str, i32)] = &[("no", 0), ("yes", 1), ("clients", 2)];
const CLUSTER_CONFIG_SAVE: &[(&str, i32)] = &[("sync", 0), ("best-effort", 1)];

/// Every directive, with upstream's names, aliases, flags, bounds and the defaults
/// `CONFIG GET` reports on a fresh upstream server.
pub static TABLE: &[Directive] = &[
    // Booleans.
    bool_("rdbchecksum", None, IMMUTABLE, true),
    bool_("daemonize", None, IMMUTABLE, false),
    bool_("always-show-logo", None, IMMUTABLE, false),
    bool_("protected-mode", None, M, true),
    // Beyond upstream: CONFIG GET shows secrets (requirepass, masterauth, TLS key
    // passphrases) in clear only when this is set in the configuration file, and then
    // only to users allowed CONFIG SET and ACL SETUSER (src/commands/config.rs).
    bool_("config-get-secrets", None, IMMUTABLE, false),
    bool_("rdbcompression", None, M, true),
    bool_("rdb-del-sync-files", None, M, false),
    bool_("activerehashing", None, M, true),
    bool_("stop-writes-on-bgsave-error", None, M, true),
    bool_("set-proc-title", None, IMMUTABLE, true),
    bool_("lazyfree-lazy-eviction", None, DEBUG, true),
    bool_("lazyfree-lazy-expire", None, DEBUG, true),
    bool_("lazyfree-lazy-server-del", None, DEBUG, true),
    bool_("lazyfree-lazy-user-del", None, DEBUG, true),
    bool_("lazyfree-lazy-user-flush", None, DEBUG, true),
    bool_("repl-disable-tcp-nodelay", None, M, false),
    bool_("repl-diskless-sync", None, DEBUG, true),
    bool_("dual-channel-replication-enabled", None, M, false),
    bool_("aof-rewrite-incremental-fsync", None, M, true),
    bool_("no-appendfsync-on-rewrite", None, M, false),
    bool_("cluster-require-full-coverage", None, M, true),
    bool_("rdb-save-incremental-fsync", None, M, true),
    bool_("aof-load-truncated", None, M, true),
    bool_("aof-use-rdb-preamble", None, M, true),
    bool_("aof-timestamp-enabled", None, M, false),
    bool_(
        "cluster-replica-no-failover",
        Some("cluster-slave-no-failover"),
        M,
        false,
    ),
    bool_("replica-lazy-flush", Some("slave-lazy-flush"), M, true),
    bool_(
        "replica-serve-stale-data",
        Some("slave-serve-stale-data"),
        M,
        true,
    ),
    bool_("replica-read-only", Some("slave-read-only"), DEBUG, true),
    bool_(
        "replica-ignore-maxmemory",
        Some("slave-ignore-maxmemory"),
        M,
        true,
    ),
    bool_("jemalloc-bg-thread", None, M, true),
    bool_("activedefrag", None, DEBUG, false),
    bool_("syslog-enabled", None, IMMUTABLE, false),
    bool_("cluster-enabled", None, IMMUTABLE, false),
    bool_("appendonly", None, DENY_LOADING, false),
    bool_("cluster-allow-reads-when-down", None, M, false),
    bool_("cluster-allow-pubsubshard-when-down", None, M, true),
    bool_("crash-log-enabled", None, M, true),
    bool_("crash-memcheck-enabled", None, M, true),
    bool_("use-exit-on-panic", None, HIDDEN, false),
    bool_("disable-thp", None, IMMUTABLE, true),
    bool_("cluster-allow-replica-migration", None, M, true),
    bool_("replica-announced", None, M, true),
    bool_("latency-tracking", None, M, true),
    bool_("aof-disable-auto-gc", None, HIDDEN, false),
    bool_("replica-ignore-disk-write-errors", None, M, false),
    bool_("extended-redis-compatibility", None, M, false),
    bool_("enable-debug-assert", None, IMMUTABLE | HIDDEN, false),
    bool_("cluster-slot-stats-enabled", None, M, false),
    bool_("hide-user-data-from-log", None, M, true),
    bool_("import-mode", None, M, false),
    bool_("mptcp", None, IMMUTABLE, false),
    bool_("repl-mptcp", None, IMMUTABLE, false),
    bool_("tls-cluster", None, M, false),
    bool_("tls-replication", None, M, false),
    bool_("tls-prefer-server-ciphers", None, M, false),
    bool_("tls-session-caching", None, M, true),
    // Beyond upstream (docs/security.md): loopback clients are never throttled.
    bool_("auth-failure-exempt-loopback", None, M, true),
    // Strings.
    str_("aclfile", None, IMMUTABLE, ""),
    // Beyond upstream (docs/security.md): the audit log, "" = off.
    // PROTECTED like dir/dbfilename: it names a file the server writes to.
    str_("audit-log-file", None, PROTECTED, ""),
    str_("unixsocket", None, IMMUTABLE, ""),
    str_("unixsocketgroup", None, IMMUTABLE, ""),
    str_("pidfile", None, IMMUTABLE, ""),
    str_("replica-announce-ip", Some("slave-announce-ip"), M, ""),
    str_("primaryuser", Some("masteruser"), SENSITIVE, ""),
    str_("cluster-announce-ip", None, M, ""),
    str_("cluster-announce-client-ipv4", None, M, ""),
    str_("cluster-announce-client-ipv6", None, M, ""),
    str_("cluster-config-file", None, IMMUTABLE, "nodes.conf"),
    str_("cluster-announce-hostname", None, M, ""),
    str_("cluster-announce-human-nodename", None, M, ""),
    str_("syslog-ident", None, IMMUTABLE, "valkey"),
    str_("dbfilename", None, PROTECTED, "dump.rdb"),
    // Encryption at rest (issue 14, docs/encryption.md): key files read at start and by
    // CONFIG SET (src/rdb/crypt.rs); empty: files are written in plaintext.
    str_("persistence-encryption-key-file", None, M, ""),
    str_("persistence-encryption-old-key-file", None, M, ""),
    str_("appendfilename", None, IMMUTABLE, "appendonly.aof"),
    str_("appenddirname", None, IMMUTABLE, "appendonlydir"),
    str_("server-cpulist", Some("server_cpulist"), IMMUTABLE, ""),
    str_("bio-cpulist", Some("bio_cpulist"), IMMUTABLE, ""),
    str_(
        "aof-rewrite-cpulist",
        Some("aof_rewrite_cpulist"),
        IMMUTABLE,
        "",
    ),
    str_("bgsave-cpulist", Some("bgsave_cpulist"), IMMUTABLE, ""),
    str_("ignore-warnings", None, M, ""),
    str_(
        "proc-title-template",
        None,
        M,
        "{title} {listen-addr} {server-mode}",
    ),
    str_("bind-source-addr", None, M, ""),
    str_("logfile", None, IMMUTABLE, ""),
    str_("locale-collate", None, M, ""),
    str_("availability-zone", None, M, ""),
    str_("hash-seed", None, IMMUTABLE, ""),
    str_("primaryauth", Some("masterauth"), SENSITIVE, ""),
    str_("requirepass", None, SENSITIVE, ""),
    str_("rdma-bind", None, M, ""),
    str_("tls-cert-file", None, M, ""),
    str_("tls-key-file", None, M, ""),
    str_("tls-key-file-pass", None, SENSITIVE, ""),
    str_("tls-client-cert-file", None, M, ""),
    str_("tls-client-key-file", None, M, ""),
    str_("tls-client-key-file-pass", None, SENSITIVE, ""),
    str_("tls-dh-params-file", None, M, ""),
    str_("tls-ca-cert-file", None, M, ""),
    str_("tls-ca-cert-dir", None, M, ""),
    str_("tls-protocols", None, M, ""),
    str_("tls-ciphers", None, M, ""),
    str_("tls-ciphersuites", None, M, ""),
    // Enums.
    enum_("supervised", IMMUTABLE, SUPERVISED, 0),
    enum_("syslog-facility", IMMUTABLE, SYSLOG_FACILITY, 128),
    enum_(
        "repl-diskless-load",
        DEBUG | DENY_LOADING,
        REPL_DISKLESS_LOAD,
        0,
    ),
    enum_("loglevel", M, LOGLEVEL, 2),
    enum_("maxmemory-policy", M, MAXMEMORY_POLICY, 7),
    enum_("appendfsync", M, AOF_FSYNC, 2),
    enum_("oom-score-adj", M, OOM_SCORE_ADJ, 0),
    enum_("acl-pubsub-default", M, ACL_PUBSUB_DEFAULT, 0),
    enum_("enable-protected-configs", IMMUTABLE, PROTECTED_ACTION, 0),
    enum_("enable-debug-command", IMMUTABLE, PROTECTED_ACTION, 0),
    enum_("enable-module-command", IMMUTABLE, PROTECTED_ACTION, 0),
    enum_("cluster-preferred-endpoint-type", M, CLUSTER_ENDPOINT, 0),
    enum_("propagation-error-behavior", M, PROPAGATION_ERR, 0),
    enum_("shutdown-on-sigint", MULTI_ARG, SHUTDOWN_ON_SIG, 0),
    enum_("shutdown-on-sigterm", MULTI_ARG, SHUTDOWN_ON_SIG, 0),
    enum_("log-format", M, LOG_FORMAT, 0),
    enum_("log-timestamp-format", M, LOG_TIMESTAMP_FORMAT, 0),
    enum_("rdb-version-check", M, RDB_VERSION_CHECK, 0),
    // Upstream's default is `no`, but 9.1.2 as measured deep-checks every RESTORE
    // (INFO `dump_payload_sanitizations` counts each one) and does not expose the
    // directive to CONFIG GET/SET. `clients` deep-checks RESTORE from clients (safer
    // by default) and leaves loading a snapshot at upstream's cost.
    enum_(
        "sanitize-dump-payload",
        HIDDEN | DENY_LOADING,
        SANITIZE_DUMP,
        2,
    ),
    enum_("cluster-config-save-behavior", M, CLUSTER_CONFIG_SAVE, 0),
    enum_("tls-auth-clients", M, TLS_AUTH_CLIENTS, 1),
    enum_("tls-auth-clients-user", M, TLS_AUTH_CLIENTS_USER, 0),
    // Integers.
    int_("databases", None, IMMUTABLE, 1, I32MAX, 16),
    int_("cluster-databases", None, IMMUTABLE, 1, I32MAX, 1),
    int_("port", None, M, 0, 65535, 6379),
    int_("io-threads", None, DEBUG, 1, 256, 1),
    int_("auto-aof-rewrite-percentage", None, M, 0, I32MAX, 100),
    int_(
        "cluster-replica-validity-factor",
        Some("cluster-slave-validity-factor"),
        M,
        0,
        I32MAX,
        10,
    ),
    int_(
        "list-max-listpack-size",
        Some("list-max-ziplist-size"),
        M,
        I32MIN,
        I32MAX,
        -2,
    ),
    int_("tcp-keepalive", None, M, 0, I32MAX, 300),
    int_("cluster-blacklist-ttl", None, M, i64::MIN, I64MAX, 60),
    int_("cluster-migration-barrier", None, M, 0, I32MAX, 1),
    int_("active-defrag-cycle-min", None, M, 1, 99, 1),
    int_("active-defrag-cycle-max", None, M, 1, 99, 25),
    int_("active-defrag-threshold-lower", None, M, 0, 1000, 10),
    int_("active-defrag-threshold-upper", None, M, 0, 1000, 100),
    int_("active-defrag-cycle-us", None, M, 0, 100000, 500),
    int_("lfu-log-factor", None, M, 0, I32MAX, 10),
    int_("lfu-decay-time", None, M, 0, I32MAX, 1),
    int_(
        "replica-priority",
        Some("slave-priority"),
        M,
        0,
        I32MAX,
        100,
    ),
    int_("repl-diskless-sync-delay", None, M, 0, I32MAX, 5),
    int_("maxmemory-samples", None, M, 1, 64, 5),
    int_("maxmemory-eviction-tenacity", None, M, 0, 100, 10),
    int_("timeout", None, M, 0, I32MAX, 0),
    int_(
        "replica-announce-port",
        Some("slave-announce-port"),
        M,
        0,
        65535,
        0,
    ),
    int_("tcp-backlog", None, IMMUTABLE, 0, I32MAX, 511),
    int_("cluster-port", None, IMMUTABLE, 0, 65535, 0),
    int_("cluster-announce-bus-port", None, M, 0, 65535, 0),
    int_("cluster-announce-port", None, M, 0, 65535, 0),
    int_("cluster-announce-tls-port", None, M, 0, 65535, 0),
    int_("cluster-announce-client-port", None, M, 0, 65535, 0),
    int_("cluster-announce-client-tls-port", None, M, 0, 65535, 0),
    int_("repl-timeout", None, M, 1, I32MAX, 60),
    int_(
        "repl-ping-replica-period",
        Some("repl-ping-slave-period"),
        M,
        1,
        I32MAX,
        10,
    ),
    int_("list-compress-depth", None, DEBUG, 0, I32MAX, 0),
    int_("rdb-key-save-delay", None, HIDDEN, I32MIN, I32MAX, 0),
    int_("key-load-delay", None, HIDDEN, I32MIN, I32MAX, 0),
    int_("active-expire-effort", None, M, 1, 10, 1),
    int_("hz", None, M, 0, I32MAX, 10),
    int_(
        "min-replicas-to-write",
        Some("min-slaves-to-write"),
        M,
        0,
        I32MAX,
        0,
    ),
    int_(
        "min-replicas-max-lag",
        Some("min-slaves-max-lag"),
        M,
        0,
        I32MAX,
        10,
    ),
    int_("watchdog-period", None, HIDDEN, 0, I32MAX, 0),
    int_("shutdown-timeout", None, M, 0, I32MAX, 10),
    int_("repl-diskless-sync-max-replicas", None, M, 0, I32MAX, 0),
    int_("cluster-manual-failover-timeout", None, M, 1, I32MAX, 5000),
    int_("prefetch-batch-max-size", None, M, 0, 128, 16),
    int_("rdma-port", None, M, 0, 65535, 0),
    int_(
        "rdma-rx-size",
        None,
        IMMUTABLE,
        64 * 1024,
        16 * 1024 * 1024,
        1024 * 1024,
    ),
    int_("rdma-completion-vector", None, IMMUTABLE, -1, 1024, -1),
    int_("tls-port", None, M, 0, 65535, 0),
    int_("tls-session-cache-size", None, M, 0, I32MAX, 20480),
    int_("tls-session-cache-timeout", None, M, 0, I32MAX, 300),
    int_("tls-auto-reload-interval", None, M, 0, I32MAX, 0),
    uint_("maxclients", None, M, 1, U32MAX, 10000),
    num_(
        "unixsocketperm",
        None,
        IMMUTABLE,
        0,
        0o777,
        0,
        NumFmt::Octal,
        true,
    ),
    uint_("socket-mark-id", None, IMMUTABLE, 0, U32MAX, 0),
    uint_("max-new-connections-per-cycle", None, M, 1, 1000, 10),
    uint_("max-new-tls-connections-per-cycle", None, M, 1, 1000, 1),
    int_("active-defrag-max-scan-fields", None, M, 1, I64MAX, 1000),
    int_(
        "commandlog-slow-execution-max-len",
        Some("slowlog-max-len"),
        M,
        0,
        I64MAX,
        128,
    ),
    int_("commandlog-large-request-max-len", None, M, 0, I64MAX, 128),
    int_("commandlog-large-reply-max-len", None, M, 0, I64MAX, 128),
    int_("acllog-max-len", None, M, 0, I64MAX, 128),
    // Beyond upstream (docs/security.md): AUTH brute-force throttling.
    int_("auth-failure-threshold", None, M, 0, I32MAX, 10),
    int_("auth-failure-window", None, M, 1, 86_400, 60),
    int_("auth-lockout-max", None, M, 1, 86_400, 300),
    int_(
        "cluster-slot-migration-log-max-len",
        None,
        M,
        0,
        I64MAX,
        1000,
    ),
    int_(
        "busy-reply-threshold",
        Some("lua-time-limit"),
        M,
        0,
        I64MAX,
        5000,
    ),
    int_("cluster-node-timeout", None, M, 0, I64MAX, 15000),
    int_("cluster-ping-interval", None, HIDDEN, 0, I64MAX, 0),
    int_(
        "commandlog-execution-slower-than",
        Some("slowlog-log-slower-than"),
        M,
        -1,
        I64MAX,
        10000,
    ),
    int_(
        "commandlog-request-larger-than",
        None,
        M,
        -1,
        I64MAX,
        1024 * 1024,
    ),
    int_(
        "commandlog-reply-larger-than",
        None,
        M,
        -1,
        I64MAX,
        1024 * 1024,
    ),
    int_("latency-monitor-threshold", None, M, 0, I64MAX, 0),
    mem_(
        "proto-max-bulk-len",
        None,
        DEBUG,
        1024 * 1024,
        I64MAX,
        512 * 1024 * 1024,
        false,
    ),
    int_("stream-node-max-entries", None, M, 0, I64MAX, 100),
    mem_(
        "repl-backlog-size",
        None,
        M,
        1,
        I64MAX,
        10 * 1024 * 1024,
        false,
    ),
    mem_("maxmemory", None, M, 0, -1, 0, true),
    mem_("cluster-link-sendbuf-limit", None, M, 0, -1, 0, true),
    mem_(
        "slot-migration-max-failover-repl-bytes",
        None,
        M,
        -1,
        I64MAX,
        0,
        false,
    ),
    uint_(
        "hash-max-listpack-entries",
        Some("hash-max-ziplist-entries"),
        M,
        0,
        I64MAX,
        512,
    ),
    uint_("set-max-intset-entries", None, M, 0, I64MAX, 512),
    uint_("set-max-listpack-entries", None, M, 0, I64MAX, 128),
    uint_("set-max-listpack-value", None, M, 0, I64MAX, 64),
    uint_(
        "zset-max-listpack-entries",
        Some("zset-max-ziplist-entries"),
        M,
        0,
        I64MAX,
        128,
    ),
    mem_(
        "active-defrag-ignore-bytes",
        None,
        M,
        1,
        I64MAX,
        100 << 20,
        true,
    ),
    mem_(
        "hash-max-listpack-value",
        Some("hash-max-ziplist-value"),
        M,
        0,
        I64MAX,
        64,
        true,
    ),
    mem_("stream-node-max-bytes", None, M, 0, I64MAX, 4096, true),
    mem_(
        "zset-max-listpack-value",
        Some("zset-max-ziplist-value"),
        M,
        0,
        I64MAX,
        64,
        true,
    ),
    mem_("hll-sparse-max-bytes", None, M, 0, I64MAX, 3000, true),
    uint_("tracking-table-max-keys", None, M, 0, I64MAX, 1_000_000),
    mem_(
        "client-query-buffer-limit",
        None,
        DEBUG,
        1024 * 1024,
        I64MAX,
        1024 * 1024 * 1024,
        true,
    ),
    num_(
        "maxmemory-clients",
        None,
        M,
        -100,
        I64MAX,
        0,
        NumFmt::MemoryPercent,
        false,
    ),
    int_("repl-backlog-ttl", None, M, 0, I64MAX, 3600),
    mem_(
        "auto-aof-rewrite-min-size",
        None,
        M,
        0,
        I64MAX,
        64 * 1024 * 1024,
        false,
    ),
    int_(
        "loading-process-events-interval-bytes",
        None,
        HIDDEN,
        1024,
        I32MAX,
        2 * 1024 * 1024,
    ),
    // Special.
    special_("dir", None, PROTECTED | DENY_LOADING, ""),
    special_("save", None, MULTI_ARG, "3600 1 300 100 60 10000"),
    special_(
        "client-output-buffer-limit",
        None,
        MULTI_ARG,
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
    ),
    special_("oom-score-adj-values", None, MULTI_ARG, "0 200 800"),
    special_("notify-keyspace-events", None, M, ""),
    special_("bind", None, MULTI_ARG, "127.0.0.1 -::1"), // Safer than upstream's `* -::*`: loopback only unless configured.
    special_("replicaof", Some("slaveof"), IMMUTABLE | MULTI_ARG, ""),
    special_(
        "latency-tracking-info-percentiles",
        None,
        MULTI_ARG,
        "50 99 99.9",
    ),
];

/// Finds a directive by name or alias, case-insensitively. Returns the entry and whether
/// the name was the alias.
pub fn lookup(name: &str) -> Option<(&'static Directive, bool)> {
    for d in TABLE {
        if d.name.eq_ignore_ascii_case(name) {
            return Some((d, false));
        }
        if let Some(a) = d.alias {
            if a.eq_ignore_ascii_case(name) {
                return Some((d, true));
            }
        }
    }
    None
}

/// Keyspace notification classes, as upstream's `NOTIFY_*` bits.
pub mod notify {
    pub const KEYSPACE: u32 = 1 << 0;
    pub const KEYEVENT: u32 = 1 << 1;
    pub const GENERIC: u32 = 1 << 2;
    pub const STRING: u32 = 1 << 3;
    pub const LIST: u32 = 1 << 4;
    pub const SET: u32 = 1 << 5;
    pub const HASH: u32 = 1 << 6;
    pub const ZSET: u32 = 1 << 7;
    pub const EXPIRED: u32 = 1 << 8;
    pub const EVICTED: u32 = 1 << 9;
    pub const STREAM: u32 = 1 << 10;
    pub const KEY_MISS: u32 = 1 << 11;
    pub const MODULE: u32 = 1 << 12;
    pub const NEW: u32 = 1 << 13;
    /// `A`: every class but key-miss and new.
    pub const ALL: u32 =
        GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;
}

/// Parses a notify-keyspace-events class string; None on an unknown character.
pub fn keyspace_events_from_str(s: &str) -> Option<u32> {
    use notify::*;
    let mut f = 0;
    for ch in s.chars() {
        f |= match ch {
            'A' => ALL,
            'g' => GENERIC,
            '$' => STRING,
            'l' => LIST,
            's' => SET,
            'h' => HASH,
            'z' => ZSET,
            'x' => EXPIRED,
            'e' => EVICTED,
            'K' => KEYSPACE,
            'E' => KEYEVENT,
            't' => STREAM,
            'm' => KEY_MISS,
            'd' => MODULE,
            'n' => NEW,
            _ => return None,
        };
    }
    Some(f)
}

/// Renders notify-keyspace-events flags as upstream does (`AKE`).
pub fn keyspace_events_to_string(f: u32) -> String {
    use notify::*;
    let mut s = String::new();
    if f & ALL == ALL {
        s.push('A');
    } else {
        for (bit, ch) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ] {
            if f & bit != 0 {
                s.push(ch);
            }
        }
    }
    for (bit, ch) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if f & bit != 0 {
            s.push(ch);
        }
    }
    s
}

/// Output buffer limits of one client class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObufLimit {
    pub hard: u64,
    pub soft: u64,
    pub soft_seconds: i64,
}

/// A parsed directive value, the currency between the table and the typed fields.
#[derive(Clone, Debug, PartialEq)]
enum Val {
    Bool(bool),
    Num(i64),
    Text(String),
}

#[derive(Clone, Debug)]
pub struct Config {
    pub port: u16,
    pub bind: Vec<String>,
    pub unixsocket: Option<String>,
    pub unixsocketperm: u32,
    pub tcp_backlog: i32,
    pub tcp_keepalive: u32,
    pub maxclients: usize,
    /// Idle seconds before a client is closed; 0 never.
    pub timeout: u64,
    pub databases: usize,
    pub hz: u32,
    pub dynamic_hz: bool,
    pub proto_max_bulk_len: i64,
    pub client_query_buffer_limit: usize,
    pub loglevel: String,
    pub logfile: String,
    pub enable_debug_command: EnableMode,
    pub sanitize_dump_payload: SanitizeDump,
    pub active_expire_effort: u32,
    /// The working directory as given; CONFIG GET reports the real cwd.
    pub dir: String,
    pub protected_mode: bool,
    pub requirepass: Option<Vec<u8>>,
    pub masterauth: Option<Vec<u8>>,
    pub daemonize: bool,
    pub pidfile: String,
    pub maxmemory: u64,
    pub maxmemory_policy: String,
    pub maxmemory_samples: u32,
    pub maxmemory_clients: i64,
    /// RDB save points: (seconds, changes).
    pub save: Vec<(i64, i64)>,
    pub dbfilename: String,
    pub rdbcompression: bool,
    pub rdbchecksum: bool,
    pub stop_writes_on_bgsave_error: bool,
    /// Microseconds slept per key while saving (negative: nanoseconds), for tests.
    pub rdb_key_save_delay: i64,
    pub appendonly: bool,
    pub appendfsync: String,
    pub appendfilename: String,
    pub appenddirname: String,
    pub notify_keyspace_events: u32,
    pub slowlog_log_slower_than: i64,
    pub slowlog_max_len: u64,
    pub commandlog_request_larger_than: i64,
    pub commandlog_large_request_max_len: u64,
    pub commandlog_reply_larger_than: i64,
    pub commandlog_large_reply_max_len: u64,
    pub latency_monitor_threshold: i64,
    pub lazyfree_lazy_eviction: bool,
    pub lazyfree_lazy_expire: bool,
    pub lazyfree_lazy_server_del: bool,
    pub lazyfree_lazy_user_del: bool,
    pub lazyfree_lazy_user_flush: bool,
    pub activerehashing: bool,
    pub lfu_log_factor: i32,
    pub lfu_decay_time: i32,
    pub hash_max_listpack_entries: usize,
    pub hash_max_listpack_value: usize,
    pub set_max_intset_entries: usize,
    pub set_max_listpack_entries: usize,
    pub set_max_listpack_value: usize,
    pub zset_max_listpack_entries: usize,
    pub zset_max_listpack_value: usize,
    pub list_max_listpack_size: i32,
    pub list_compress_depth: i32,
    pub stream_node_max_bytes: usize,
    pub stream_node_max_entries: i64,
    pub hll_sparse_max_bytes: usize,
    pub busy_reply_threshold: i64,
    pub acllog_max_len: u64,
    pub aclfile: String,
    pub audit_log_file: String,
    pub auth_failure_threshold: u32,
    pub auth_failure_window: i64,
    pub auth_lockout_max: i64,
    pub auth_failure_exempt_loopback: bool,
    pub tracking_table_max_keys: usize,
    pub client_obuf_limits: [ObufLimit; 3],
    pub latency_tracking: bool,
    pub latency_tracking_info_percentiles: Vec<f64>,
    pub replicaof: Option<(String, u16)>,
    pub enable_protected_configs: EnableMode,
    pub enable_module_command: EnableMode,
    /// `config-get-secrets`: CONFIG GET returns SENSITIVE directives in clear.
    pub config_get_secrets: bool,
    pub cluster_enabled: bool,
    /// Read by the cluster redirection (src/cluster/redirect.rs) on every keyed command.
    pub cluster_require_full_coverage: bool,
    pub cluster_allow_reads_when_down: bool,
    pub cluster_allow_pubsubshard_when_down: bool,
    pub io_threads: u32,
    pub shutdown_timeout: u32,
    /// Every other directive: canonical name -> the text CONFIG GET reports.
    pub extra: HashMap<&'static str, String>,
}

/// The typed fields: how each reads and writes its [`Val`].
macro_rules! typed_fields {
    ($($name:literal => $field:ident : $kind:ident),* $(,)?) => {
        impl Config {
            fn get_typed(&self, name: &str) -> Option<Val> {
                Some(match name {
                    $($name => typed_fields!(@get $kind self.$field),)*
                    _ => return None,
                })
            }

            fn set_typed(&mut self, name: &str, v: Val) -> bool {
                match name {
                    $($name => typed_fields!(@set $kind self.$field, v),)*
                    _ => return false,
                }
                true
            }
        }
    };
    (@get bool $f:expr) => { Val::Bool($f) };
    (@get num $f:expr) => { Val::Num($f as i64) };
    (@get text $f:expr) => { Val::Text($f.clone()) };
    (@get opt $f:expr) => { Val::Text($f.clone().unwrap_or_default()) };
    (@get optbytes $f:expr) => {
        Val::Text($f.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default())
    };
    (@get mode $f:expr) => {
        Val::Text(match $f { EnableMode::No => "no", EnableMode::Yes => "yes", EnableMode::Local => "local" }.to_string())
    };
    (@get sanitize $f:expr) => {
        Val::Text(match $f { SanitizeDump::No => "no", SanitizeDump::Yes => "yes", SanitizeDump::Clients => "clients" }.to_string())
    };
    (@set bool $f:expr, $v:expr) => { if let Val::Bool(b) = $v { $f = b } };
    // Bounds were checked against the table, so the casts keep the value.
    (@set num $f:expr, $v:expr) => { if let Val::Num(n) = $v { $f = n as _ } };
    (@set text $f:expr, $v:expr) => { if let Val::Text(s) = $v { $f = s } };
    (@set opt $f:expr, $v:expr) => { if let Val::Text(s) = $v { $f = if s.is_empty() { None } else { Some(s) } } };
    (@set optbytes $f:expr, $v:expr) => {
        if let Val::Text(s) = $v { $f = if s.is_empty() { None } else { Some(s.into_bytes()) } }
    };
    (@set sanitize $f:expr, $v:expr) => {
        if let Val::Text(s) = $v {
            $f = match s.as_str() { "yes" => SanitizeDump::Yes, "clients" => SanitizeDump::Clients, _ => SanitizeDump::No }
        }
    };
    (@set mode $f:expr, $v:expr) => {
        if let Val::Text(s) = $v {
            $f = match s.as_str() { "yes" => EnableMode::Yes, "local" => EnableMode::Local, _ => EnableMode::No }
        }
    };
}

typed_fields! {
    "port" => port: num,
    "unixsocket" => unixsocket: opt,
    "unixsocketperm" => unixsocketperm: num,
    "tcp-backlog" => tcp_backlog: num,
    "tcp-keepalive" => tcp_keepalive: num,
    "maxclients" => maxclients: num,
    "timeout" => timeout: num,
    "databases" => databases: num,
    "hz" => hz: num,
    "proto-max-bulk-len" => proto_max_bulk_len: num,
    "client-query-buffer-limit" => client_query_buffer_limit: num,
    "loglevel" => loglevel: text,
    "logfile" => logfile: text,
    "enable-debug-command" => enable_debug_command: mode,
    "sanitize-dump-payload" => sanitize_dump_payload: sanitize,
    "enable-protected-configs" => enable_protected_configs: mode,
    "enable-module-command" => enable_module_command: mode,
    "active-expire-effort" => active_expire_effort: num,
    "protected-mode" => protected_mode: bool,
    "config-get-secrets" => config_get_secrets: bool,
    "requirepass" => requirepass: optbytes,
    "primaryauth" => masterauth: optbytes,
    "daemonize" => daemonize: bool,
    "pidfile" => pidfile: text,
    "maxmemory" => maxmemory: num,
    "maxmemory-policy" => maxmemory_policy: text,
    "maxmemory-samples" => maxmemory_samples: num,
    "maxmemory-clients" => maxmemory_clients: num,
    "dbfilename" => dbfilename: text,
    "rdbcompression" => rdbcompression: bool,
    "rdbchecksum" => rdbchecksum: bool,
    "stop-writes-on-bgsave-error" => stop_writes_on_bgsave_error: bool,
    "rdb-key-save-delay" => rdb_key_save_delay: num,
    "appendonly" => appendonly: bool,
    "appendfsync" => appendfsync: text,
    "appendfilename" => appendfilename: text,
    "appenddirname" => appenddirname: text,
    "commandlog-execution-slower-than" => slowlog_log_slower_than: num,
    "commandlog-slow-execution-max-len" => slowlog_max_len: num,
    "commandlog-request-larger-than" => commandlog_request_larger_than: num,
    "commandlog-large-request-max-len" => commandlog_large_request_max_len: num,
    "commandlog-reply-larger-than" => commandlog_reply_larger_than: num,
    "commandlog-large-reply-max-len" => commandlog_large_reply_max_len: num,
    "latency-monitor-threshold" => latency_monitor_threshold: num,
    "lazyfree-lazy-eviction" => lazyfree_lazy_eviction: bool,
    "lazyfree-lazy-expire" => lazyfree_lazy_expire: bool,
    "lazyfree-lazy-server-del" => lazyfree_lazy_server_del: bool,
    "lazyfree-lazy-user-del" => lazyfree_lazy_user_del: bool,
    "lazyfree-lazy-user-flush" => lazyfree_lazy_user_flush: bool,
    "activerehashing" => activerehashing: bool,
    "lfu-log-factor" => lfu_log_factor: num,
    "lfu-decay-time" => lfu_decay_time: num,
    "hash-max-listpack-entries" => hash_max_listpack_entries: num,
    "hash-max-listpack-value" => hash_max_listpack_value: num,
    "set-max-intset-entries" => set_max_intset_entries: num,
    "set-max-listpack-entries" => set_max_listpack_entries: num,
    "set-max-listpack-value" => set_max_listpack_value: num,
    "zset-max-listpack-entries" => zset_max_listpack_entries: num,
    "zset-max-listpack-value" => zset_max_listpack_value: num,
    "list-max-listpack-size" => list_max_listpack_size: num,
    "list-compress-depth" => list_compress_depth: num,
    "stream-node-max-bytes" => stream_node_max_bytes: num,
    "stream-node-max-entries" => stream_node_max_entries: num,
    "hll-sparse-max-bytes" => hll_sparse_max_bytes: num,
    "busy-reply-threshold" => busy_reply_threshold: num,
    "acllog-max-len" => acllog_max_len: num,
    "aclfile" => aclfile: text,
    "audit-log-file" => audit_log_file: text,
    "auth-failure-threshold" => auth_failure_threshold: num,
    "auth-failure-window" => auth_failure_window: num,
    "auth-lockout-max" => auth_lockout_max: num,
    "auth-failure-exempt-loopback" => auth_failure_exempt_loopback: bool,
    "tracking-table-max-keys" => tracking_table_max_keys: num,
    "latency-tracking" => latency_tracking: bool,
    "cluster-enabled" => cluster_enabled: bool,
    "cluster-require-full-coverage" => cluster_require_full_coverage: bool,
    "cluster-allow-reads-when-down" => cluster_allow_reads_when_down: bool,
    "cluster-allow-pubsubshard-when-down" => cluster_allow_pubsubshard_when_down: bool,
    "io-threads" => io_threads: num,
    "shutdown-timeout" => shutdown_timeout: num,
}

impl Default for Config {
    fn default() -> Self {
        let mut c = Config {
            port: 0,
            bind: Vec::new(),
            unixsocket: None,
            unixsocketperm: 0,
            tcp_backlog: 0,
            tcp_keepalive: 0,
            maxclients: 0,
            timeout: 0,
            databases: 0,
            hz: 0,
            dynamic_hz: true,
            proto_max_bulk_len: 0,
            client_query_buffer_limit: 0,
            loglevel: String::new(),
            logfile: String::new(),
            enable_debug_command: EnableMode::No,
            sanitize_dump_payload: SanitizeDump::No,
            active_expire_effort: 0,
            dir: ".".into(),
            protected_mode: false,
            requirepass: None,
            masterauth: None,
            daemonize: false,
            pidfile: String::new(),
            maxmemory: 0,
            maxmemory_policy: String::new(),
            maxmemory_samples: 0,
            maxmemory_clients: 0,
            save: Vec::new(),
            dbfilename: String::new(),
            rdbcompression: false,
            rdbchecksum: false,
            stop_writes_on_bgsave_error: false,
            rdb_key_save_delay: 0,
            appendonly: false,
            appendfsync: String::new(),
            appendfilename: String::new(),
            appenddirname: String::new(),
            notify_keyspace_events: 0,
            slowlog_log_slower_than: 0,
            slowlog_max_len: 0,
            commandlog_request_larger_than: 0,
            commandlog_large_request_max_len: 0,
            commandlog_reply_larger_than: 0,
            commandlog_large_reply_max_len: 0,
            latency_monitor_threshold: 0,
            lazyfree_lazy_eviction: false,
            lazyfree_lazy_expire: false,
            lazyfree_lazy_server_del: false,
            lazyfree_lazy_user_del: false,
            lazyfree_lazy_user_flush: false,
            activerehashing: false,
            lfu_log_factor: 0,
            lfu_decay_time: 0,
            hash_max_listpack_entries: 0,
            hash_max_listpack_value: 0,
            set_max_intset_entries: 0,
            set_max_listpack_entries: 0,
            set_max_listpack_value: 0,
            zset_max_listpack_entries: 0,
            zset_max_listpack_value: 0,
            list_max_listpack_size: 0,
            list_compress_depth: 0,
            stream_node_max_bytes: 0,
            stream_node_max_entries: 0,
            hll_sparse_max_bytes: 0,
            busy_reply_threshold: 0,
            acllog_max_len: 0,
            aclfile: String::new(),
            audit_log_file: String::new(),
            auth_failure_threshold: 0,
            auth_failure_window: 0,
            auth_lockout_max: 0,
            auth_failure_exempt_loopback: true,
            tracking_table_max_keys: 0,
            client_obuf_limits: [ObufLimit::default(); 3],
            latency_tracking: false,
            latency_tracking_info_percentiles: Vec::new(),
            replicaof: None,
            enable_protected_configs: EnableMode::No,
            enable_module_command: EnableMode::No,
            config_get_secrets: false,
            cluster_enabled: false,
            cluster_require_full_coverage: true,
            cluster_allow_reads_when_down: false,
            cluster_allow_pubsubshard_when_down: true,
            io_threads: 1,
            shutdown_timeout: 0,
            extra: HashMap::new(),
        };
        for d in TABLE {
            if d.name == "dir" {
                continue; // the default is the working directory as it is
            }
            let def = default_text(d);
            let args = if d.flags & MULTI_ARG != 0 {
                split_words(&def)
            } else {
                vec![def]
            };
            // The table's defaults are valid by construction (a unit test checks it).
            let _ = c.set_directive(d, &args, false);
        }
        c
    }
}

/// The default value of `d` as CONFIG GET renders it.
pub fn default_text(d: &Directive) -> String {
    match d.kind {
        Kind::Bool(b) => yes_no(b).into(),
        Kind::Num { default, fmt, .. } => fmt_num(default, fmt),
        Kind::Enum { items, default } => enum_name(items, default, d.flags & MULTI_ARG != 0),
        Kind::Str { default } | Kind::Special { default } => default.into(),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn split_words(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect()
}

fn fmt_num(v: i64, fmt: NumFmt) -> String {
    match fmt {
        NumFmt::MemoryPercent if v < 0 => format!("{}%", v.unsigned_abs()),
        NumFmt::Memory | NumFmt::MemoryPercent => (v as u64).to_string(),
        NumFmt::Octal => format!("{:o}", v),
        NumFmt::Plain => v.to_string(),
    }
}

/// The name of enum value `v` (bit flags joined by spaces for multi-arg enums), as
/// `configEnumGetName`.
fn enum_name(items: &[(&str, i32)], v: i32, bitflags: bool) -> String {
    let mut names: Vec<&str> = Vec::new();
    let mut unmatched = v;
    for &(n, val) in items {
        if val == v {
            return n.into();
        }
        if bitflags && val != 0 && val == (unmatched & val) {
            names.push(n);
            unmatched &= !val;
        }
    }
    if names.is_empty() || unmatched != 0 {
        return "unknown".into();
    }
    names.join(" ")
}

/// Parses a memory value with an optional unit, as upstream's `memtoull`: `k` is 1000,
/// `kb` 1024, and so on, case-insensitively. Upstream multiplies without an overflow
/// check; so do we (wrapping) to report the same value.
pub fn parse_memory(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.first() == Some(&b'-') {
        return None;
    }
    let split = b
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(b.len());
    let (digits, unit) = s.split_at(split);
    let mul: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    if digits.len() >= 128 {
        return None;
    }
    let v: u64 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    Some(v.wrapping_mul(mul))
}

/// Parses an octal number as `strtoll(s, 8)` must fully consume it.
fn parse_octal(s: &str) -> Option<i64> {
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if t.is_empty() {
        return None;
    }
    let v = i64::from_str_radix(t, 8).ok()?;
    Some(if neg { -v } else { v })
}

fn parse_num(v: &str, min: i64, max: i64, fmt: NumFmt, unsigned: bool) -> Result<i64, String> {
    let parsed = match fmt {
        NumFmt::Memory if min < 0 => parse_memory(v)
            .map(|u| u as i64)
            .or_else(|| crate::util::parse_i64_strict(v.as_bytes())),
        NumFmt::Memory => parse_memory(v).map(|u| u as i64),
        NumFmt::MemoryPercent => parse_memory(v).map(|u| u as i64).or_else(|| {
            let p = v.strip_suffix('%').filter(|_| v.len() > 1)?;
            let n = crate::util::parse_i64_strict(p.as_bytes())?;
            (n >= 0).then_some(-n)
        }),
        NumFmt::Octal => parse_octal(v),
        NumFmt::Plain => crate::util::parse_i64_strict(v.as_bytes()),
    };
    let Some(n) = parsed else {
        return Err(match fmt {
            NumFmt::MemoryPercent => "argument must be a memory or percent value",
            NumFmt::Memory => "argument must be a memory value",
            NumFmt::Octal => "argument couldn't be parsed as an octal number",
            NumFmt::Plain => "argument couldn't be parsed into an integer",
        }
        .into());
    };
    if unsigned {
        let (u, lo, hi) = (n as u64, min as u64, max as u64);
        if u > hi || u < lo {
            return Err(if fmt == NumFmt::Octal {
                format!("argument must be between {:o} and {:o} inclusive", lo, hi)
            } else {
                format!("argument must be between {} and {} inclusive", lo, hi)
            });
        }
    } else if fmt == NumFmt::MemoryPercent && n < 0 {
        if n < min {
            return Err(format!(
                "percentage argument must be less or equal to {}",
                min.unsigned_abs()
            ));
        }
    } else if n > max || n < min {
        return Err(format!(
            "argument must be between {} and {} inclusive",
            min, max
        ));
    }
    Ok(n)
}

/// Characters allowed in cluster aux fields (node names, announced addresses).
fn valid_aux(v: &str) -> bool {
    v.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || (b.is_ascii_graphic() && !b"!#$%&()*+;<>?@[]^{|}~=,".contains(&b))
    })
}

/// Validates a value for a directive with a specific rule (upstream's is_valid_fn).
fn validate_extra(name: &str, v: &str) -> Result<(), String> {
    let base = |what: &str, dir: bool| -> Result<(), String> {
        if v.is_empty() {
            return Err(format!("{} can't be empty", what));
        }
        if v.contains('/') {
            return Err(if dir {
                format!("{} can't be a path, just a dirname", what)
            } else {
                format!("{} can't be a path, just a filename", what)
            });
        }
        Ok(())
    };
    match name {
        "dbfilename" => base("dbfilename", false),
        "appendfilename" => base("appendfilename", false),
        "appenddirname" => base("appenddirname", true),
        "rdma-bind" if !v.is_empty() => Err("No RDMA building support.".into()),
        "rdma-port" if v != "0" => Err("No RDMA building support.".into()),
        "cluster-announce-client-ipv4"
            if !v.is_empty() && v.parse::<std::net::Ipv4Addr>().is_err() =>
        {
            Err("Invalid IPv4 address".into())
        }
        "cluster-announce-client-ipv6"
            if !v.is_empty() && v.parse::<std::net::Ipv6Addr>().is_err() =>
        {
            Err("Invalid IPv6 address".into())
        }
        "cluster-announce-hostname"
            if !v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') =>
        {
            Err("Hostnames may only contain alphanumeric characters, hyphens or dots".into())
        }
        "cluster-announce-human-nodename" if !valid_aux(v) => {
            Err("Announced human node name contained invalid character".into())
        }
        "cluster-announce-ip" if !valid_aux(v) => {
            Err("cluster-announce-ip contains invalid character".into())
        }
        "cluster-config-file" if v.is_empty() => Err("cluster-config-file can't be empty".into()),
        "activedefrag" if v == "yes" => {
            Err("Active defragmentation cannot be enabled: it requires a \
             server compiled with a modified Jemalloc like the one shipped by default with the \
             source distribution"
                .into())
        }
        _ => Ok(()),
    }
}

impl Config {
    /// Sets directive `d` from its arguments, as upstream's `interface.set`. Returns the
    /// error text on invalid input; the configuration is unchanged then.
    pub fn set_directive(
        &mut self,
        d: &Directive,
        args: &[String],
        loading: bool,
    ) -> Result<(), String> {
        let single = || -> Result<&String, String> {
            if args.len() == 1 {
                Ok(&args[0])
            } else {
                Err("wrong number of arguments".into())
            }
        };
        let val = match d.kind {
            Kind::Bool(_) => {
                let a = single()?;
                let b = if a.eq_ignore_ascii_case("yes") {
                    true
                } else if a.eq_ignore_ascii_case("no") {
                    false
                } else {
                    return Err("argument must be 'yes' or 'no'".into());
                };
                validate_extra(d.name, yes_no(b))?;
                Val::Bool(b)
            }
            Kind::Num {
                min,
                max,
                fmt,
                unsigned,
                ..
            } => {
                let n = parse_num(single()?, min, max, fmt, unsigned)?;
                validate_extra(d.name, &n.to_string())?;
                Val::Num(n)
            }
            Kind::Enum { items, .. } => {
                let bitflags = d.flags & MULTI_ARG != 0;
                let mut v = 0i32;
                let mut ok = !args.is_empty() && (bitflags || args.len() == 1);
                if ok {
                    for a in args {
                        match items.iter().find(|(n, _)| n.eq_ignore_ascii_case(a)) {
                            Some(&(_, x)) => v |= x,
                            None => ok = false,
                        }
                    }
                }
                if !ok {
                    let names: Vec<&str> = items.iter().map(|(n, _)| *n).collect();
                    return Err(format!(
                        "argument(s) must be one of the following: {}",
                        names.join(", ")
                    ));
                }
                if bitflags && v & 1 != 0 && v & 2 != 0 {
                    return Err(
                        "shutdown options SAVE and NOSAVE can't be used simultaneously".into(),
                    );
                }
                Val::Text(enum_name(items, v, bitflags))
            }
            Kind::Str { .. } => {
                let a = single()?;
                validate_extra(d.name, a)?;
                Val::Text(a.clone())
            }
            Kind::Special { .. } => return self.set_special(d.name, args, loading),
        };
        self.store(d.name, val);
        Ok(())
    }

    fn store(&mut self, name: &'static str, v: Val) {
        let text = match &v {
            Val::Bool(b) => yes_no(*b).to_string(),
            Val::Num(n) => match lookup(name).map(|(d, _)| d.kind) {
                Some(Kind::Num { fmt, .. }) => fmt_num(*n, fmt),
                _ => n.to_string(),
            },
            Val::Text(s) => s.clone(),
        };
        if !self.set_typed(name, v) {
            self.extra.insert(name, text);
        }
    }

    fn set_special(&mut self, name: &str, args: &[String], loading: bool) -> Result<(), String> {
        match name {
            "dir" => {
                let [a] = args else {
                    return Err("wrong number of arguments".into());
                };
                if a.is_empty() {
                    return Err("dir can't be empty".into());
                }
                std::env::set_current_dir(a).map_err(|e| os_error_text(&e))?;
                self.dir = a.clone();
            }
            "save" => {
                let args: &[String] = if args.len() == 1 && args[0].is_empty() {
                    &[]
                } else {
                    args
                };
                if !args.len().is_multiple_of(2) {
                    return Err("Invalid save parameters".into());
                }
                let mut points = Vec::new();
                for pair in args.chunks(2) {
                    let secs = strtoll_full(&pair[0]).filter(|&s| s >= 1);
                    let changes = strtoll_full(&pair[1]).filter(|&c| c >= 0);
                    match (secs, changes) {
                        (Some(s), Some(c)) => points.push((s, c as i32 as i64)),
                        _ => return Err("Invalid save parameters".into()),
                    }
                }
                // In a config file, save lines accumulate (the first one replaces the
                // defaults); CONFIG SET replaces.
                if loading && self.extra.contains_key("\0save-loaded") {
                    self.save.extend(points);
                } else {
                    if loading {
                        self.extra.insert("\0save-loaded", String::new());
                    }
                    self.save = points;
                }
            }
            "client-output-buffer-limit" => {
                if !args.len().is_multiple_of(4) {
                    return Err("Wrong number of arguments in buffer limit configuration.".into());
                }
                let mut new = self.client_obuf_limits;
                for q in args.chunks(4) {
                    let class = match q[0].to_ascii_lowercase().as_str() {
                        "normal" => 0,
                        "replica" | "slave" => 1,
                        "pubsub" => 2,
                        _ => {
                            return Err(
                                "Invalid client class specified in buffer limit configuration."
                                    .into(),
                            )
                        }
                    };
                    let hard = parse_memory(&q[1]);
                    let soft = parse_memory(&q[2]);
                    let secs = strtoll_full(&q[3]).filter(|&s| s >= 0);
                    match (hard, soft, secs) {
                        (Some(hard), Some(soft), Some(soft_seconds)) => {
                            new[class] = ObufLimit {
                                hard,
                                soft,
                                soft_seconds: soft_seconds as i32 as i64,
                            }
                        }
                        _ => {
                            return Err(
                                "Error in hard, soft or soft_seconds setting in buffer limit \
                                 configuration."
                                    .into(),
                            )
                        }
                    }
                }
                self.client_obuf_limits = new;
            }
            "oom-score-adj-values" => {
                if args.len() != 3 {
                    return Err("wrong number of arguments".into());
                }
                let mut vals = Vec::new();
                for a in args {
                    match strtoll_full(a) {
                        Some(v) if (-2000..=2000).contains(&v) => vals.push(v.to_string()),
                        _ => return Err("Invalid oom-score-adj-values, elements must be between -2000 and 2000.".into()),
                    }
                }
                self.extra.insert("oom-score-adj-values", vals.join(" "));
            }
            "notify-keyspace-events" => {
                let [a] = args else {
                    return Err("wrong number of arguments".into());
                };
                self.notify_keyspace_events = keyspace_events_from_str(a)
                    .ok_or("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")?;
            }
            "bind" => {
                if args.len() > 16 {
                    return Err("Too many bind addresses specified.".into());
                }
                self.bind = if args.len() == 1 && args[0].is_empty() {
                    Vec::new()
                } else {
                    args.to_vec()
                };
            }
            "replicaof" => {
                let [host, port] = args else {
                    return Err("wrong number of arguments".into());
                };
                if host.eq_ignore_ascii_case("no") && port.eq_ignore_ascii_case("one") {
                    self.replicaof = None;
                } else {
                    let p = strtoll_full(port)
                        .filter(|p| (0..=65535).contains(p))
                        .ok_or("Invalid primary port")?;
                    self.replicaof = Some((host.clone(), p as u16));
                }
            }
            "latency-tracking-info-percentiles" => {
                let args: &[String] = if args.len() == 1 && args[0].is_empty() {
                    &[]
                } else {
                    args
                };
                let mut out = Vec::new();
                for a in args {
                    let p = crate::util::parse_f64(a.as_bytes())
                        .ok_or("Invalid latency-tracking-info-percentiles parameters")?;
                    if !(0.0..=100.0).contains(&p) {
                        return Err(
                            "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]".into(),
                        );
                    }
                    out.push(p);
                }
                self.latency_tracking_info_percentiles = out;
            }
            _ => return Err("Bad directive or wrong number of arguments".into()),
        }
        Ok(())
    }

    /// The value CONFIG GET reports for directive `d`.
    pub fn get_directive(&self, d: &Directive) -> String {
        if let Kind::Special { .. } = d.kind {
            return self.get_special(d.name);
        }
        match self.get_typed(d.name) {
            Some(Val::Bool(b)) => yes_no(b).into(),
            Some(Val::Num(n)) => match d.kind {
                Kind::Num { fmt, .. } => fmt_num(n, fmt),
                _ => n.to_string(),
            },
            Some(Val::Text(s)) => s,
            None => self
                .extra
                .get(d.name)
                .cloned()
                .unwrap_or_else(|| default_text(d)),
        }
    }

    fn get_special(&self, name: &str) -> String {
        match name {
            "dir" => std::env::current_dir()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            "save" => self
                .save
                .iter()
                .map(|(s, c)| format!("{} {}", s, c))
                .collect::<Vec<_>>()
                .join(" "),
            "client-output-buffer-limit" => {
                let names = ["normal", "slave", "pubsub"];
                let mut parts = Vec::new();
                for (i, l) in self.client_obuf_limits.iter().enumerate() {
                    parts.push(format!(
                        "{} {} {} {}",
                        names[i], l.hard, l.soft, l.soft_seconds
                    ));
                }
                parts.join(" ")
            }
            "notify-keyspace-events" => keyspace_events_to_string(self.notify_keyspace_events),
            "bind" => self.bind.join(" "),
            "replicaof" => self
                .replicaof
                .as_ref()
                .map(|(h, p)| format!("{} {}", h, p))
                .unwrap_or_default(),
            "latency-tracking-info-percentiles" => self
                .latency_tracking_info_percentiles
                .iter()
                .map(|p| fmt_percentile(*p))
                .collect::<Vec<_>>()
                .join(" "),
            _ => self.extra.get(name).cloned().unwrap_or_default(),
        }
    }

    /// Looks a directive up by name and returns the value CONFIG GET reports.
    pub fn get(&self, name: &str) -> Option<String> {
        lookup(name).map(|(d, _)| self.get_directive(d))
    }

    /// Sets a directive by name from one value, as CONFIG SET does (multi-argument
    /// directives split the value on spaces). Used by the unit tests.
    #[cfg(test)]
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let (d, _) =
            lookup(name).ok_or_else(|| "Bad directive or wrong number of arguments".to_string())?;
        let args = if d.flags & MULTI_ARG != 0 && value.is_empty() {
            Vec::new()
        } else if d.flags & MULTI_ARG != 0 {
            value.split(' ').map(String::from).collect()
        } else {
            vec![value.to_string()]
        };
        self.set_directive(d, &args, false)
    }
}

/// `%f` then trailing zeros (and a trailing dot) removed, as upstream's trimDoubleString.
pub fn fmt_percentile(p: f64) -> String {
    let s = format!("{:.6}", p);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `strtoll(s, &end, 10)` that must consume the whole string: leading spaces and a sign
/// allowed, saturating on overflow as strtoll does.
fn strtoll_full(s: &str) -> Option<i64> {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: i64 = 0;
    for b in digits.bytes() {
        v = v.saturating_mul(10).saturating_add((b - b'0') as i64);
    }
    Some(if neg { v.saturating_neg() } else { v })
}

/// The text of an OS error without Rust's " (os error N)" suffix, as strerror.
fn os_error_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(p) => s[..p].to_string(),
        None => s,
    }
}

// ---------------------------------------------------------------------------------------
// Config file parsing.
// ---------------------------------------------------------------------------------------

/// How deep `include` may nest before we call it a loop.
const MAX_INCLUDE_DEPTH: usize = 16;

/// The fatal banner upstream prints for a bad config line.
fn fatal(linenum: usize, line: &str, err: &str) -> String {
    format!(
        "\n*** FATAL CONFIG FILE ERROR (Version {}) ***\nReading the configuration file, at line {}\n>>> '{}'\n{}",
        VERSION, linenum, line, err
    )
}

/// Directives the table does not hold, that the loader still accepts.
#[derive(Default, Debug, Clone)]
pub struct LoadExtras {
    /// `rename-command old new` pairs, in order.
    pub renames: Vec<(String, String)>,
    /// `user ...` lines (ACL), as argument vectors.
    pub users: Vec<Vec<String>>,
    /// `loadmodule path args...`.
    pub modules: Vec<Vec<String>>,
}

/// Checks `rename-command old new` against the command names left by the earlier
/// `renames`, with upstream's errors: the command must exist (under its current name)
/// and a non-empty new name must not be taken. Names compare case-insensitively.
fn check_rename(renames: &[(String, String)], old: &str, new: &str) -> Result<(), &'static str> {
    let mut names: std::collections::HashSet<String> = crate::commands::all_families()
        .iter()
        .flat_map(|fam| fam.iter().map(|d| d.name.to_string()))
        .collect();
    for (o, n) in renames {
        names.remove(&o.to_ascii_lowercase());
        if !n.is_empty() {
            names.insert(n.to_ascii_lowercase());
        }
    }
    if !names.remove(&old.to_ascii_lowercase()) {
        return Err("No such command in rename-command");
    }
    if !new.is_empty() && names.contains(&new.to_ascii_lowercase()) {
        return Err("Target command name already exists");
    }
    Ok(())
}

/// Parses configuration text into `cfg`, as upstream's `loadServerConfigFromString`.
pub fn load_from_string(
    cfg: &mut Config,
    text: &str,
    extras: &mut LoadExtras,
    depth: usize,
) -> Result<(), String> {
    for (i, raw) in text.split('\n').enumerate() {
        let linenum = i + 1;
        let line = raw.trim_matches(|c| c == ' ' || c == '\t' || c == '\r' || c == '\n');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(argv) = crate::networking::split_args(line.as_bytes()) else {
            return Err(fatal(
                linenum,
                line,
                "Unbalanced quotes in configuration line",
            ));
        };
        if argv.is_empty() {
            continue;
        }
        let argv: Vec<String> = argv
            .into_iter()
            .map(|a| String::from_utf8_lossy(&a).into_owned())
            .collect();
        let name = argv[0].to_ascii_lowercase();
        let err = |e: &str| fatal(linenum, line, e);
        if let Some((d, _)) = lookup(&name) {
            if d.flags & MULTI_ARG == 0 && argv.len() != 2 {
                return Err(err("wrong number of arguments"));
            }
            let args: Vec<String> =
                if d.flags & MULTI_ARG != 0 && argv.len() == 2 && !argv[1].is_empty() {
                    match crate::networking::split_args(argv[1].as_bytes()) {
                        Some(v) => v
                            .into_iter()
                            .map(|a| String::from_utf8_lossy(&a).into_owned())
                            .collect(),
                        None => Vec::new(),
                    }
                } else {
                    argv[1..].to_vec()
                };
            cfg.set_directive(d, &args, true).map_err(|e| err(&e))?;
            continue;
        }
        match (name.as_str(), argv.len()) {
            (
                "list-max-ziplist-entries" | "list-max-ziplist-value" | "lua-replicate-commands",
                2,
            ) => {}
            ("include", 2) => {
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(err("Too many nested include directives"));
                }
                let content = read_config_files(&argv[1])?;
                load_from_string(cfg, &content, extras, depth + 1)?;
            }
            ("rename-command", 3) => {
                check_rename(&extras.renames, &argv[1], &argv[2]).map_err(err)?;
                extras.renames.push((argv[1].clone(), argv[2].clone()));
            }
            ("user", n) if n >= 2 => {
                crate::aclsrv::check_config_user(&extras.users, &argv).map_err(|e| err(&e))?;
                extras.users.push(argv[1..].to_vec())
            }
            ("loadmodule", n) if n >= 2 => extras.modules.push(argv[1..].to_vec()),
            _ if name.contains('.') && argv.len() < 2 => {
                return Err(err("Module config specified without value"))
            }
            ("sentinel", _) if argv.len() != 1 => {
                return Err(err("sentinel directive while not in sentinel mode"))
            }
            _ => return Err(err("Bad directive or wrong number of arguments")),
        }
    }
    if !cfg.logfile.is_empty() {
        if let Err(e) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cfg.logfile)
        {
            return Err(format!(
                "\n*** FATAL CONFIG FILE ERROR (Version {}) ***\nCan't open the log file: {}",
                VERSION,
                os_error_text(&e)
            ));
        }
    }
    if cfg.cluster_enabled && cfg.replicaof.is_some() {
        return Err(format!(
            "\n*** FATAL CONFIG FILE ERROR (Version {}) ***\nreplicaof directive not allowed in cluster mode",
            VERSION
        ));
    }
    cfg.hz = cfg.hz.clamp(1, 500);
    Ok(())
}

/// Reads a config file, or every file matching a pattern (`*`, `?`, `[`) in its
/// directory, concatenated. A pattern matching nothing is empty, as upstream.
fn read_config_files(path: &str) -> Result<String, String> {
    let cant = |p: &str, e: &std::io::Error| {
        format!(
            "Fatal error, can't open config file '{}': {}",
            p,
            os_error_text(e)
        )
    };
    if !path.contains(['*', '?', '[']) {
        return std::fs::read(path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| cant(path, &e));
    }
    let p = std::path::Path::new(path);
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let pat = p
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut names: Vec<std::path::PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                !n.starts_with('.') && acl::glob::string_match(pat.as_bytes(), n.as_bytes(), false)
            })
            .map(|e| e.path())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    let mut out = String::new();
    for n in names {
        let b = std::fs::read(&n).map_err(|e| cant(&n.to_string_lossy(), &e))?;
        out.push_str(&String::from_utf8_lossy(&b));
    }
    Ok(out)
}

/// Quotes a string as `sdscatrepr` does: in double quotes with escapes for `\`, `"`,
/// control and non-printable bytes.
pub fn repr(s: &[u8]) -> String {
    let mut o = String::from("\"");
    for &b in s {
        match b {
            b'\\' => o.push_str("\\\\"),
            b'"' => o.push_str("\\\""),
            b'\n' => o.push_str("\\n"),
            b'\r' => o.push_str("\\r"),
            b'\t' => o.push_str("\\t"),
            7 => o.push_str("\\a"),
            8 => o.push_str("\\b"),
            0x20..=0x7e => o.push(b as char),
            _ => o.push_str(&format!("\\x{:02x}", b)),
        }
    }
    o.push('"');
    o
}

/// Builds the config text from the command line as upstream's main(): options after
/// `--name` become one line `name "arg" "arg"`.
fn options_from_args(args: &[String]) -> String {
    let mut opts = String::new();
    let mut last_was_name = false;
    let mut got_value = false;
    for a in args {
        if let Some(name) = a.strip_prefix("--").filter(|n| !n.is_empty()) {
            if last_was_name && !got_value {
                // `--save --other`: the option got no value; give it an empty one.
                opts.push_str("\"\" ");
            }
            if !opts.is_empty() {
                opts.push('\n');
            }
            opts.push_str(name);
            opts.push(' ');
            last_was_name = true;
            got_value = false;
        } else {
            opts.push_str(&repr(a.as_bytes()));
            opts.push(' ');
            got_value = true;
        }
    }
    if last_was_name && !got_value && args.last().is_some_and(|a| a == "--save") {
        opts.push_str("\"\"");
    }
    opts
}

/// Parses the command line: an optional config file path first (`-` reads stdin), then
/// `--directive value` pairs. Returns the configuration and the absolute config file
/// path.
#[allow(dead_code)] // The binary uses load_from_args_extras (ACL `user` lines).
pub fn load_from_args(args: &[String]) -> Result<(Config, Option<String>), String> {
    load_from_args_extras(args).map(|(c, f, _)| (c, f))
}

/// [`load_from_args`] that also returns rename-command, user and loadmodule lines.
pub fn load_from_args_extras(
    args: &[String],
) -> Result<(Config, Option<String>, LoadExtras), String> {
    let (file, rest) = match args.first() {
        Some(a) if !a.starts_with("--") => (Some(a.clone()), &args[1..]),
        _ => (None, args),
    };
    let mut text = String::new();
    let mut path = None;
    match file.as_deref() {
        Some("-") => {
            use std::io::Read as _;
            let mut b = Vec::new();
            std::io::stdin()
                .read_to_end(&mut b)
                .map_err(|e| format!("Can't read config from stdin: {}", e))?;
            text = String::from_utf8_lossy(&b).into_owned();
        }
        Some(f) => {
            text = read_config_files(f)?;
            path = Some(
                std::fs::canonicalize(f)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| f.to_string()),
            );
        }
        None => {}
    }
    let opts = options_from_args(rest);
    if !opts.is_empty() {
        text.push('\n');
        text.push_str(&opts);
    }
    let mut cfg = Config::default();
    let mut extras = LoadExtras::default();
    load_from_string(&mut cfg, &text, &mut extras, 0)?;
    cfg.extra.remove("\0save-loaded");
    Ok((cfg, path, extras))
}

// ---------------------------------------------------------------------------------------
// CONFIG REWRITE.
// ---------------------------------------------------------------------------------------

const REWRITE_SIGNATURE: &str = "# Generated by CONFIG REWRITE";

/// Formats a byte count with the largest exact unit, as upstream's rewrite does.
fn fmt_memory_units(v: u64) -> String {
    const GB: u64 = 1024 * 1024 * 1024;
    const MB: u64 = 1024 * 1024;
    if v != 0 && v.is_multiple_of(GB) {
        format!("{}gb", v / GB)
    } else if v != 0 && v.is_multiple_of(MB) {
        format!("{}mb", v / MB)
    } else if v != 0 && v.is_multiple_of(1024) {
        format!("{}kb", v / 1024)
    } else {
        v.to_string()
    }
}

/// The lines directive `d` contributes to a rewritten file (empty: nothing to write).
fn rewrite_lines(cfg: &Config, d: &Directive) -> Vec<String> {
    let n = d.name;
    let cur = cfg.get_directive(d);
    match d.kind {
        Kind::Bool(_) | Kind::Enum { .. } => vec![format!("{} {}", n, cur)],
        Kind::Num { fmt, .. } => {
            let v = match cfg.get_typed(n) {
                Some(Val::Num(x)) => x,
                _ => parse_num(&cur, i64::MIN, i64::MAX, fmt, false).unwrap_or(0),
            };
            let text = match fmt {
                NumFmt::Memory => fmt_memory_units(v as u64),
                NumFmt::MemoryPercent if v >= 0 => fmt_memory_units(v as u64),
                _ => cur,
            };
            vec![format!("{} {}", n, text)]
        }
        Kind::Str { .. } => vec![format!("{} {}", n, repr(cur.as_bytes()))],
        Kind::Special { .. } => match n {
            "dir" => vec![format!("dir {}", repr(cur.as_bytes()))],
            "save" if cfg.save.is_empty() => vec!["save \"\"".into()],
            "save" => vec![format!("save {}", cur)],
            "bind" if cfg.bind.is_empty() => vec!["bind \"\"".into()],
            "client-output-buffer-limit" => {
                let names = ["normal", "replica", "pubsub"];
                cfg.client_obuf_limits
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        format!(
                            "client-output-buffer-limit {} {} {} {}",
                            names[i],
                            fmt_memory_units(l.hard),
                            fmt_memory_units(l.soft),
                            l.soft_seconds
                        )
                    })
                    .collect()
            }
            "notify-keyspace-events" => vec![format!("{} {}", n, repr(cur.as_bytes()))],
            "replicaof" if cur.is_empty() => Vec::new(),
            "latency-tracking-info-percentiles" if cur.is_empty() => vec![format!("{} \"\"", n)],
            _ => vec![format!("{} {}", n, cur)],
        },
    }
}

/// Produces the rewritten config file content from the old content, as upstream's
/// `rewriteConfig`: options already in the file are updated in place (extra occurrences
/// blanked), changed options not in the file are appended after a signature line,
/// comments and unknown lines are kept.
#[cfg(test)]
pub fn rewrite_content(cfg: &Config, old: &str) -> String {
    rewrite_content_users(cfg, old, None)
}

/// [`rewrite_content`] that also rewrites the `user` lines, as upstream's
/// `rewriteConfigUserOption`: `Some(lines)` replaces the old `user` lines in place and
/// in order (extra old ones blanked, extra new ones appended); `Some(&[])` (an aclfile is
/// in use) removes them; `None` keeps them as they are.
pub fn rewrite_content_users(cfg: &Config, old: &str, users: Option<&[String]>) -> String {
    let mut user_slots: Vec<usize> = Vec::new();
    let mut lines: Vec<String> = Vec::new();
    let mut option_lines: HashMap<&'static str, Vec<usize>> = HashMap::new();
    let mut needs_signature = true;
    let mut old_lines: Vec<&str> = old.split('\n').collect();
    if old_lines.last() == Some(&"") {
        old_lines.pop();
    }
    for raw in old_lines {
        let line = raw.trim_matches(|c| c == ' ' || c == '\t' || c == '\r' || c == '\n');
        if line.is_empty() || line.starts_with('#') {
            if line == REWRITE_SIGNATURE {
                needs_signature = false;
            }
            lines.push(line.to_string());
            continue;
        }
        let argv = crate::networking::split_args(line.as_bytes());
        let first = argv
            .as_ref()
            .and_then(|a| a.first())
            .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase());
        match first.as_deref() {
            Some(name) => {
                if let Some((d, _)) = lookup(name) {
                    option_lines.entry(d.name).or_default().push(lines.len());
                    lines.push(line.to_string());
                } else if name == "user" && users.is_some() {
                    user_slots.push(lines.len());
                    lines.push(line.to_string());
                } else if matches!(
                    name,
                    "include" | "rename-command" | "user" | "loadmodule" | "sentinel"
                ) {
                    lines.push(line.to_string());
                } else {
                    lines.push(format!("# ??? {}", line));
                }
            }
            None => lines.push(format!("# ??? {}", line)),
        }
    }
    let mut appended: Vec<String> = Vec::new();
    for d in TABLE {
        if d.flags & HIDDEN != 0 {
            continue;
        }
        let slots = option_lines.remove(d.name).unwrap_or_default();
        let is_default =
            cfg.get_directive(d) == default_text(d) || d.name == "dir" && slots.is_empty();
        // Upstream always writes latency-tracking-info-percentiles (its rewrite forces it).
        if slots.is_empty() && is_default && d.name != "latency-tracking-info-percentiles" {
            continue;
        }
        let new = rewrite_lines(cfg, d);
        let mut it = slots.iter();
        for l in new {
            match it.next() {
                Some(&i) => lines[i] = l,
                None => appended.push(l),
            }
        }
        for &i in it {
            lines[i] = String::new();
        }
    }
    if let Some(users) = users {
        let mut it = user_slots.iter();
        for l in users {
            match it.next() {
                Some(&i) => lines[i] = l.clone(),
                None => appended.push(l.clone()),
            }
        }
        for &i in it {
            lines[i] = String::new();
        }
    }
    if !appended.is_empty() {
        if needs_signature {
            lines.push(REWRITE_SIGNATURE.into());
        }
        lines.extend(appended);
    }
    // Every run of empty lines becomes one, as upstream's rewriteConfigGetContentFromState.
    let mut out = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    let mut was_empty = false;
    for l in &lines {
        if l.is_empty() {
            if was_empty {
                continue;
            }
            was_empty = true;
        } else {
            was_empty = false;
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// CONFIG REWRITE: rewrites `path` atomically (a temporary file in the same directory,
/// fsync, rename, fsync of the directory), keeping the mode of the old file (0600 for a
/// new one; upstream uses 0644 minus the umask). `users`: the `user` lines to write, see
/// [`rewrite_content_users`].
pub fn rewrite_config(cfg: &Config, path: &str, users: Option<&[String]>) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    let old = match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600);
    let content = rewrite_content_users(cfg, &old, users);
    let tmp = format!(
        "{}.tmp-{}-{}",
        path,
        std::process::id(),
        crate::util::random_u64() % 1_000_000
    );
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(content.as_bytes())?;
        // The creation mode went through the umask; set the one wanted exactly.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = std::path::Path::new(path).parent() {
            if let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
                std::path::Path::new(".")
            } else {
                dir
            }) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

// ---------------------------------------------------------------------------------------
// Logging.
// ---------------------------------------------------------------------------------------

/// Current verbosity: 0 debug, 1 verbose, 2 notice, 3 warning, 4 nothing.
static VERBOSITY: AtomicU8 = AtomicU8::new(2);
/// The role character of log lines: M primary, S replica, C child, X sentinel.
pub static LOG_ROLE: AtomicU8 = AtomicU8::new(b'M');
/// The log file; empty for stdout.
static LOGFILE: Mutex<String> = Mutex::new(String::new());
/// `syslog-enabled`: every log line also goes to syslog(3) (openlog done at startup).
static SYSLOG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets the verbosity from a loglevel name (CONFIG SET loglevel).
pub fn set_log_verbosity(level: &str) {
    let v = LOGLEVEL
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(level))
        .map(|&(_, v)| v as u8)
        .unwrap_or(2);
    VERBOSITY.store(v, Ordering::Relaxed);
}

/// The upstream level of a `log` record: trace is debug, debug is verbose, info is
/// notice, warn and error are warning.
fn record_level(l: log::Level) -> u8 {
    match l {
        log::Level::Trace => 0,
        log::Level::Debug => 1,
        log::Level::Info => 2,
        log::Level::Warn | log::Level::Error => 3,
    }
}

/// Formats one log line as upstream's serverLogRaw: `pid:R dd Mon yyyy hh:mm:ss.mmm c msg`.
pub fn format_log_line(level: u8, msg: &str) -> String {
    let mark = match level {
        0 => '.',
        1 => '-',
        2 => '*',
        _ => '#',
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as libc::time_t;
    let ms = now.subsec_millis();
    // SAFETY: localtime_r writes into the zeroed struct we own and strftime into our
    // buffer with its size.
    let ts = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&secs, &mut tm);
        let mut buf = [0u8; 64];
        let n = libc::strftime(
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
            c"%d %b %Y %H:%M:%S".as_ptr(),
            &tm,
        );
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    format!(
        "{}:{} {}.{:03} {} {}",
        std::process::id(),
        LOG_ROLE.load(Ordering::Relaxed) as char,
        ts,
        ms,
        mark,
        msg
    )
}

struct ServerLogger;

impl log::Log for ServerLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        record_level(m.level()) >= VERBOSITY.load(Ordering::Relaxed)
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = record_level(record.level());
        let msg = record.args().to_string();
        if SYSLOG.load(Ordering::Relaxed) {
            // upstream's syslogLevelMap: debug, info, notice, warning.
            let prio = [
                libc::LOG_DEBUG,
                libc::LOG_INFO,
                libc::LOG_NOTICE,
                libc::LOG_WARNING,
            ][level.min(3) as usize];
            if let Ok(m) = std::ffi::CString::new(msg.as_str()) {
                // SAFETY: a constant format with one NUL-terminated string argument.
                unsafe { libc::syslog(prio, c"%s".as_ptr(), m.as_ptr()) };
            }
        }
        let line = format_log_line(level, &msg);
        let file = LOGFILE.lock().map(|f| f.clone()).unwrap_or_default();
        if file.is_empty() {
            let out = std::io::stdout();
            let mut o = out.lock();
            let _ = writeln!(o, "{}", line);
            let _ = o.flush();
        } else if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
        {
            let _ = writeln!(f, "{}", line);
        }
    }

    fn flush(&self) {}
}

static LOGGER: ServerLogger = ServerLogger;

/// Sets up logging in upstream's format: `pid:role day month year time.ms level message`,
/// to `logfile` (stdout when empty), filtered by `loglevel`; with `syslog-enabled` also
/// to syslog under `syslog-ident` and `syslog-facility`.
pub fn init_logging(cfg: &Config) {
    set_log_verbosity(&cfg.loglevel);
    if cfg.get("syslog-enabled").as_deref() == Some("yes") {
        let ident = cfg.get("syslog-ident").unwrap_or_else(|| "valkey".into());
        let facility = cfg
            .get("syslog-facility")
            .and_then(|f| SYSLOG_FACILITY.iter().find(|(n, _)| *n == f))
            .map_or(libc::LOG_LOCAL0, |(_, v)| *v);
        // openlog keeps the pointer: the ident lives for the whole process.
        let ident: &'static std::ffi::CStr = Box::leak(
            std::ffi::CString::new(ident)
                .unwrap_or_default()
                .into_boxed_c_str(),
        );
        // SAFETY: a static NUL-terminated ident and integer flags.
        unsafe {
            libc::openlog(
                ident.as_ptr(),
                libc::LOG_PID | libc::LOG_NDELAY | libc::LOG_NOWAIT,
                facility,
            )
        };
        SYSLOG.store(true, Ordering::Relaxed);
    }
    if let Ok(mut f) = LOGFILE.lock() {
        *f = cfg.logfile.clone();
    }
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
}

impl PartialEq for Config {
    fn eq(&self, o: &Config) -> bool {
        TABLE
            .iter()
            .filter(|d| d.name != "dir")
            .all(|d| self.get_directive(d) == o.get_directive(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn defaults_are_valid_and_match_upstream() {
        let c = Config::default();
        assert!(c.extra.keys().all(|k| lookup(k).is_some()));
        for d in TABLE {
            if d.name == "dir" {
                continue;
            }
            assert_eq!(c.get_directive(d), default_text(d), "{}", d.name);
        }
        assert_eq!(c.get("port").unwrap(), "6379");
        assert_eq!(c.get("bind").unwrap(), "127.0.0.1 -::1");
        assert_eq!(c.get("save").unwrap(), "3600 1 300 100 60 10000");
        assert_eq!(c.get("maxmemory-policy").unwrap(), "noeviction");
        assert_eq!(
            c.get("client-output-buffer-limit").unwrap(),
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
        );
        assert_eq!(c.get("slaveof").unwrap(), "");
        assert_eq!(c.get("lua-time-limit").unwrap(), "5000");
        assert_eq!(
            c.get("latency-tracking-info-percentiles").unwrap(),
            "50 99 99.9"
        );
        assert_eq!(c.hz, 10);
        assert_eq!(c.databases, 16);
        assert_eq!(c.proto_max_bulk_len, 512 * 1024 * 1024);
        assert_eq!(c.enable_debug_command, EnableMode::No);
        assert!(c.requirepass.is_none());
    }

    #[test]
    fn names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for d in TABLE {
            assert!(seen.insert(d.name), "{}", d.name);
            if let Some(a) = d.alias {
                assert!(seen.insert(a), "{}", a);
            }
        }
    }

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("1KB"), Some(1024));
        assert_eq!(parse_memory("2mb"), Some(2 * 1024 * 1024));
        assert_eq!(parse_memory("1G"), Some(1_000_000_000));
        assert_eq!(parse_memory("1gB"), Some(1 << 30));
        assert_eq!(parse_memory("kb"), Some(0));
        assert_eq!(parse_memory("1.5mb"), None);
        assert_eq!(parse_memory("-1"), None);
        assert_eq!(parse_memory(" 1"), None);
        assert_eq!(parse_memory("1x"), None);
        assert_eq!(parse_memory("99999999999999999999"), None);
        assert_eq!(parse_memory(&"9".repeat(500)), None);
        // Wraps as upstream.
        assert_eq!(
            parse_memory("20000000000gb"),
            Some(20000000000u64.wrapping_mul(1 << 30))
        );
    }

    #[test]
    fn set_errors_match_upstream() {
        let mut c = Config::default();
        assert_eq!(
            c.set("hz", "abc").unwrap_err(),
            "argument couldn't be parsed into an integer"
        );
        assert_eq!(
            c.set("hz", "-1").unwrap_err(),
            "argument must be between 0 and 2147483647 inclusive"
        );
        assert_eq!(
            c.set("hz", "99999999999999999999").unwrap_err(),
            "argument couldn't be parsed into an integer"
        );
        assert_eq!(
            c.set("maxmemory", "-1").unwrap_err(),
            "argument must be a memory value"
        );
        assert_eq!(
            c.set("maxclients", "-1").unwrap_err(),
            "argument must be between 1 and 4294967295 inclusive"
        );
        assert_eq!(
            c.set("protected-mode", "maybe").unwrap_err(),
            "argument must be 'yes' or 'no'"
        );
        assert_eq!(
            c.set("loglevel", "xx").unwrap_err(),
            "argument(s) must be one of the following: debug, verbose, notice, warning, nothing"
        );
        assert_eq!(
            c.set("maxmemory-clients", "101%").unwrap_err(),
            "percentage argument must be less or equal to 100"
        );
        assert_eq!(
            c.set("unixsocketperm", "999").unwrap_err(),
            "argument couldn't be parsed as an octal number"
        );
        assert_eq!(
            c.set("unixsocketperm", "1777").unwrap_err(),
            "argument must be between 0 and 777 inclusive"
        );
        assert_eq!(
            c.set("save", "1 2 3").unwrap_err(),
            "Invalid save parameters"
        );
        assert_eq!(c.set("save", "0 2").unwrap_err(), "Invalid save parameters");
        assert_eq!(
            c.set("shutdown-on-sigint", "save nosave").unwrap_err(),
            "shutdown options SAVE and NOSAVE can't be used simultaneously"
        );
        assert_eq!(
            c.set("proto-max-bulk-len", "1000").unwrap_err(),
            "argument must be between 1048576 and 9223372036854775807 inclusive"
        );
        assert_eq!(
            c.set("dbfilename", "a/b").unwrap_err(),
            "dbfilename can't be a path, just a filename"
        );
        assert_eq!(c.set("dir", "").unwrap_err(), "dir can't be empty");
        assert!(c.set("dir", "/nonexistent/really/not").is_err());
        assert_eq!(
            c.set("client-output-buffer-limit", "normal 1 2")
                .unwrap_err(),
            "Wrong number of arguments in buffer limit configuration."
        );
        assert_eq!(
            c.set("client-output-buffer-limit", "foo 1 2 3")
                .unwrap_err(),
            "Invalid client class specified in buffer limit configuration."
        );
        assert_eq!(
            c.set("notify-keyspace-events", "KEQ").unwrap_err(),
            "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
        );
        // Nothing changed.
        assert_eq!(c, Config::default());
    }

    #[test]
    fn set_values_round_trip() {
        let mut c = Config::default();
        c.set("maxmemory", "1mb").unwrap();
        assert_eq!(c.maxmemory, 1 << 20);
        assert_eq!(c.get("maxmemory").unwrap(), "1048576");
        c.set("maxmemory-clients", "10%").unwrap();
        assert_eq!(c.get("maxmemory-clients").unwrap(), "10%");
        c.set("shutdown-on-sigint", "NOW save").unwrap();
        assert_eq!(c.get("shutdown-on-sigint").unwrap(), "save now");
        c.set("notify-keyspace-events", "KEA").unwrap();
        assert_eq!(c.get("notify-keyspace-events").unwrap(), "AKE");
        c.set("notify-keyspace-events", "Exg").unwrap();
        assert_eq!(c.get("notify-keyspace-events").unwrap(), "gxE");
        c.set("save", "").unwrap();
        assert_eq!(c.get("save").unwrap(), "");
        c.set("save", "10 1 20 2").unwrap();
        assert_eq!(c.save, vec![(10, 1), (20, 2)]);
        c.set("slaveof", "127.0.0.1 7000").unwrap();
        assert_eq!(c.get("replicaof").unwrap(), "127.0.0.1 7000");
        c.set("replicaof", "no one").unwrap();
        assert_eq!(c.get("slaveof").unwrap(), "");
        c.set("requirepass", "secret").unwrap();
        assert_eq!(c.requirepass.as_deref(), Some(&b"secret"[..]));
        c.set("requirepass", "").unwrap();
        assert!(c.requirepass.is_none());
        c.set("unixsocketperm", "700").unwrap();
        assert_eq!(c.unixsocketperm, 0o700);
        assert_eq!(c.get("unixsocketperm").unwrap(), "700");
        c.set("latency-tracking-info-percentiles", "50 99.5")
            .unwrap();
        assert_eq!(
            c.get("latency-tracking-info-percentiles").unwrap(),
            "50 99.5"
        );
        c.set("HZ", "100").unwrap();
        assert_eq!(c.hz, 100);
        c.set("enable-debug-command", "LOCAL").unwrap();
        assert_eq!(c.enable_debug_command, EnableMode::Local);
        c.set("oom-score-adj", "relative").unwrap();
        assert_eq!(c.get("oom-score-adj").unwrap(), "yes");
    }

    #[test]
    fn rename_command_checks() {
        let mut x = LoadExtras::default();
        let mut c = Config::default();
        let text = "rename-command GET g2\nrename-command g2 get3\nrename-command flushall \"\"\n";
        load_from_string(&mut c, text, &mut x, 0).unwrap();
        assert_eq!(x.renames.len(), 3);
        for (line, why) in [
            (
                "rename-command nosuch x",
                "No such command in rename-command",
            ),
            (
                "rename-command get set",
                "Target command name already exists",
            ),
            (
                "rename-command get a\nrename-command GET b",
                "No such command in rename-command",
            ),
            ("rename-command get \"\"\nrename-command set get", ""),
        ] {
            let r = load(line);
            if why.is_empty() {
                assert!(r.is_ok(), "{line}");
            } else {
                assert!(r.unwrap_err().ends_with(why), "{line}");
            }
        }
    }

    fn load(text: &str) -> Result<Config, String> {
        let mut c = Config::default();
        let mut x = LoadExtras::default();
        load_from_string(&mut c, text, &mut x, 0).map(|_| c)
    }

    #[test]
    fn config_file_parsing() {
        let c = load("# comment\n\n  port 7001  \r\nbind 127.0.0.1 -::1\nsave 10 1\nsave \"20 2\"\nmaxmemory 2GB\nrequirepass \"p w\"\nslaveof h 1\nrename-command GET BAR\nuser default on\nlist-max-ziplist-entries 3\n").unwrap();
        assert_eq!(c.port, 7001);
        assert_eq!(c.bind, s(&["127.0.0.1", "-::1"]));
        assert_eq!(c.save, vec![(10, 1), (20, 2)]);
        assert_eq!(c.maxmemory, 2 << 30);
        assert_eq!(c.requirepass.as_deref(), Some(&b"p w"[..]));
        assert_eq!(c.replicaof, Some(("h".to_string(), 1)));
    }

    #[test]
    fn config_file_errors() {
        let e = load("port 7001\n# c\n  foo bar \"baz\"\n").unwrap_err();
        assert_eq!(
            e,
            "\n*** FATAL CONFIG FILE ERROR (Version 9.1.2) ***\nReading the configuration file, at line 3\n>>> 'foo bar \"baz\"'\nBad directive or wrong number of arguments"
        );
        assert!(load("hz \"abc\n")
            .unwrap_err()
            .ends_with("at line 1\n>>> 'hz \"abc'\nUnbalanced quotes in configuration line"));
        assert!(load("hz 1 2")
            .unwrap_err()
            .ends_with("wrong number of arguments"));
        assert!(load("hz")
            .unwrap_err()
            .ends_with("wrong number of arguments"));
        assert!(load("hz 99999999999999999999999")
            .unwrap_err()
            .ends_with("argument couldn't be parsed into an integer"));
        assert!(load("maxmemory 1x")
            .unwrap_err()
            .ends_with("argument must be a memory value"));
        assert!(load("maxmemory -5")
            .unwrap_err()
            .ends_with("argument must be a memory value"));
        assert!(load("timeout -5").unwrap_err().ends_with("inclusive"));
        assert!(load("save 10")
            .unwrap_err()
            .ends_with("Invalid save parameters"));
        assert!(load("rename-command a").is_err());
        assert!(load("include /nonexistent/file.conf")
            .unwrap_err()
            .contains("can't open config file"));
        assert!(load("\u{0}\u{1}\u{2} \"\\xzz").is_err());
    }

    #[test]
    fn include_loop_is_limited() {
        let dir = std::env::temp_dir().join(format!("vrs-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("loop.conf");
        std::fs::write(&p, format!("hz 11\ninclude {}\n", p.display())).unwrap();
        let e = load(&format!("include {}", p.display())).unwrap_err();
        assert!(e.contains("Too many nested include directives"), "{}", e);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn command_line_options() {
        let (c, f) = load_from_args(&s(&[
            "--port", "7002", "--save", "--hz", "20", "--bind", "a", "b",
        ]))
        .unwrap();
        assert!(f.is_none());
        assert_eq!(c.port, 7002);
        assert!(c.save.is_empty());
        assert_eq!(c.hz, 20);
        assert_eq!(c.bind, s(&["a", "b"]));
        let (c, _) = load_from_args(&s(&["--save", "60 1"])).unwrap();
        assert_eq!(c.save, vec![(60, 1)]);
        let (c, _) = load_from_args(&s(&["--port", "7003", "--save"])).unwrap();
        assert!(c.save.is_empty());
        let e = load_from_args(&s(&["--port", "7142", "--hz", "abc"])).unwrap_err();
        assert_eq!(
            e,
            "\n*** FATAL CONFIG FILE ERROR (Version 9.1.2) ***\nReading the configuration file, at line 3\n>>> 'hz \"abc\"'\nargument couldn't be parsed into an integer"
        );
        let e = load_from_args(&s(&["--hz", "1", "2"])).unwrap_err();
        assert!(
            e.contains(">>> 'hz \"1\" \"2\"'\nwrong number of arguments"),
            "{}",
            e
        );
    }

    #[test]
    fn rewrite_keeps_comments_and_updates() {
        let mut c = Config::default();
        c.set("hz", "50").unwrap();
        c.set("maxmemory", "1gb").unwrap();
        let old = "# my config\nport 6379\nhz 10\nhz 12\nbogus-directive 1\n";
        let out = rewrite_content(&c, old);
        assert_eq!(
            out,
            "# my config\nport 6379\nhz 50\n\n# ??? bogus-directive 1\n# Generated by CONFIG REWRITE\nmaxmemory 1gb\n\
             latency-tracking-info-percentiles 50 99 99.9\n"
        );
        // Idempotent.
        assert_eq!(rewrite_content(&c, &out), out);
    }

    #[test]
    fn rewrite_user_lines() {
        let c = Config::default();
        let old = "user b on\n# c\nuser a off\nport 6379\n";
        let users = [
            "user a on".to_string(),
            "user default on".into(),
            "user z".into(),
        ];
        let out = rewrite_content_users(&c, old, Some(&users));
        assert_eq!(
            out,
            "user a on\n# c\nuser default on\nport 6379\n# Generated by CONFIG REWRITE\n\
             latency-tracking-info-percentiles 50 99 99.9\nuser z\n"
        );
        let out = rewrite_content_users(&c, &out, Some(&[]));
        assert_eq!(
            out,
            "\n# c\n\nport 6379\n# Generated by CONFIG REWRITE\n\
             latency-tracking-info-percentiles 50 99 99.9\n\n"
        );
        assert_eq!(
            rewrite_content(&c, old),
            format!(
                "{}# Generated by CONFIG REWRITE\nlatency-tracking-info-percentiles 50 99 99.9\n",
                old
            )
        );
    }

    #[test]
    fn log_line_format() {
        let l = format_log_line(2, "hello");
        let pid = std::process::id().to_string();
        assert!(l.starts_with(&format!("{}:M ", pid)));
        assert!(l.ends_with(" * hello"));
        let parts: Vec<&str> = l.split(' ').collect();
        // pid:M dd Mon yyyy hh:mm:ss.mmm * hello
        assert_eq!(parts.len(), 7, "{}", l);
        assert_eq!(parts[4].len(), 12);
    }
}
