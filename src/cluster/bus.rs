//! The cluster bus wire codec (upstream `cluster_legacy.h`, `clusterIsValidPacket`): the
//! 2256-byte header, the 104-byte gossip entries, the ping extensions and every message type
//! of Valkey 9.x, byte-compatible with 9.1.2. The layout is drawn in docs/cluster-bus.md.
//!
//! # Format
//! Every integer is big-endian except the MODULE message's module id, which upstream sends
//! as is. Strings are fixed-size and NUL-padded. A message is
//! `header (2256 bytes) | body`, where the body depends on the type:
//!
//! | type | body |
//! |---|---|
//! | PING, PONG, MEET | `count` gossip entries, then `extensions` ping extensions if mflags[0] has EXT_DATA |
//! | FAIL | the failing node's name (40) |
//! | PUBLISH, PUBLISHSHARD | channel_len u32, message_len u32, channel, message |
//! | FAILOVER_AUTH_REQUEST, FAILOVER_AUTH_ACK, MFSTART | nothing |
//! | UPDATE | configEpoch u64, node name (40), slot bitmap (2048) |
//! | MODULE | module id (8, raw), len u32, type u8, payload (len) |
//! | unknown (11 and up) | anything: upstream accepts it as well formed and ignores it |
//!
//! # Validation
//! [`decode`] runs upstream's checks in upstream's order (with the CVE-2026-21863 fix: every
//! count and length is checked against totlen before anything is read) plus a few stricter
//! ones of its own. Each failure is a [`BusError`]; [`BusError::closes_link`] says whether
//! upstream drops the link for it (bad framing) or logs and ignores the packet (everything
//! else). Nothing is ever read outside the given slice, and nothing is sized from an
//! announced length before that length has been checked against the bytes present.
//!
//! Decoding keeps every byte (padding, unused fields, bytes after a string's NUL) so that
//! `encode(decode(m)) == m` for every message that decodes.

use std::fmt;

/// "RCmb": the signature of every bus message.
pub const SIG: [u8; 4] = *b"RCmb";
/// `CLUSTER_PROTO_VER`.
pub const PROTO_VER: u16 = 1;
/// `CLUSTERMSG_MIN_LEN`: the header without the data union.
pub const HEADER_LEN: usize = 2256;
/// `CLUSTERMSG_LIGHT_MIN_LEN`: the light header (sig, totlen, ver, notused, type, notused).
pub const LIGHT_HEADER_LEN: usize = 16;
/// `sizeof(clusterMsgDataGossip)`.
pub const GOSSIP_LEN: usize = 104;
/// `CLUSTER_NAMELEN`: node names and shard ids, 40 hex characters, no NUL.
pub const NAME_LEN: usize = 40;
/// `NET_IP_STR_LEN`.
pub const IP_LEN: usize = 46;
/// `CLUSTER_SLOTS`.
pub const CLUSTER_SLOTS: usize = 16384;
/// The slot bitmap: bit `s` is byte `s / 8`, mask `1 << (s & 7)`.
pub const SLOTS_BYTES: usize = CLUSTER_SLOTS / 8;
/// `RCVBUF_MIN_READ_LEN`: upstream reads this much (through `type`) before it trusts totlen.
pub const RCVBUF_MIN_READ_LEN: usize = 14;
/// The ping extension header: length u32, type u16, unused u16.
pub const EXT_HEADER_LEN: usize = 8;
/// FAIL: header + node name.
pub const FAIL_LEN: usize = HEADER_LEN + NAME_LEN;
/// UPDATE: header + configEpoch + node name + slot bitmap.
pub const UPDATE_LEN: usize = HEADER_LEN + 8 + NAME_LEN + SLOTS_BYTES;
/// PUBLISH/PUBLISHSHARD: header + channel_len + message_len, before the two strings.
pub const PUBLISH_MIN_LEN: usize = HEADER_LEN + 8;
/// MODULE: header + module id + len + type, before the payload (`sizeof(clusterMsgModule) - 3`).
pub const MODULE_MIN_LEN: usize = HEADER_LEN + 8 + 4 + 1;

/// The largest totlen the framing accepts. Upstream has no cap (any u32 above the minimum),
/// but it grows its receive buffer as the bytes arrive, never from totlen. The largest
/// message a real node sends is a PUBLISH of a channel and a message each bounded by
/// `proto-max-bulk-len` (512 MB by default), so this cap refuses no message a default node
/// can send, and a peer that announces more has its link dropped (a divergence: upstream
/// would keep reading).
pub const MAX_TOTLEN: u32 = (PUBLISH_MIN_LEN as u32) + 2 * (512 << 20);

/// Header field offsets (`clusterMsg`), pinned below with compile-time assertions.
pub mod off {
    pub const SIG: usize = 0;
    pub const TOTLEN: usize = 4;
    pub const VER: usize = 8;
    pub const PORT: usize = 10;
    pub const TYPE: usize = 12;
    pub const COUNT: usize = 14;
    pub const CURRENT_EPOCH: usize = 16;
    pub const CONFIG_EPOCH: usize = 24;
    pub const OFFSET: usize = 32;
    pub const SENDER: usize = 40;
    pub const MYSLOTS: usize = 80;
    pub const REPLICAOF: usize = 2128;
    pub const MYIP: usize = 2168;
    pub const EXTENSIONS: usize = 2214;
    pub const NOTUSED1: usize = 2216;
    pub const PPORT: usize = 2246;
    pub const CPORT: usize = 2248;
    pub const FLAGS: usize = 2250;
    pub const STATE: usize = 2252;
    pub const MFLAGS: usize = 2253;
    pub const DATA: usize = 2256;
}

/// Gossip entry field offsets (`clusterMsgDataGossip`).
pub mod goff {
    pub const NODENAME: usize = 0;
    pub const PING_SENT: usize = 40;
    pub const PONG_RECEIVED: usize = 44;
    pub const IP: usize = 48;
    pub const PORT: usize = 94;
    pub const CPORT: usize = 96;
    pub const FLAGS: usize = 98;
    pub const PPORT: usize = 100;
    pub const NOTUSED1: usize = 102;
    pub const END: usize = 104;
}

// Each field starts where the previous one ends, and the totals are upstream's static_asserts.
const _: () = assert!(off::SIG == 0);
const _: () = assert!(off::TOTLEN == off::SIG + 4);
const _: () = assert!(off::VER == off::TOTLEN + 4);
const _: () = assert!(off::PORT == off::VER + 2);
const _: () = assert!(off::TYPE == off::PORT + 2);
const _: () = assert!(off::COUNT == off::TYPE + 2);
const _: () = assert!(off::CURRENT_EPOCH == off::COUNT + 2);
const _: () = assert!(off::CONFIG_EPOCH == off::CURRENT_EPOCH + 8);
const _: () = assert!(off::OFFSET == off::CONFIG_EPOCH + 8);
const _: () = assert!(off::SENDER == off::OFFSET + 8);
const _: () = assert!(off::MYSLOTS == off::SENDER + NAME_LEN);
const _: () = assert!(off::REPLICAOF == off::MYSLOTS + SLOTS_BYTES);
const _: () = assert!(off::MYIP == off::REPLICAOF + NAME_LEN);
const _: () = assert!(off::EXTENSIONS == off::MYIP + IP_LEN);
const _: () = assert!(off::NOTUSED1 == off::EXTENSIONS + 2);
const _: () = assert!(off::PPORT == off::NOTUSED1 + 30);
const _: () = assert!(off::CPORT == off::PPORT + 2);
const _: () = assert!(off::FLAGS == off::CPORT + 2);
const _: () = assert!(off::STATE == off::FLAGS + 2);
const _: () = assert!(off::MFLAGS == off::STATE + 1);
const _: () = assert!(off::DATA == off::MFLAGS + 3);
const _: () = assert!(off::DATA == HEADER_LEN && HEADER_LEN == 2256);
const _: () = assert!(RCVBUF_MIN_READ_LEN == off::COUNT);
const _: () = assert!(goff::PING_SENT == goff::NODENAME + NAME_LEN);
const _: () = assert!(goff::PONG_RECEIVED == goff::PING_SENT + 4);
const _: () = assert!(goff::IP == goff::PONG_RECEIVED + 4);
const _: () = assert!(goff::PORT == goff::IP + IP_LEN);
const _: () = assert!(goff::CPORT == goff::PORT + 2);
const _: () = assert!(goff::FLAGS == goff::CPORT + 2);
const _: () = assert!(goff::PPORT == goff::FLAGS + 2);
const _: () = assert!(goff::NOTUSED1 == goff::PPORT + 2);
const _: () =
    assert!(goff::END == goff::NOTUSED1 + 2 && goff::END == GOSSIP_LEN && GOSSIP_LEN == 104);
const _: () = assert!(FAIL_LEN == 2296 && UPDATE_LEN == 4352 && MODULE_MIN_LEN == 2269);
// The forgotten-node extension (name + ttl) and the shard-id one stay 8-byte aligned.
const _: () = assert!((NAME_LEN + 8).is_multiple_of(8) && NAME_LEN.is_multiple_of(8));
const _: () = assert!((MAX_TOTLEN as u64) < u32::MAX as u64);

/// Message types (`CLUSTERMSG_TYPE_*`).
pub const TYPE_PING: u16 = 0;
pub const TYPE_PONG: u16 = 1;
pub const TYPE_MEET: u16 = 2;
pub const TYPE_FAIL: u16 = 3;
pub const TYPE_PUBLISH: u16 = 4;
pub const TYPE_FAILOVER_AUTH_REQUEST: u16 = 5;
pub const TYPE_FAILOVER_AUTH_ACK: u16 = 6;
pub const TYPE_UPDATE: u16 = 7;
pub const TYPE_MFSTART: u16 = 8;
pub const TYPE_MODULE: u16 = 9;
pub const TYPE_PUBLISHSHARD: u16 = 10;
/// `CLUSTERMSG_TYPE_COUNT`: the per-type statistics arrays have this many entries.
pub const TYPE_COUNT: u16 = 11;
/// `CLUSTERMSG_LIGHT`: the type modifier of a light-header message.
pub const TYPE_LIGHT: u16 = 0x8000;

/// Node flags (header `flags` and gossip `flags`), `CLUSTER_NODE_*`.
pub const NODE_PRIMARY: u16 = 1 << 0;
pub const NODE_REPLICA: u16 = 1 << 1;
pub const NODE_PFAIL: u16 = 1 << 2;
pub const NODE_FAIL: u16 = 1 << 3;
pub const NODE_MYSELF: u16 = 1 << 4;
pub const NODE_HANDSHAKE: u16 = 1 << 5;
pub const NODE_NOADDR: u16 = 1 << 6;
pub const NODE_MEET: u16 = 1 << 7;
pub const NODE_MIGRATE_TO: u16 = 1 << 8;
pub const NODE_NOFAILOVER: u16 = 1 << 9;
pub const NODE_EXTENSIONS_SUPPORTED: u16 = 1 << 10;
pub const NODE_LIGHT_HDR_PUBLISH_SUPPORTED: u16 = 1 << 11;
/// Also advertises MULTI_MEET support in 9.x.
pub const NODE_LIGHT_HDR_MODULE_SUPPORTED: u16 = 1 << 12;
pub const NODE_MY_PRIMARY_FAIL: u16 = 1 << 13;

/// mflags[0] bits (`CLUSTERMSG_FLAG0_*`).
pub const MFLAG0_PAUSED: u8 = 1 << 0;
pub const MFLAG0_FORCEACK: u8 = 1 << 1;
pub const MFLAG0_EXT_DATA: u8 = 1 << 2;

/// Ping extension types (`CLUSTERMSG_EXT_TYPE_*`).
pub const EXT_HOSTNAME: u16 = 0;
pub const EXT_HUMAN_NODENAME: u16 = 1;
pub const EXT_FORGOTTEN_NODE: u16 = 2;
pub const EXT_SHARDID: u16 = 3;
pub const EXT_CLIENT_IPV4: u16 = 4;
pub const EXT_CLIENT_IPV6: u16 = 5;
pub const EXT_CLIENT_TCP_PORT: u16 = 6;
pub const EXT_CLIENT_TLS_PORT: u16 = 7;
pub const EXT_AVAILABILITY_ZONE: u16 = 8;

/// A node name or shard id: 40 bytes, lowercase hex in practice (see [`name_is_valid`]).
pub type Name = [u8; NAME_LEN];
/// The slot bitmap as it travels (the slot module's `SlotBitmap` wraps the same bytes).
pub type SlotBits = [u8; SLOTS_BYTES];

/// The name of a message type as upstream logs it (`clusterGetMessageTypeString`).
pub fn type_name(msg_type: u16) -> &'static str {
    match msg_type {
        TYPE_PING => "ping",
        TYPE_PONG => "pong",
        TYPE_MEET => "meet",
        TYPE_FAIL => "fail",
        TYPE_PUBLISH => "publish",
        TYPE_PUBLISHSHARD => "publishshard",
        TYPE_FAILOVER_AUTH_REQUEST => "auth-req",
        TYPE_FAILOVER_AUTH_ACK => "auth-ack",
        TYPE_UPDATE => "update",
        TYPE_MFSTART => "mfstart",
        TYPE_MODULE => "module",
        _ => "unknown",
    }
}

/// Whether a name is 40 characters of `[0-9a-f]` (upstream's `verifyClusterNodeId`; a gossip
/// section with one bad name is dropped whole by the receiver, the packet is not).
pub fn name_is_valid(name: &[u8]) -> bool {
    name.len() == NAME_LEN && name.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// The bytes of a fixed-size NUL-padded string up to its first NUL (all of it if none).
pub fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    &field[..end]
}

/// Whether slot `slot` is set in a bitmap (slots past 16383 are never set).
pub fn slot_is_set(bits: &SlotBits, slot: usize) -> bool {
    slot < CLUSTER_SLOTS && bits[slot >> 3] & (1 << (slot & 7)) != 0
}

/// Sets slot `slot` in a bitmap (ignored past 16383).
pub fn slot_set(bits: &mut SlotBits, slot: usize) {
    if slot < CLUSTER_SLOTS {
        bits[slot >> 3] |= 1 << (slot & 7);
    }
}

/// The header, every field as it travels. `totlen` and `type` are not stored: encode
/// computes the first and takes the second from the body. For PING/PONG/MEET, `count` and
/// (when mflags has EXT_DATA) `extensions` are also taken from the body on encode; for the
/// other types they are written as stored (upstream writes 0).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Header {
    pub ver: u16,
    /// The client port (TLS if `tls-cluster`, else TCP).
    pub port: u16,
    pub count: u16,
    pub current_epoch: u64,
    /// The sender's configEpoch, or its primary's if it is a replica.
    pub config_epoch: u64,
    /// Replication offset (primary) or processed offset (replica).
    pub offset: u64,
    pub sender: Name,
    /// The sender's slots, or its primary's if it is a replica.
    pub myslots: SlotBits,
    /// The primary's name, or 40 NUL bytes for a primary.
    pub replicaof: Name,
    /// `cluster-announce-ip`, NUL padded; all zero means "use the peer address".
    pub myip: [u8; IP_LEN],
    pub extensions: u16,
    pub notused1: [u8; 30],
    /// The other client port (TCP if `port` is TLS and the reverse; 0 without TLS).
    pub pport: u16,
    /// The bus port.
    pub cport: u16,
    pub flags: u16,
    /// 0 = ok, 1 = fail, as the sender sees the cluster.
    pub state: u8,
    pub mflags: [u8; 3],
}

impl Header {
    /// A header from `sender` with every other field zero and version 1.
    pub fn new(sender: Name) -> Header {
        Header {
            ver: PROTO_VER,
            port: 0,
            count: 0,
            current_epoch: 0,
            config_epoch: 0,
            offset: 0,
            sender,
            myslots: [0; SLOTS_BYTES],
            replicaof: [0; NAME_LEN],
            myip: [0; IP_LEN],
            extensions: 0,
            notused1: [0; 30],
            pport: 0,
            cport: 0,
            flags: 0,
            state: 0,
            mflags: [0; 3],
        }
    }

    /// Whether the sender claims to be a primary (`replicaof` all zero).
    pub fn claims_primary(&self) -> bool {
        self.replicaof.iter().all(|&c| c == 0)
    }

    /// The announced IP: up to the first NUL, at most 45 bytes (upstream forces a NUL at 45).
    pub fn myip(&self) -> &[u8] {
        cstr(&self.myip[..IP_LEN - 1])
    }

    pub fn has_ext_data(&self) -> bool {
        self.mflags[0] & MFLAG0_EXT_DATA != 0
    }
}

/// One gossip entry (`clusterMsgDataGossip`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Gossip {
    pub nodename: Name,
    /// Seconds (upstream divides its ms timestamps by 1000).
    pub ping_sent: u32,
    pub pong_received: u32,
    pub ip: [u8; IP_LEN],
    pub port: u16,
    pub cport: u16,
    pub flags: u16,
    pub pport: u16,
    pub notused1: u16,
}

impl Gossip {
    /// The IP up to its first NUL (at most 45 bytes).
    pub fn ip(&self) -> &[u8] {
        cstr(&self.ip[..IP_LEN - 1])
    }

    fn read(b: &[u8]) -> Gossip {
        Gossip {
            nodename: arr(&b[goff::NODENAME..]),
            ping_sent: be32(b, goff::PING_SENT),
            pong_received: be32(b, goff::PONG_RECEIVED),
            ip: arr(&b[goff::IP..]),
            port: be16(b, goff::PORT),
            cport: be16(b, goff::CPORT),
            flags: be16(b, goff::FLAGS),
            pport: be16(b, goff::PPORT),
            notused1: be16(b, goff::NOTUSED1),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.nodename);
        out.extend_from_slice(&self.ping_sent.to_be_bytes());
        out.extend_from_slice(&self.pong_received.to_be_bytes());
        out.extend_from_slice(&self.ip);
        for v in [self.port, self.cport, self.flags, self.pport, self.notused1] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        debug_assert_eq!(out.len() - start, GOSSIP_LEN);
    }
}

/// One ping extension: `length u32 | type u16 | unused u16 | payload`. The payload is kept
/// whole (padding included) so that encoding gives back the bytes received; [`Ext::data`]
/// is the typed view. Built with the constructors, which pad as upstream does.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Ext {
    ext_type: u16,
    unused: u16,
    payload: Vec<u8>,
}

/// The typed view of an extension.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ExtData<'a> {
    Hostname(&'a [u8]),
    HumanNodename(&'a [u8]),
    /// A node every receiver should forget, for `ttl` more seconds.
    ForgottenNode {
        name: &'a Name,
        ttl: u64,
    },
    ShardId(&'a Name),
    ClientIpv4(&'a [u8]),
    ClientIpv6(&'a [u8]),
    ClientTcpPort(u16),
    ClientTlsPort(u16),
    AvailabilityZone(&'a [u8]),
    /// Skipped by upstream with a log line (`Received unknown extension type N`).
    Unknown(u16),
}

fn align8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

impl Ext {
    fn with_payload(ext_type: u16, mut payload: Vec<u8>) -> Ext {
        let padded = align8(EXT_HEADER_LEN + payload.len()) - EXT_HEADER_LEN;
        payload.resize(padded, 0);
        Ext {
            ext_type,
            unused: 0,
            payload,
        }
    }

    /// A string extension: the bytes (cut at the first NUL, if any), a NUL, zero padding to
    /// a multiple of 8 (`8 + align8(strlen + 1)` in all).
    pub fn string(ext_type: u16, s: &[u8]) -> Ext {
        let mut p = cstr(s).to_vec();
        p.push(0);
        Ext::with_payload(ext_type, p)
    }

    pub fn hostname(s: &[u8]) -> Ext {
        Ext::string(EXT_HOSTNAME, s)
    }

    pub fn human_nodename(s: &[u8]) -> Ext {
        Ext::string(EXT_HUMAN_NODENAME, s)
    }

    pub fn client_ipv4(s: &[u8]) -> Ext {
        Ext::string(EXT_CLIENT_IPV4, s)
    }

    pub fn client_ipv6(s: &[u8]) -> Ext {
        Ext::string(EXT_CLIENT_IPV6, s)
    }

    pub fn availability_zone(s: &[u8]) -> Ext {
        Ext::string(EXT_AVAILABILITY_ZONE, s)
    }

    pub fn forgotten_node(name: &Name, ttl: u64) -> Ext {
        let mut p = name.to_vec();
        p.extend_from_slice(&ttl.to_be_bytes());
        Ext::with_payload(EXT_FORGOTTEN_NODE, p)
    }

    pub fn shard_id(id: &Name) -> Ext {
        Ext::with_payload(EXT_SHARDID, id.to_vec())
    }

    pub fn client_tcp_port(port: u16) -> Ext {
        Ext::with_payload(EXT_CLIENT_TCP_PORT, port.to_be_bytes().to_vec())
    }

    pub fn client_tls_port(port: u16) -> Ext {
        Ext::with_payload(EXT_CLIENT_TLS_PORT, port.to_be_bytes().to_vec())
    }

    /// An extension of a type this codec does not know, padded to a multiple of 8.
    pub fn unknown(ext_type: u16, payload: &[u8]) -> Ext {
        Ext::with_payload(ext_type, payload.to_vec())
    }

    pub fn ext_type(&self) -> u16 {
        self.ext_type
    }

    /// The `length` field: header + payload.
    pub fn wire_len(&self) -> usize {
        EXT_HEADER_LEN + self.payload.len()
    }

    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The typed view. The payload sizes and NULs were checked by [`decode`] (and the
    /// constructors make them right), so the fallbacks here are never taken in practice.
    pub fn data(&self) -> ExtData<'_> {
        let p = &self.payload[..];
        match self.ext_type {
            EXT_HOSTNAME => ExtData::Hostname(cstr(p)),
            EXT_HUMAN_NODENAME => ExtData::HumanNodename(cstr(p)),
            EXT_CLIENT_IPV4 => ExtData::ClientIpv4(cstr(p)),
            EXT_CLIENT_IPV6 => ExtData::ClientIpv6(cstr(p)),
            EXT_AVAILABILITY_ZONE => ExtData::AvailabilityZone(cstr(p)),
            EXT_FORGOTTEN_NODE if p.len() >= NAME_LEN + 8 => ExtData::ForgottenNode {
                name: p[..NAME_LEN].try_into().expect("40 bytes"),
                ttl: be64(p, NAME_LEN),
            },
            EXT_SHARDID if p.len() >= NAME_LEN => {
                ExtData::ShardId(p[..NAME_LEN].try_into().expect("40 bytes"))
            }
            EXT_CLIENT_TCP_PORT if p.len() >= 2 => ExtData::ClientTcpPort(be16(p, 0)),
            EXT_CLIENT_TLS_PORT if p.len() >= 2 => ExtData::ClientTlsPort(be16(p, 0)),
            t => ExtData::Unknown(t),
        }
    }

    /// The minimum payload a known type needs (this codec's check; upstream trusts it).
    fn payload_ok(ext_type: u16, p: &[u8]) -> bool {
        match ext_type {
            EXT_HOSTNAME
            | EXT_HUMAN_NODENAME
            | EXT_CLIENT_IPV4
            | EXT_CLIENT_IPV6
            | EXT_AVAILABILITY_ZONE => p.contains(&0),
            EXT_FORGOTTEN_NODE => p.len() >= NAME_LEN + 8,
            EXT_SHARDID => p.len() >= NAME_LEN,
            EXT_CLIENT_TCP_PORT | EXT_CLIENT_TLS_PORT => p.len() >= 2,
            _ => true,
        }
    }
}

/// The body of PING, PONG and MEET.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Ping {
    pub gossip: Vec<Gossip>,
    /// Present only when mflags has EXT_DATA (upstream reads them only then).
    pub exts: Vec<Ext>,
}

impl Ping {
    /// Whether every gossip name is valid; upstream drops the whole gossip section (not the
    /// packet) when one is not.
    pub fn gossip_names_valid(&self) -> bool {
        self.gossip.iter().all(|g| name_is_valid(&g.nodename))
    }
}

/// The body of PUBLISH and PUBLISHSHARD.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Publish {
    pub channel: Vec<u8>,
    pub message: Vec<u8>,
}

/// The body of UPDATE: `nodename` now serves `slots` with `config_epoch`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Update {
    pub config_epoch: u64,
    pub nodename: Name,
    pub slots: Box<SlotBits>,
}

/// The body of MODULE. The module id travels in host order on the sender, so it is kept as
/// raw bytes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Module {
    pub module_id: [u8; 8],
    pub module_type: u8,
    pub payload: Vec<u8>,
}

/// A message body, one variant per type.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Body {
    Ping(Ping),
    Pong(Ping),
    Meet(Ping),
    /// The name of the node that failed.
    Fail(Name),
    Publish(Publish),
    PublishShard(Publish),
    FailoverAuthRequest,
    FailoverAuthAck,
    Update(Update),
    MfStart,
    Module(Module),
    /// A type of 11 or more: upstream accepts any length and ignores it.
    Unknown {
        msg_type: u16,
        data: Vec<u8>,
    },
}

impl Body {
    /// The wire type.
    pub fn msg_type(&self) -> u16 {
        match self {
            Body::Ping(_) => TYPE_PING,
            Body::Pong(_) => TYPE_PONG,
            Body::Meet(_) => TYPE_MEET,
            Body::Fail(_) => TYPE_FAIL,
            Body::Publish(_) => TYPE_PUBLISH,
            Body::PublishShard(_) => TYPE_PUBLISHSHARD,
            Body::FailoverAuthRequest => TYPE_FAILOVER_AUTH_REQUEST,
            Body::FailoverAuthAck => TYPE_FAILOVER_AUTH_ACK,
            Body::Update(_) => TYPE_UPDATE,
            Body::MfStart => TYPE_MFSTART,
            Body::Module(_) => TYPE_MODULE,
            Body::Unknown { msg_type, .. } => *msg_type,
        }
    }

    /// The gossip and extensions of PING/PONG/MEET.
    pub fn ping(&self) -> Option<&Ping> {
        match self {
            Body::Ping(p) | Body::Pong(p) | Body::Meet(p) => Some(p),
            _ => None,
        }
    }
}

/// A whole bus message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Message {
    pub header: Header,
    pub body: Body,
}

impl Message {
    pub fn msg_type(&self) -> u16 {
        self.body.msg_type()
    }
}

/// Why a message was refused. [`BusError::closes_link`] tells the link layer what upstream
/// does; `Display` gives upstream's log line where it has one.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum BusError {
    /// Fewer bytes than the frame needs (a caller error: frame with [`needed`] first).
    Truncated { have: usize, need: usize },
    /// More bytes than totlen (a caller error: [`decode`] takes exactly one frame).
    TrailingBytes { have: usize, totlen: u32 },
    /// The signature is not `RCmb`. Upstream closes the link.
    BadSignature,
    /// totlen below the minimum (2256, or 16 for a light header). Upstream closes the link.
    BadLength { totlen: u32 },
    /// totlen above [`MAX_TOTLEN`]. The link is closed (upstream has no cap).
    TooLong { totlen: u32 },
    /// A light header on a type that has no light form: the packet is ignored.
    LightUnsupported { msg_type: u16 },
    /// A light PUBLISH/PUBLISHSHARD. We never advertise LIGHT_HDR_PUBLISH_SUPPORTED, so a
    /// well-behaved peer never sends one. Upstream closes the link when it is the first
    /// message of the link (no node bound yet), else processes it; we ignore it then.
    LightPublish { msg_type: u16 },
    /// `ver` is not 1: ignored silently, as upstream.
    BadVersion { ver: u16 },
    /// PING/PONG/MEET whose gossip section does not fit in totlen.
    GossipCountExceeds {
        msg_type: u16,
        count: u16,
        totlen: u32,
    },
    /// An extension header or its body is past totlen.
    ExtExceeds { msg_type: u16, totlen: u32 },
    /// An extension length that is not a multiple of 8.
    ExtPadding { msg_type: u16, len: u32 },
    /// A known extension whose payload is too small or a string with no NUL (this codec's
    /// check: upstream reads past the extension in that case).
    ExtBadPayload { ext_type: u16, len: u32 },
    /// PUBLISH/PUBLISHSHARD whose channel length (or the two length fields) does not fit in
    /// totlen.
    PublishExceeds { msg_type: u16, totlen: u32 },
    /// PUBLISH/PUBLISHSHARD whose message length does not fit after the channel.
    PublishMessageExceeds { msg_type: u16, totlen: u32 },
    /// MODULE whose payload length (or its fixed fields) does not fit in totlen.
    ModuleExceeds { totlen: u32 },
    /// totlen differs from the length the type and its counts imply.
    LengthMismatch {
        msg_type: u16,
        totlen: u32,
        explen: u64,
    },
}

impl BusError {
    /// Whether the link must be closed (upstream's `clusterReadHandler` framing failures and a
    /// light message as the first message of a link). Every other error means "log, ignore
    /// the packet, keep the link": upstream always consumes exactly totlen bytes, so the
    /// stream stays aligned. `link_has_node` is whether the link is bound to a known node
    /// that is not in handshake.
    pub fn closes_link(&self, link_has_node: bool) -> bool {
        match self {
            BusError::Truncated { .. }
            | BusError::TrailingBytes { .. }
            | BusError::BadSignature
            | BusError::BadLength { .. }
            | BusError::TooLong { .. } => true,
            BusError::LightPublish { .. } => !link_has_node,
            _ => false,
        }
    }
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BusError::Truncated { have, need } => {
                write!(f, "Truncated cluster bus message ({have} of {need} bytes)")
            }
            BusError::TrailingBytes { have, totlen } => {
                write!(
                    f,
                    "Cluster bus frame of {have} bytes for a message of {totlen}"
                )
            }
            BusError::BadSignature | BusError::BadLength { .. } => {
                write!(
                    f,
                    "Bad message length or signature received on the Cluster bus"
                )
            }
            BusError::TooLong { totlen } => write!(
                f,
                "Cluster bus message length {totlen} is above the limit ({MAX_TOTLEN})"
            ),
            BusError::LightUnsupported { msg_type } => write!(
                f,
                "Packet of type '{}' ({msg_type}) does not support light cluster header. \
                 Marking packet as invalid.",
                type_name(msg_type)
            ),
            BusError::LightPublish { msg_type } => write!(
                f,
                "Received a lightweight message of type {} (light headers are not advertised)",
                type_name(msg_type)
            ),
            BusError::BadVersion { ver } => {
                write!(f, "Received a cluster bus packet of version {ver}")
            }
            BusError::GossipCountExceeds {
                msg_type,
                count,
                totlen,
            } => write!(
                f,
                "Received invalid {} packet with gossip count {count} that exceeds total \
                 packet length ({totlen})",
                type_name(msg_type)
            ),
            BusError::ExtExceeds { msg_type, totlen } => write!(
                f,
                "Received invalid {} packet with extension data that exceeds total packet \
                 length ({totlen})",
                type_name(msg_type)
            ),
            BusError::ExtPadding { msg_type, len } => write!(
                f,
                "Received a {} packet without proper padding ({len} bytes)",
                type_name(msg_type)
            ),
            BusError::ExtBadPayload { ext_type, len } => write!(
                f,
                "Received a ping extension of type {ext_type} with an invalid payload ({len} bytes)"
            ),
            BusError::PublishExceeds { msg_type, totlen } => write!(
                f,
                "Received invalid {} packet with channel length that exceeds total packet \
                 length ({totlen})",
                type_name(msg_type)
            ),
            BusError::PublishMessageExceeds { msg_type, totlen } => write!(
                f,
                "Received invalid {} packet with message length that exceeds total packet \
                 length ({totlen})",
                type_name(msg_type)
            ),
            BusError::ModuleExceeds { totlen } => write!(
                f,
                "Received invalid module packet with module payload length that exceeds total \
                 packet length ({totlen})"
            ),
            BusError::LengthMismatch {
                msg_type,
                totlen,
                explen,
            } => write!(
                f,
                "Received invalid {} packet of length {totlen} but expected length {explen}",
                type_name(msg_type)
            ),
        }
    }
}

impl std::error::Error for BusError {}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(arr(&b[at..]))
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(arr(&b[at..]))
}

/// The first N bytes of `b` as an array. Callers have checked the length.
fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    b[..N].try_into().expect("length checked by the caller")
}

/// Checks the signature and totlen of the first [`RCVBUF_MIN_READ_LEN`] bytes, as upstream's
/// read handler does before it reads the rest: the totlen it returns can be trusted as far as
/// the minimum and [`MAX_TOTLEN`] go.
fn check_frame_header(buf: &[u8]) -> Result<u32, BusError> {
    debug_assert!(buf.len() >= RCVBUF_MIN_READ_LEN);
    if buf[off::SIG..off::SIG + 4] != SIG {
        return Err(BusError::BadSignature);
    }
    let totlen = be32(buf, off::TOTLEN);
    let light = be16(buf, off::TYPE) & TYPE_LIGHT != 0;
    let min = if light { LIGHT_HEADER_LEN } else { HEADER_LEN };
    if (totlen as usize) < min {
        return Err(BusError::BadLength { totlen });
    }
    if totlen > MAX_TOTLEN {
        return Err(BusError::TooLong { totlen });
    }
    Ok(totlen)
}

/// How many bytes the next message of a stream needs: [`RCVBUF_MIN_READ_LEN`] while fewer
/// than that are buffered, then its totlen once the signature and totlen are checked. The
/// message is complete when `buf.len() >= needed(buf)?`. An error means "close the link".
/// The caller grows its buffer as bytes arrive, never to the returned size in advance.
pub fn needed(buf: &[u8]) -> Result<usize, BusError> {
    if buf.len() < RCVBUF_MIN_READ_LEN {
        return Ok(RCVBUF_MIN_READ_LEN);
    }
    check_frame_header(buf).map(|t| t as usize)
}

/// A complete message and the bytes after it.
pub type Split<'a> = (&'a [u8], &'a [u8]);

/// Splits the first complete message off a stream buffer: `Ok(Some((frame, rest)))`,
/// `Ok(None)` when more bytes are needed, or a framing error (close the link).
pub fn split_frame(buf: &[u8]) -> Result<Option<Split<'_>>, BusError> {
    let need = needed(buf)?;
    if buf.len() < need || buf.len() < RCVBUF_MIN_READ_LEN {
        return Ok(None);
    }
    Ok(Some(buf.split_at(need)))
}

/// Decodes one whole message (`buf` is exactly totlen bytes), with upstream's validation.
pub fn decode(buf: &[u8]) -> Result<Message, BusError> {
    if buf.len() < RCVBUF_MIN_READ_LEN {
        return Err(BusError::Truncated {
            have: buf.len(),
            need: RCVBUF_MIN_READ_LEN,
        });
    }
    let totlen = check_frame_header(buf)?;
    let tl = totlen as usize;
    if buf.len() < tl {
        return Err(BusError::Truncated {
            have: buf.len(),
            need: tl,
        });
    }
    if buf.len() > tl {
        return Err(BusError::TrailingBytes {
            have: buf.len(),
            totlen,
        });
    }
    // Upstream's order: the light check, then the version, then the per-type lengths.
    let raw_type = be16(buf, off::TYPE);
    if raw_type & TYPE_LIGHT != 0 {
        let msg_type = raw_type & !TYPE_LIGHT;
        return Err(match msg_type {
            TYPE_PUBLISH | TYPE_PUBLISHSHARD => BusError::LightPublish { msg_type },
            _ => BusError::LightUnsupported { msg_type },
        });
    }
    // From here on totlen >= HEADER_LEN (check_frame_header), so the header is in `buf`.
    let ver = be16(buf, off::VER);
    if ver != PROTO_VER {
        return Err(BusError::BadVersion { ver });
    }
    let header = Header {
        ver,
        port: be16(buf, off::PORT),
        count: be16(buf, off::COUNT),
        current_epoch: be64(buf, off::CURRENT_EPOCH),
        config_epoch: be64(buf, off::CONFIG_EPOCH),
        offset: be64(buf, off::OFFSET),
        sender: arr(&buf[off::SENDER..]),
        myslots: arr(&buf[off::MYSLOTS..]),
        replicaof: arr(&buf[off::REPLICAOF..]),
        myip: arr(&buf[off::MYIP..]),
        extensions: be16(buf, off::EXTENSIONS),
        notused1: arr(&buf[off::NOTUSED1..]),
        pport: be16(buf, off::PPORT),
        cport: be16(buf, off::CPORT),
        flags: be16(buf, off::FLAGS),
        state: buf[off::STATE],
        mflags: arr(&buf[off::MFLAGS..]),
    };
    let data = &buf[HEADER_LEN..];
    let mismatch = |explen: usize| BusError::LengthMismatch {
        msg_type: raw_type,
        totlen,
        explen: explen as u64,
    };
    let body = match raw_type {
        TYPE_PING | TYPE_PONG | TYPE_MEET => {
            let ping = decode_ping(&header, raw_type, totlen, data)?;
            match raw_type {
                TYPE_PING => Body::Ping(ping),
                TYPE_PONG => Body::Pong(ping),
                _ => Body::Meet(ping),
            }
        }
        TYPE_FAIL => {
            if tl != FAIL_LEN {
                return Err(mismatch(FAIL_LEN));
            }
            Body::Fail(arr(data))
        }
        TYPE_PUBLISH | TYPE_PUBLISHSHARD => {
            let p = decode_publish(raw_type, totlen, data)?;
            if raw_type == TYPE_PUBLISH {
                Body::Publish(p)
            } else {
                Body::PublishShard(p)
            }
        }
        TYPE_FAILOVER_AUTH_REQUEST | TYPE_FAILOVER_AUTH_ACK | TYPE_MFSTART => {
            if tl != HEADER_LEN {
                return Err(mismatch(HEADER_LEN));
            }
            match raw_type {
                TYPE_FAILOVER_AUTH_REQUEST => Body::FailoverAuthRequest,
                TYPE_FAILOVER_AUTH_ACK => Body::FailoverAuthAck,
                _ => Body::MfStart,
            }
        }
        TYPE_UPDATE => {
            if tl != UPDATE_LEN {
                return Err(mismatch(UPDATE_LEN));
            }
            Body::Update(Update {
                config_epoch: be64(data, 0),
                nodename: arr(&data[8..]),
                slots: Box::new(arr(&data[8 + NAME_LEN..])),
            })
        }
        TYPE_MODULE => {
            // [ref] 9.1.2 checks that the payload fits before comparing the total.
            if tl < MODULE_MIN_LEN || be32(data, 8) as usize > tl - MODULE_MIN_LEN {
                return Err(BusError::ModuleExceeds { totlen });
            }
            let len = be32(data, 8) as u64;
            let explen = MODULE_MIN_LEN as u64 + len;
            if explen != totlen as u64 {
                return Err(BusError::LengthMismatch {
                    msg_type: raw_type,
                    totlen,
                    explen,
                });
            }
            Body::Module(Module {
                module_id: arr(data),
                module_type: data[12],
                payload: data[13..].to_vec(),
            })
        }
        msg_type => Body::Unknown {
            msg_type,
            data: data.to_vec(),
        },
    };
    Ok(Message { header, body })
}

/// PING/PONG/MEET: the gossip section must fit first (the CVE-2026-21863 fix), then each
/// extension header and extension, and the sum must be totlen.
fn decode_ping(h: &Header, msg_type: u16, totlen: u32, data: &[u8]) -> Result<Ping, BusError> {
    let count = h.count as usize;
    let gossip_bytes = count * GOSSIP_LEN; // at most 65535 * 104: no overflow
    if gossip_bytes > data.len() {
        return Err(BusError::GossipCountExceeds {
            msg_type,
            count: h.count,
            totlen,
        });
    }
    let mut pos = gossip_bytes;
    let mut exts = Vec::new();
    if h.has_ext_data() {
        for _ in 0..h.extensions {
            if data.len() - pos < EXT_HEADER_LEN {
                return Err(BusError::ExtExceeds { msg_type, totlen });
            }
            let len = be32(data, pos);
            if !len.is_multiple_of(8) {
                return Err(BusError::ExtPadding { msg_type, len });
            }
            if (data.len() - pos) < len as usize {
                return Err(BusError::ExtExceeds { msg_type, totlen });
            }
            if (len as usize) < EXT_HEADER_LEN {
                // Upstream adds 0 and goes on, then fails on the total: same verdict, same log
                // for a single extension, and never a loop over the same bytes here.
                return Err(BusError::LengthMismatch {
                    msg_type,
                    totlen,
                    explen: (HEADER_LEN + pos) as u64,
                });
            }
            let ext_type = be16(data, pos + 4);
            let payload = &data[pos + EXT_HEADER_LEN..pos + len as usize];
            if !Ext::payload_ok(ext_type, payload) {
                return Err(BusError::ExtBadPayload { ext_type, len });
            }
            exts.push(Ext {
                ext_type,
                unused: be16(data, pos + 6),
                payload: payload.to_vec(),
            });
            pos += len as usize;
        }
    }
    if pos != data.len() {
        return Err(BusError::LengthMismatch {
            msg_type,
            totlen,
            explen: (HEADER_LEN + pos) as u64,
        });
    }
    // Only now, with the count known to fit, are the entries read.
    let gossip = data[..gossip_bytes]
        .chunks_exact(GOSSIP_LEN)
        .map(Gossip::read)
        .collect();
    Ok(Ping { gossip, exts })
}

/// [ref] 9.1.2 checks the channel length, then the message length, against what is left of
/// totlen (a packet too short for the two length fields is a "channel length" failure), and
/// only then compares the total.
fn decode_publish(msg_type: u16, totlen: u32, data: &[u8]) -> Result<Publish, BusError> {
    if data.len() < 8 {
        return Err(BusError::PublishExceeds { msg_type, totlen });
    }
    let channel_len = be32(data, 0) as u64;
    let message_len = be32(data, 4) as u64;
    let room = (data.len() - 8) as u64;
    if channel_len > room {
        return Err(BusError::PublishExceeds { msg_type, totlen });
    }
    if message_len > room - channel_len {
        return Err(BusError::PublishMessageExceeds { msg_type, totlen });
    }
    let explen = PUBLISH_MIN_LEN as u64 + channel_len + message_len;
    if explen != totlen as u64 {
        return Err(BusError::LengthMismatch {
            msg_type,
            totlen,
            explen,
        });
    }
    let cl = channel_len as usize;
    Ok(Publish {
        channel: data[8..8 + cl].to_vec(),
        message: data[8 + cl..].to_vec(),
    })
}

/// The encoded length of a message.
pub fn encoded_len(m: &Message) -> usize {
    HEADER_LEN
        + match &m.body {
            Body::Ping(p) | Body::Pong(p) | Body::Meet(p) => {
                p.gossip.len() * GOSSIP_LEN + p.exts.iter().map(Ext::wire_len).sum::<usize>()
            }
            Body::Fail(_) => NAME_LEN,
            Body::Publish(p) | Body::PublishShard(p) => 8 + p.channel.len() + p.message.len(),
            Body::FailoverAuthRequest | Body::FailoverAuthAck | Body::MfStart => 0,
            Body::Update(_) => UPDATE_LEN - HEADER_LEN,
            Body::Module(md) => MODULE_MIN_LEN - HEADER_LEN + md.payload.len(),
            Body::Unknown { data, .. } => data.len(),
        }
}

/// Encodes a message. For PING/PONG/MEET, `count` is the number of gossip entries and, when
/// there are extensions, EXT_DATA is set and `extensions` is their number (as upstream:
/// EXT_DATA with 0 extensions is allowed, and a MEET carries exactly that).
///
/// Panics if the message cannot be represented (more than 65535 gossip entries or
/// extensions, a string over 4 GB): those are bugs of the caller, never input from the wire.
pub fn encode(m: &Message) -> Vec<u8> {
    let total = encoded_len(m);
    let totlen = u32::try_from(total).expect("cluster bus message over 4 GB");
    let h = &m.header;
    let mut count = h.count;
    let mut extensions = h.extensions;
    let mut mflags = h.mflags;
    if let Some(p) = m.body.ping() {
        count = u16::try_from(p.gossip.len()).expect("more than 65535 gossip entries");
        if !p.exts.is_empty() {
            mflags[0] |= MFLAG0_EXT_DATA;
        }
        if mflags[0] & MFLAG0_EXT_DATA != 0 {
            extensions = u16::try_from(p.exts.len()).expect("more than 65535 extensions");
        }
    }
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&SIG);
    out.extend_from_slice(&totlen.to_be_bytes());
    out.extend_from_slice(&h.ver.to_be_bytes());
    out.extend_from_slice(&h.port.to_be_bytes());
    out.extend_from_slice(&m.msg_type().to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&h.current_epoch.to_be_bytes());
    out.extend_from_slice(&h.config_epoch.to_be_bytes());
    out.extend_from_slice(&h.offset.to_be_bytes());
    out.extend_from_slice(&h.sender);
    out.extend_from_slice(&h.myslots);
    out.extend_from_slice(&h.replicaof);
    out.extend_from_slice(&h.myip);
    out.extend_from_slice(&extensions.to_be_bytes());
    out.extend_from_slice(&h.notused1);
    out.extend_from_slice(&h.pport.to_be_bytes());
    out.extend_from_slice(&h.cport.to_be_bytes());
    out.extend_from_slice(&h.flags.to_be_bytes());
    out.push(h.state);
    out.extend_from_slice(&mflags);
    debug_assert_eq!(out.len(), HEADER_LEN);
    match &m.body {
        Body::Ping(p) | Body::Pong(p) | Body::Meet(p) => {
            for g in &p.gossip {
                g.write(&mut out);
            }
            for e in &p.exts {
                let len = u32::try_from(e.wire_len()).expect("extension over 4 GB");
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&e.ext_type.to_be_bytes());
                out.extend_from_slice(&e.unused.to_be_bytes());
                out.extend_from_slice(&e.payload);
            }
        }
        Body::Fail(name) => out.extend_from_slice(name),
        Body::Publish(p) | Body::PublishShard(p) => {
            for s in [&p.channel, &p.message] {
                let len = u32::try_from(s.len()).expect("publish string over 4 GB");
                out.extend_from_slice(&len.to_be_bytes());
            }
            out.extend_from_slice(&p.channel);
            out.extend_from_slice(&p.message);
        }
        Body::FailoverAuthRequest | Body::FailoverAuthAck | Body::MfStart => {}
        Body::Update(u) => {
            out.extend_from_slice(&u.config_epoch.to_be_bytes());
            out.extend_from_slice(&u.nodename);
            out.extend_from_slice(&u.slots[..]);
        }
        Body::Module(md) => {
            let len = u32::try_from(md.payload.len()).expect("module payload over 4 GB");
            out.extend_from_slice(&md.module_id);
            out.extend_from_slice(&len.to_be_bytes());
            out.push(md.module_type);
            out.extend_from_slice(&md.payload);
        }
        Body::Unknown { data, .. } => out.extend_from_slice(data),
    }
    debug_assert_eq!(out.len(), total);
    out
}
