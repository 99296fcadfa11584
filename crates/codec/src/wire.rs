//! The primitive data types of section 1.5: bits, two- and four-byte
//! integers, Variable Byte Integers, UTF-8 strings, binary data and string
//! pairs; read from a frame that has already been cut out of the stream.

use bytes::Bytes;

use crate::MAX_REMAINING_LENGTH;
use crate::error::{EncodeError, ErrorKind};
use crate::string::MqttStr;

/// A cursor over the body of one packet. Reads never go past its end: a field
/// that would is [`ErrorKind::Truncated`].
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Reader {
        Reader { buf }
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The unread bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// The next byte, not consumed.
    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.buf.first().copied()
    }

    #[inline]
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ErrorKind> {
        let b = *self.buf.first().ok_or(ErrorKind::Truncated { field })?;
        self.advance(1);
        Ok(b)
    }

    #[inline]
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, ErrorKind> {
        match *self.buf {
            [a, b, ..] => {
                self.advance(2);
                Ok(u16::from_be_bytes([a, b]))
            }
            _ => Err(ErrorKind::Truncated { field }),
        }
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ErrorKind> {
        match *self.buf {
            [a, b, c, d, ..] => {
                self.advance(4);
                Ok(u32::from_be_bytes([a, b, c, d]))
            }
            _ => Err(ErrorKind::Truncated { field }),
        }
    }

    #[inline]
    pub(crate) fn var_int(&mut self, field: &'static str) -> Result<u32, ErrorKind> {
        match read_var_int(&self.buf, field)? {
            Some((v, n)) => {
                self.advance(n);
                Ok(v)
            }
            None => Err(ErrorKind::Truncated { field }),
        }
    }

    /// `n` bytes, shared with the frame.
    #[inline]
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<Bytes, ErrorKind> {
        if n > self.buf.len() {
            return Err(ErrorKind::Truncated { field });
        }
        Ok(self.buf.split_to(n))
    }

    /// Binary Data: a two-byte length and that many bytes (section 1.5.6).
    #[inline]
    pub(crate) fn binary(&mut self, field: &'static str) -> Result<Bytes, ErrorKind> {
        let n = self.u16(field)? as usize;
        self.take(n, field)
    }

    /// A UTF-8 Encoded String (section 1.5.4).
    #[inline]
    pub(crate) fn string(&mut self, field: &'static str) -> Result<MqttStr, ErrorKind> {
        let raw = self.binary(field)?;
        MqttStr::from_bytes(raw).map_err(|e| ErrorKind::from_utf8(e, field))
    }

    /// A UTF-8 Encoded String and whether it contains `+` or `#`.
    #[inline]
    pub(crate) fn string_scan(
        &mut self,
        field: &'static str,
    ) -> Result<(MqttStr, bool), ErrorKind> {
        let raw = self.binary(field)?;
        MqttStr::from_bytes_scan(raw).map_err(|e| ErrorKind::from_utf8(e, field))
    }

    /// The rest of the frame.
    #[inline]
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Splits off the next `n` bytes as a reader of their own.
    pub(crate) fn sub(&mut self, n: usize, field: &'static str) -> Result<Reader, ErrorKind> {
        Ok(Reader::new(self.take(n, field)?))
    }

    /// Fails unless every byte was consumed.
    #[inline]
    pub(crate) fn finish(&self) -> Result<(), ErrorKind> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(ErrorKind::TrailingBytes {
                count: self.buf.len(),
            })
        }
    }

    #[inline]
    fn advance(&mut self, n: usize) {
        bytes::Buf::advance(&mut self.buf, n);
    }
}

/// Writes into a slice sized exactly for one packet. The encoder measures
/// every packet first, so writes are plain copies with no growth checks
/// (`BytesMut::put_*` checks capacity on every call, which dominated small
/// fields). A write past the end panics: it would be a sizing bug.
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Writer<'a> {
        Writer { buf, pos: 0 }
    }

    pub(crate) fn written(&self) -> usize {
        self.pos
    }

    #[inline]
    pub(crate) fn put_slice(&mut self, data: &[u8]) {
        let end = self.pos + data.len();
        self.buf[self.pos..end].copy_from_slice(data);
        self.pos = end;
    }

    #[inline]
    pub(crate) fn put_u8(&mut self, v: u8) {
        self.buf[self.pos] = v;
        self.pos += 1;
    }

    #[inline]
    pub(crate) fn put_u16(&mut self, v: u16) {
        self.put_slice(&v.to_be_bytes());
    }

    #[inline]
    pub(crate) fn put_u32(&mut self, v: u32) {
        self.put_slice(&v.to_be_bytes());
    }
}

/// Reads a Variable Byte Integer from the front of `buf`: `Ok(None)` if `buf`
/// ends before it does, otherwise the value and how many bytes it took.
/// Encodings longer than four bytes and non-minimal encodings [MQTT-1.5.5-1]
/// are rejected.
#[inline]
pub(crate) fn read_var_int(
    buf: &[u8],
    field: &'static str,
) -> Result<Option<(u32, usize)>, ErrorKind> {
    let mut value: u32 = 0;
    for (i, &b) in buf.iter().enumerate() {
        if i == 4 {
            return Err(ErrorKind::VarIntTooLong { field });
        }
        value |= u32::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            // A last byte of zero after a continuation means a shorter
            // encoding existed.
            if b == 0 && i > 0 {
                return Err(ErrorKind::VarIntNotMinimal { field });
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 4 {
        return Err(ErrorKind::VarIntTooLong { field });
    }
    Ok(None)
}

/// How many bytes the Variable Byte Integer encoding of `v` takes.
#[inline]
pub(crate) fn var_int_len(v: usize) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Checks that `v` fits a Variable Byte Integer.
#[inline]
pub(crate) fn check_var_int(v: usize, field: &'static str) -> Result<usize, EncodeError> {
    if v > MAX_REMAINING_LENGTH {
        return Err(EncodeError::VarIntTooLarge { field, value: v });
    }
    Ok(var_int_len(v))
}

#[inline]
pub(crate) fn put_var_int(out: &mut Writer<'_>, mut v: usize) {
    loop {
        let mut b = (v & 0x7F) as u8;
        v >>= 7;
        if v > 0 {
            b |= 0x80;
        }
        out.put_u8(b);
        if v == 0 {
            return;
        }
    }
}

/// The encoded size of a string or binary field: two length bytes and the
/// data, which may be at most 65535 bytes.
#[inline]
pub(crate) fn field_len(data: &[u8], field: &'static str) -> Result<usize, EncodeError> {
    if data.len() > usize::from(u16::MAX) {
        return Err(EncodeError::TooLong {
            field,
            len: data.len(),
        });
    }
    Ok(2 + data.len())
}

/// Writes a string or binary field. The length was checked by [`field_len`].
#[inline]
pub(crate) fn put_field(out: &mut Writer<'_>, data: &[u8]) {
    out.put_u16(data.len() as u16);
    out.put_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_int_boundaries() {
        // The table of section 1.5.5.
        let cases: &[(usize, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xFF, 0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ];
        for &(v, enc) in cases {
            let mut buf = [0u8; 4];
            let mut out = Writer::new(&mut buf);
            put_var_int(&mut out, v);
            let n = out.written();
            assert_eq!(&buf[..n], enc, "encoding {v}");
            assert_eq!(var_int_len(v), enc.len());
            assert_eq!(read_var_int(enc, "x").unwrap(), Some((v as u32, enc.len())));
            assert_eq!(read_var_int(&enc[..enc.len() - 1], "x").unwrap(), None);
        }
    }

    #[test]
    fn var_int_rejects_five_bytes_and_non_minimal() {
        assert_eq!(
            read_var_int(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01], "x"),
            Err(ErrorKind::VarIntTooLong { field: "x" })
        );
        assert_eq!(
            read_var_int(&[0xFF, 0xFF, 0xFF, 0xFF], "x"),
            Err(ErrorKind::VarIntTooLong { field: "x" })
        );
        assert_eq!(
            read_var_int(&[0x80, 0x00], "x"),
            Err(ErrorKind::VarIntNotMinimal { field: "x" })
        );
        assert!(check_var_int(268_435_456, "x").is_err());
    }
}
