//! Building replies in RESP2 and RESP3, into a client's output buffer.
//!
//! Every reply is appended to [`ReplyBuf::buf`] and leaves in one write per loop turn (the
//! before-sleep flush), never one syscall per reply. The protocol version of the client
//! decides the encoding of nulls, maps, sets, doubles and booleans, exactly as upstream's
//! `addReply*` family in `networking.c`.
//!
//! Error texts that several commands share are defined once here, with Valkey's prefixes.

/// `-ERR wrong number of arguments for '<cmd>' command` is built by [`err_arity`].
pub const ERR_SYNTAX: &str = "ERR syntax error";
pub const ERR_NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const ERR_NOT_FLOAT: &str = "ERR value is not a valid float";
pub const ERR_WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const ERR_NO_SUCH_KEY: &str = "ERR no such key";
pub const ERR_DB_INDEX: &str = "ERR DB index is out of range";
pub const ERR_NOAUTH: &str = "NOAUTH Authentication required.";
pub const ERR_INCR_OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const ERR_STRING_TOO_LONG: &str =
    "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
pub const ERR_NESTED_MULTI: &str = "ERR MULTI calls can not be nested";
pub const ERR_EXEC_WITHOUT_MULTI: &str = "ERR EXEC without MULTI";
pub const ERR_DISCARD_WITHOUT_MULTI: &str = "ERR DISCARD without MULTI";
pub const ERR_EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";
pub const ERR_WATCH_IN_MULTI: &str = "ERR WATCH inside MULTI is not allowed";

/// `ERR wrong number of arguments for 'name' command`.
pub fn err_arity(name: &str) -> String {
    format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    )
}

/// `ERR unknown subcommand 'sub'. Try CMD HELP.`
pub fn err_unknown_subcommand(cmd: &str, sub: &[u8]) -> String {
    format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        sanitize(sub, 128),
        cmd.to_ascii_uppercase()
    )
}

/// Replaces characters that would break a one-line error reply, and caps the length, as
/// upstream does before echoing user input in an error.
pub fn sanitize(s: &[u8], max: usize) -> String {
    let mut out = String::new();
    for &b in s.iter().take(max) {
        if b == b'\r' || b == b'\n' {
            out.push(' ');
        } else {
            out.push(b as char);
        }
    }
    out
}

/// A client's pending output and protocol version.
#[derive(Default)]
pub struct ReplyBuf {
    /// Bytes waiting to be written to the socket.
    pub buf: Vec<u8>,
    /// Bytes of `buf` already written (the buffer is compacted when fully sent).
    pub sent: usize,
    /// 2 or 3.
    pub resp: u8,
    /// `CLIENT REPLY OFF|SKIP`: replies are dropped while set.
    pub silenced: bool,
    /// Number of error replies added since the last call to [`ReplyBuf::take_errors`].
    pub errors: u32,
    /// The first word of the last error, for INFO errorstats.
    pub last_error_code: Option<String>,
}

impl ReplyBuf {
    pub fn new() -> Self {
        ReplyBuf {
            resp: 2,
            ..Default::default()
        }
    }

    pub fn pending(&self) -> usize {
        self.buf.len() - self.sent
    }

    #[inline]
    pub fn add_raw(&mut self, bytes: &[u8]) {
        if !self.silenced {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// `+OK`.
    #[inline]
    pub fn add_ok(&mut self) {
        self.add_raw(b"+OK\r\n");
    }

    /// A simple string: `+<s>`.
    pub fn add_status(&mut self, s: &str) {
        if self.silenced {
            return;
        }
        self.buf.push(b'+');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An error: `-<text>`; `text` starts with its code (ERR, WRONGTYPE, ...). A text
    /// without a code gets `ERR ` prepended, as `addReplyError` does.
    pub fn add_error(&mut self, text: &str) {
        self.errors += 1;
        let code = text.split(' ').next().unwrap_or("ERR");
        let has_code = !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase());
        self.last_error_code = Some(if has_code {
            code.to_string()
        } else {
            "ERR".into()
        });
        if self.silenced {
            return;
        }
        self.buf.push(b'-');
        if !has_code {
            self.buf.extend_from_slice(b"ERR ");
        }
        for &b in text.as_bytes() {
            // Newlines would break the protocol; upstream replaces them with spaces.
            self.buf
                .push(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn add_error_arity(&mut self, name: &str) {
        self.add_error(&err_arity(name));
    }

    #[inline]
    fn add_len_prefix(&mut self, prefix: u8, n: i64) {
        self.buf.push(prefix);
        let mut tmp = itoa_buf();
        self.buf.extend_from_slice(fmt_i64(&mut tmp, n));
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An integer: `:<n>`.
    #[inline]
    pub fn add_long(&mut self, n: i64) {
        if self.silenced {
            return;
        }
        self.add_len_prefix(b':', n);
    }

    /// A bulk string.
    #[inline]
    pub fn add_bulk(&mut self, b: &[u8]) {
        if self.silenced {
            return;
        }
        let n = b.len();
        if n >= 100 {
            self.add_len_prefix(b'$', n as i64);
            self.buf.extend_from_slice(b);
            self.buf.extend_from_slice(b"\r\n");
            return;
        }
        // Short payloads (most elements of multi-element replies): the header has one or
        // two digits; write header, payload and CRLF with one capacity check.
        let mut hdr = [b'$', 0, 0, b'\r', b'\n'];
        let hdr: &[u8] = if n < 10 {
            hdr[1] = b'0' + n as u8;
            hdr[2] = b'\r';
            hdr[3] = b'\n';
            &hdr[..4]
        } else {
            hdr[1] = b'0' + (n / 10) as u8;
            hdr[2] = b'0' + (n % 10) as u8;
            &hdr[..]
        };
        self.buf.reserve(hdr.len() + n + 2);
        let len = self.buf.len();
        // SAFETY: `reserve` made room for `hdr.len() + n + 2` more bytes past `len`; all of
        // them are written below before the length is extended over them, and the sources
        // (stack header, caller's slice, literal) cannot overlap the vector's spare space.
        unsafe {
            let dst = self.buf.as_mut_ptr().add(len);
            std::ptr::copy_nonoverlapping(hdr.as_ptr(), dst, hdr.len());
            let dst = dst.add(hdr.len());
            std::ptr::copy_nonoverlapping(b.as_ptr(), dst, n);
            std::ptr::copy_nonoverlapping(b"\r\n".as_ptr(), dst.add(n), 2);
            self.buf.set_len(len + hdr.len() + n + 2);
        }
    }

    /// An integer as a bulk string (GET of an int-encoded value).
    pub fn add_bulk_i64(&mut self, n: i64) {
        let mut tmp = itoa_buf();
        self.add_bulk(fmt_i64(&mut tmp, n));
    }

    /// The null bulk string: `$-1` in RESP2, `_` in RESP3.
    #[inline]
    pub fn add_null(&mut self) {
        if self.resp >= 3 {
            self.add_raw(b"_\r\n");
        } else {
            self.add_raw(b"$-1\r\n");
        }
    }

    /// The null array: `*-1` in RESP2, `_` in RESP3.
    pub fn add_null_array(&mut self) {
        if self.resp >= 3 {
            self.add_raw(b"_\r\n");
        } else {
            self.add_raw(b"*-1\r\n");
        }
    }

    /// An array header of `n` elements.
    #[inline]
    pub fn add_array_len(&mut self, n: usize) {
        if self.silenced {
            return;
        }
        self.add_len_prefix(b'*', n as i64);
    }

    /// A map header of `n` pairs: `%n` in RESP3, an array of `2n` in RESP2.
    pub fn add_map_len(&mut self, n: usize) {
        if self.silenced {
            return;
        }
        if self.resp >= 3 {
            self.add_len_prefix(b'%', n as i64);
        } else {
            self.add_len_prefix(b'*', 2 * n as i64);
        }
    }

    /// A set header: `~n` in RESP3, an array in RESP2.
    pub fn add_set_len(&mut self, n: usize) {
        if self.silenced {
            return;
        }
        let p = if self.resp >= 3 { b'~' } else { b'*' };
        self.add_len_prefix(p, n as i64);
    }

    #[allow(dead_code)] // RESP3 type, first used by the collection families.
    /// An attribute-free push header: `>n` in RESP3, an array in RESP2.
    pub fn add_push_len(&mut self, n: usize) {
        if self.silenced {
            return;
        }
        let p = if self.resp >= 3 { b'>' } else { b'*' };
        self.add_len_prefix(p, n as i64);
    }

    /// A double: `,<d>` in RESP3, a bulk string in RESP2, formatted as upstream's
    /// `addReplyDouble` (see [`fmt_double_d2string`]).
    pub fn add_double(&mut self, d: f64) {
        let s = fmt_double_d2string(d);
        if self.resp >= 3 {
            if self.silenced {
                return;
            }
            self.buf.push(b',');
            self.buf.extend_from_slice(s.as_bytes());
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.add_bulk(s.as_bytes());
        }
    }

    #[allow(dead_code)] // RESP3 type, first used by the collection families.
    /// A boolean: `#t`/`#f` in RESP3, `:1`/`:0` in RESP2.
    pub fn add_bool(&mut self, b: bool) {
        if self.resp >= 3 {
            self.add_raw(if b { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.add_long(b as i64);
        }
    }

    /// A verbatim string: `=len\r\ntxt:...` in RESP3, a bulk string in RESP2.
    pub fn add_verbatim(&mut self, s: &[u8], ext: &str) {
        if self.resp >= 3 {
            if self.silenced {
                return;
            }
            self.add_len_prefix(b'=', (s.len() + 4) as i64);
            self.buf.extend_from_slice(ext.as_bytes());
            self.buf.push(b':');
            self.buf.extend_from_slice(s);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.add_bulk(s);
        }
    }

    /// An array of bulk strings.
    pub fn add_bulk_array<T: AsRef<[u8]>>(&mut self, items: &[T]) {
        self.add_array_len(items.len());
        for i in items {
            self.add_bulk(i.as_ref());
        }
    }

    /// Help text: an array of status lines, as `addReplyHelp`.
    pub fn add_help(&mut self, cmd: &str, lines: &[&str]) {
        self.add_array_len(lines.len() + 3);
        self.add_status(&format!(
            "{} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            cmd.to_ascii_uppercase()
        ));
        for l in lines {
            self.add_status(l);
        }
        self.add_status("HELP");
        self.add_status("    Print this help.");
    }
}

/// A stack buffer for integer formatting.
pub fn itoa_buf() -> [u8; 24] {
    [0u8; 24]
}

/// Formats `n` in decimal into `buf`, returning the used slice.
#[inline]
pub fn fmt_i64(buf: &mut [u8; 24], n: i64) -> &[u8] {
    let mut i = buf.len();
    let neg = n < 0;
    let mut u = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// Formats a double as Valkey 9's `d2string` (used by `addReplyDouble` and for listpack
/// scores): `nan`, `inf`, `-inf`, `0`, `-0`; an integer in `[-2^62, 2^62]` as an
/// integer; else upstream's Grisu2 digits (not always the shortest, see `fpconv`) laid
/// out as `fpconv_dtoa` does (plain up to 7 trailing zeros or 6 leading fraction zeros,
/// else `d.ddde[+-]x` without padding).
pub fn fmt_double_d2string(d: f64) -> String {
    crate::fpconv::d2string_owned(d)
}

/// Formats a double as C's `%.17g`.
pub fn fmt_double_g17(d: f64) -> String {
    fmt_double_g(d, 17)
}

/// Formats a double as C's `%.<prec>g`.
pub fn fmt_double_g(d: f64, prec: usize) -> String {
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    if !d.is_finite() {
        return if d.is_nan() {
            "nan".into()
        } else if d > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let prec = prec.max(1);
    // Decide between fixed and exponent notation the way %g does: by the exponent of the
    // value rounded to `prec` significant digits.
    let e_repr = format!("{:.*e}", prec - 1, d);
    let (mantissa, exp) = e_repr.split_once('e').unwrap();
    let exp: i32 = exp.parse().unwrap();
    if exp < -4 || exp >= prec as i32 {
        let mut m = mantissa.to_string();
        if m.contains('.') {
            while m.ends_with('0') {
                m.pop();
            }
            if m.ends_with('.') {
                m.pop();
            }
        }
        let sign = if exp < 0 { '-' } else { '+' };
        let ea = exp.unsigned_abs();
        if ea < 10 {
            format!("{}e{}0{}", m, sign, ea)
        } else {
            format!("{}e{}{}", m, sign, ea)
        }
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        let mut s = format!("{:.*}", decimals, d);
        if s.contains('.') {
            while s.ends_with('0') {
                s.pop();
            }
            if s.ends_with('.') {
                s.pop();
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g17_matches_c() {
        assert_eq!(fmt_double_g17(3.0), "3");
        assert_eq!(fmt_double_g17(0.1), "0.10000000000000001");
        assert_eq!(fmt_double_g17(1e20), "1e+20");
        assert_eq!(fmt_double_g17(1.5e-7), "1.4999999999999999e-07");
        assert_eq!(fmt_double_g17(-2.5), "-2.5");
        assert_eq!(fmt_double_g(10.5, 17), "10.5");
        assert_eq!(fmt_double_g(123456789.0, 17), "123456789");
    }

    #[test]
    fn d2string_matches_valkey() {
        for (d, s) in [
            (0.1, "0.1"),
            (1e17, "100000000000000000"),
            (1e19, "1e+19"),
            (1.5e-7, "1.5e-7"),
            (-1.5e-7, "-1.5e-7"),
            (1.2345678901234567e19, "12345678901234567000"),
            (0.000001, "0.000001"),
            (1.234e-6, "1.234e-6"),
            (123.456, "123.456"),
            (12_345_678.123_456_79, "1.234567812345679e+7"),
            (0.30000000000000004, "0.30000000000000004"),
            (1e100, "1e+100"),
            (5e-324, "5e-324"),
            (-0.0, "-0"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(fmt_double_d2string(d), s, "{d}");
        }
    }

    #[test]
    fn resp3_null_and_map() {
        let mut r = ReplyBuf::new();
        r.add_null();
        r.add_map_len(1);
        assert_eq!(r.buf, b"$-1\r\n*2\r\n");
        let mut r = ReplyBuf::new();
        r.resp = 3;
        r.add_null();
        r.add_map_len(1);
        assert_eq!(r.buf, b"_\r\n%1\r\n");
    }

    #[test]
    fn error_without_code_gets_err() {
        let mut r = ReplyBuf::new();
        r.add_error("bad thing\r\nhappened");
        assert_eq!(r.buf, b"-ERR bad thing  happened\r\n");
        assert_eq!(r.last_error_code.as_deref(), Some("ERR"));
    }
}
