"""Print the commands a redis-cli run sent, per server port, from an strace log made with
  strace -f -s 1000 -e trace=connect,write,sendto,writev -o OUT redis-cli ...
Usage: python3 trace_cli.py OUT"""
import re, sys
port = {}
for line in open(sys.argv[1]):
    m = re.search(r'connect\((\d+), .*sin_port=htons\((\d+)\)', line)
    if m:
        port[m.group(1)] = m.group(2); continue
    m = re.search(r'(?:write|sendto)\((\d+), "(.*)", \d+', line)
    if m and m.group(1) in port:
        s = m.group(2).encode().decode('unicode_escape')
        while s.startswith('*'):
            parts = s.split('\r\n')
            n = int(parts[0][1:])
            args = parts[2:2 + 2 * n:2]
            print(port[m.group(1)], ' '.join(a if len(a) < 60 else a[:57] + '...' for a in args))
            s = '\r\n'.join(parts[1 + 2 * n:])
