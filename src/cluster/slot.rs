//! Key slots (upstream's `keyHashSlot` and `crc16.c`) and the 16384-bit slot bitmap of the
//! bus header (docs/cluster-plan.md sections 1.1 and 5.1).

/// The number of hash slots.
pub const CLUSTER_SLOTS: usize = 16384;

/// The CRC16 lookup table: CCITT polynomial 0x1021, as XMODEM (built at compile time).
const CRC16_TAB: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut b = 0;
        while b < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            b += 1;
        }
        t[i] = crc;
        i += 1;
    }
    t
};

/// CRC16/XMODEM: polynomial 0x1021, initial value 0, no reflection, no final xor.
pub fn crc16(buf: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in buf {
        crc = (crc << 8) ^ CRC16_TAB[(((crc >> 8) as u8) ^ b) as usize];
    }
    crc
}

/// The hash slot of `key`: the CRC16 of the key, or of its hash tag (the bytes between the
/// first `{` and the first `}` after it, when there is at least one), modulo 16384.
pub fn key_hash_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|s| {
        let rest = &key[s + 1..];
        match rest.iter().position(|&b| b == b'}') {
            Some(e) if e > 0 => Some(&rest[..e]),
            _ => None,
        }
    });
    crc16(tagged.unwrap_or(key)) & (CLUSTER_SLOTS as u16 - 1)
}

/// A set of slots as the bus carries it: bit `s` is byte `s / 8`, mask `1 << (s % 8)`
/// (least significant bit first).
#[derive(Clone, PartialEq, Eq)]
pub struct SlotBitmap(pub [u8; CLUSTER_SLOTS / 8]);

impl Default for SlotBitmap {
    fn default() -> Self {
        SlotBitmap([0; CLUSTER_SLOTS / 8])
    }
}

impl std::fmt::Debug for SlotBitmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SlotBitmap{:?}", self.ranges())
    }
}

impl SlotBitmap {
    pub fn new() -> SlotBitmap {
        SlotBitmap::default()
    }

    /// Whether slot `s` is set (a slot out of range is never set).
    #[inline]
    pub fn test(&self, s: u16) -> bool {
        let s = s as usize;
        s < CLUSTER_SLOTS && self.0[s >> 3] & (1 << (s & 7)) != 0
    }

    /// Sets slot `s`; returns whether it was clear before.
    pub fn set(&mut self, s: u16) -> bool {
        let s = s as usize;
        if s >= CLUSTER_SLOTS {
            return false;
        }
        let was = self.0[s >> 3] & (1 << (s & 7)) != 0;
        self.0[s >> 3] |= 1 << (s & 7);
        !was
    }

    /// Clears slot `s`; returns whether it was set before.
    pub fn clear(&mut self, s: u16) -> bool {
        let s = s as usize;
        if s >= CLUSTER_SLOTS {
            return false;
        }
        let was = self.0[s >> 3] & (1 << (s & 7)) != 0;
        self.0[s >> 3] &= !(1 << (s & 7));
        was
    }

    /// The number of slots set.
    pub fn count(&self) -> usize {
        self.0.iter().map(|b| b.count_ones() as usize).sum()
    }

    /// The slots set, as inclusive `(start, end)` ranges in slot order.
    pub fn ranges(&self) -> Vec<(u16, u16)> {
        let mut out = Vec::new();
        let mut start: Option<u16> = None;
        for s in 0..CLUSTER_SLOTS as u16 {
            match (self.test(s), start) {
                (true, None) => start = Some(s),
                (false, Some(b)) => {
                    out.push((b, s - 1));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(b) = start {
            out.push((b, CLUSTER_SLOTS as u16 - 1));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_check_value() {
        // The standard check value of CRC16/XMODEM.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn key_slots_as_the_reference() {
        // docs/cluster-plan.md 5.1, measured on the reference.
        assert_eq!(key_hash_slot(b"key:1"), 6657);
        assert_eq!(key_hash_slot(b"{user}a"), 5474);
        assert_eq!(key_hash_slot(b"a{}b"), 13694);
        assert_eq!(key_hash_slot(b"{}x"), 10595);
        assert_eq!(key_hash_slot(b"a{b}{c}"), 3300);
        assert_eq!(key_hash_slot(b"a{b}{c}"), key_hash_slot(b"b"));
        assert_eq!(key_hash_slot(b"{{a}}"), 10276);
        assert_eq!(key_hash_slot(b"{{a}}"), key_hash_slot(b"{a"));
        // No closing brace: the whole key.
        assert_eq!(key_hash_slot(b"a{bc"), crc16(b"a{bc") & 16383);
        assert_eq!(key_hash_slot(b"}{x}"), key_hash_slot(b"x"));
        assert_eq!(key_hash_slot(b""), 0);
    }

    #[test]
    fn bitmap_bit_order_and_ranges() {
        let mut b = SlotBitmap::new();
        assert!(b.set(0));
        assert!(!b.set(0));
        assert!(b.set(9));
        assert!(b.set(16383));
        // LSB first within each byte.
        assert_eq!(b.0[0], 0x01);
        assert_eq!(b.0[1], 0x02);
        assert_eq!(b.0[2047], 0x80);
        assert_eq!(b.count(), 3);
        assert!(b.test(9) && !b.test(8) && !b.test(16384));
        for s in 100..=200 {
            b.set(s);
        }
        assert_eq!(b.ranges(), vec![(0, 0), (9, 9), (100, 200), (16383, 16383)]);
        assert!(b.clear(9));
        assert!(!b.clear(9));
        assert!(!b.set(16384));
        assert_eq!(b.count(), 103);
        let mut full = SlotBitmap::new();
        for s in 0..16384u16 {
            full.set(s);
        }
        assert_eq!(full.ranges(), vec![(0, 16383)]);
        assert_eq!(full.count(), 16384);
    }
}
