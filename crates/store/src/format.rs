//! The on-disk format, version 1: segment header, record layout, index file,
//! file names. `docs/STORAGE_FORMAT.md` describes the same bytes in prose;
//! the golden-file tests pin them.
//!
//! All integers are little-endian: every platform Strata targets is, so
//! encoding is a plain copy.

use std::ops::Range;

use bytes::Bytes;

use crate::error::Damage;

/// The first eight bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"STRATLOG";
/// The first eight bytes of every index file.
pub const INDEX_MAGIC: [u8; 8] = *b"STRATIDX";
/// The format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Length of the segment header and of the index header.
pub const HEADER_LEN: u64 = 16;
/// Length of one index entry.
pub const INDEX_ENTRY_LEN: usize = 8;

/// The length field's smallest value: crc, offset, timestamp and the three
/// length prefixes of empty topic, properties and payload.
const MIN_BODY_LEN: u32 = 4 + 8 + 8 + 2 + 4 + 4;
/// The smallest record on disk, length field included.
pub const MIN_RECORD_LEN: u64 = 4 + MIN_BODY_LEN as u64;

/// A record to append. The log assigns its offset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewRecord {
    /// Milliseconds since the Unix epoch, chosen by the caller (the broker
    /// stamps the time it received the message). Segment age is measured in
    /// these timestamps.
    pub timestamp: i64,
    /// The topic, opaque to the store (at most 65,535 bytes).
    pub topic: Bytes,
    /// Properties, opaque to the store (the broker encodes MQTT 5 properties).
    pub properties: Bytes,
    /// The payload.
    pub payload: Bytes,
}

impl NewRecord {
    /// The record's size on disk, length field included.
    pub fn encoded_len(&self) -> u64 {
        MIN_RECORD_LEN
            + self.topic.len() as u64
            + self.properties.len() as u64
            + self.payload.len() as u64
    }
}

/// A record read from the log. Its byte fields share the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its position in the log.
    pub offset: u64,
    /// Milliseconds since the Unix epoch, as appended.
    pub timestamp: i64,
    /// The topic, as appended.
    pub topic: Bytes,
    /// The properties, as appended.
    pub properties: Bytes,
    /// The payload, as appended.
    pub payload: Bytes,
}

/// The 16-byte segment header: magic, version, CRC32C of the first 12 bytes.
pub fn segment_header() -> [u8; HEADER_LEN as usize] {
    header(SEGMENT_MAGIC, FORMAT_VERSION, None)
}

fn header(magic: [u8; 8], version: u32, crc: Option<u32>) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&magic);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    let crc = crc.unwrap_or_else(|| crc32c::crc32c(&h[..12]));
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Why a segment header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderError {
    Damaged(Damage),
    Version(u32),
}

/// Checks a segment header: magic, then checksum, then version, so a bit
/// flip in the version field reads as damage and not as a future format.
pub(crate) fn check_segment_header(bytes: &[u8]) -> Result<(), HeaderError> {
    let Some(h) = bytes.get(..HEADER_LEN as usize) else {
        return Err(HeaderError::Damaged(Damage::ShortHeader {
            len: bytes.len() as u64,
        }));
    };
    if h[..8] != SEGMENT_MAGIC {
        return Err(HeaderError::Damaged(Damage::BadMagic));
    }
    if crc32c::crc32c(&h[..12]) != u32_at(h, 12) {
        return Err(HeaderError::Damaged(Damage::HeaderChecksum));
    }
    match u32_at(h, 8) {
        FORMAT_VERSION => Ok(()),
        other => Err(HeaderError::Version(other)),
    }
}

/// A short header that a crash during segment creation can leave: shorter
/// than 16 bytes and either a prefix of the real header or all zeros.
pub(crate) fn is_torn_header(bytes: &[u8]) -> bool {
    let full = segment_header();
    bytes.len() < full.len() && (full.starts_with(bytes) || bytes.iter().all(|&b| b == 0))
}

/// Appends one record at `offset` to `out`. The caller has checked the
/// field sizes (topic ≤ 65,535 bytes, the others ≤ u32::MAX).
pub(crate) fn encode_record(out: &mut Vec<u8>, offset: u64, rec: &NewRecord) {
    let start = out.len();
    let body_len = rec.encoded_len() - 4;
    // Sizes were validated on submit, so these conversions do not saturate.
    out.extend_from_slice(&u32::try_from(body_len).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&rec.timestamp.to_le_bytes());
    let topic_len = u16::try_from(rec.topic.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&topic_len.to_le_bytes());
    out.extend_from_slice(&rec.topic);
    let props_len = u32::try_from(rec.properties.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&props_len.to_le_bytes());
    out.extend_from_slice(&rec.properties);
    let payload_len = u32::try_from(rec.payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&rec.payload);
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Where the fields of one checked record lie, relative to its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub offset: u64,
    pub timestamp: i64,
    pub topic: Range<usize>,
    pub properties: Range<usize>,
    pub payload: Range<usize>,
    /// Total length on disk, length field included.
    pub len: usize,
}

impl Layout {
    /// Builds the record from the buffer the layout was parsed from, which
    /// starts at the record.
    pub fn record(&self, buf: &Bytes) -> Record {
        Record {
            offset: self.offset,
            timestamp: self.timestamp,
            topic: buf.slice(self.topic.clone()),
            properties: buf.slice(self.properties.clone()),
            payload: buf.slice(self.payload.clone()),
        }
    }
}

/// Checks the record at the start of `buf` (which runs to the end of the
/// file or of what was read) and returns where its fields are.
/// `Damage::Incomplete` means the record runs past the end of `buf`.
pub(crate) fn parse_record(buf: &[u8]) -> Result<Layout, Damage> {
    let available = buf.len() as u64;
    if available < 8 {
        return Err(Damage::Incomplete {
            needed: 8,
            available,
        });
    }
    let body_len = u32_at(buf, 0);
    if body_len < MIN_BODY_LEN {
        return Err(Damage::LengthOutOfRange { length: body_len });
    }
    let total = 4 + u64::from(body_len);
    if total > available {
        return Err(Damage::Incomplete {
            needed: total,
            available,
        });
    }
    // total <= buf.len(), so it fits in usize.
    let len = total as usize;
    let rec = &buf[..len];
    let stored = u32_at(rec, 4);
    let computed = crc32c::crc32c(&rec[8..]);
    if stored != computed {
        return Err(Damage::Checksum { stored, computed });
    }
    let offset = u64_at(rec, 8);
    let timestamp = u64_at(rec, 16) as i64;
    let mut pos = 24;
    let topic = field(rec, &mut pos, 2)?;
    let properties = field(rec, &mut pos, 4)?;
    let payload = field(rec, &mut pos, 4)?;
    if pos != len {
        return Err(Damage::Layout);
    }
    Ok(Layout {
        offset,
        timestamp,
        topic,
        properties,
        payload,
        len,
    })
}

/// Reads a length prefix of `width` bytes at `pos` and returns the range of
/// the bytes it announces, advancing `pos` past them.
fn field(rec: &[u8], pos: &mut usize, width: usize) -> Result<Range<usize>, Damage> {
    let prefix = rec.get(*pos..*pos + width).ok_or(Damage::Layout)?;
    let n = match width {
        2 => usize::from(u16::from_le_bytes([prefix[0], prefix[1]])),
        _ => u32_at(prefix, 0) as usize,
    };
    let start = *pos + width;
    let end = start
        .checked_add(n)
        .filter(|&e| e <= rec.len())
        .ok_or(Damage::Layout)?;
    *pos = end;
    Ok(start..end)
}

/// A cheap pre-check used when looking for a valid record after a damaged
/// one: the length fits in `buf` and the offset is in `offsets`. Only then is
/// the CRC worth computing.
pub(crate) fn plausible_record_at(buf: &[u8], offsets: &Range<u64>) -> bool {
    if buf.len() < MIN_RECORD_LEN as usize {
        return false;
    }
    let body_len = u32_at(buf, 0);
    body_len >= MIN_BODY_LEN
        && 4 + u64::from(body_len) <= buf.len() as u64
        && offsets.contains(&u64_at(buf, 8))
}

/// One index entry: a record's offset relative to the segment's base and
/// its byte position in the segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IndexEntry {
    /// Offset minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the record in the segment file.
    pub position: u32,
}

/// Decides which records get an index entry: the first record of a segment,
/// then the first record at least `interval` bytes past the previous entry.
/// Recovery and the writer use the same rule, so a rebuilt index equals the
/// one written at seal time.
#[derive(Debug, Clone)]
pub(crate) struct IndexBuilder {
    interval: u64,
    pub entries: Vec<IndexEntry>,
}

impl IndexBuilder {
    pub fn new(interval: u32) -> IndexBuilder {
        IndexBuilder {
            interval: u64::from(interval.max(1)),
            entries: Vec::new(),
        }
    }

    /// Notes a record at `position` with `relative_offset`. Positions past
    /// 4 GiB cannot be indexed (only a foreign file can have them) and are
    /// skipped: reads then scan.
    pub fn observe(&mut self, relative_offset: u64, position: u64) {
        let due = self
            .entries
            .last()
            .is_none_or(|last| position >= u64::from(last.position) + self.interval);
        if let (true, Ok(relative_offset), Ok(position)) =
            (due, u32::try_from(relative_offset), u32::try_from(position))
        {
            self.entries.push(IndexEntry {
                relative_offset,
                position,
            });
        }
    }
}

/// The last entry at or before `relative_offset`, if any.
pub(crate) fn index_lookup(entries: &[IndexEntry], relative_offset: u64) -> Option<IndexEntry> {
    let n = entries.partition_point(|e| u64::from(e.relative_offset) <= relative_offset);
    n.checked_sub(1).map(|i| entries[i])
}

/// The index file: a 16-byte header (magic `STRATIDX`, version, CRC32C of
/// the entries) followed by the entries.
pub(crate) fn encode_index(entries: &[IndexEntry]) -> Vec<u8> {
    let mut body = Vec::with_capacity(entries.len() * INDEX_ENTRY_LEN);
    for e in entries {
        body.extend_from_slice(&e.relative_offset.to_le_bytes());
        body.extend_from_slice(&e.position.to_le_bytes());
    }
    let mut out = header(INDEX_MAGIC, FORMAT_VERSION, Some(crc32c::crc32c(&body))).to_vec();
    out.extend_from_slice(&body);
    out
}

/// Decodes an index file; `None` when it is damaged in any way, in which
/// case it is rebuilt from the segment.
pub(crate) fn decode_index(bytes: &[u8]) -> Option<Vec<IndexEntry>> {
    let (h, body) = bytes.split_at_checked(HEADER_LEN as usize)?;
    if h[..8] != INDEX_MAGIC
        || u32_at(h, 8) != FORMAT_VERSION
        || body.len() % INDEX_ENTRY_LEN != 0
        || crc32c::crc32c(body) != u32_at(h, 12)
    {
        return None;
    }
    Some(
        body.chunks_exact(INDEX_ENTRY_LEN)
            .map(|c| IndexEntry {
                relative_offset: u32_at(c, 0),
                position: u32_at(c, 4),
            })
            .collect(),
    )
}

/// What a file in the log directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Segment(u64),
    Index(u64),
    Temp,
}

/// `<base-offset:020>.seg`
pub(crate) fn segment_file_name(base: u64) -> String {
    format!("{base:020}.seg")
}

/// `<base-offset:020>.idx`
pub(crate) fn index_file_name(base: u64) -> String {
    format!("{base:020}.idx")
}

/// Suffix of files being written before a rename puts them in place.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// Classifies a file name; `None` for names the log does not own.
pub(crate) fn parse_file_name(name: &str) -> Option<FileKind> {
    if name.ends_with(TEMP_SUFFIX) {
        return Some(FileKind::Temp);
    }
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let base: u64 = stem.parse().ok()?;
    match ext {
        "seg" => Some(FileKind::Segment(base)),
        "idx" => Some(FileKind::Index(base)),
        _ => None,
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(topic: &str, payload: &[u8]) -> NewRecord {
        NewRecord {
            timestamp: 1_700_000_000_000,
            topic: Bytes::copy_from_slice(topic.as_bytes()),
            properties: Bytes::from_static(b"\x01\x02"),
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn record_round_trip() {
        let r = rec("a/b", b"hello");
        let mut buf = Vec::new();
        encode_record(&mut buf, 42, &r);
        assert_eq!(buf.len() as u64, r.encoded_len());
        let buf = Bytes::from(buf);
        let layout = parse_record(&buf).unwrap();
        assert_eq!(layout.len, buf.len());
        let got = layout.record(&buf);
        assert_eq!(got.offset, 42);
        assert_eq!(got.timestamp, r.timestamp);
        assert_eq!(got.topic, r.topic);
        assert_eq!(got.properties, r.properties);
        assert_eq!(got.payload, r.payload);
    }

    #[test]
    fn every_prefix_is_incomplete_and_every_bit_flip_is_caught() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 7, &rec("t", b"payload"));
        for n in 0..buf.len() {
            assert!(
                matches!(
                    parse_record(&buf[..n]),
                    Err(Damage::Incomplete { .. }) | Err(Damage::LengthOutOfRange { .. })
                ),
                "prefix {n}"
            );
        }
        for bit in 0..buf.len() * 8 {
            let mut b = buf.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(parse_record(&b).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn header_checks_in_order() {
        let h = segment_header();
        assert_eq!(check_segment_header(&h), Ok(()));
        let mut v2 = header(SEGMENT_MAGIC, 2, None);
        assert_eq!(check_segment_header(&v2), Err(HeaderError::Version(2)));
        v2[8] ^= 3;
        assert_eq!(
            check_segment_header(&v2),
            Err(HeaderError::Damaged(Damage::HeaderChecksum))
        );
        assert!(is_torn_header(&h[..5]));
        assert!(is_torn_header(&[0; 9]));
        assert!(!is_torn_header(b"STRATLOX"));
    }

    #[test]
    fn index_round_trip_and_rule() {
        let mut b = IndexBuilder::new(100);
        for (i, pos) in [16u64, 60, 116, 150, 300].into_iter().enumerate() {
            b.observe(i as u64, pos);
        }
        let want = [(0, 16), (2, 116), (4, 300)].map(|(r, p)| IndexEntry {
            relative_offset: r,
            position: p,
        });
        assert_eq!(b.entries, want);
        assert_eq!(decode_index(&encode_index(&b.entries)).unwrap(), want);
        assert_eq!(index_lookup(&want, 3), Some(want[1]));
        let mut bad = encode_index(&want);
        bad[20] ^= 1;
        assert_eq!(decode_index(&bad), None);
    }

    #[test]
    fn file_names() {
        assert_eq!(segment_file_name(5), "00000000000000000005.seg");
        assert_eq!(
            parse_file_name("00000000000000000005.seg"),
            Some(FileKind::Segment(5))
        );
        assert_eq!(
            parse_file_name("00000000000000000005.idx"),
            Some(FileKind::Index(5))
        );
        assert_eq!(
            parse_file_name("00000000000000000005.idx.tmp"),
            Some(FileKind::Temp)
        );
        assert_eq!(parse_file_name("99999999999999999999.seg"), None);
        assert_eq!(parse_file_name("5.seg"), None);
        assert_eq!(parse_file_name("notes.txt"), None);
    }
}
