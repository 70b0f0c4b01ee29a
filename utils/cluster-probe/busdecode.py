"""Decode / encode Valkey cluster bus messages (layout of docs/cluster-plan.md section 1).
Used by fake_node.py; run alone on a raw capture: python3 busdecode.py FILE."""
import struct, sys

HDR = 2256
TYPES = {0: "PING", 1: "PONG", 2: "MEET", 3: "FAIL", 4: "PUBLISH", 5: "FAILOVER_AUTH_REQUEST",
         6: "FAILOVER_AUTH_ACK", 7: "UPDATE", 8: "MFSTART", 9: "MODULE", 10: "PUBLISHSHARD"}
EXT = {0: "HOSTNAME", 1: "HUMAN_NODENAME", 2: "FORGOTTEN_NODE", 3: "SHARDID", 4: "CLIENT_IPV4", 5: "CLIENT_IPV6"}


def cstr(b):
    return b.split(b"\0", 1)[0].decode("latin1")


def slots_ranges(bm):
    out, start = [], None
    for s in range(16384):
        on = bm[s >> 3] & (1 << (s & 7))
        if on and start is None:
            start = s
        if not on and start is not None:
            out.append((start, s - 1)); start = None
    if start is not None:
        out.append((start, 16383))
    return out


def decode(m):
    d = {}
    d["sig"] = m[0:4]
    d["totlen"], d["ver"], d["port"], d["type"], d["count"] = struct.unpack(">IHHHH", m[4:16])
    d["currentEpoch"], d["configEpoch"], d["offset"] = struct.unpack(">QQQ", m[16:40])
    d["sender"] = cstr(m[40:80])
    d["myslots"] = slots_ranges(m[80:2128])
    d["replicaof"] = m[2128:2168].hex() if m[2128:2168] == bytes(40) else cstr(m[2128:2168])
    d["myip"] = cstr(m[2168:2214])
    d["extensions"], = struct.unpack(">H", m[2214:2216])
    d["notused1_zero"] = m[2216:2246] == bytes(30)
    d["pport"], d["cport"], d["flags"] = struct.unpack(">HHH", m[2246:2252])
    d["state"] = m[2252]
    d["mflags"] = m[2253:2256].hex()
    t = d["type"]
    d["type_name"] = TYPES.get(t & 0x7fff, "?")
    body = m[HDR:]
    if t in (0, 1, 2):
        g = []
        for i in range(d["count"]):
            e = body[i * 104:(i + 1) * 104]
            name = cstr(e[0:40])
            ps, pr = struct.unpack(">II", e[40:48])
            ip = cstr(e[48:94])
            port, cport, flags, pport, nu = struct.unpack(">HHHHH", e[94:104])
            g.append(dict(name=name, ping_sent=ps, pong_received=pr, ip=ip, port=port, cport=cport,
                          flags=flags, pport=pport, notused1=nu))
        d["gossip"] = g
        off = d["count"] * 104
        exts = []
        for i in range(d["extensions"]):
            ln, ty, un = struct.unpack(">IHH", body[off:off + 8])
            payload = body[off + 8:off + ln]
            exts.append(dict(at=HDR + off, length=ln, type=EXT.get(ty, ty), unused=un,
                             payload=payload.hex() if ty == 2 else payload))
            off += ln
        d["ext"] = exts
        d["body_len_consumed"] = HDR + off
    elif t == 3:
        d["fail_about"] = cstr(body[:40])
    elif t == 7:
        d["upd_configEpoch"], = struct.unpack(">Q", body[:8])
        d["upd_node"] = cstr(body[8:48])
        d["upd_slots"] = slots_ranges(body[48:48 + 2048])
    elif t in (4, 10):
        cl, ml = struct.unpack(">II", body[:8])
        d["channel"] = body[8:8 + cl]
        d["message"] = body[8 + cl:8 + cl + ml]
    return d


def encode(type_, sender, port, cport, flags=1, cur=0, cfg=0, offset=0, myip=b"", gossip=(), exts=(),
           slots=(), replicaof=b"", state=0, mflags=b"\0\0\0"):
    body = b""
    for g in gossip:
        body += g
    ext_bytes = b""
    for ty, payload in exts:
        ln = 8 + len(payload)
        ln = (ln + 7) // 8 * 8
        ext_bytes += struct.pack(">IHH", ln, ty, 0) + payload.ljust(ln - 8, b"\0")
    body += ext_bytes
    bm = bytearray(2048)
    for s in slots:
        bm[s >> 3] |= 1 << (s & 7)
    if exts:
        mflags = bytes([mflags[0] | 4]) + mflags[1:]
    totlen = HDR + len(body)
    h = b"RCmb" + struct.pack(">IHHHH", totlen, 1, port, type_, len(gossip))
    h += struct.pack(">QQQ", cur, cfg, offset)
    h += sender.ljust(40, b"\0") + bytes(bm) + replicaof.ljust(40, b"\0") + myip.ljust(46, b"\0")
    h += struct.pack(">H", len(exts)) + bytes(30) + struct.pack(">HHH", 0, cport, flags)
    h += bytes([state]) + mflags
    assert len(h) == HDR, len(h)
    return h + body


if __name__ == "__main__":
    import pprint
    pprint.pprint(decode(open(sys.argv[1], "rb").read()), width=140)
