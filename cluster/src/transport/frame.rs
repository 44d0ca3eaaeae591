//! Frames: a 4-byte big-endian payload length, then the payload. The length is checked against
//! a limit before anything is allocated, so a garbage or hostile prefix costs nothing; buffers
//! are reused from frame to frame.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::TransportError;

/// The default limit on a frame's payload (`rpc.max-frame-size`): 64 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 64 * 1024 * 1024;

/// The length prefix's size.
const HEADER: usize = 4;
/// The bytes before a frame's payload (its length).
pub const FRAME_HEADER: usize = HEADER;
/// How much of a frame's payload is reserved ahead of its bytes arriving: a peer that announces
/// a large frame and sends little costs little.
const READ_CHUNK: usize = 64 * 1024;
/// A buffer grown above this by a large frame is given back once frames are small again.
const KEEP_CAPACITY: usize = 1024 * 1024;

/// Reads frames from a byte stream.
///
/// `read_frame` is cancel-safe: its progress lives in the reader, so dropping the future (in a
/// `select!`) loses nothing and the next call carries on where it stopped.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    max_frame_size: u32,
    header: [u8; HEADER],
    header_filled: usize,
    /// The current frame's payload length, once its prefix is complete.
    payload_len: Option<usize>,
    /// The current frame's payload so far.
    buf: Vec<u8>,
    /// Set by an error: the position in the frame sequence is lost.
    broken: bool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader refusing frames over `max_frame_size` bytes of payload.
    pub fn new(inner: R, max_frame_size: u32) -> Self {
        FrameReader {
            inner,
            max_frame_size,
            header: [0; HEADER],
            header_filled: 0,
            payload_len: None,
            buf: Vec::new(),
            broken: false,
        }
    }

    /// The limit on a frame's payload.
    pub fn max_frame_size(&self) -> u32 {
        self.max_frame_size
    }

    /// Changes the limit for the frames read from now on (a handshake reads with a small one).
    pub fn set_max_frame_size(&mut self, max_frame_size: u32) {
        self.max_frame_size = max_frame_size;
    }

    /// The next frame's payload, or `None` when the stream ended cleanly between frames.
    ///
    /// Errors: `FrameTooLarge` for a length over the limit (nothing allocated), `TruncatedFrame`
    /// when the stream ends inside a frame, `Io` from the stream. After an error the stream's
    /// position within the frame sequence is lost and further calls fail with `Broken`.
    pub async fn read_frame(&mut self) -> Result<Option<&[u8]>, TransportError> {
        if self.broken {
            return Err(TransportError::Broken);
        }
        match self.fill_frame().await {
            Ok(Some(len)) => Ok(Some(&self.buf[..len])),
            Ok(None) => Ok(None),
            Err(e) => {
                self.broken = true;
                Err(e)
            }
        }
    }

    /// Reads what comes of the length header (one read call). False: the peer closed cleanly
    /// between frames; closing inside a header is an error.
    async fn read_header_bytes(&mut self) -> Result<bool, TransportError> {
        let n = self.inner.read(&mut self.header[self.header_filled..]).await?;
        if n == 0 {
            if self.header_filled == 0 {
                return Ok(false);
            }
            return Err(TransportError::TruncatedFrame {
                received: self.header_filled as u64,
                expected: HEADER as u64,
            });
        }
        self.header_filled += n;
        Ok(true)
    }

    /// The complete header's payload length, checked against the limit before anything is
    /// allocated for it.
    fn header_len(&self) -> Result<usize, TransportError> {
        let len = u32::from_be_bytes(self.header);
        if len > self.max_frame_size {
            return Err(TransportError::FrameTooLarge { size: u64::from(len), limit: self.max_frame_size });
        }
        Ok(len as usize)
    }

    /// Reads until a whole frame is in `buf`; its length, or `None` at a clean end.
    async fn fill_frame(&mut self) -> Result<Option<usize>, TransportError> {
        let len = loop {
            if let Some(len) = self.payload_len {
                break len;
            }
            // (The header may be there already, read ahead with the previous frame.)
            if self.header_filled < HEADER && !self.read_header_bytes().await? {
                return Ok(None);
            }
            if self.header_filled == HEADER {
                let len = self.header_len()?;
                self.buf.clear();
                if self.buf.capacity() > KEEP_CAPACITY && len <= KEEP_CAPACITY {
                    self.buf.shrink_to(KEEP_CAPACITY);
                }
                self.payload_len = Some(len);
            }
        };
        while self.buf.len() < len {
            let remaining = len - self.buf.len();
            self.buf.reserve(remaining.min(READ_CHUNK));
            // `take` keeps the read inside this frame; `read_buf` fills the spare capacity
            // without zeroing it and, like `read`, reads nothing when cancelled.
            let n = (&mut self.inner).take(remaining as u64).read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(TransportError::TruncatedFrame {
                    received: (HEADER + self.buf.len()) as u64,
                    expected: (HEADER + len) as u64,
                });
            }
        }
        self.header_filled = 0;
        self.payload_len = None;
        Ok(Some(len))
    }

    /// The underlying stream.
    /// Reads the next frame's payload into a buffer that `buffer(len)` provides once the
    /// frame's length is known (a pooled buffer: its wait is the backpressure), straight from
    /// the socket with no intermediate copy. `Ok(None)`: the peer closed between frames. Not
    /// cancellation safe once the payload is being read: use it outside `select!`.
    pub async fn read_frame_into<B, F, Fut>(&mut self, buffer: F) -> Result<Option<B>, TransportError>
    where
        B: AsMut<Vec<u8>>,
        F: FnOnce(usize) -> Fut,
        Fut: std::future::Future<Output = Result<B, TransportError>>,
    {
        if self.broken {
            return Err(TransportError::Broken);
        }
        let r = self.fill_frame_into(buffer).await;
        if r.is_err() {
            self.broken = true;
        }
        r
    }

    async fn fill_frame_into<B, F, Fut>(&mut self, buffer: F) -> Result<Option<B>, TransportError>
    where
        B: AsMut<Vec<u8>>,
        F: FnOnce(usize) -> Fut,
        Fut: std::future::Future<Output = Result<B, TransportError>>,
    {
        while self.header_filled < HEADER {
            if !self.read_header_bytes().await? {
                return Ok(None);
            }
        }
        let len = self.header_len()?;
        let mut out = buffer(len).await?;
        let buf = out.as_mut();
        buf.clear();
        buf.reserve(len);
        // Each read may also take the next frame's header, when it is there already and the
        // buffer has room for it: one read call per frame instead of two, never a byte of the
        // next payload.
        let ahead = (buf.capacity() - len).min(HEADER);
        while buf.len() < len {
            let remaining = len + ahead - buf.len();
            let n = (&mut self.inner).take(remaining as u64).read_buf(buf).await?;
            if n == 0 {
                return Err(TransportError::TruncatedFrame {
                    received: (HEADER + buf.len()) as u64,
                    expected: (HEADER + len) as u64,
                });
            }
        }
        let ahead = buf.len() - len;
        self.header[..ahead].copy_from_slice(&buf[len..]);
        self.header_filled = ahead;
        buf.truncate(len);
        Ok(Some(out))
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The underlying stream; reading from it directly breaks the frame sequence.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The underlying stream; reading from it directly breaks the frame sequence.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// Writes frames to a byte stream, each in a single write of a reused buffer (prefix and
/// payload together, so one frame is one segment with `TCP_NODELAY`).
///
/// Not cancel-safe: a write dropped halfway leaves a partial frame on the wire; the writer then
/// refuses further frames with `Broken`.
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: W,
    max_frame_size: u32,
    buf: Vec<u8>,
    /// Set while a frame is being written; still set means a write was interrupted.
    writing: bool,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// A writer refusing payloads over `max_frame_size` bytes (so that a peer with the same
    /// limit can read everything sent).
    pub fn new(inner: W, max_frame_size: u32) -> Self {
        FrameWriter { inner, max_frame_size, buf: Vec::new(), writing: false }
    }

    /// The limit on a frame's payload.
    pub fn max_frame_size(&self) -> u32 {
        self.max_frame_size
    }

    /// Changes the limit for the frames written from now on.
    pub fn set_max_frame_size(&mut self, max_frame_size: u32) {
        self.max_frame_size = max_frame_size;
    }

    /// Writes one frame with `payload`.
    pub async fn write_frame(&mut self, payload: &[u8]) -> Result<(), TransportError> {
        self.write_frame_with(|buf| {
            buf.extend_from_slice(payload);
            Ok(())
        })
        .await
    }

    /// Writes one frame whose payload `encode` appends to the buffer it is given (encoding in
    /// place, without a copy). When `encode` fails or the payload is over the limit, nothing is
    /// written and the writer stays usable.
    pub async fn write_frame_with<F>(&mut self, encode: F) -> Result<(), TransportError>
    where
        F: FnOnce(&mut Vec<u8>) -> Result<(), TransportError>,
    {
        if self.writing {
            return Err(TransportError::Broken);
        }
        self.buf.clear();
        self.buf.extend_from_slice(&[0; HEADER]);
        if let Err(e) = encode(&mut self.buf) {
            self.release_large_buffer();
            return Err(e);
        }
        let size = self.buf.len() - HEADER;
        let len = match u32::try_from(size) {
            Ok(len) if len <= self.max_frame_size => len,
            _ => {
                self.release_large_buffer();
                return Err(TransportError::FrameTooLarge { size: size as u64, limit: self.max_frame_size });
            }
        };
        self.buf[..HEADER].copy_from_slice(&len.to_be_bytes());
        self.writing = true;
        self.inner.write_all(&self.buf).await?;
        self.inner.flush().await?;
        self.writing = false;
        if size <= KEEP_CAPACITY {
            self.release_large_buffer();
        }
        Ok(())
    }

    /// Writes one frame prepared by the caller in its own buffer: `frame` starts with
    /// [`FRAME_HEADER`] bytes of room for the length, which are filled here, then the payload
    /// (a frame encoded into a pooled network buffer is sent from there).
    pub async fn write_prepared(&mut self, frame: &mut [u8]) -> Result<(), TransportError> {
        if self.writing {
            return Err(TransportError::Broken);
        }
        let size = frame
            .len()
            .checked_sub(HEADER)
            .ok_or(TransportError::Encode("a frame without room for its header".into()))?;
        let len = match u32::try_from(size) {
            Ok(len) if len <= self.max_frame_size => len,
            _ => return Err(TransportError::FrameTooLarge { size: size as u64, limit: self.max_frame_size }),
        };
        frame[..HEADER].copy_from_slice(&len.to_be_bytes());
        self.writing = true;
        self.inner.write_all(frame).await?;
        self.inner.flush().await?;
        self.writing = false;
        Ok(())
    }

    /// Gives back a buffer grown by a large frame (kept while large frames follow each other).
    fn release_large_buffer(&mut self) {
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf.clear();
            self.buf.shrink_to(KEEP_CAPACITY);
        }
    }

    /// Closes the write direction (TCP: sends FIN), telling the peer no more frames come.
    pub async fn shutdown(&mut self) -> Result<(), TransportError> {
        self.inner.shutdown().await?;
        Ok(())
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The underlying stream; writing to it directly breaks the frame sequence.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The underlying stream.
    pub fn into_inner(self) -> W {
        self.inner
    }
}
