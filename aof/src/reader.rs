//! Reading the commands of an AOF (a sequence of RESP multibulk commands, with `#`
//! annotation lines such as `#TS:<unix time>` between them), bounded: no length a
//! file announces is trusted beyond the bytes present.
//!
//! The rules are those of upstream's loadSingleAppendOnlyFile, which reads lines
//! with `fgets` into a 1024-byte buffer:
//! - a line starting with `#` is an annotation (skipped by the loader);
//! - a line starting with anything but `*`, a count below 1, an argument line not
//!   starting with `$`, is a format error ([`Error::Corrupt`]);
//! - any read that hits the end of the input (in the count line, an argument's
//!   length line, its bytes or its CRLF) is a short read ([`Error::Truncated`]),
//!   with the offset just after the last complete command (where upstream truncates
//!   with `aof-load-truncated yes`);
//! - the two bytes after an argument are skipped without being checked, and the
//!   numbers are read like C's `atoi`/`strtol` (trailing garbage ignored), as
//!   upstream does. A negative argument length (upstream: an allocation failure) is
//!   a format error here.

use crate::{Error, Result};

/// Upstream's AOF_ANNOTATION_LINE_MAX_LEN: the line buffer of the loader.
pub const LINE_BUF: usize = 1024;

/// One item of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item<'a> {
    /// A command's arguments.
    Command(Vec<&'a [u8]>),
    /// An annotation line without its `#` and line end.
    Annotation(&'a [u8]),
}

/// Reads items from a buffer holding a whole file (or the AOF part after an RDB
/// preamble, with `base` the offset of that part in the file for error messages).
pub struct CommandReader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
    /// End of the last complete command (relative to `buf`).
    last_cmd_end: usize,
}

/// What `fgets(buf, size, fp)` returns from `s`: the line (with its `\n` if it fits)
/// and whether it ended because the input did.
pub(crate) fn fgets(s: &[u8], size: usize) -> (&[u8], bool) {
    let lim = s.len().min(size.saturating_sub(1));
    match s[..lim].iter().position(|&b| b == b'\n') {
        Some(p) => (&s[..=p], false),
        None => (&s[..lim], lim == s.len()),
    }
}

/// C's `strtol(s, &end, 10)`: the value (saturated) and the bytes consumed (0 when no
/// digits).
pub(crate) fn strtol(s: &[u8]) -> (i64, usize) {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let mut neg = false;
    if let Some(&c) = s.get(i) {
        if c == b'+' || c == b'-' {
            neg = c == b'-';
            i += 1;
        }
    }
    let digits_start = i;
    let mut v: i64 = 0;
    while let Some(&c) = s.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        let d = i64::from(c - b'0');
        v = if neg {
            v.checked_mul(10)
                .and_then(|x| x.checked_sub(d))
                .unwrap_or(i64::MIN)
        } else {
            v.checked_mul(10)
                .and_then(|x| x.checked_add(d))
                .unwrap_or(i64::MAX)
        };
        i += 1;
    }
    if i == digits_start {
        return (0, 0);
    }
    (v, i)
}

impl<'a> CommandReader<'a> {
    pub fn new(buf: &'a [u8], base: u64) -> CommandReader<'a> {
        CommandReader {
            buf,
            pos: 0,
            base,
            last_cmd_end: 0,
        }
    }

    /// Offset (in the file) of the next byte to read: after the last complete item.
    pub fn offset(&self) -> u64 {
        self.base.saturating_add(self.pos as u64)
    }

    /// Offset (in the file) just after the last complete command (annotations after
    /// it are not counted): where upstream truncates a short file.
    pub fn last_command_end(&self) -> u64 {
        self.base.saturating_add(self.last_cmd_end as u64)
    }

    fn corrupt(&self, at: usize, reason: &str) -> Error {
        Error::Corrupt {
            offset: self.base.saturating_add(at as u64),
            reason: reason.to_string(),
        }
    }

    fn truncated(&self) -> Error {
        Error::Truncated {
            offset: self.last_command_end(),
        }
    }

    /// The next item, `None` at the end. A command cut by the end of the buffer is
    /// `Error::Truncated` with the offset after the last complete command; anything
    /// else invalid is `Error::Corrupt` (upstream's "Bad file format reading the
    /// append only file") with the offset of the bad line. After an error the reader
    /// stays where it was (the same error again).
    pub fn next_item(&mut self) -> Result<Option<Item<'a>>> {
        let buf: &'a [u8] = self.buf;
        let start = self.pos;
        let rest = buf.get(start..).unwrap_or(&[]);
        if rest.is_empty() {
            return Ok(None);
        }
        let (line, eof) = fgets(rest, LINE_BUF);
        match line.first() {
            Some(b'#') => {
                self.pos = start + line.len();
                let mut a = &line[1..];
                if let Some(x) = a.strip_suffix(b"\n") {
                    a = x;
                }
                if let Some(x) = a.strip_suffix(b"\r") {
                    a = x;
                }
                return Ok(Some(Item::Annotation(a)));
            }
            Some(b'*') => {}
            _ => return Err(self.corrupt(start, "Bad file format: expected '*'")),
        }
        match line.get(1) {
            None if eof => return Err(self.truncated()),
            None | Some(0) => return Err(self.corrupt(start, "Bad file format: empty count")),
            Some(_) => {}
        }
        // atoi: strtol then a cast to int.
        let argc = strtol(&line[1..]).0 as i32;
        if argc < 1 {
            return Err(self.corrupt(start, "Bad file format: invalid argument count"));
        }
        let mut p = start + line.len();
        // Never trust the count for an allocation.
        let mut argv: Vec<&'a [u8]> = Vec::with_capacity((argc as usize).min(16));
        for _ in 0..argc {
            let rest = buf.get(p..).unwrap_or(&[]);
            if rest.is_empty() {
                return Err(self.truncated());
            }
            let (l, _) = fgets(rest, LINE_BUF);
            if l.first() != Some(&b'$') {
                return Err(self.corrupt(p, "Bad file format: expected '$'"));
            }
            let len = strtol(&l[1..]).0;
            let Ok(len) = usize::try_from(len) else {
                return Err(self.corrupt(p, "Bad file format: invalid bulk length"));
            };
            p += l.len();
            let avail = buf.len() - p;
            if len > avail {
                return Err(self.truncated());
            }
            argv.push(&buf[p..p + len]);
            p += len;
            // The CRLF is skipped, not checked (as upstream's loader).
            if buf.len() - p < 2 {
                return Err(self.truncated());
            }
            p += 2;
        }
        self.pos = p;
        self.last_cmd_end = p;
        Ok(Some(Item::Command(argv)))
    }
}

/// Parses a `#TS:<unix time>` annotation (the text after `#`), as upstream's
/// valkey-check-aof: digits read like `strtol`, then nothing else.
pub fn parse_ts_annotation(ann: &[u8]) -> Option<i64> {
    let rest = ann.strip_prefix(b"TS:")?;
    let (v, used) = strtol(rest);
    if used == 0 || used != rest.len() || v == i64::MAX || v == i64::MIN {
        return None;
    }
    Some(v)
}

/// The `#TS:<unix time>\r\n` annotation upstream writes (aof-timestamp-enabled).
pub fn ts_annotation(unix: i64) -> Vec<u8> {
    format!("#TS:{unix}\r\n").into_bytes()
}

/// Appends one command in the AOF's RESP form (upstream's catAppendOnlyGenericCommand).
pub fn cat_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, argv: &[A]) {
    out.push(b'*');
    out.extend_from_slice(argv.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in argv {
        let a = a.as_ref();
        out.push(b'$');
        out.extend_from_slice(a.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(buf: &[u8]) -> Result<Vec<Item<'_>>> {
        let mut r = CommandReader::new(buf, 0);
        let mut v = Vec::new();
        while let Some(i) = r.next_item()? {
            v.push(i);
        }
        Ok(v)
    }

    fn cmd(args: &[&str]) -> Vec<u8> {
        let mut o = Vec::new();
        cat_command(&mut o, args);
        o
    }

    #[test]
    fn reference_incr_file() {
        let f = include_bytes!("../testdata/ref.1.incr.aof");
        let items = all(f).unwrap();
        assert!(matches!(items[0], Item::Annotation(a) if parse_ts_annotation(a).is_some()));
        let cmds: Vec<Vec<&[u8]>> = items
            .into_iter()
            .filter_map(|i| match i {
                Item::Command(c) => Some(c),
                _ => None,
            })
            .collect();
        assert_eq!(cmds[1], [&b"set"[..], b"foo", b"bar"]);
        assert_eq!(cmds[3], [&b"rpush"[..], b"l", b"a", b"b", b"c"]);
        assert_eq!(cmds[5], [&b"set"[..], b"sp ace", b"x y"]);
        assert_eq!(cmds[6][0], b"PEXPIREAT");
        // Re-encoding the commands gives the file back (minus the annotation).
        let mut out = Vec::new();
        for c in &cmds {
            cat_command(&mut out, c);
        }
        let ann_len = f.iter().position(|&b| b == b'\n').unwrap() + 1;
        assert_eq!(&out[..], &f[ann_len..]);
        let base = include_bytes!("../testdata/ref.2.base.aof");
        assert_eq!(all(base).unwrap().len(), 2);
        assert!(crate::has_rdb_preamble(include_bytes!(
            "../testdata/ref.1.base.rdb"
        )));
        assert!(!crate::has_rdb_preamble(base));
    }

    #[test]
    fn every_truncation_point() {
        let mut f = b"#TS:100\r\n".to_vec();
        f.extend(cmd(&["SELECT", "0"]));
        let first_end = f.len();
        f.extend_from_slice(b"#TS:101\r\n");
        f.extend(cmd(&["SET", "key", "a\r\nb"]));
        let second_start = f.len() - cmd(&["SET", "key", "a\r\nb"]).len();
        assert_eq!(all(&f).unwrap().len(), 4);
        for cut in 0..f.len() {
            let r = all(&f[..cut]);
            if cut == 0 || cut == first_end || (cut > first_end && cut <= second_start) {
                // Ends between items (an annotation cut short still is one).
                assert!(r.is_ok(), "cut {cut}: {r:?}");
            } else if cut < first_end {
                let ok = cut <= 9;
                assert!(ok == r.is_ok(), "cut {cut}: {r:?}");
                if !ok {
                    assert_eq!(r.unwrap_err(), Error::Truncated { offset: 0 }, "cut {cut}");
                }
            } else {
                assert_eq!(
                    r.unwrap_err(),
                    Error::Truncated {
                        offset: first_end as u64
                    },
                    "cut {cut}"
                );
            }
        }
    }

    #[test]
    fn base_offset_in_errors() {
        let mut r = CommandReader::new(b"*1\r\n$4\r\nPING\r\n?", 100);
        assert!(matches!(r.next_item(), Ok(Some(Item::Command(_)))));
        assert_eq!(r.offset(), 114);
        assert!(matches!(
            r.next_item(),
            Err(Error::Corrupt { offset: 114, .. })
        ));
        let mut r = CommandReader::new(b"*1\r\n$4\r\nPI", 100);
        assert_eq!(r.next_item(), Err(Error::Truncated { offset: 100 }));
    }

    #[test]
    fn corruptions() {
        let c = |b: &[u8]| match all(b) {
            Err(Error::Corrupt { offset, .. }) => offset,
            o => panic!("{:?}: {o:?}", String::from_utf8_lossy(b)),
        };
        assert_eq!(c(b"x"), 0);
        assert_eq!(c(b"\r\n"), 0);
        assert_eq!(c(b"*0\r\n"), 0);
        assert_eq!(c(b"*-1\r\n"), 0);
        assert_eq!(c(b"*x\r\n"), 0);
        assert_eq!(c(b"*\r\n"), 0);
        assert_eq!(c(b"*\0\r\n"), 0);
        assert_eq!(c(b"*1\r\n+OK\r\n"), 4);
        assert_eq!(c(b"*1\r\n$-1\r\n"), 4);
        assert_eq!(c(b"*1\r\n$1\r\na\r\n*1\r\n:1\r\n"), 15);
        // A length beyond the data is a short read, as upstream (not an allocation).
        assert_eq!(
            all(b"*1\r\n$999999999999\r\nab\r\n"),
            Err(Error::Truncated { offset: 0 })
        );
        assert_eq!(
            all(b"*2147483647\r\n$1\r\na\r\n"),
            Err(Error::Truncated { offset: 0 })
        );
        // Lenient as upstream's loader: trailing garbage after numbers, unchecked CRLF.
        assert_eq!(all(b"*1xx\r\n$1yy\r\naZZ").unwrap().len(), 1);
        // atoi truncates to int: 2^32 + 1 arguments is 1.
        assert_eq!(all(b"*4294967297\r\n$1\r\na\r\n").unwrap().len(), 1);
        // Garbage never panics.
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            let mut b = Vec::new();
            for _ in 0..(x % 40) {
                x = x.wrapping_mul(1103515245).wrapping_add(12345);
                b.push(b"*$\r\n0123-#ab"[(x >> 16) as usize % 12]);
            }
            let _ = all(&b);
        }
    }

    #[test]
    fn annotations() {
        assert_eq!(parse_ts_annotation(b"TS:1795416585"), Some(1795416585));
        assert_eq!(parse_ts_annotation(b"TS:-5"), Some(-5));
        assert_eq!(parse_ts_annotation(b"TS:"), None);
        assert_eq!(parse_ts_annotation(b"TS:12x"), None);
        assert_eq!(parse_ts_annotation(b"XX:12"), None);
        assert_eq!(ts_annotation(7), b"#TS:7\r\n");
        assert_eq!(
            all(b"#hello\n#TS:1\r\n").unwrap(),
            [Item::Annotation(b"hello"), Item::Annotation(b"TS:1")]
        );
    }
}
