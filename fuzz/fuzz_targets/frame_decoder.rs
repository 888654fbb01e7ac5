//! `FrameDecoder` fed arbitrary bytes in arbitrary chunks, at both sizes, and
//! compared with a reference model of the framing.
//!
//! Input: byte 0 = number of chunk sizes k (mod 16), then k chunk sizes
//! (cycled; 0 means "all the rest"), then the stream.
//!
//! Checked: `consumed` is in 1..=chunk; a returned frame is within the bound
//! and is exactly the stream's next frame; `NeedMore` consumed everything;
//! an error happens exactly when the model's next length prefix is zero or
//! too long; `encode_frame` rebuilds the frame's bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use securecom_core::frame::{encode_frame, Feed, FrameDecoder};
use securecom_core::{FrameError, MAX_FRAME, MAX_NOISE_MESSAGE, MAX_REQUEST_FRAME};

fn run<const N: usize>(sizes: &[u8], stream: &[u8]) {
    let bound = (N - 2).min(MAX_NOISE_MESSAGE);
    let mut d = FrameDecoder::<N>::new();
    // Reference model: the position of the current frame's start.
    let mut start = 0usize;
    let mut pos = 0usize;
    let mut i = 0usize;
    while pos < stream.len() {
        let size = match sizes.get(i % sizes.len().max(1)).copied().unwrap_or(0) {
            0 => stream.len() - pos,
            s => usize::from(s).min(stream.len() - pos),
        };
        i += 1;
        let mut chunk = &stream[pos..pos + size];
        pos += size;
        while !chunk.is_empty() {
            let before = d.pending();
            assert!(before <= N);
            match d.feed(chunk) {
                Ok(Feed::NeedMore) => {
                    assert!(d.frame().is_none(), "NeedMore with a complete frame");
                    assert!(d.pending() <= N);
                    assert_eq!(
                        d.pending(),
                        before + chunk.len(),
                        "NeedMore must take everything"
                    );
                    chunk = &[];
                }
                Ok(Feed::Frame { consumed }) => {
                    assert!(
                        consumed >= 1 && consumed <= chunk.len(),
                        "consumed {consumed} of {}",
                        chunk.len()
                    );
                    let f = d.frame().expect("Frame without a frame");
                    assert!(
                        !f.is_empty() && f.len() <= bound,
                        "frame of {} bytes (bound {bound})",
                        f.len()
                    );
                    // The model: header at `start`, body after it.
                    let n = usize::from(u16::from_be_bytes([stream[start], stream[start + 1]]));
                    assert_eq!(n, f.len());
                    assert_eq!(
                        f,
                        &stream[start + 2..start + 2 + n],
                        "frame differs from the stream"
                    );
                    let mut re = [0u8; MAX_FRAME];
                    let m = encode_frame(f, &mut re).expect("re-encode");
                    assert_eq!(&re[..m], &stream[start..start + 2 + n]);
                    start += 2 + n;
                    // The frame ends exactly where the model says.
                    assert_eq!(start, pos - chunk.len() + consumed);
                    d.clear();
                    assert_eq!(d.pending(), 0);
                    chunk = &chunk[consumed..];
                }
                Err(e) => {
                    assert_eq!(e, FrameError::BadLength);
                    // The model agrees: the header is complete and bad.
                    assert!(start + 2 <= stream.len(), "error before a whole header");
                    let n = usize::from(u16::from_be_bytes([stream[start], stream[start + 1]]));
                    assert!(n == 0 || n > bound, "rejected a good length {n}");
                    return;
                }
            }
        }
    }
    // Whatever is pending is the model's unfinished frame.
    assert_eq!(d.pending(), stream.len() - start);
    if stream.len() - start >= 2 {
        let n = usize::from(u16::from_be_bytes([stream[start], stream[start + 1]]));
        assert!(n >= 1 && n <= bound && stream.len() - start < 2 + n);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    let k = usize::from(k % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(k);
    run::<MAX_FRAME>(sizes, stream);
    run::<MAX_REQUEST_FRAME>(sizes, stream);
    // Once the header is known to be bad, a decoder stays in error.
    let mut d = FrameDecoder::<MAX_REQUEST_FRAME>::new();
    if stream.len() >= 2 && d.feed(&stream[..2]).is_err() {
        assert!(d.feed(b"x").is_err());
        d.clear();
        assert_eq!(d.pending(), 0);
    }
});
