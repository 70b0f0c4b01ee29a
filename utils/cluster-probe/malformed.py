"""Send malformed cluster bus messages to a reference node and report, for each case, whether the
node closed the link, answered (PONG) and what it logged.  Usage: python3 malformed.py BUSPORT LOGFILE"""
import socket, struct, sys, time
from busdecode import encode

bus, logf = int(sys.argv[1]), sys.argv[2]
NAME = b"bad0" * 10


def ping(**kw):
    return bytearray(encode(0, NAME, 17999, 27999, **kw))


def case(label, data, follow_with_ping=True):
    off = len(open(logf, "rb").read())
    s = socket.create_connection(("127.0.0.1", bus)); s.settimeout(1.0)
    s.sendall(bytes(data))
    time.sleep(0.3)
    closed, got = False, b""
    if follow_with_ping:
        try:
            s.sendall(bytes(ping()))
        except OSError:
            closed = True
    try:
        while True:
            d = s.recv(65536)
            if not d:
                closed = True; break
            got += d
    except socket.timeout:
        pass
    except OSError:
        closed = True
    s.close()
    time.sleep(0.1)
    log = open(logf, "rb").read()[off:].decode(errors="replace").strip().splitlines()
    pongs = got.count(b"RCmb")
    print(f"## {label}\n   closed={closed} replies={pongs}\n   log: " + " | ".join(l.split(' ', 3)[-1] for l in log))


p = ping(); p[0:4] = b"XXXX"; case("bad signature", p)
p = ping(); struct.pack_into(">I", p, 4, 100); case("totlen 100 (< 2256)", p[:100])
p = ping(); struct.pack_into(">H", p, 8, 2); case("ver 2", p)
p = ping(); struct.pack_into(">H", p, 14, 1000); case("count 1000, totlen 2256", p)
p = ping(); p[2253] |= 4; struct.pack_into(">H", p, 2214, 1); case("EXT flag, extensions=1, no ext bytes (ext header outside packet)", p)
p = bytearray(encode(0, NAME, 17999, 27999, exts=[(0, b"host")])); struct.pack_into(">I", p, 2256, 7); case("ext length 7 (not 8-aligned)", p)
p = bytearray(encode(0, NAME, 17999, 27999, exts=[(0, b"host")])); struct.pack_into(">I", p, 2256, 4096); case("ext length 4096 > packet", p)
p = bytearray(encode(0, NAME, 17999, 27999, exts=[(0, b"host")])); struct.pack_into(">I", p, 2256, 0); case("ext length 0", p)
p = bytearray(encode(0, NAME, 17999, 27999, exts=[(0, b"host")])); struct.pack_into(">I", p, 2256, 65536 + 16); case("ext length 65552 (u16 truncation = 16)", p)
p = bytearray(encode(0, NAME, 17999, 27999, exts=[(77, b"x" * 8)])); case("unknown ext type 77", p)
p = ping(); struct.pack_into(">H", p, 12, 99); case("unknown message type 99", p)
p = ping(); struct.pack_into(">H", p, 12, 3); case("FAIL with no body (totlen 2256)", p)
p = ping(); struct.pack_into(">H", p, 12, 4); p += struct.pack(">II", 0xFFFFFFF0, 5) + b"chmsg\0\0\0"; struct.pack_into(">I", p, 4, len(p)); case("PUBLISH channel_len 0xFFFFFFF0", p)
p = ping(); struct.pack_into(">H", p, 12, 0x8004); p = p[:16] + struct.pack(">II", 2, 2) + b"abcd"; struct.pack_into(">I", p, 4, len(p)); case("light PUBLISH as first message", p)
p = ping(); struct.pack_into(">H", p, 12, 0x8000); case("light PING", p)
p = ping(); struct.pack_into(">I", p, 4, 2256 + 8); case("totlen 2264 but only 2256 sent (then a PING)", p)
case("valid PING from unknown node", ping(), follow_with_ping=False)
