//! SPDY/3.1 as Kubernetes speaks it for exec, attach and port-forward (moby/spdystream, apimachinery's
//! `httpstream/spdy`): the frame codec (SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY,
//! HEADERS, WINDOW_UPDATE and DATA with FIN; name/value blocks compressed with one zlib stream per
//! direction and the SPDY/3 dictionary), and a small async session over any byte stream: the peer's
//! streams are accepted at once (SYN_REPLY), each stream's data arrives on a channel that ends at FIN,
//! RST_STREAM or the connection's end, and pings are answered. Like spdystream there is no flow
//! control: WINDOW_UPDATE and SETTINGS are read and ignored.
//!
//! Upgrade contract (HTTP/1.1): request `Connection: Upgrade`, `Upgrade: SPDY/3.1` and one
//! `X-Stream-Protocol-Version` header per offered subprotocol; answer `101 Switching Protocols` with the
//! same `Connection`/`Upgrade` and the chosen `X-Stream-Protocol-Version`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// The protocol version in every control frame.
pub const VERSION: u16 = 3;
/// The value of the `Upgrade` header.
pub const UPGRADE: &str = "SPDY/3.1";
/// The largest DATA payload a frame can carry (24-bit length).
pub const MAX_DATA: usize = (1 << 24) - 1;
/// DATA payloads this session writes are cut to this size.
const CHUNK: usize = 32 * 1024;
/// Data bytes queued but not yet written, per connection; writers wait beyond this (backpressure
/// towards whoever produces the data, since SPDY/3 as Kubernetes uses it has no flow control).
const IN_FLIGHT: usize = 1 << 20;
/// The largest decompressed name/value block accepted (a few bytes of zlib can inflate to
/// gigabytes; Go's http2 caps header lists at 1 MiB too).
const MAX_HEADER_BLOCK: usize = 1 << 20;
/// FLAG_FIN (control and data frames).
pub const FLAG_FIN: u8 = 0x01;
/// FLAG_UNIDIRECTIONAL (SYN_STREAM).
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status: PROTOCOL_ERROR.
pub const RST_PROTOCOL_ERROR: u32 = 1;
/// RST_STREAM status: REFUSED_STREAM.
pub const RST_REFUSED_STREAM: u32 = 3;
/// RST_STREAM status: CANCEL.
pub const RST_CANCEL: u32 = 5;

/// The header names of SPDY/3's compression dictionary, each written length-prefixed, in order.
const DICTIONARY_WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The text that ends SPDY/3's compression dictionary (status codes, dates, common values).
const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,",
    "text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch",
    "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// SPDY/3's zlib dictionary for name/value blocks (1423 bytes).
pub fn dictionary() -> Vec<u8> {
    let mut d = Vec::with_capacity(1423);
    for w in DICTIONARY_WORDS {
        d.put_u32(w.len() as u32);
        d.extend_from_slice(w.as_bytes());
    }
    d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
    d
}

/// What can go wrong on an SPDY connection.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    /// Reading or writing the connection failed.
    #[error("spdy connection: {0}")]
    Io(#[from] std::io::Error),
    /// A name/value block did not (de)compress.
    #[error("spdy header compression: {0}")]
    Compression(String),
    /// The peer broke the framing rules.
    #[error("spdy protocol error: {0}")]
    Protocol(String),
    /// The connection is closed.
    #[error("spdy connection closed")]
    Closed,
    /// The peer did not answer a new stream in time.
    #[error("timeout waiting for SYN_REPLY")]
    Timeout,
    /// The peer reset a new stream.
    #[error("stream reset by peer")]
    Reset,
}

/// A name/value block: lower-case names, values with several parts joined by NUL (as on the wire).
pub type Headers = Vec<(String, String)>;

/// The first value of `name` in a name/value block.
pub fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.split('\0').next().unwrap_or(""))
}

/// One SPDY/3 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Open a stream.
    SynStream {
        /// Odd from the client, even from the server.
        stream_id: u32,
        /// The associated stream (0: none).
        associated: u32,
        /// Priority, 0 (highest) to 7.
        priority: u8,
        /// Flags (`FLAG_FIN`, `FLAG_UNIDIRECTIONAL`).
        flags: u8,
        /// The name/value block.
        headers: Headers,
    },
    /// Accept a stream.
    SynReply {
        /// The stream.
        stream_id: u32,
        /// Flags (`FLAG_FIN`).
        flags: u8,
        /// The name/value block.
        headers: Headers,
    },
    /// Abort a stream.
    RstStream {
        /// The stream.
        stream_id: u32,
        /// Why (`RST_*`).
        status: u32,
    },
    /// Settings (read and ignored).
    Settings {
        /// Flags (0x01 CLEAR_SETTINGS).
        flags: u8,
        /// (flags, id, value) entries.
        entries: Vec<(u8, u32, u32)>,
    },
    /// A ping; the receiver echoes the peer's (odd ids from the client, even from the server).
    Ping {
        /// The id.
        id: u32,
    },
    /// The sender accepts no new streams.
    GoAway {
        /// The last stream the sender accepted.
        last_good: u32,
        /// 0 OK, 1 PROTOCOL_ERROR, 2 INTERNAL_ERROR.
        status: u32,
    },
    /// More headers for a stream.
    Headers {
        /// The stream.
        stream_id: u32,
        /// Flags (`FLAG_FIN`).
        flags: u8,
        /// The name/value block.
        headers: Headers,
    },
    /// Flow control (read and ignored).
    WindowUpdate {
        /// The stream.
        stream_id: u32,
        /// Bytes added to the window.
        delta: u32,
    },
    /// Data for a stream; `FLAG_FIN` ends the sender's half.
    Data {
        /// The stream.
        stream_id: u32,
        /// Flags (`FLAG_FIN`).
        flags: u8,
        /// The payload.
        data: Bytes,
    },
}

fn compress_error(e: impl std::fmt::Display) -> SpdyError {
    SpdyError::Compression(e.to_string())
}

/// Writes frames, with the sender's zlib stream for name/value blocks.
pub struct Encoder {
    z: Compress,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").finish_non_exhaustive()
    }
}

impl Encoder {
    /// A new encoder (one per connection direction).
    pub fn new() -> Result<Encoder, SpdyError> {
        let mut z = Compress::new(Compression::best(), true);
        z.set_dictionary(&dictionary()).map_err(compress_error)?;
        Ok(Encoder { z })
    }

    fn block(&mut self, h: &Headers) -> Result<Vec<u8>, SpdyError> {
        let mut raw = Vec::new();
        raw.put_u32(h.len() as u32);
        for (n, v) in h {
            raw.put_u32(n.len() as u32);
            raw.extend_from_slice(n.to_ascii_lowercase().as_bytes());
            raw.put_u32(v.len() as u32);
            raw.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() / 2 + 64);
        let start = self.z.total_in();
        loop {
            let done = (self.z.total_in() - start) as usize;
            self.z
                .compress_vec(&raw[done..], &mut out, FlushCompress::Sync)
                .map_err(compress_error)?;
            if (self.z.total_in() - start) as usize == raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(256);
        }
    }

    /// Append `f` to `out`.
    pub fn encode(&mut self, f: &Frame, out: &mut Vec<u8>) -> Result<(), SpdyError> {
        let control = |out: &mut Vec<u8>, kind: u16, flags: u8, body: &[u8]| {
            out.put_u16(0x8000 | VERSION);
            out.put_u16(kind);
            out.put_u32((u32::from(flags) << 24) | body.len() as u32);
            out.extend_from_slice(body);
        };
        match f {
            Frame::SynStream {
                stream_id,
                associated,
                priority,
                flags,
                headers,
            } => {
                let mut body = Vec::new();
                body.put_u32(stream_id & 0x7fff_ffff);
                body.put_u32(associated & 0x7fff_ffff);
                body.put_u8((priority & 0x7) << 5);
                body.put_u8(0);
                body.extend(self.block(headers)?);
                control(out, SYN_STREAM, *flags, &body);
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            }
            | Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                let kind = if matches!(f, Frame::SynReply { .. }) {
                    SYN_REPLY
                } else {
                    HEADERS
                };
                let mut body = Vec::new();
                body.put_u32(stream_id & 0x7fff_ffff);
                body.extend(self.block(headers)?);
                control(out, kind, *flags, &body);
            }
            Frame::RstStream { stream_id, status } => {
                let mut body = Vec::new();
                body.put_u32(stream_id & 0x7fff_ffff);
                body.put_u32(*status);
                control(out, RST_STREAM, 0, &body);
            }
            Frame::Settings { flags, entries } => {
                let mut body = Vec::new();
                body.put_u32(entries.len() as u32);
                for (f, id, v) in entries {
                    body.put_u32((u32::from(*f) << 24) | (id & 0xff_ffff));
                    body.put_u32(*v);
                }
                control(out, SETTINGS, *flags, &body);
            }
            Frame::Ping { id } => control(out, PING, 0, &id.to_be_bytes()),
            Frame::GoAway { last_good, status } => {
                let mut body = Vec::new();
                body.put_u32(last_good & 0x7fff_ffff);
                body.put_u32(*status);
                control(out, GOAWAY, 0, &body);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                let mut body = Vec::new();
                body.put_u32(stream_id & 0x7fff_ffff);
                body.put_u32(delta & 0x7fff_ffff);
                control(out, WINDOW_UPDATE, 0, &body);
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                if data.len() > MAX_DATA {
                    return Err(SpdyError::Protocol(format!(
                        "data frame of {} bytes",
                        data.len()
                    )));
                }
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32((u32::from(*flags) << 24) | data.len() as u32);
                out.extend_from_slice(data);
            }
        }
        Ok(())
    }
}

/// Reads frames, with the peer's zlib stream for name/value blocks.
pub struct Decoder {
    z: Decompress,
    dict: Vec<u8>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").finish_non_exhaustive()
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            z: Decompress::new(true),
            dict: dictionary(),
        }
    }
}

fn protocol(msg: impl Into<String>) -> SpdyError {
    SpdyError::Protocol(msg.into())
}

impl Decoder {
    /// A new decoder (one per connection direction).
    pub fn new() -> Decoder {
        Decoder::default()
    }

    fn inflate(&mut self, mut input: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity((input.len() * 4 + 64).min(MAX_HEADER_BLOCK));
        loop {
            if out.len() > MAX_HEADER_BLOCK {
                return Err(protocol(format!(
                    "name/value block larger than {MAX_HEADER_BLOCK} bytes"
                )));
            }
            let before = self.z.total_in();
            match self
                .z
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    let consumed = (self.z.total_in() - before) as usize;
                    input = &input[consumed..];
                    self.z.set_dictionary(&self.dict).map_err(compress_error)?;
                    continue;
                }
                Err(e) => return Err(compress_error(e)),
            }
            let consumed = (self.z.total_in() - before) as usize;
            input = &input[consumed..];
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
            if consumed == 0 && out.len() < out.capacity() {
                return Err(protocol("truncated name/value block"));
            }
            out.reserve(1024);
        }
    }

    fn block(&mut self, compressed: &[u8]) -> Result<Headers, SpdyError> {
        let raw = self.inflate(compressed)?;
        let mut r = &raw[..];
        let take = |r: &mut &[u8]| -> Result<Vec<u8>, SpdyError> {
            if r.remaining() < 4 {
                return Err(protocol("short name/value block"));
            }
            let n = r.get_u32() as usize;
            if r.remaining() < n {
                return Err(protocol("short name/value block"));
            }
            let v = r[..n].to_vec();
            r.advance(n);
            Ok(v)
        };
        if r.remaining() < 4 {
            return Err(protocol("short name/value block"));
        }
        let count = r.get_u32();
        let mut h = Headers::new();
        for _ in 0..count {
            let n = String::from_utf8_lossy(&take(&mut r)?).to_ascii_lowercase();
            let v = String::from_utf8_lossy(&take(&mut r)?).into_owned();
            h.push((n, v));
        }
        Ok(h)
    }

    /// Take one whole frame off the front of `buf`, if it holds one. Unknown control frames are
    /// skipped, as the specification asks.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        loop {
            if buf.len() < 8 {
                return Ok(None);
            }
            let len = (u32::from_be_bytes([0, buf[5], buf[6], buf[7]])) as usize;
            if buf.len() < 8 + len {
                return Ok(None);
            }
            let mut head = buf.split_to(8);
            let body = buf.split_to(len).freeze();
            let first = head.get_u32();
            let flags = head.get_u8();
            if first & 0x8000_0000 == 0 {
                return Ok(Some(Frame::Data {
                    stream_id: first & 0x7fff_ffff,
                    flags,
                    data: body,
                }));
            }
            let version = ((first >> 16) & 0x7fff) as u16;
            if version != VERSION {
                return Err(protocol(format!("unsupported version {version}")));
            }
            let kind = (first & 0xffff) as u16;
            let mut b = &body[..];
            let need = |b: &[u8], n: usize| {
                if b.len() < n {
                    Err(protocol(format!("short control frame of type {kind}")))
                } else {
                    Ok(())
                }
            };
            let frame = match kind {
                SYN_STREAM => {
                    need(b, 10)?;
                    let stream_id = b.get_u32() & 0x7fff_ffff;
                    let associated = b.get_u32() & 0x7fff_ffff;
                    let priority = b.get_u8() >> 5;
                    b.advance(1);
                    Frame::SynStream {
                        stream_id,
                        associated,
                        priority,
                        flags,
                        headers: self.block(b)?,
                    }
                }
                SYN_REPLY | HEADERS => {
                    need(b, 4)?;
                    let stream_id = b.get_u32() & 0x7fff_ffff;
                    let headers = self.block(b)?;
                    if kind == SYN_REPLY {
                        Frame::SynReply {
                            stream_id,
                            flags,
                            headers,
                        }
                    } else {
                        Frame::Headers {
                            stream_id,
                            flags,
                            headers,
                        }
                    }
                }
                RST_STREAM => {
                    need(b, 8)?;
                    Frame::RstStream {
                        stream_id: b.get_u32() & 0x7fff_ffff,
                        status: b.get_u32(),
                    }
                }
                SETTINGS => {
                    need(b, 4)?;
                    let n = b.get_u32() as usize;
                    need(b, n.saturating_mul(8))?;
                    let entries = (0..n)
                        .map(|_| {
                            let fid = b.get_u32();
                            ((fid >> 24) as u8, fid & 0xff_ffff, b.get_u32())
                        })
                        .collect();
                    Frame::Settings { flags, entries }
                }
                PING => {
                    need(b, 4)?;
                    Frame::Ping { id: b.get_u32() }
                }
                GOAWAY => {
                    need(b, 8)?;
                    Frame::GoAway {
                        last_good: b.get_u32() & 0x7fff_ffff,
                        status: b.get_u32(),
                    }
                }
                WINDOW_UPDATE => {
                    need(b, 8)?;
                    Frame::WindowUpdate {
                        stream_id: b.get_u32() & 0x7fff_ffff,
                        delta: b.get_u32() & 0x7fff_ffff,
                    }
                }
                _ => continue,
            };
            return Ok(Some(frame));
        }
    }
}

/// Which end of the connection this is (it decides stream id and ping id parity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Opens odd streams (kubectl, the API server towards a kubelet).
    Client,
    /// Accepts streams (the kubelet).
    Server,
}

enum Out {
    Frame(Frame),
    /// A DATA frame holding `permits` bytes of the in-flight budget until written.
    Data(Frame, u32),
    Shutdown,
}

/// Closes the in-flight budget when the writer ends (also when aborted), so waiting writers fail.
struct CloseOnDrop(Arc<Semaphore>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

struct Entry {
    data: Option<mpsc::Sender<Bytes>>,
    reply: Option<oneshot::Sender<Result<(), SpdyError>>>,
    end: Arc<AtomicU8>,
}

/// How the peer's half of a stream ended ([`Entry::end`], [`Stream::end`]).
const OPEN: u8 = 0;
const ENDED_FIN: u8 = 1;
const ENDED_RESET: u8 = 2;
const ENDED_CLOSED: u8 = 3;

impl Entry {
    fn new(data: Option<mpsc::Sender<Bytes>>) -> (Entry, Arc<AtomicU8>) {
        let end = Arc::new(AtomicU8::new(if data.is_some() { OPEN } else { ENDED_FIN }));
        let e = Entry {
            data,
            reply: None,
            end: end.clone(),
        };
        (e, end)
    }
    /// The peer's half ended (`how`: FIN, reset, connection closed); the first reason counts. The
    /// reason is recorded before the data channel ends, so a reader that saw the end sees it.
    fn ended(&mut self, how: u8) {
        let _ = self
            .end
            .compare_exchange(OPEN, how, Ordering::SeqCst, Ordering::SeqCst);
        self.data = None;
    }
}

struct Shared {
    streams: Mutex<HashMap<u32, Entry>>,
    last_peer_stream: AtomicU32,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Entry>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The write side of one stream (cheap to clone).
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::UnboundedSender<Out>,
    budget: Arc<Semaphore>,
}

impl std::fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamWriter")
            .field("id", &self.id)
            .finish()
    }
}

impl StreamWriter {
    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }
    /// Send `data` (in frames of at most 32 KiB), waiting while 1 MiB is queued unwritten; false
    /// once the connection is gone.
    pub async fn write(&self, data: &[u8]) -> bool {
        for c in data.chunks(CHUNK) {
            let n = c.len() as u32;
            let Ok(permit) = self.budget.acquire_many(n).await else {
                return false;
            };
            permit.forget();
            let frame = Frame::Data {
                stream_id: self.id,
                flags: 0,
                data: Bytes::copy_from_slice(c),
            };
            if self.out.send(Out::Data(frame, n)).is_err() {
                return false;
            }
        }
        true
    }
    /// End this side of the stream (an empty DATA frame with FIN).
    pub fn close(&self) {
        let _ = self.out.send(Out::Frame(Frame::Data {
            stream_id: self.id,
            flags: FLAG_FIN,
            data: Bytes::new(),
        }));
    }
    /// Abort the stream (RST_STREAM CANCEL).
    pub fn reset(&self) {
        let _ = self.out.send(Out::Frame(Frame::RstStream {
            stream_id: self.id,
            status: RST_CANCEL,
        }));
    }
}

/// One stream: its headers, what the peer sends on it, and its write side.
#[derive(Debug)]
pub struct Stream {
    /// The SYN_STREAM name/value block.
    pub headers: Headers,
    /// The peer's data, in order; `None` after its FIN, a reset, or the end of the connection.
    pub data: mpsc::Receiver<Bytes>,
    /// The write side.
    pub writer: StreamWriter,
    /// How the peer's half ended, once `data` has.
    end: Arc<AtomicU8>,
}

impl Stream {
    /// The stream id.
    pub fn id(&self) -> u32 {
        self.writer.id
    }
    /// Everything the peer sends until its half ends (FIN, reset or the connection's end).
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(b) = self.data.recv().await {
            all.extend_from_slice(&b);
        }
        all
    }
    /// Everything the peer sends until its FIN; a reset ([`SpdyError::Reset`]) or the end of the
    /// connection ([`SpdyError::Closed`]) before it is an error, with what had arrived.
    pub async fn read_to_fin(&mut self) -> Result<Vec<u8>, (SpdyError, Vec<u8>)> {
        let all = self.read_to_end().await;
        match self.end.load(Ordering::SeqCst) {
            ENDED_FIN => Ok(all),
            ENDED_RESET => Err((SpdyError::Reset, all)),
            _ => Err((SpdyError::Closed, all)),
        }
    }
}

/// An SPDY session over a byte stream. Dropping it ends its tasks (the connection closes).
pub struct Connection {
    role: Role,
    out: mpsc::UnboundedSender<Out>,
    budget: Arc<Semaphore>,
    shared: Arc<Shared>,
    next_id: AtomicU32,
    closed: watch::Receiver<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Connection {
    /// Start a session on `io`. Streams the peer opens are accepted (SYN_REPLY) and handed out on the
    /// returned receiver, in the order they were opened.
    pub fn start<IO>(io: IO, role: Role) -> Result<(Connection, mpsc::Receiver<Stream>), SpdyError>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(io);
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (streams_tx, streams_rx) = mpsc::channel(16);
        let (closed_tx, closed_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            streams: Mutex::new(HashMap::new()),
            last_peer_stream: AtomicU32::new(0),
        });
        let encoder = Encoder::new()?;
        let budget = Arc::new(Semaphore::new(IN_FLIGHT));
        let writer = tokio::spawn(write_loop(wr, out_rx, encoder, budget.clone()));
        let reader = tokio::spawn(read_loop(
            rd,
            role,
            out_tx.clone(),
            budget.clone(),
            shared.clone(),
            streams_tx,
            closed_tx,
        ));
        let conn = Connection {
            role,
            out: out_tx,
            budget,
            shared,
            next_id: AtomicU32::new(if role == Role::Client { 1 } else { 2 }),
            closed: closed_rx,
            tasks: vec![reader, writer],
        };
        Ok((conn, streams_rx))
    }

    /// Open a stream with `headers` and wait (up to 30 s, client-go's limit) for the peer's SYN_REPLY.
    pub async fn open(&self, headers: Headers) -> Result<Stream, SpdyError> {
        let id = self.next_id.fetch_add(2, Ordering::SeqCst);
        let (data_tx, data_rx) = mpsc::channel(64);
        let (reply_tx, reply_rx) = oneshot::channel();
        let (mut entry, end) = Entry::new(Some(data_tx));
        entry.reply = Some(reply_tx);
        self.shared.lock().insert(id, entry);
        self.out
            .send(Out::Frame(Frame::SynStream {
                stream_id: id,
                associated: 0,
                priority: 0,
                flags: 0,
                headers: headers.clone(),
            }))
            .map_err(|_| SpdyError::Closed)?;
        match tokio::time::timeout(Duration::from_secs(30), reply_rx).await {
            Ok(Ok(Ok(()))) => Ok(Stream {
                headers,
                data: data_rx,
                writer: StreamWriter {
                    id,
                    out: self.out.clone(),
                    budget: self.budget.clone(),
                },
                end,
            }),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(SpdyError::Closed),
            Err(_) => Err(SpdyError::Timeout),
        }
    }

    /// Send a ping (ids of this side's parity).
    pub fn ping(&self, id: u32) {
        let id = if self.role == Role::Client {
            id | 1
        } else {
            id & !1
        };
        let _ = self.out.send(Out::Frame(Frame::Ping { id: id.max(2) }));
    }

    /// Say goodbye (GOAWAY OK, naming the last stream the peer opened) and end the write side; the
    /// read side stays open until the peer closes (see [`Connection::closed`]).
    pub fn close(&self) {
        let last_good = self.shared.last_peer_stream.load(Ordering::SeqCst);
        let _ = self.out.send(Out::Frame(Frame::GoAway {
            last_good,
            status: 0,
        }));
        let _ = self.out.send(Out::Shutdown);
    }

    /// Wait until the peer has closed the connection (or it failed).
    pub async fn closed(&self) {
        let mut rx = self.closed.clone();
        let _ = rx.wait_for(|c| *c).await;
    }
}

async fn write_loop<W: AsyncWrite>(
    wr: W,
    mut rx: mpsc::UnboundedReceiver<Out>,
    mut enc: Encoder,
    budget: Arc<Semaphore>,
) {
    let _close = CloseOnDrop(budget.clone());
    tokio::pin!(wr);
    let mut buf = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut shutdown = false;
        let mut written = 0usize;
        // Write whatever is queued in one go.
        while let Some(o) = next.take() {
            let f = match o {
                Out::Frame(f) => f,
                Out::Data(f, n) => {
                    written += n as usize;
                    f
                }
                Out::Shutdown => {
                    shutdown = true;
                    break;
                }
            };
            if let Err(e) = enc.encode(&f, &mut buf) {
                tracing::debug!("spdy: encoding {f:?}: {e}");
            }
            next = rx.try_recv().ok();
        }
        if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
            return;
        }
        budget.add_permits(written);
        buf.clear();
        if shutdown {
            let _ = wr.shutdown().await;
            return;
        }
    }
}

async fn read_loop<R: AsyncRead>(
    rd: R,
    role: Role,
    out: mpsc::UnboundedSender<Out>,
    budget: Arc<Semaphore>,
    shared: Arc<Shared>,
    streams: mpsc::Sender<Stream>,
    closed: watch::Sender<bool>,
) {
    tokio::pin!(rd);
    let mut dec = Decoder::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut accepting = Some(streams);
    'read: loop {
        loop {
            let frame = match dec.decode(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!("spdy: {e}");
                    break 'read;
                }
            };
            match frame {
                Frame::SynStream {
                    stream_id,
                    flags,
                    headers,
                    ..
                } => {
                    let Some(tx) = accepting.as_ref() else {
                        let _ = out.send(Out::Frame(Frame::RstStream {
                            stream_id,
                            status: RST_REFUSED_STREAM,
                        }));
                        continue;
                    };
                    shared
                        .last_peer_stream
                        .fetch_max(stream_id, Ordering::SeqCst);
                    let (data_tx, data_rx) = mpsc::channel(64);
                    let fin = flags & FLAG_FIN != 0;
                    let (entry, end) = Entry::new((!fin).then_some(data_tx));
                    shared.lock().insert(stream_id, entry);
                    let _ = out.send(Out::Frame(Frame::SynReply {
                        stream_id,
                        flags: 0,
                        headers: Headers::new(),
                    }));
                    let stream = Stream {
                        headers,
                        data: data_rx,
                        writer: StreamWriter {
                            id: stream_id,
                            out: out.clone(),
                            budget: budget.clone(),
                        },
                        end,
                    };
                    if tx.send(stream).await.is_err() {
                        let _ = out.send(Out::Frame(Frame::RstStream {
                            stream_id,
                            status: RST_REFUSED_STREAM,
                        }));
                    }
                }
                Frame::SynReply {
                    stream_id, flags, ..
                } => {
                    let mut map = shared.lock();
                    if let Some(e) = map.get_mut(&stream_id) {
                        if let Some(r) = e.reply.take() {
                            let _ = r.send(Ok(()));
                        }
                        if flags & FLAG_FIN != 0 {
                            e.ended(ENDED_FIN);
                        }
                    }
                }
                Frame::Data {
                    stream_id,
                    flags,
                    data,
                } => {
                    let tx = shared.lock().get(&stream_id).and_then(|e| e.data.clone());
                    if let Some(tx) = tx
                        && !data.is_empty()
                    {
                        let _ = tx.send(data).await;
                    }
                    if flags & FLAG_FIN != 0
                        && let Some(e) = shared.lock().get_mut(&stream_id)
                    {
                        e.ended(ENDED_FIN);
                    }
                }
                Frame::RstStream { stream_id, .. } => {
                    if let Some(mut e) = shared.lock().remove(&stream_id) {
                        e.ended(ENDED_RESET);
                        if let Some(r) = e.reply.take() {
                            let _ = r.send(Err(SpdyError::Reset));
                        }
                    }
                }
                Frame::Ping { id } => {
                    // Echo the peer's pings; ours come back and need nothing.
                    let peers = if role == Role::Server {
                        id % 2 == 1
                    } else {
                        id % 2 == 0
                    };
                    if peers {
                        let _ = out.send(Out::Frame(Frame::Ping { id }));
                    }
                }
                Frame::GoAway { .. } => accepting = None,
                Frame::Headers {
                    stream_id, flags, ..
                } => {
                    if flags & FLAG_FIN != 0
                        && let Some(e) = shared.lock().get_mut(&stream_id)
                    {
                        e.ended(ENDED_FIN);
                    }
                }
                Frame::Settings { .. } | Frame::WindowUpdate { .. } => {}
            }
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    // The peer is gone: every stream's data ends, pending opens fail.
    for (_, mut e) in shared.lock().drain() {
        e.ended(ENDED_CLOSED);
        if let Some(r) = e.reply.take() {
            let _ = r.send(Err(SpdyError::Closed));
        }
    }
    let _ = closed.send(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(frames: &[Frame]) -> Vec<Frame> {
        let mut enc = Encoder::new().unwrap();
        let mut wire = Vec::new();
        for f in frames {
            enc.encode(f, &mut wire).unwrap();
        }
        let mut dec = Decoder::new();
        let mut buf = BytesMut::from(&wire[..]);
        let mut back = Vec::new();
        while let Some(f) = dec.decode(&mut buf).unwrap() {
            back.push(f);
        }
        assert!(buf.is_empty());
        back
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn the_dictionary_is_spdy3s() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert_eq!(&d[..11], b"\0\0\0\x07options");
        assert!(d.ends_with(b",*,enq=0."));
        // zlib names a dictionary by its Adler-32; kubectl's header blocks carry this one.
        let mut z = Compress::new(Compression::best(), true);
        assert_eq!(z.set_dictionary(&d).unwrap(), 0xe3c6_a7c2);
    }

    /// What kubectl v1.32 (`KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`, `echo hi | kubectl exec -i pod
    /// -- cat`) sent the kubelet after the upgrade, captured on the wire: the error, stdin, stdout
    /// and stderr streams, in that order, then stdin's data and FIN.
    const KUBECTL_EXEC: &str = concat!(
        "80030001000000290000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a0a0a6800000000ffff",
        "800300010000001700000003000000000000c22e555c92929907000000ffff",
        "800300010000001900000005000000000000c22ac5565c92925f5a02000000ffff",
        "800300010000001500000007000000000000c229975a5404000000ffff",
        "000000030000000368690a0000000301000000",
    );

    #[test]
    fn kubectls_exec_frames_decode() {
        let mut buf = BytesMut::from(&hex(KUBECTL_EXEC)[..]);
        let mut dec = Decoder::new();
        let mut frames = Vec::new();
        while let Some(f) = dec.decode(&mut buf).unwrap() {
            frames.push(f);
        }
        let syn = |id: u32, t: &str| Frame::SynStream {
            stream_id: id,
            associated: 0,
            priority: 0,
            flags: 0,
            headers: vec![("streamtype".into(), t.into())],
        };
        assert_eq!(
            frames,
            [
                syn(1, "error"),
                syn(3, "stdin"),
                syn(5, "stdout"),
                syn(7, "stderr"),
                Frame::Data {
                    stream_id: 3,
                    flags: 0,
                    data: Bytes::from_static(b"hi\n"),
                },
                Frame::Data {
                    stream_id: 3,
                    flags: FLAG_FIN,
                    data: Bytes::new(),
                },
            ]
        );
        // Our encoder's first block is laid out the same and starts the same zlib stream (header,
        // dictionary id); only the deflate bytes may differ.
        let mut enc = Encoder::new().unwrap();
        let mut w = Vec::new();
        enc.encode(&syn(1, "error"), &mut w).unwrap();
        let theirs = hex(KUBECTL_EXEC);
        assert_eq!(&w[..5], &theirs[..5]);
        assert_eq!(&w[8..24], &theirs[8..24]);
        assert!(
            w.ends_with(&[0, 0, 0xff, 0xff]),
            "a sync flush ends each block"
        );
    }

    #[test]
    fn fixed_frames_have_the_wire_layout() {
        let mut enc = Encoder::new().unwrap();
        let mut w = Vec::new();
        enc.encode(&Frame::Ping { id: 1 }, &mut w).unwrap();
        assert_eq!(w, [0x80, 0x03, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1]);
        w.clear();
        enc.encode(
            &Frame::RstStream {
                stream_id: 3,
                status: RST_CANCEL,
            },
            &mut w,
        )
        .unwrap();
        assert_eq!(
            w,
            [0x80, 0x03, 0x00, 0x03, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 5]
        );
        w.clear();
        enc.encode(
            &Frame::GoAway {
                last_good: 7,
                status: 0,
            },
            &mut w,
        )
        .unwrap();
        assert_eq!(
            w,
            [0x80, 0x03, 0x00, 0x07, 0, 0, 0, 8, 0, 0, 0, 7, 0, 0, 0, 0]
        );
        w.clear();
        enc.encode(
            &Frame::Data {
                stream_id: 5,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"hi"),
            },
            &mut w,
        )
        .unwrap();
        assert_eq!(w, [0, 0, 0, 5, 0x01, 0, 0, 2, b'h', b'i']);
        w.clear();
        enc.encode(
            &Frame::Settings {
                flags: 0,
                entries: vec![(0, 7, 65536)],
            },
            &mut w,
        )
        .unwrap();
        assert_eq!(
            w,
            [
                0x80, 0x03, 0x00, 0x04, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 7, 0, 1, 0, 0
            ]
        );
    }

    #[test]
    fn frames_survive_a_roundtrip_with_one_zlib_stream_per_direction() {
        let h = |t: &str| vec![("streamtype".to_string(), t.to_string())];
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated: 0,
                priority: 0,
                flags: 0,
                headers: h("error"),
            },
            Frame::SynStream {
                stream_id: 3,
                associated: 0,
                priority: 2,
                flags: FLAG_FIN,
                headers: h("stdout"),
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: Headers::new(),
            },
            Frame::Data {
                stream_id: 3,
                flags: 0,
                data: Bytes::from_static(b"payload"),
            },
            Frame::WindowUpdate {
                stream_id: 3,
                delta: 100,
            },
            Frame::Headers {
                stream_id: 3,
                flags: FLAG_FIN,
                headers: vec![("a".into(), "b\0c".into())],
            },
        ];
        assert_eq!(roundtrip(&frames), frames);
    }

    #[test]
    fn partial_frames_wait_for_more_bytes_and_unknown_controls_are_skipped() {
        let mut enc = Encoder::new().unwrap();
        let mut wire = vec![0x80, 0x03, 0x00, 0x0a, 0, 0, 0, 1, 0xff];
        enc.encode(&Frame::Ping { id: 9 }, &mut wire).unwrap();
        let mut dec = Decoder::new();
        let mut buf = BytesMut::from(&wire[..5]);
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(&wire[5..]);
        assert_eq!(dec.decode(&mut buf).unwrap(), Some(Frame::Ping { id: 9 }));
    }

    #[tokio::test]
    async fn writers_wait_while_the_peer_does_not_read() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (client, _) = Connection::start(a, Role::Client).unwrap();
        let (_server, mut incoming) = Connection::start(b, Role::Server).unwrap();
        let opened = tokio::spawn(async move {
            let s = client.open(Headers::new()).await.unwrap();
            (client, s)
        });
        let mut theirs = incoming.recv().await.unwrap();
        let (_client, ours) = opened.await.unwrap();
        let big = vec![7u8; 8 << 20];
        let writer = ours.writer.clone();
        let sending = tokio::spawn(async move { writer.write(&big).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!sending.is_finished(), "8 MiB cannot all be queued");
        let mut got = 0;
        while got < 8 << 20 {
            got += theirs.data.recv().await.unwrap().len();
        }
        assert!(sending.await.unwrap());
    }

    #[tokio::test]
    async fn a_stream_tells_a_fin_from_a_reset_and_a_lost_connection() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (client, _) = Connection::start(a, Role::Client).unwrap();
        let (server, mut incoming) = Connection::start(b, Role::Server).unwrap();
        let opener = tokio::spawn(async move {
            let mut fin = client.open(Headers::new()).await.unwrap();
            let mut reset = client.open(Headers::new()).await.unwrap();
            let mut cut = client.open(Headers::new()).await.unwrap();
            let got = (
                fin.read_to_fin().await,
                reset.read_to_fin().await,
                cut.read_to_fin().await,
            );
            (client, got)
        });
        let (fin, reset, cut) = (
            incoming.recv().await.unwrap(),
            incoming.recv().await.unwrap(),
            incoming.recv().await.unwrap(),
        );
        fin.writer.write(b"status").await;
        fin.writer.close();
        reset.writer.write(b"half").await;
        reset.writer.reset();
        cut.writer.write(b"lost").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop((fin, reset, cut));
        drop(server);
        let (_client, (fin, reset, cut)) = opener.await.unwrap();
        assert_eq!(fin.unwrap(), b"status");
        assert!(
            matches!(reset, Err((SpdyError::Reset, ref b)) if b == b"half"),
            "{reset:?}"
        );
        assert!(
            matches!(cut, Err((SpdyError::Closed, ref b)) if b == b"lost"),
            "{cut:?}"
        );
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        // A name/value block that inflates far beyond any header list (zlib of 64 MiB of zeros).
        let mut z = Compress::new(Compression::best(), true);
        z.set_dictionary(&dictionary()).unwrap();
        let zeros = vec![0u8; 64 << 20];
        let mut block = Vec::with_capacity(1 << 20);
        z.compress_vec(&zeros, &mut block, FlushCompress::Sync)
            .unwrap();
        assert!(block.len() < MAX_DATA);
        let mut body = vec![0, 0, 0, 1];
        body.extend_from_slice(&block);
        let mut wire = vec![0x80, 0x03, 0x00, 0x02];
        wire.extend_from_slice(&(body.len() as u32).to_be_bytes());
        wire.extend_from_slice(&body);
        let mut dec = Decoder::new();
        let err = dec.decode(&mut BytesMut::from(&wire[..])).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
        // Short control frames, a bad version, garbage in a block.
        for wire in [
            vec![0x80, 0x03, 0x00, 0x01, 0, 0, 0, 2, 0, 1],
            vec![0x80, 0x03, 0x00, 0x03, 0, 0, 0, 4, 0, 0, 0, 1],
            vec![0x80, 0x03, 0x00, 0x04, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff],
            vec![0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1],
            vec![0x80, 0x03, 0x00, 0x02, 0, 0, 0, 8, 0, 0, 0, 1, 1, 2, 3, 4],
        ] {
            assert!(
                Decoder::new()
                    .decode(&mut BytesMut::from(&wire[..]))
                    .is_err(),
                "{wire:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_client_and_a_server_exchange_streams() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (client, _) = Connection::start(a, Role::Client).unwrap();
        let (server, mut incoming) = Connection::start(b, Role::Server).unwrap();
        let opener = tokio::spawn(async move {
            let mut s = client
                .open(vec![("streamtype".into(), "stdin".into())])
                .await
                .unwrap();
            s.writer.write(b"to the server").await;
            s.writer.close();
            let back = s.read_to_end().await;
            client.closed().await;
            back
        });
        let mut s = incoming.recv().await.unwrap();
        assert_eq!(header(&s.headers, "streamtype"), Some("stdin"));
        assert_eq!(s.id(), 1);
        assert_eq!(s.read_to_end().await, b"to the server");
        s.writer.write(b"and back").await;
        s.writer.close();
        server.close();
        assert_eq!(opener.await.unwrap(), b"and back");
    }
}
