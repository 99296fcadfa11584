//! A cursor over DER elements (X.690), enough for certificates and
//! public keys: single-byte tags, definite lengths of up to four bytes.
//! Shared by the broker (client-certificate identities) and by `jwt` (PEM
//! public keys).

/// A cursor over DER elements: each read takes one element off the front
/// and returns its contents.
#[derive(Debug, Clone, Copy)]
pub struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// What is left unread.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The contents of the next element, if it has tag `tag`.
    pub fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (found, contents) = self.next()?;
        (found == tag).then_some(contents)
    }

    /// Skips the next element if it has tag `tag` (an OPTIONAL or DEFAULT
    /// field); `None` if it has but cannot be read.
    pub fn skip_if(&mut self, tag: u8) -> Option<()> {
        if self.peek_tag() == Some(tag) {
            self.next()?;
        }
        Some(())
    }
}

impl<'a> Iterator for Der<'a> {
    type Item = (u8, &'a [u8]);

    /// The next element's tag and contents; `None` if it is not there
    /// whole, or uses an encoding DER does not allow or a certificate does
    /// not need: tag numbers over 30 (two or more tag bytes), indefinite
    /// lengths, lengths of more than 4 bytes.
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.rest.split_first()?;
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = match first {
            0..=0x7f => (usize::from(first), rest),
            0x81..=0x84 => {
                let (len, rest) = rest.split_at_checked(usize::from(first & 0x7f))?;
                let len = len.iter().fold(0u32, |n, &b| (n << 8) | u32::from(b));
                (usize::try_from(len).ok()?, rest)
            }
            _ => return None,
        };
        let (contents, rest) = rest.split_at_checked(len)?;
        self.rest = rest;
        Some((tag, contents))
    }
}
