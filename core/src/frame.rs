//! Framing: every Noise message travels as a big-endian `u16` length and the bytes.
//!
//! [`FrameDecoder`] is an accumulator for partial reads in the style of
//! postcard's `CobsAccumulator`: feed it whatever the socket gave, it says how
//! much it consumed and whether a whole frame is ready.

use crate::error::FrameError;
use crate::limits::{FRAME_HEADER, MAX_FRAME, MAX_NOISE_MESSAGE};

/// Writes a frame carrying `payload` into `out`; returns the frame's length.
///
/// `out` is left untouched when it is too small.
pub fn encode_frame(payload: &[u8], out: &mut [u8]) -> Result<usize, FrameError> {
    if payload.is_empty() || payload.len() > MAX_NOISE_MESSAGE {
        return Err(FrameError::BadLength);
    }
    // Bounded by MAX_NOISE_MESSAGE above, which fits a u16 (checked in `limits`).
    let len = u16::try_from(payload.len()).map_err(|_| FrameError::BadLength)?;
    let total = payload
        .len()
        .checked_add(FRAME_HEADER)
        .ok_or(FrameError::BadLength)?;
    let out = out.get_mut(..total).ok_or(FrameError::BufferTooSmall)?;
    let (header, body) = out
        .split_first_chunk_mut::<FRAME_HEADER>()
        .ok_or(FrameError::BufferTooSmall)?;
    *header = len.to_be_bytes();
    body.copy_from_slice(payload);
    Ok(total)
}

/// Result of [`FrameDecoder::feed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feed {
    /// All input was consumed and no frame is complete yet.
    NeedMore,
    /// A frame is complete; `consumed` bytes of the input were used. Read it
    /// with [`FrameDecoder::frame`] before feeding again.
    Frame {
        /// Bytes of the input used to complete the frame.
        consumed: usize,
    },
}

/// Accumulates bytes until one whole frame of at most `N` bytes (header
/// included) is present; longer length prefixes are errors.
#[derive(Clone)]
pub struct FrameDecoder<const N: usize = MAX_FRAME> {
    buf: [u8; N],
    len: usize,
    limit: usize,
}

impl<const N: usize> Default for FrameDecoder<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> FrameDecoder<N> {
    /// An empty decoder.
    pub const fn new() -> Self {
        FrameDecoder {
            buf: [0; N],
            len: 0,
            limit: N,
        }
    }

    /// Lowers the largest frame accepted (header included) below `N`, e.g.
    /// to a server's configured maximum; values above `N` are capped at `N`.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.min(N);
    }

    /// Length the current frame will have in total, once its header is known.
    fn expected(&self) -> Result<Option<usize>, FrameError> {
        let Some(&header) = self
            .buf
            .get(..self.len)
            .and_then(<[u8]>::first_chunk::<FRAME_HEADER>)
        else {
            return Ok(None);
        };
        let n = usize::from(u16::from_be_bytes(header));
        match n.checked_add(FRAME_HEADER) {
            Some(total) if n != 0 && total <= self.limit && n <= MAX_NOISE_MESSAGE => {
                Ok(Some(total))
            }
            _ => Err(FrameError::BadLength),
        }
    }

    /// Takes bytes from `input` up to the end of the next frame.
    ///
    /// A frame already complete must be taken with [`Self::frame`] and released
    /// with [`Self::clear`] first (feeding again clears it).
    pub fn feed(&mut self, input: &[u8]) -> Result<Feed, FrameError> {
        if matches!(self.expected(), Ok(Some(total)) if self.len == total) {
            self.clear();
        }
        let mut rest = input;
        // Header first, then exactly the announced body: never past the frame.
        while !rest.is_empty() {
            let want = self.expected()?.unwrap_or(FRAME_HEADER);
            // `self.len <= want <= self.limit <= N`: the part of the frame still missing.
            let missing = self
                .buf
                .get_mut(self.len..want)
                .ok_or(FrameError::BadLength)?;
            let take = missing.len().min(rest.len());
            let (src, tail) = rest.split_at_checked(take).ok_or(FrameError::BadLength)?;
            missing
                .get_mut(..take)
                .ok_or(FrameError::BadLength)?
                .copy_from_slice(src);
            rest = tail;
            self.len = self.len.checked_add(take).ok_or(FrameError::BadLength)?;
            if let Some(total) = self.expected()? {
                if self.len == total {
                    return Ok(Feed::Frame {
                        // `rest` is a suffix of `input`.
                        consumed: input.len().saturating_sub(rest.len()),
                    });
                }
            }
        }
        Ok(Feed::NeedMore)
    }

    /// The complete frame's Noise message, if one is ready.
    pub fn frame(&self) -> Option<&[u8]> {
        match self.expected() {
            Ok(Some(total)) if self.len == total => self.buf.get(FRAME_HEADER..total),
            _ => None,
        }
    }

    /// The complete frame's Noise message, mutable (to open it in place).
    pub fn frame_mut(&mut self) -> Option<&mut [u8]> {
        match self.expected() {
            Ok(Some(total)) if self.len == total => self.buf.get_mut(FRAME_HEADER..total),
            _ => None,
        }
    }

    /// Forgets the current frame (or partial frame).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Bytes held for a frame not yet complete (0 when idle).
    pub fn pending(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_split_anywhere() {
        let mut wire = [0u8; 64];
        let n = encode_frame(b"hello", &mut wire).unwrap();
        let m = encode_frame(b"world!", &mut wire[n..]).unwrap();
        let wire = &wire[..n + m];
        for split in 0..wire.len() {
            let mut d = FrameDecoder::<MAX_FRAME>::new();
            let mut got = [[0u8; 8]; 2];
            let mut lens = [0; 2];
            let mut count = 0;
            for chunk in [&wire[..split], &wire[split..]] {
                let mut rest = chunk;
                while !rest.is_empty() {
                    match d.feed(rest).unwrap() {
                        Feed::NeedMore => rest = &[],
                        Feed::Frame { consumed } => {
                            let f = d.frame().unwrap();
                            got[count][..f.len()].copy_from_slice(f);
                            lens[count] = f.len();
                            count += 1;
                            d.clear();
                            rest = &rest[consumed..];
                        }
                    }
                }
            }
            assert_eq!(count, 2, "split at {split}");
            assert_eq!(&got[0][..lens[0]], b"hello");
            assert_eq!(&got[1][..lens[1]], b"world!");
        }
    }

    #[test]
    fn rejects_oversize_and_zero_length() {
        let mut d = FrameDecoder::<MAX_FRAME>::new();
        assert_eq!(d.feed(&[0xff, 0xff]), Err(FrameError::BadLength));
        let mut d = FrameDecoder::<MAX_FRAME>::new();
        assert_eq!(d.feed(&[0, 0]), Err(FrameError::BadLength));
        let big = [0u8; MAX_NOISE_MESSAGE + 1];
        assert_eq!(
            encode_frame(&big, &mut [0u8; 2048]),
            Err(FrameError::BadLength)
        );
    }

    #[test]
    fn configured_limit() {
        let mut d = FrameDecoder::<MAX_FRAME>::new();
        d.set_limit(10);
        assert_eq!(d.feed(&[0, 9]), Err(FrameError::BadLength));
        let mut d = FrameDecoder::<MAX_FRAME>::new();
        d.set_limit(10);
        assert_eq!(
            d.feed(&[0, 8, 1, 2, 3, 4, 5, 6, 7, 8]),
            Ok(Feed::Frame { consumed: 10 })
        );
    }

    #[test]
    fn small_output_untouched() {
        let mut out = [7u8; 4];
        assert_eq!(
            encode_frame(b"hello", &mut out),
            Err(FrameError::BufferTooSmall)
        );
        assert_eq!(out, [7u8; 4]);
    }

    #[test]
    fn golden_bytes() {
        let mut out = [0u8; 8];
        let n = encode_frame(&[0xaa, 0xbb, 0xcc], &mut out).unwrap();
        assert_eq!(&out[..n], &[0x00, 0x03, 0xaa, 0xbb, 0xcc]);
    }
}
