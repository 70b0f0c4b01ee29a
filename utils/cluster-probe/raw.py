"""Send commands to a server and print each raw reply (RESP bytes, repr).
Usage: python3 raw.py PORT 'CMD ARG ...' ['CMD ...' ...]   (args split on spaces; "" = empty arg)
A leading 'HELLO 3' switches the connection to RESP3."""
import socket, sys, time

port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(0.5)
for line in sys.argv[2:]:
    args = [a if a != '""' else "" for a in line.split(" ")]
    out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args)
    s.sendall(out)
    buf = b""
    deadline = time.time() + 0.5
    while time.time() < deadline:
        try:
            d = s.recv(65536)
            if not d:
                break
            buf += d
            deadline = time.time() + 0.1
        except socket.timeout:
            break
    print(">", line)
    print(repr(buf)[2:-1] if len(buf) < 3000 else repr(buf[:3000])[2:-1] + " ...(%d bytes)" % len(buf))
