"""CRC16/XMODEM key slot, as the server computes it (hash tag rule included).
Usage: python3 keyslot.py KEY...   or   python3 keyslot.py --find SLOT N  (N keys 'k<i>' in SLOT)"""
import sys


def crc16(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def keyslot(key: bytes) -> int:
    s = key.find(b"{")
    if s != -1:
        e = key.find(b"}", s + 1)
        if e != -1 and e != s + 1:
            key = key[s + 1:e]
    return crc16(key) & 16383


if __name__ == "__main__":
    if sys.argv[1] == "--find":
        slot, n, i, out = int(sys.argv[2]), int(sys.argv[3]), 0, []
        while len(out) < n:
            if keyslot(b"k%d" % i) == slot:
                out.append("k%d" % i)
            i += 1
        print(" ".join(out))
    else:
        for k in sys.argv[1:]:
            print(k, keyslot(k.encode()))
