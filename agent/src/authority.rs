//! Interoperability with gRPC clients that send a socket path as the HTTP/2 `:authority`.
//!
//! gRPC's C core (Python, C++, Ruby, C# Grpc.Core) since 1.57 sends the percent-encoded socket
//! path (`%2Ftmp%2Faws.iot…sock`) as the `:authority` of calls over a Unix socket, and grpc-java
//! and grpc-swift send the raw path. Neither is a valid HTTP/2 authority, and the HTTP/2 server
//! under tonic (h2) resets such streams with PROTOCOL_ERROR, so factory applications written
//! against the original agent would fail on every call (hyperium/h2#487, grpc/grpc#38142).
//!
//! The agent therefore rewrites the client-to-agent byte stream of each connection: header
//! blocks (HEADERS and CONTINUATION frames) are decoded with the connection's HPACK state, an
//! invalid `:authority` becomes `localhost` (on a Unix socket there is no other host), and the
//! block is encoded again with the agent-side HPACK state; every other frame passes unchanged
//! (DATA payloads are forwarded as they arrive, without waiting for whole frames).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client connection preface.
const PREFACE_LEN: usize = 24;
/// Frame types and flags used here (RFC 9113 §6).
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The frame size every HTTP/2 peer accepts.
const MAX_FRAME: usize = 16_384;

/// A header block being collected (HEADERS, then CONTINUATIONs).
struct Block {
    stream: u32,
    flags: u8,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
}

/// The client-to-server half of one connection, rewritten.
pub struct Rewriter {
    preface_left: usize,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Payload bytes of the current non-header frame still to forward as they come.
    passthrough: usize,
    block: Option<Block>,
    decoder: fluke_hpack::Decoder<'static>,
    encoder: fluke_hpack::Encoder<'static>,
}

impl Default for Rewriter {
    fn default() -> Self {
        Self::new()
    }
}

fn frame_header(len: usize, kind: u8, flags: u8, stream: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
}

fn invalid(m: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m)
}

impl Rewriter {
    /// A connection's rewriter, before the preface.
    pub fn new() -> Self {
        Rewriter {
            preface_left: PREFACE_LEN,
            input: Vec::new(),
            output: Vec::new(),
            passthrough: 0,
            block: None,
            decoder: fluke_hpack::Decoder::new(),
            encoder: fluke_hpack::Encoder::new(),
        }
    }

    /// Bytes of a non-header frame's payload that may be forwarded untouched right now.
    pub fn passthrough(&self) -> usize {
        if self.output.is_empty() && self.input.is_empty() {
            self.passthrough
        } else {
            0
        }
    }

    /// Records that `n` passthrough bytes were forwarded directly.
    pub fn passed(&mut self, n: usize) {
        self.passthrough -= n;
    }

    /// Moves rewritten bytes into `out` (as many as fit); returns how many.
    pub fn take_into(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.output.len());
        out[..n].copy_from_slice(&self.output[..n]);
        self.output.drain(..n);
        n
    }

    /// Whether rewritten bytes are waiting.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// Feeds bytes read from the client.
    pub fn feed(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.input.extend_from_slice(bytes);
        loop {
            if self.preface_left > 0 {
                let n = self.preface_left.min(self.input.len());
                self.output.extend(self.input.drain(..n));
                self.preface_left -= n;
                if self.preface_left > 0 {
                    return Ok(());
                }
            }
            if self.passthrough > 0 {
                let n = self.passthrough.min(self.input.len());
                self.output.extend(self.input.drain(..n));
                self.passthrough -= n;
                if self.passthrough > 0 {
                    return Ok(());
                }
            }
            if self.input.len() < 9 {
                return Ok(());
            }
            let len = u32::from_be_bytes([0, self.input[0], self.input[1], self.input[2]]) as usize;
            let (kind, flags) = (self.input[3], self.input[4]);
            let stream = u32::from_be_bytes([self.input[5], self.input[6], self.input[7], self.input[8]]) & 0x7fff_ffff;
            if kind != HEADERS && kind != CONTINUATION {
                if self.block.is_some() {
                    return Err(invalid(format!("frame type {kind} inside a header block")));
                }
                self.output.extend(self.input.drain(..9));
                self.passthrough = len;
                continue;
            }
            if self.input.len() < 9 + len {
                return Ok(());
            }
            let payload: Vec<u8> = self.input.drain(..9 + len).skip(9).collect();
            self.header_frame(kind, flags, stream, payload)?;
        }
    }

    fn header_frame(&mut self, kind: u8, flags: u8, stream: u32, payload: Vec<u8>) -> io::Result<()> {
        match (kind, self.block.as_mut()) {
            (HEADERS, None) => {
                let mut p = &payload[..];
                if flags & PADDED != 0 {
                    let pad = *p.first().ok_or_else(|| invalid("empty padded HEADERS".into()))? as usize;
                    if pad + 1 > p.len() {
                        return Err(invalid("HEADERS padding longer than the frame".into()));
                    }
                    p = &p[1..p.len() - pad];
                }
                let priority = if flags & PRIORITY != 0 {
                    let head: [u8; 5] = p
                        .get(..5)
                        .and_then(|s| s.try_into().ok())
                        .ok_or_else(|| invalid("short HEADERS priority".into()))?;
                    p = &p[5..];
                    Some(head)
                } else {
                    None
                };
                self.block = Some(Block { stream, flags, priority, fragment: p.to_vec() });
            }
            (CONTINUATION, Some(b)) if b.stream == stream => b.fragment.extend_from_slice(&payload),
            _ => return Err(invalid(format!("unexpected header frame (type {kind}) on stream {stream}"))),
        }
        if flags & END_HEADERS != 0 {
            let b = self.block.take().expect("a block is open");
            self.emit(b)?;
        }
        Ok(())
    }

    fn emit(&mut self, b: Block) -> io::Result<()> {
        let headers = self.decoder.decode(&b.fragment).map_err(|e| invalid(format!("HPACK: {e:?}")))?;
        let fixed: Vec<(Vec<u8>, Vec<u8>)> = headers
            .into_iter()
            .map(|(name, value)| {
                if name == b":authority" && http::uri::Authority::try_from(value.as_slice()).is_err() {
                    (name, b"localhost".to_vec())
                } else {
                    (name, value)
                }
            })
            .collect();
        let mut block = Vec::new();
        if let Some(p) = b.priority {
            block.extend_from_slice(&p);
        }
        block.extend(self.encoder.encode(fixed.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))));
        let keep = b.flags & (END_STREAM | PRIORITY);
        let mut chunks = block.chunks(MAX_FRAME).peekable();
        let mut first = true;
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            let kind = if first { HEADERS } else { CONTINUATION };
            let flags = if first { keep } else { 0 } | if last { END_HEADERS } else { 0 };
            frame_header(chunk.len(), kind, flags, b.stream, &mut self.output);
            self.output.extend_from_slice(chunk);
            first = false;
        }
        Ok(())
    }
}

/// A connection whose inbound bytes go through a [`Rewriter`].
pub struct Fixed<S> {
    inner: S,
    rewriter: Rewriter,
}

impl<S> Fixed<S> {
    /// Wraps an accepted connection.
    pub fn new(inner: S) -> Self {
        Fixed { inner, rewriter: Rewriter::new() }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Fixed<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.rewriter.has_output() {
                let want = this.rewriter.output.len().min(buf.remaining());
                let n = this.rewriter.take_into(buf.initialize_unfilled_to(want));
                buf.advance(n);
                return Poll::Ready(Ok(()));
            }
            // A DATA payload (or any frame the rewrite leaves alone) goes straight through.
            let direct = this.rewriter.passthrough().min(buf.remaining());
            if direct > 0 {
                let mut limited = buf.take(direct);
                std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
                let n = limited.filled().len();
                // SAFETY: `limited` wrote `n` initialized bytes into `buf`'s unfilled part.
                unsafe { buf.assume_init(n) };
                buf.advance(n);
                this.rewriter.passed(n);
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                return Poll::Ready(Ok(())); // end of stream
            }
            this.rewriter.feed(read.filled())?;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Fixed<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for Fixed<S> {
    type ConnectInfo = S::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frames(bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut b = bytes;
        while !b.is_empty() {
            let len = u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize;
            let stream = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
            out.push((b[3], b[4], stream, b[9..9 + len].to_vec()));
            b = &b[9 + len..];
        }
        out
    }

    fn request(enc: &mut fluke_hpack::Encoder<'_>, authority: &[u8], path: &[u8]) -> Vec<u8> {
        enc.encode([
            (&b":method"[..], &b"POST"[..]),
            (b":scheme", b"http"),
            (b":path", path),
            (b":authority", authority),
            (b"content-type", b"application/grpc"),
        ])
    }

    fn run(stream: &[u8], chunk: usize) -> Vec<u8> {
        let mut r = Rewriter::new();
        let mut out = Vec::new();
        for c in stream.chunks(chunk) {
            r.feed(c).unwrap();
            // Drained in small pieces, as a reader with a small buffer would.
            let mut piece = [0u8; 5];
            while r.has_output() {
                let n = r.take_into(&mut piece);
                out.extend_from_slice(&piece[..n]);
            }
        }
        assert!(!r.has_output());
        out
    }

    #[test]
    fn socket_path_authorities_become_localhost_and_everything_else_passes() {
        let mut enc = fluke_hpack::Encoder::new();
        let mut client = PREFACE.to_vec();
        frame_header(0, 0x4, 0, 0, &mut client); // SETTINGS
                                                 // Stream 1: percent-encoded path, one HEADERS frame, padded, with priority.
        let block = request(&mut enc, b"%2Ftmp%2Fagent.sock", b"/AWS.LookoutVision.EdgeAgent/ListModels");
        let mut payload = vec![3u8, 0, 0, 0, 0, 16];
        payload.extend_from_slice(&block);
        payload.extend_from_slice(&[0, 0, 0]);
        frame_header(payload.len(), HEADERS, END_HEADERS | PADDED | PRIORITY, 1, &mut client);
        client.extend_from_slice(&payload);
        frame_header(5, 0x0, END_STREAM, 1, &mut client); // DATA
        client.extend_from_slice(b"hello");
        // Stream 3: the raw path (indexed from the dynamic table now), split over CONTINUATION.
        let block = request(&mut enc, b"/tmp/agent.sock", b"/AWS.LookoutVision.EdgeAgent/StartModel");
        let (a, b) = block.split_at(block.len() / 2);
        frame_header(a.len(), HEADERS, 0, 3, &mut client);
        client.extend_from_slice(a);
        frame_header(b.len(), CONTINUATION, END_HEADERS, 3, &mut client);
        client.extend_from_slice(b);
        // Stream 5: a valid authority is left as it is.
        let block = request(&mut enc, b"localhost:50051", b"/x");
        frame_header(block.len(), HEADERS, END_HEADERS | END_STREAM, 5, &mut client);
        client.extend_from_slice(&block);

        for chunk in [1, 7, 4096] {
            let out = run(&client, chunk);
            assert_eq!(&out[..24], PREFACE);
            let f = frames(&out[24..]);
            let kinds: Vec<(u8, u8, u32)> = f.iter().map(|x| (x.0, x.1, x.2)).collect();
            assert_eq!(
                kinds,
                [
                    (0x4, 0, 0),
                    (HEADERS, END_HEADERS | PRIORITY, 1),
                    (0x0, END_STREAM, 1),
                    (HEADERS, END_HEADERS, 3),
                    (HEADERS, END_HEADERS | END_STREAM, 5)
                ]
            );
            assert_eq!(f[1].3[..5], [0, 0, 0, 0, 16], "priority kept");
            assert_eq!(f[2].3, b"hello");
            let mut dec = fluke_hpack::Decoder::new();
            let authority = |h: Vec<(Vec<u8>, Vec<u8>)>| h.into_iter().find(|(n, _)| n == b":authority").unwrap().1;
            let h1 = dec.decode(&f[1].3[5..]).unwrap();
            assert_eq!(authority(h1.clone()), b"localhost");
            assert_eq!(h1[2].1, b"/AWS.LookoutVision.EdgeAgent/ListModels");
            assert_eq!(authority(dec.decode(&f[3].3).unwrap()), b"localhost");
            assert_eq!(authority(dec.decode(&f[4].3).unwrap()), b"localhost:50051");
        }
    }

    #[test]
    fn broken_header_blocks_end_the_connection() {
        let mut bad = PREFACE.to_vec();
        frame_header(3, HEADERS, END_HEADERS, 1, &mut bad);
        bad.extend_from_slice(&[0xff, 0xff, 0xff]);
        assert!(Rewriter::new().feed(&bad).is_err());
        let mut stray = PREFACE.to_vec();
        frame_header(1, CONTINUATION, END_HEADERS, 1, &mut stray);
        stray.push(0x82);
        assert!(Rewriter::new().feed(&stray).is_err());
    }
}
