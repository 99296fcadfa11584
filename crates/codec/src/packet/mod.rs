//! The control packets (section 3), the fixed header (section 2.1), and the
//! decode / encode entry points.

mod ack;
mod connect;
mod control;
mod publish;
mod subscribe;

pub use ack::{PubAck, PubComp, PubRec, PubRel, PubResponse};
pub use connect::{ConnAck, Connect, LastWill};
pub use control::{Auth, Disconnect};
pub use publish::{Publish, PublishHeader, encode_publish};
pub use subscribe::{
    RetainHandling, SubAck, Subscribe, SubscribeOptions, Subscription, UnsubAck, Unsubscribe,
};

use bytes::{Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError, ErrorKind};
use crate::wire::{self, Reader, Writer};
use crate::{MAX_PACKET_SIZE, Protocol};

/// The control packet types (section 2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    Connect = 1,
    ConnAck = 2,
    Publish = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    PingReq = 12,
    PingResp = 13,
    Disconnect = 14,
    Auth = 15,
}

impl PacketType {
    /// The type for the upper four bits of the first byte; 0 is reserved.
    pub fn from_u8(v: u8) -> Option<PacketType> {
        use PacketType::*;
        Some(match v {
            1 => Connect,
            2 => ConnAck,
            3 => Publish,
            4 => PubAck,
            5 => PubRec,
            6 => PubRel,
            7 => PubComp,
            8 => Subscribe,
            9 => SubAck,
            10 => Unsubscribe,
            11 => UnsubAck,
            12 => PingReq,
            13 => PingResp,
            14 => Disconnect,
            15 => Auth,
            _ => return None,
        })
    }

    /// The packet name as the spec writes it.
    pub fn name(self) -> &'static str {
        use PacketType::*;
        match self {
            Connect => "CONNECT",
            ConnAck => "CONNACK",
            Publish => "PUBLISH",
            PubAck => "PUBACK",
            PubRec => "PUBREC",
            PubRel => "PUBREL",
            PubComp => "PUBCOMP",
            Subscribe => "SUBSCRIBE",
            SubAck => "SUBACK",
            Unsubscribe => "UNSUBSCRIBE",
            UnsubAck => "UNSUBACK",
            PingReq => "PINGREQ",
            PingResp => "PINGRESP",
            Disconnect => "DISCONNECT",
            Auth => "AUTH",
        }
    }

    /// The flag bits every packet but PUBLISH must carry (table 2-2).
    fn required_flags(self) -> u8 {
        match self {
            PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => 0b0010,
            _ => 0,
        }
    }
}

/// A parsed fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    pub packet_type: PacketType,
    /// The lower four bits of the first byte.
    pub flags: u8,
    /// Bytes taken by the first byte and the Remaining Length.
    pub header_len: usize,
    /// The Remaining Length.
    pub remaining_len: usize,
}

impl FixedHeader {
    /// The size of the whole packet.
    pub fn frame_len(&self) -> usize {
        self.header_len + self.remaining_len
    }

    /// Checks the flag bits for `protocol` [MQTT-2.2.2-1] [MQTT-2.2.2-2]
    /// (5.0: [MQTT-2.1.3-1]).
    #[inline]
    fn check_flags(&self, protocol: Protocol) -> Result<(), ErrorKind> {
        let t = self.packet_type;
        if t == PacketType::Publish {
            return Ok(());
        }
        let want = t.required_flags();
        // 3.1 sent PUBREL, SUBSCRIBE and UNSUBSCRIBE at QoS 1 and allowed
        // DUP on them when resent; its other packets ignored the flags.
        let ok = match protocol {
            Protocol::V3_1 if want != 0 => self.flags & 0b0111 == want,
            Protocol::V3_1 if t != PacketType::Connect => true,
            _ => self.flags == want,
        };
        if ok {
            Ok(())
        } else {
            Err(ErrorKind::InvalidFlags { flags: self.flags })
        }
    }
}

/// Reads the fixed header at the front of `buf`: `Ok(None)` until it is
/// complete. A packet larger than `max_packet_size` is refused here, before
/// its body is buffered.
#[inline]
pub fn decode_fixed_header(
    buf: &[u8],
    max_packet_size: usize,
) -> Result<Option<FixedHeader>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let packet_type = PacketType::from_u8(first >> 4)
        .ok_or_else(|| DecodeError::new(None, ErrorKind::ReservedPacketType(first >> 4)))?;
    let err = |kind| DecodeError::new(Some(packet_type), kind);
    let Some((remaining, n)) = wire::read_var_int(&buf[1..], "remaining length").map_err(err)?
    else {
        return Ok(None);
    };
    let header = FixedHeader {
        packet_type,
        flags: first & 0x0F,
        header_len: 1 + n,
        remaining_len: remaining as usize,
    };
    let size = header.frame_len();
    if size > max_packet_size {
        return Err(err(ErrorKind::PacketTooLarge {
            size,
            max: max_packet_size,
        }));
    }
    Ok(Some(header))
}

/// Decodes one packet from the front of `buf`.
///
/// Returns `Ok(None)` when `buf` does not hold a whole packet yet (nothing is
/// consumed then), and otherwise removes the packet's bytes from `buf`. The
/// topics, payloads and other byte fields of the packet share `buf`'s
/// allocation. `protocol` is the level the connection speaks; CONNECT
/// carries its own level and ignores it. `max_packet_size` bounds the whole
/// packet, fixed header included (use [`MAX_PACKET_SIZE`] for no limit).
#[inline]
pub fn decode(
    buf: &mut BytesMut,
    protocol: Protocol,
    max_packet_size: usize,
) -> Result<Option<Packet>, DecodeError> {
    // The short acknowledgements (no reason code, no properties) are half
    // the traffic of a QoS 1 or 2 flow: known by their first two bytes,
    // read in place, with nothing split off the buffer.
    if let [first, 2, hi, lo, ..] = buf[..]
        && max_packet_size >= 4
        && (hi, lo) != (0, 0)
    {
        let ack = PubResponse::new(u16::from_be_bytes([hi, lo]));
        let packet = match first {
            0x40 => Some(Packet::PubAck(ack)),
            0x50 => Some(Packet::PubRec(ack)),
            0x62 => Some(Packet::PubRel(ack)),
            0x70 => Some(Packet::PubComp(ack)),
            _ => None,
        };
        if let Some(packet) = packet {
            bytes::Buf::advance(buf, 4);
            return Ok(Some(packet));
        }
    }
    let Some(header) = decode_fixed_header(buf, max_packet_size)? else {
        return Ok(None);
    };
    let t = header.packet_type;
    header
        .check_flags(protocol)
        .map_err(|k| DecodeError::new(Some(t), k))?;
    if t == PacketType::Auth && !protocol.is_v5() {
        return Err(DecodeError::new(None, ErrorKind::ReservedPacketType(15)));
    }
    if buf.len() < header.frame_len() {
        return Ok(None);
    }
    let mut frame = buf.split_to(header.frame_len()).freeze();
    bytes::Buf::advance(&mut frame, header.header_len);
    Packet::decode_body(&header, frame, protocol).map(Some)
}

/// An MQTT control packet of any version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    // The large, rare packets are boxed so `Packet` stays small for the
    // PUBLISH and acknowledgement traffic that moves it around.
    Connect(Box<Connect>),
    ConnAck(Box<ConnAck>),
    Publish(Publish),
    PubAck(PubAck),
    PubRec(PubRec),
    PubRel(PubRel),
    PubComp(PubComp),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Box<Auth>),
}

/// Sizes worked out before encoding, so nothing is measured twice.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sizes {
    /// The Remaining Length.
    pub remaining: usize,
    /// The content length of the packet's property block.
    pub props: usize,
    /// The content length of the will property block (CONNECT only).
    pub will_props: usize,
}

impl Packet {
    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(_) => PacketType::Publish,
            Packet::PubAck(_) => PacketType::PubAck,
            Packet::PubRec(_) => PacketType::PubRec,
            Packet::PubRel(_) => PacketType::PubRel,
            Packet::PubComp(_) => PacketType::PubComp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }

    #[inline]
    fn decode_body(
        h: &FixedHeader,
        body: Bytes,
        protocol: Protocol,
    ) -> Result<Packet, DecodeError> {
        let t = h.packet_type;
        let mut r = Reader::new(body);
        let wrap = |k| DecodeError::new(Some(t), k);
        let packet = match t {
            PacketType::Connect => {
                return connect::decode_connect(&mut r).map(|c| Packet::Connect(Box::new(c)));
            }
            PacketType::ConnAck => {
                Packet::ConnAck(Box::new(ConnAck::decode(&mut r, protocol).map_err(wrap)?))
            }
            PacketType::Publish => {
                Packet::Publish(Publish::decode(h.flags, &mut r, protocol).map_err(wrap)?)
            }
            PacketType::PubAck => {
                Packet::PubAck(PubResponse::decode(t, &mut r, protocol).map_err(wrap)?)
            }
            PacketType::PubRec => {
                Packet::PubRec(PubResponse::decode(t, &mut r, protocol).map_err(wrap)?)
            }
            PacketType::PubRel => {
                Packet::PubRel(PubResponse::decode(t, &mut r, protocol).map_err(wrap)?)
            }
            PacketType::PubComp => {
                Packet::PubComp(PubResponse::decode(t, &mut r, protocol).map_err(wrap)?)
            }
            PacketType::Subscribe => {
                Packet::Subscribe(Subscribe::decode(&mut r, protocol).map_err(wrap)?)
            }
            PacketType::SubAck => Packet::SubAck(SubAck::decode(&mut r, protocol).map_err(wrap)?),
            PacketType::Unsubscribe => {
                Packet::Unsubscribe(Unsubscribe::decode(&mut r, protocol).map_err(wrap)?)
            }
            PacketType::UnsubAck => {
                Packet::UnsubAck(UnsubAck::decode(&mut r, protocol).map_err(wrap)?)
            }
            PacketType::PingReq => Packet::PingReq,
            PacketType::PingResp => Packet::PingResp,
            PacketType::Disconnect => {
                Packet::Disconnect(Disconnect::decode(&mut r, protocol).map_err(wrap)?)
            }
            PacketType::Auth => Packet::Auth(Box::new(Auth::decode(&mut r).map_err(wrap)?)),
        };
        r.finish().map_err(wrap)?;
        Ok(packet)
    }

    /// The first byte of the fixed header.
    fn first_byte(&self) -> u8 {
        let t = self.packet_type();
        let flags = match self {
            Packet::Publish(p) => p.flags(),
            _ => t.required_flags(),
        };
        (t as u8) << 4 | flags
    }

    #[inline]
    fn sizes(&self, protocol: Protocol) -> Result<Sizes, EncodeError> {
        let level = protocol.level();
        let sizes = match self {
            Packet::Connect(c) => c.sizes()?,
            Packet::ConnAck(c) => c.sizes(protocol)?,
            Packet::Publish(p) => p.sizes(protocol)?,
            Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
                a.sizes(self.packet_type(), protocol)?
            }
            Packet::Subscribe(s) => s.sizes(protocol)?,
            Packet::SubAck(s) => s.sizes(protocol)?,
            Packet::Unsubscribe(u) => u.sizes(protocol)?,
            Packet::UnsubAck(u) => u.sizes(protocol)?,
            Packet::PingReq | Packet::PingResp => Sizes::default(),
            Packet::Disconnect(d) => d.sizes(protocol)?,
            Packet::Auth(a) => {
                if !protocol.is_v5() {
                    return Err(EncodeError::NotInVersion {
                        packet: "AUTH",
                        level,
                    });
                }
                a.sizes()?
            }
        };
        wire::check_var_int(sizes.remaining, "remaining length")?;
        Ok(sizes)
    }

    /// The number of bytes [`Packet::encode`] writes for `protocol`; use it
    /// to hold a packet to a peer's Maximum Packet Size before encoding.
    pub fn encoded_len(&self, protocol: Protocol) -> Result<usize, EncodeError> {
        let s = self.sizes(protocol)?;
        Ok(1 + wire::var_int_len(s.remaining) + s.remaining)
    }

    /// Appends the packet, encoded for `protocol`, to `out` and returns how
    /// many bytes it wrote. On error nothing is written.
    ///
    /// Fields a version does not have (properties and reason codes before
    /// 5.0) are not written; a packet the version does not have (AUTH before
    /// 5.0) is an error.
    pub fn encode(&self, protocol: Protocol, out: &mut BytesMut) -> Result<usize, EncodeError> {
        if let Packet::Publish(p) = self {
            return p.encode_fast(protocol, out);
        }
        let s = self.sizes(protocol)?;
        let total = 1 + wire::var_int_len(s.remaining) + s.remaining;
        debug_assert!(total <= MAX_PACKET_SIZE);
        let start = out.len();
        out.resize(start + total, 0);
        let out = &mut Writer::new(&mut out[start..]);
        out.put_u8(self.first_byte());
        wire::put_var_int(out, s.remaining);
        match self {
            Packet::Connect(c) => c.put(&s, out),
            Packet::ConnAck(c) => c.put(protocol, &s, out),
            // Encoded by `Publish::encode_fast` above.
            Packet::Publish(_) => {}
            Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
                a.put(protocol, &s, out)
            }
            Packet::Subscribe(x) => x.put(protocol, &s, out),
            Packet::SubAck(x) => x.put(protocol, &s, out),
            Packet::Unsubscribe(x) => x.put(protocol, &s, out),
            Packet::UnsubAck(x) => x.put(protocol, &s, out),
            Packet::PingReq | Packet::PingResp => {}
            Packet::Disconnect(d) => d.put(protocol, &s, out),
            Packet::Auth(a) => a.put(&s, out),
        }
        debug_assert_eq!(out.written(), total, "{:?}", self.packet_type());
        Ok(total)
    }
}

/// Reads a Packet Identifier that must not be zero.
pub(crate) fn read_packet_id(r: &mut Reader) -> Result<u16, ErrorKind> {
    match r.u16("packet identifier")? {
        0 => Err(ErrorKind::ZeroPacketId),
        id => Ok(id),
    }
}

/// Checks a Packet Identifier before encoding.
pub(crate) fn check_packet_id(id: u16) -> Result<(), EncodeError> {
    if id == 0 {
        Err(EncodeError::ZeroPacketId)
    } else {
        Ok(())
    }
}
