"""Captures one bus message of each type a reference node can be made to send to a fake node
(tests/data/cluster/*.bin, decoded by tests/cluster_bus_codec.rs).
Usage: python3 capture_fixtures.py VALKEY_SERVER OUTDIR
Starts two reference nodes A (all slots, configEpoch bumped) and C (no slots), makes A meet a
fake node (this script), then: MEET and PING from A; PONG to a PING of ours; PUBLISH;
UPDATE (we claim slot 0 with a stale configEpoch); FAILOVER_AUTH_ACK (we ask as a replica of C,
FORCEACK); FAIL (C is killed); PUBLISHSHARD (we claim to be A's replica); a PING with
PAUSED (after our MFSTART). Writes facts.txt with
what the reference reports (CLUSTER MYID, ports, epochs) for the tests to compare with."""
import os, shutil, socket, struct, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from busdecode import decode, encode

BIN, OUT = sys.argv[1], sys.argv[2]
os.makedirs(OUT, exist_ok=True)
NAME = b"fa4e" * 10
SHARD = b"5a" * 20


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port)] + list(args), capture_output=True, text=True, check=True).stdout.strip()


def start(tag, extra=()):
    port, cport = free_port(), free_port()
    d = tempfile.mkdtemp(prefix="capture-" + tag)
    p = subprocess.Popen([BIN, "--port", str(port), "--cluster-port", str(cport), "--bind", "127.0.0.1",
                          "--cluster-enabled", "yes", "--cluster-node-timeout", "1000", "--save", "",
                          "--appendonly", "no", "--dir", d, "--logfile", d + "/log"] + list(extra), cwd=d)
    for _ in range(100):
        try:
            cli(port, "ping"); break
        except subprocess.CalledProcessError:
            time.sleep(0.05)
    return p, port, cport, d


def wait(cond, what, limit=15):
    t = time.time() + limit
    while time.time() < t:
        if cond():
            return
        time.sleep(0.05)
    raise SystemExit("timeout waiting for " + what)


# A announces every optional field, so that its PINGs carry extension types 0-8.
A, aport, acport, adir = start("A", ["--cluster-announce-hostname", "host-a.example",
                                      "--cluster-announce-human-nodename", "node-a",
                                      "--cluster-announce-client-ipv4", "10.0.0.1",
                                      "--cluster-announce-client-ipv6", "fd00::1",
                                      "--cluster-announce-client-port", "6390",
                                      "--cluster-announce-client-tls-port", "6391",
                                      "--availability-zone", "az-1"])
C, cport_, ccport, cdir = start("C")
try:
    cli(aport, "cluster", "addslotsrange", "0", "16383")
    cli(aport, "cluster", "bumpepoch")
    cli(aport, "cluster", "meet", "127.0.0.1", str(cport_), str(ccport))
    cid = cli(cport_, "cluster", "myid")
    cshard = cli(cport_, "cluster", "myshardid").encode()
    ashard = cli(aport, "cluster", "myshardid").encode()
    aid = cli(aport, "cluster", "myid")
    wait(lambda: "handshake" not in cli(aport, "cluster", "nodes") and cli(aport, "cluster", "nodes").count("\n") == 1, "A-C handshake")

    fport = free_port(); fcport = free_port()
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", fcport)); ls.listen(4); ls.settimeout(10)
    cli(aport, "cluster", "meet", "127.0.0.1", str(fport), str(fcport))
    c, _ = ls.accept(); c.settimeout(10)
    role = dict(flags=1, replicaof=b"", slots=(), cfg=0, cur=0, shard=SHARD)

    def reply_pong():
        c.sendall(encode(1, NAME, fport, fcport, flags=role["flags"], replicaof=role["replicaof"],
                         slots=role["slots"], cfg=role["cfg"], cur=role["cur"], exts=[(3, role["shard"])]))

    def readmsg():
        buf = b""
        while len(buf) < 8:
            buf += c.recv(8 - len(buf))
        tot = int.from_bytes(buf[4:8], "big")
        while len(buf) < tot:
            buf += c.recv(tot - len(buf))
        return buf

    got = {}

    def pump(want, limit=10, before=None):
        """Reads messages (answering PING/MEET with PONG) until one of type `want` arrives."""
        t = time.time() + limit
        while time.time() < t:
            m = readmsg()
            n = decode(m)["type_name"]
            if n in ("MEET", "PING"):
                reply_pong()
            if n == want and want not in got:
                got[n] = m
                open(f"{OUT}/{n.lower()}.bin", "wb").write(m)
                print("saved", n, len(m))
                return m
        raise SystemExit("no " + want)

    pump("MEET")
    wait(lambda: "handshake" not in cli(aport, "cluster", "nodes"), "A-fake handshake")
    first_ping = pump("PING")
    # Our PING: the reference answers PONG on the same link.
    c.sendall(encode(0, NAME, fport, fcport, flags=1, exts=[(3, SHARD)]))
    pump("PONG")
    cli(aport, "publish", "news", "hello world")
    pump("PUBLISH")
    # Stale claim of slot 0 with configEpoch 0: A owns it with a greater one and sends UPDATE.
    c.sendall(encode(0, NAME, fport, fcport, flags=1, slots=(0,), exts=[(3, SHARD)]))
    pump("UPDATE")
    # Become a replica of C (empty primary), then ask for a vote with FORCEACK.
    role.update(flags=2, replicaof=cid.encode(), shard=cshard)
    c.sendall(encode(0, NAME, fport, fcport, flags=2, replicaof=cid.encode(), exts=[(3, cshard)]))
    time.sleep(0.3)
    t_ok = time.time() + 10
    while "cluster_state:ok" not in cli(aport, "cluster", "info") and time.time() < t_ok:
        m = readmsg()
        if decode(m)["type_name"] in ("PING", "MEET"):
            reply_pong()
    c.sendall(encode(5, NAME, fport, fcport, flags=2, replicaof=cid.encode(), cur=10, mflags=b"\x02\0\0"))
    pump("FAILOVER_AUTH_ACK")
    C.kill(); C.wait()
    pump("FAIL", limit=20)
    # Become a replica of A: PUBLISHSHARD goes to the nodes of A's shard.
    role.update(flags=2, replicaof=aid.encode(), cur=10, shard=ashard)
    c.sendall(encode(0, NAME, fport, fcport, flags=2, replicaof=aid.encode(), cur=10, exts=[(3, ashard)]))
    wait(lambda: ("slave " + aid) in cli(aport, "cluster", "nodes"), "fake as replica of A")
    cli(aport, "spublish", "shardchan", "shard message")
    pump("PUBLISHSHARD")
    # FORGET C: A's next PINGs carry a FORGOTTEN_NODE extension (with every other one).
    cli(aport, "cluster", "forget", cid)
    got.pop("PING")
    while True:
        m = pump("PING")
        if b"\0\0\0\x38\0\x02" in m:
            break
        got.pop("PING")
    os.rename(f"{OUT}/ping.bin", f"{OUT}/ping_ext.bin")
    open(f"{OUT}/ping.bin", "wb").write(first_ping)
    # MFSTART from us (A's replica): A pauses writes and PINGs us at once with mflags PAUSED.
    c.sendall(encode(8, NAME, fport, fcport, flags=2, replicaof=aid.encode(), cur=10))
    got.pop("PING", None)
    while True:
        m = pump("PING")
        if m[2253] & 1:
            break
        got.pop("PING")
    os.rename(f"{OUT}/ping.bin", f"{OUT}/ping_paused.bin")
    open(f"{OUT}/ping.bin", "wb").write(first_ping)
    info = cli(aport, "cluster", "info")
    facts = {
        "a_id": aid, "a_port": aport, "a_cport": acport, "c_id": cid, "fake_id": NAME.decode(),
        "fake_port": fport, "fake_cport": fcport,
        "a_current_epoch": [l for l in info.splitlines() if l.startswith("cluster_current_epoch")][0].split(":")[1],
        "a_my_epoch": [l for l in info.splitlines() if l.startswith("cluster_my_epoch")][0].split(":")[1],
        "a_shard_id": cli(aport, "cluster", "myshardid"),
    }
    with open(f"{OUT}/facts.txt", "w") as f:
        for k, v in facts.items():
            f.write(f"{k} {v}\n")
    print(open(f"{OUT}/facts.txt").read())
    print(cli(aport, "cluster", "nodes"))
finally:
    if len(sys.argv) > 3:
        print("\n".join(l for l in open(adir + "/log").read().splitlines() if "hard id" not in l)[-4000:])
    for p in (A, C):
        if p.poll() is None:
            p.kill(); p.wait()
    shutil.rmtree(adir, ignore_errors=True); shutil.rmtree(cdir, ignore_errors=True)
