//! The connection types, as upstream's `ConnectionType` (socket.c, unix.c, tls.c): a plain
//! TCP or unix socket reads and writes the file descriptor directly; a TLS connection runs
//! a rustls `ServerConnection` over the same non-blocking socket.
//!
//! Everything is driven by the event loop: a readable edge feeds TLS records to rustls
//! (which advances the handshake, answers key updates and decrypts application data), and
//! records rustls wants to send (handshake flights, alerts, key update answers, encrypted
//! replies) go out as the socket takes them; [`TlsStream::wants_write`] tells the caller to
//! keep the writable handler while some are queued. Reads hand out decrypted plaintext
//! before touching the socket again, so data rustls already holds is never stranded.

use std::io::{self, BufRead, ErrorKind, Write};
use std::os::unix::io::{AsRawFd, RawFd};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

/// Plaintext accepted into rustls per write call: bounds what sits encrypted in memory
/// beyond what the socket took.
const TLS_WRITE_CHUNK: usize = 64 * 1024;

/// Reads from `fd` into the spare capacity of `buf` (no zero-filling, no reference to
/// uninitialised memory), extending its length by the bytes read.
#[inline]
pub fn read_into_spare(fd: RawFd, buf: &mut Vec<u8>) -> io::Result<usize> {
    let len = buf.len();
    let spare = buf.capacity() - len;
    // SAFETY: the pointer is within the allocation and `spare` bytes are available; the
    // kernel writes at most `spare` bytes and we only extend the length by what it wrote.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().add(len) as *mut libc::c_void, spare) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    unsafe { buf.set_len(len + n as usize) };
    Ok(n as usize)
}

/// Where a TLS connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsState {
    /// The handshake is in progress.
    Accepting,
    /// Application data flows.
    Connected,
    /// The peer sent close_notify, or the connection failed.
    Closed,
}

/// A TLS connection over a non-blocking TCP socket: the server side of an accepted
/// client, or the client side of an outgoing link (the replica's link to its primary).
pub struct TlsStream {
    pub sock: mio::net::TcpStream,
    tls: Connection,
    state: TlsState,
    /// Set once when the handshake completes; the caller takes it (identity mapping).
    just_connected: bool,
    /// The last read handed out everything: the socket was drained and rustls holds
    /// no plaintext, so the next read would only return WouldBlock.
    drained: bool,
    /// Ciphertext read from the socket that rustls has not taken yet (empty almost
    /// always: only when the caller's buffer filled up first).
    rx: Vec<u8>,
}

/// Socket reads of a TLS connection: up to this much at once (plain reads take the query
/// buffer's 16 KB; a little more here covers the record framing).
const TLS_READ_SIZE: usize = 32 * 1024;

thread_local! {
    /// The buffer TLS socket reads land in before rustls takes them, shared by every
    /// connection of the thread (the event loop runs on one).
    static SCRATCH: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(Vec::with_capacity(TLS_READ_SIZE));
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("fd", &self.sock.as_raw_fd())
            .field("state", &self.state)
            .finish()
    }
}

impl TlsStream {
    /// Wraps an accepted socket; the handshake starts with the first readable event.
    pub fn accept(sock: mio::net::TcpStream, cfg: Arc<ServerConfig>) -> io::Result<TlsStream> {
        let tls = ServerConnection::new(cfg).map_err(io::Error::other)?;
        Ok(TlsStream {
            sock,
            tls: Connection::Server(tls),
            state: TlsState::Accepting,
            just_connected: false,
            drained: false,
            rx: Vec::new(),
        })
    }

    /// Wraps an outgoing socket (connected or still connecting); the ClientHello is
    /// queued and goes out with the first [`TlsStream::handshake`] once the TCP connect
    /// completed.
    pub fn connect(
        sock: mio::net::TcpStream,
        cfg: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<TlsStream> {
        let tls = ClientConnection::new(cfg, name).map_err(io::Error::other)?;
        Ok(TlsStream {
            sock,
            tls: Connection::Client(tls),
            state: TlsState::Accepting,
            just_connected: false,
            drained: false,
            rx: Vec::new(),
        })
    }

    /// Advances the handshake of an outgoing connection without blocking: sends what
    /// rustls queued, reads and processes what the socket holds. Ok(true) once the
    /// handshake is complete, Ok(false) while it waits for the peer (a readable or
    /// writable edge brings the next step), Err on failure (the alert is sent first).
    pub fn handshake(&mut self) -> io::Result<bool> {
        loop {
            self.flush_soft()?;
            if self.state != TlsState::Accepting {
                return match self.state {
                    TlsState::Connected => Ok(true),
                    _ => Err(io::Error::from(ErrorKind::ConnectionAborted)),
                };
            }
            if self.tls.wants_write() {
                return Ok(false); // The socket is full: the writable edge resumes.
            }
            match self.tls.read_tls(&mut &self.sock) {
                Ok(0) => {
                    self.state = TlsState::Closed;
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "connection closed during the TLS handshake",
                    ));
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if let Err(e) = self.tls.process_new_packets() {
                let _ = self.flush();
                self.state = TlsState::Closed;
                return Err(io::Error::new(ErrorKind::InvalidData, e));
            }
            self.update_state();
        }
    }

    /// True once after the handshake completed.
    pub fn take_just_connected(&mut self) -> bool {
        std::mem::take(&mut self.just_connected)
    }

    /// The peer's certificate chain (leaf first), when it presented one.
    pub fn peer_certificates(&self) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.tls.peer_certificates()
    }

    /// The last read left nothing behind: the socket was drained (a short read) and
    /// rustls holds no more plaintext. Edge-triggered readiness brings a new event for
    /// new data, so the caller can skip the read that would only return WouldBlock.
    #[inline]
    pub fn drained(&self) -> bool {
        self.drained
    }

    /// Encrypted records are queued for the socket (keep the writable handler).
    #[inline]
    pub fn wants_write(&self) -> bool {
        self.tls.wants_write()
    }

    /// Sends queued records until done or the socket is full (WouldBlock).
    pub fn flush(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut &self.sock) {
                Ok(0) => return Err(io::Error::new(ErrorKind::WriteZero, "write zero")),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn flush_soft(&mut self) -> io::Result<()> {
        match self.flush() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(()),
            r => r,
        }
    }

    fn update_state(&mut self) {
        if self.state == TlsState::Accepting && !self.tls.is_handshaking() {
            self.state = TlsState::Connected;
            // Only an accepted client maps its certificate to a user.
            self.just_connected = matches!(self.tls, Connection::Server(_));
        }
    }

    /// Reads decrypted application data into the spare capacity of `buf` (the caller
    /// reserves it). Ok(0) is end of stream (close_notify or TCP close); WouldBlock means
    /// the socket is drained and rustls holds no plaintext (the handshake may have
    /// advanced: check [`TlsStream::wants_write`]).
    ///
    /// The socket is read in large reads into a scratch buffer shared by all connections
    /// (rustls alone reads at most 4 KB per call: a 16 KB value would cost four syscalls)
    /// and fed to rustls from there; ciphertext that does not fit this call stays in a
    /// per-connection `rx` until the next one, so idle connections hold no buffer.
    pub fn read_into(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let spare = buf.capacity() - buf.len();
        if spare == 0 {
            return Err(io::Error::new(ErrorKind::InvalidInput, "no buffer space"));
        }
        // Whether this call read the socket and the read came back short. Only a read in
        // this very call counts: an older one may predate data whose edge the current
        // event already consumed.
        let mut read_short = false;
        let mut n = 0;
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let scratch = &mut *scratch;
            // Ciphertext left from the previous call comes first.
            let mut pos = 0;
            scratch.clear();
            if !self.rx.is_empty() {
                scratch.extend_from_slice(&self.rx);
                self.rx = Vec::new();
            }
            let r = self.read_loop(buf, spare, scratch, &mut pos, &mut n, &mut read_short);
            if pos < scratch.len() {
                // Keep what rustls did not take yet for the next call.
                self.rx.extend_from_slice(&scratch[pos..]);
            }
            if scratch.capacity() > 4 * TLS_READ_SIZE {
                *scratch = Vec::with_capacity(TLS_READ_SIZE);
            }
            r
        })
    }

    fn read_loop(
        &mut self,
        buf: &mut Vec<u8>,
        spare: usize,
        scratch: &mut Vec<u8>,
        pos: &mut usize,
        n: &mut usize,
        read_short: &mut bool,
    ) -> io::Result<usize> {
        loop {
            // Plaintext rustls already decrypted comes first; rustls hands out one record
            // at a time: copy as many as fit.
            let mut empty = false;
            while *n < spare {
                let mut rd = self.tls.reader();
                match rd.fill_buf() {
                    Ok([]) => {
                        if *n > 0 {
                            break; // close_notify: the next call reports it.
                        }
                        self.state = TlsState::Closed;
                        return Ok(0);
                    }
                    Ok(data) => {
                        let k = data.len().min(spare - *n);
                        buf.extend_from_slice(&data[..k]);
                        rd.consume(k);
                        *n += k;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        empty = true;
                        break;
                    }
                    Err(e) if *n > 0 => {
                        let _ = e; // Reported by the next call.
                        break;
                    }
                    Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                        self.state = TlsState::Closed;
                        return Ok(0);
                    }
                    Err(e) => return Err(e),
                }
            }
            let staged = *pos < scratch.len();
            if *n == spare || (*n > 0 && !staged) || (*n > 0 && !empty) {
                // Full, or everything this call read is out (the socket is read again
                // only once the plaintext was handed out).
                self.drained = *read_short && empty && !staged;
                return Ok(*n);
            }
            if self.state == TlsState::Closed {
                return Ok(0);
            }
            if !staged && *read_short {
                // A short read of this call drained the socket (a partial record is in
                // rustls): skip the read that would only return EAGAIN.
                self.drained = true;
                self.flush_soft()?;
                return Err(io::Error::from(ErrorKind::WouldBlock));
            }
            if !staged {
                scratch.clear();
                *pos = 0;
                scratch.reserve(TLS_READ_SIZE);
                let room = scratch.capacity();
                match read_into_spare(self.sock.as_raw_fd(), scratch) {
                    Ok(0) => {
                        self.state = TlsState::Closed;
                        return Ok(0);
                    }
                    Ok(m) => *read_short = m < room,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => {
                        if e.kind() == ErrorKind::WouldBlock {
                            self.flush_soft()?;
                        }
                        return Err(e);
                    }
                }
            }
            let mut src = &scratch[*pos..];
            match self.tls.read_tls(&mut src) {
                Ok(0) => {
                    return Err(io::Error::new(ErrorKind::InvalidData, "TLS buffer full"));
                }
                Ok(k) => *pos += k,
                Err(e) => return Err(e),
            }
            if let Err(e) = self.tls.process_new_packets() {
                // Send the alert rustls queued (bad certificate, protocol version...).
                let _ = self.flush();
                self.state = TlsState::Closed;
                return Err(io::Error::new(ErrorKind::InvalidData, e));
            }
            self.update_state();
            // Handshake flights and key update answers go out now.
            self.flush_soft()?;
        }
    }

    /// Encrypts and sends `data` until the socket is full, as a plain write(2) takes
    /// what fits; returns how much plaintext rustls took. Plaintext is handed to rustls a
    /// chunk at a time, so at most one chunk of records waits in memory beyond what the
    /// socket took (see [`TlsStream::wants_write`]); stopping only on a full socket keeps
    /// the edge-triggered writable event coming.
    pub fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.state != TlsState::Connected {
            // Replies wait for the handshake; queued handshake records still go out.
            self.flush()?;
            return Err(io::Error::from(ErrorKind::WouldBlock));
        }
        let mut total = 0;
        loop {
            match self.flush() {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock && total > 0 => return Ok(total),
                Err(e) => return Err(e),
            }
            if total == data.len() {
                return Ok(total);
            }
            let end = total.saturating_add(TLS_WRITE_CHUNK).min(data.len());
            let n = self.tls.writer().write(&data[total..end])?;
            if n == 0 {
                return if total > 0 {
                    Ok(total)
                } else {
                    Err(io::Error::from(ErrorKind::WouldBlock))
                };
            }
            total += n;
        }
    }

    /// Sends close_notify (best effort), as upstream's SSL_shutdown on close.
    pub fn close_notify(&mut self) {
        if self.state == TlsState::Connected {
            self.tls.send_close_notify();
            let _ = self.flush();
        }
        self.state = TlsState::Closed;
    }
}
