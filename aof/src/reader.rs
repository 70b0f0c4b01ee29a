//! Reading the commands of an AOF (a sequence of RESP multibulk commands, with `#`
//! annotation lines such as `#TS:<unix time>` between them), bounded: no length a
//! file announces is trusted beyond the bytes present.

use crate::Result;

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
}

impl<'a> CommandReader<'a> {
    pub fn new(buf: &'a [u8], base: u64) -> CommandReader<'a> {
        CommandReader { buf, pos: 0, base }
    }

    /// Offset (in the file) of the next byte to read: after the last complete item.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// The next item, `None` at the end. A command cut by the end of the buffer is
    /// `Error::Truncated` with its start offset; anything else invalid is
    /// `Error::Corrupt` (upstream's "Bad file format reading the append only file").
    pub fn next_item(&mut self) -> Result<Option<Item<'a>>> {
        let _ = self.buf;
        todo!("aof::reader::CommandReader::next_item")
    }
}
