//! A bounds-checked writer into a fixed buffer (crate-internal).

/// Appends byte strings to a fixed buffer, never past its end.
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Writer<'a> {
    /// An empty writer over `buf`.
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, len: 0 }
    }

    /// Appends `bytes`; `None`, with nothing written, when they do not fit.
    #[must_use]
    pub(crate) fn put(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.len.checked_add(bytes.len())?;
        self.buf.get_mut(self.len..end)?.copy_from_slice(bytes);
        self.len = end;
        Some(())
    }

    /// Everything written, for as long as the underlying buffer lives.
    pub(crate) fn into_written(self) -> &'a [u8] {
        let Writer { buf, len } = self;
        let buf: &'a [u8] = buf;
        buf.get(..len).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_or_nothing() {
        let mut buf = [0u8; 5];
        let mut w = Writer::new(&mut buf);
        assert_eq!(w.put(b"abc"), Some(()));
        assert_eq!(w.put(b"def"), None);
        assert_eq!(w.put(b"de"), Some(()));
        assert_eq!(w.into_written(), b"abcde");
    }
}
