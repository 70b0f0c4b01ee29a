//! The checks of upstream's valkey-check-aof on one file's command stream. They are
//! stricter than the server's loader: every number line and every argument must end
//! with CRLF, and MULTI/EXEC must pair. The messages are upstream's, prefixed with
//! the offset of the failing read as `0x%16llx: ` (upstream's ERROR macro).

use crate::reader::{fgets, strtol, LINE_BUF};

/// How a stream check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The stream was read up to `ok_up_to` (the end of the last complete command
    /// outside a MULTI block); `line` is upstream's line counter (1 + the CRLFs
    /// consumed, annotations not counted). `error` is the message upstream prints
    /// (bytes: it may quote a raw byte), `format_error` is set when a line started
    /// with neither `#` nor `*` (upstream prints "AOF <name> format error").
    Analyzed {
        ok_up_to: u64,
        line: i64,
        error: Option<Vec<u8>>,
        format_error: bool,
    },
    /// `--truncate-to-timestamp`: the file must be cut at `offset` (the first
    /// `#TS:` annotation later than the timestamp).
    TruncateAtTimestamp { offset: u64 },
    /// The check stops with these lines printed and exit code 1.
    Abort(Vec<String>),
}

/// Options of one file's check.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    /// `--truncate-to-timestamp`, 0 when not given.
    pub to_timestamp: i64,
    /// Whether this is the last file of the set (only it may be truncated).
    pub last_file: bool,
    /// The file's path, as upstream names it in MULTI/EXEC and timestamp messages.
    pub path: &'a str,
}

struct St<'b> {
    buf: &'b [u8],
    p: usize,
    line: i64,
    epos: usize,
    eof: bool,
    error: Option<Vec<u8>>,
    /// The previous number line: upstream's stack buffer still holds its bytes past
    /// the terminator of a shorter line, and prints one of them on a cut line.
    prev_line: Vec<u8>,
}

impl St<'_> {
    fn err(&mut self, msg: &[u8]) {
        let mut e = format!("0x{:>16x}: ", self.epos).into_bytes();
        e.extend_from_slice(msg);
        self.error = Some(e);
    }

    fn consume_newline(&mut self, at: &[u8]) -> bool {
        self.consume_newline_in(at, None)
    }

    /// `at_index`: where `at` starts in the current number line (for the stale byte).
    fn consume_newline_in(&mut self, at: &[u8], at_index: Option<usize>) -> bool {
        if at.starts_with(b"\r\n") {
            self.line = self.line.saturating_add(1);
            return true;
        }
        // printf("%02x", char): a byte >= 0x80 is a negative char.
        let hx = |b: Option<&u8>| match b.copied().unwrap_or(0) {
            b if b >= 0x80 => format!("ffffff{b:02x}"),
            b => format!("{b:02x}"),
        };
        let second = match (at.first(), at_index) {
            (None, Some(k)) => self.prev_line.get(k + 1),
            _ => at.get(1),
        };
        let msg = format!("Expected \\r\\n, got: {}{}", hx(at.first()), hx(second));
        self.err(msg.as_bytes());
        false
    }

    fn read_long(&mut self, prefix: u8) -> Option<i64> {
        self.epos = self.p;
        let rest = self.buf.get(self.p..).unwrap_or(&[]);
        let (l, eof) = fgets(rest, 128);
        if l.is_empty() {
            self.eof = true;
            return None;
        }
        self.eof |= eof;
        self.p += l.len();
        if l[0] != prefix {
            let mut m = format!("Expected prefix '{}', got: '", prefix as char).into_bytes();
            m.push(l[0]);
            m.push(b'\'');
            self.err(&m);
            return None;
        }
        let (v, used) = strtol(&l[1..]);
        let after = l.get(1 + used..).unwrap_or(&[]);
        let ok = self.consume_newline_in(after, Some(1 + used));
        // What the buffer holds now: this line, its NUL, then older bytes.
        let mut cur = l.to_vec();
        cur.push(0);
        if let Some(old) = self.prev_line.get(cur.len()..) {
            cur.extend_from_slice(old);
        }
        self.prev_line = cur;
        if ok {
            Some(v)
        } else {
            None
        }
    }

    /// One argument; returns its bytes up to the first NUL (a C string).
    fn read_string(&mut self) -> Option<&[u8]> {
        let len = self.read_long(b'$')?;
        if !(0..=i64::MAX - 2).contains(&len) {
            self.err(
                format!(
                    "Expected to read string of {len} bytes, which is not in the suitable range"
                )
                .as_bytes(),
            );
            return None;
        }
        let want = len + 2;
        self.epos = self.p;
        let avail = self.buf.len().saturating_sub(self.p);
        let real = usize::try_from(want).map_or(avail, |w| w.min(avail));
        if real as i64 != want {
            self.eof = true;
            self.p += real;
            self.err(format!("Expected to read {want} bytes, got {real} bytes").as_bytes());
            return None;
        }
        let start = self.p;
        self.p += real;
        let buf = self.buf;
        let data = &buf[start..start + real - 2];
        if !self.consume_newline(&buf[start + real - 2..start + real]) {
            return None;
        }
        Some(match data.iter().position(|&b| b == 0) {
            Some(z) => &data[..z],
            None => data,
        })
    }

    fn process_resp(&mut self, path: &str, multi: &mut i64) -> bool {
        let Some(argc) = self.read_long(b'*') else {
            return false;
        };
        let mut i = 0;
        while i < argc {
            let Some(s) = self.read_string() else {
                return false;
            };
            if i == 0 {
                if s.eq_ignore_ascii_case(b"multi") {
                    let was = *multi;
                    *multi = multi.saturating_add(1);
                    if was != 0 {
                        self.err(format!("Unexpected MULTI in AOF {path}").as_bytes());
                        return false;
                    }
                } else if s.eq_ignore_ascii_case(b"exec") {
                    *multi = multi.saturating_sub(1);
                    if *multi != 0 {
                        self.err(format!("Unexpected EXEC in AOF {path}").as_bytes());
                        return false;
                    }
                }
            }
            i += 1;
        }
        true
    }
}

/// Checks the command stream of `buf` from `start` (0, or the end of an RDB
/// preamble), as upstream's checkSingleAof does after the preamble.
pub fn check_stream(buf: &[u8], start: usize, opt: &Options) -> Outcome {
    let mut st = St {
        buf,
        p: start.min(buf.len()),
        line: 1,
        epos: 0,
        eof: false,
        error: None,
        prev_line: Vec::new(),
    };
    let mut multi: i64 = 0;
    let mut pos = st.p;
    let mut format_error = false;
    loop {
        if multi == 0 {
            pos = st.p;
        }
        let Some(&c) = buf.get(st.p) else {
            st.eof = true;
            break;
        };
        if c == b'#' {
            st.epos = st.p;
            let (l, eof) = fgets(&buf[st.p..], LINE_BUF);
            st.p += l.len();
            st.eof |= eof;
            if opt.to_timestamp != 0 && l.starts_with(b"#TS:") {
                let rest = &l[4..];
                let (ts, used) = strtol(rest);
                let overflow = used > 0 && (ts == i64::MAX || ts == i64::MIN);
                if overflow || rest.get(used) != Some(&b'\r') {
                    return Outcome::Abort(vec!["Invalid timestamp annotation".into()]);
                }
                if ts <= opt.to_timestamp {
                    continue;
                }
                if st.epos == 0 {
                    return Outcome::Abort(vec![format!(
                        "AOF {} has nothing before timestamp {}, aborting...",
                        opt.path, opt.to_timestamp
                    )]);
                }
                if !opt.last_file {
                    return Outcome::Abort(vec![
                        format!(
                            "Failed to truncate AOF {} to timestamp {} to offset {} because it is not the last file.",
                            opt.path, opt.to_timestamp, st.epos
                        ),
                        "If you insist, please delete all files after this file according to the manifest \
                         file and delete the corresponding records in manifest file manually. Then re-run valkey-check-aof."
                            .into(),
                    ]);
                }
                return Outcome::TruncateAtTimestamp {
                    offset: st.epos as u64,
                };
            }
        } else if c == b'*' {
            if !st.process_resp(opt.path, &mut multi) {
                break;
            }
        } else {
            format_error = true;
            break;
        }
    }
    if st.eof && multi != 0 && st.error.is_none() {
        st.err(b"Reached EOF before reading EXEC for MULTI");
    }
    Outcome::Analyzed {
        ok_up_to: pos as u64,
        line: st.line,
        error: st.error,
        format_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(b: &[u8]) -> (u64, i64, Option<String>, bool) {
        let o = Options {
            to_timestamp: 0,
            last_file: true,
            path: "f.aof",
        };
        match check_stream(b, 0, &o) {
            Outcome::Analyzed {
                ok_up_to,
                line,
                error,
                format_error,
            } => (
                ok_up_to,
                line,
                error.map(|e| String::from_utf8_lossy(&e).into_owned()),
                format_error,
            ),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn valid_and_truncated() {
        let f = include_bytes!("../testdata/ref.1.incr.aof");
        let (ok, line, err, fe) = run(f);
        assert_eq!((ok, err, fe), (f.len() as u64, None, false));
        // 7 commands with 2 + 2*argc CRLFs each, annotation not counted.
        assert!(line > 1);
        for cut in 10..f.len() {
            let (ok, _, _, _) = run(&f[..cut]);
            assert!(ok as usize <= cut);
        }
        let (ok, _, err, _) = run(b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPI");
        assert_eq!(ok, 14);
        assert_eq!(
            err.unwrap(),
            "0x              16: Expected to read 6 bytes, got 2 bytes"
        );
        // Cut in a number line: no message, just the diff.
        let (ok, _, err, _) = run(b"*1\r\n$4\r\nPING\r\n*1\r\n");
        assert_eq!((ok, err), (14, None));
    }

    #[test]
    fn strict_errors() {
        assert_eq!(
            run(b"*1\r\n$4\r\nPINGxx").2.unwrap(),
            "0x               8: Expected \\r\\n, got: 7878"
        );
        assert_eq!(
            run(b"*1\r\n+4\r\n").2.unwrap(),
            "0x               4: Expected prefix '$', got: '+'"
        );
        assert_eq!(
            run(b"*1x\r\n").2.unwrap(),
            "0x               0: Expected \\r\\n, got: 780d"
        );
        assert_eq!(
            run(b"*1\r\n$-3\r\n").2.unwrap(),
            "0x               4: Expected to read string of -3 bytes, which is not in the suitable range"
        );
        let (ok, _, err, fe) = run(b"*1\r\n$4\r\nPING\r\nxyz");
        assert_eq!((ok, err, fe), (14, None, true));
        let m = b"*1\r\n$5\r\nMULTI\r\n*1\r\n$4\r\nPING\r\n";
        let (ok, _, err, _) = run(m);
        assert_eq!(ok, 0);
        assert!(err
            .unwrap()
            .ends_with("Reached EOF before reading EXEC for MULTI"));
        let mut mm = m.to_vec();
        mm.extend_from_slice(b"*1\r\n$4\r\nexec\r\n");
        assert_eq!(run(&mm).0, mm.len() as u64);
        mm.extend_from_slice(b"*1\r\n$4\r\nexec\r\n");
        assert!(run(&mm)
            .2
            .unwrap()
            .ends_with("Unexpected EXEC in AOF f.aof"));
        let (_, _, err, _) = run(b"*1\r\n$5\r\nMULTI\r\n*1\r\n$5\r\nmulti\r\n");
        assert!(err.unwrap().ends_with("Unexpected MULTI in AOF f.aof"));
        // Announced lengths never allocate.
        let (ok, _, err, _) = run(b"*1\r\n$9223372036854775805\r\nab");
        assert_eq!(ok, 0);
        assert!(err
            .unwrap()
            .contains("Expected to read 9223372036854775807 bytes, got 2"));
    }

    #[test]
    fn timestamps() {
        let f = b"#TS:10\r\n*1\r\n$4\r\nPING\r\n#TS:20\r\n*1\r\n$4\r\nPING\r\n";
        let opt = |ts, last| Options {
            to_timestamp: ts,
            last_file: last,
            path: "p",
        };
        assert_eq!(
            check_stream(f, 0, &opt(15, true)),
            Outcome::TruncateAtTimestamp { offset: 22 }
        );
        assert!(matches!(check_stream(f, 0, &opt(15, false)), Outcome::Abort(v) if v.len() == 2));
        assert!(
            matches!(check_stream(f, 0, &opt(5, true)), Outcome::Abort(v) if v[0].contains("nothing before"))
        );
        assert!(matches!(
            check_stream(f, 0, &opt(25, true)),
            Outcome::Analyzed { ok_up_to: 44, .. }
        ));
        assert!(matches!(
            check_stream(b"#TS:1x\r\n", 0, &opt(25, true)),
            Outcome::Abort(v) if v[0] == "Invalid timestamp annotation"
        ));
    }
}
