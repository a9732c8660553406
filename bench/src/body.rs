//! Response and request bodies that repeat one chunk, so hundreds of MiB stream without
//! being held in memory.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Chunk size of streamed bodies: 64 KiB, a common socket buffer size.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// A body of `prefix`, then `chunk` repeated, then `suffix`, with an exact length.
#[derive(Debug)]
pub struct RepeatBody {
    prefix: Option<Bytes>,
    chunk: Bytes,
    chunks_left: u64,
    suffix: Option<Bytes>,
    bytes_left: u64,
}

impl RepeatBody {
    /// A body of at least `min_bytes`: as many whole chunks as needed between the prefix
    /// and the suffix.
    pub fn new(prefix: Bytes, chunk: Bytes, suffix: Bytes, min_bytes: u64) -> RepeatBody {
        let fixed = (prefix.len() + suffix.len()) as u64;
        let chunk_len = chunk.len().max(1) as u64;
        let chunks_left = min_bytes.saturating_sub(fixed).div_ceil(chunk_len);
        let bytes_left = fixed + chunks_left * chunk.len() as u64;
        RepeatBody {
            prefix: Some(prefix),
            chunk,
            chunks_left,
            suffix: Some(suffix),
            bytes_left,
        }
    }

    /// A body of `bytes` bytes of JSON-safe filler, for uploads.
    pub fn filler(bytes: u64) -> RepeatBody {
        let chunk = Bytes::from(vec![b'x'; CHUNK_BYTES]);
        let whole = bytes / CHUNK_BYTES as u64;
        let rest = (bytes % CHUNK_BYTES as u64) as usize;
        RepeatBody {
            prefix: None,
            chunk: chunk.clone(),
            chunks_left: whole,
            suffix: (rest > 0).then(|| chunk.slice(..rest)),
            bytes_left: bytes,
        }
    }

    fn next_data(&mut self) -> Option<Bytes> {
        if let Some(prefix) = self.prefix.take() {
            return Some(prefix);
        }
        if self.chunks_left > 0 {
            self.chunks_left -= 1;
            return Some(self.chunk.clone());
        }
        self.suffix.take()
    }
}

impl Body for RepeatBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = loop {
            match self.next_data() {
                Some(data) if data.is_empty() => continue,
                other => break other,
            }
        };
        if let Some(data) = &next {
            self.bytes_left -= data.len() as u64;
        }
        Poll::Ready(next.map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.bytes_left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.bytes_left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn repeat_body_length_matches_hint() {
        let body = RepeatBody::new(
            Bytes::from_static(b"["),
            Bytes::from_static(b"{},"),
            Bytes::from_static(b"{}]"),
            10,
        );
        let hint = body.size_hint().exact();
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(hint, Some(bytes.len() as u64));
        assert_eq!(&bytes[..], b"[{},{},{}]");
    }

    #[tokio::test]
    async fn filler_has_exact_length() {
        let bytes = RepeatBody::filler(CHUNK_BYTES as u64 * 2 + 7)
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(bytes.len(), CHUNK_BYTES * 2 + 7);
    }
}
