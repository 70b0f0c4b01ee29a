"""A fake cluster node: asks a reference node (CLUSTER MEET via redis-cli) to meet it, captures the
MEET it receives, answers PONG with its own name, then captures the next PING.
Usage: python3 fake_node.py TARGET_PORT FAKE_PORT OUTDIR   (bus port of the fake = FAKE_PORT+10000)"""
import os, socket, subprocess, sys, time
from busdecode import decode, encode

tport, fport, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
os.makedirs(out, exist_ok=True)
NAME = b"fa4e" * 10
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", fport + 10000)); ls.listen(4)
subprocess.run(["redis-cli", "-p", str(tport), "cluster", "meet", "127.0.0.1", str(fport), str(fport + 10000)], check=True)
ls.settimeout(10)
c, _ = ls.accept(); c.settimeout(10)


def readmsg(s):
    buf = b""
    while len(buf) < 8:
        buf += s.recv(8 - len(buf))
    tot = int.from_bytes(buf[4:8], "big")
    while len(buf) < tot:
        buf += s.recv(tot - len(buf))
    return buf


got = {}
while "PING" not in got:
    m = readmsg(c)
    d = decode(m)
    n = d["type_name"]
    print("got", n, "totlen", d["totlen"], "from", d["sender"])
    if n not in got:
        got[n] = m
        open(f"{out}/{n}.bin", "wb").write(m)
    if n in ("MEET", "PING"):
        c.sendall(encode(1, NAME, fport, fport + 10000, flags=1, exts=[(3, b"5a" * 20)]))
print("saved", sorted(got))
