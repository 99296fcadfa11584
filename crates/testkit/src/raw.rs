//! Packets built byte by byte from the tables of MQTT 3.1.1 and 5.0.

/// A Variable Byte Integer.
pub fn var_int(mut v: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (v % 128) as u8;
        v /= 128;
        if v > 0 {
            b |= 0x80;
        }
        out.push(b);
        if v == 0 {
            return out;
        }
    }
}

/// A two-byte length followed by the bytes (UTF-8 string or binary data).
pub fn field(s: &[u8]) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

/// First byte, Remaining Length, body.
pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(var_int(body.len()));
    out.extend_from_slice(body);
    out
}

/// CONNECT: protocol `level` (4 = 3.1.1, 5 = 5.0), `flags` byte, keep alive,
/// client id; for 5.0 an empty property block. Payload fields beyond the
/// client id go in `extra`.
pub fn connect(level: u8, flags: u8, keep_alive: u16, client_id: &str, extra: &[u8]) -> Vec<u8> {
    let mut body = field(if level == 3 { b"MQIsdp" } else { b"MQTT" });
    body.push(level);
    body.push(flags);
    body.extend_from_slice(&keep_alive.to_be_bytes());
    if level == 5 {
        body.push(0);
    }
    body.extend(field(client_id.as_bytes()));
    body.extend_from_slice(extra);
    packet(0x10, &body)
}

/// A clean CONNECT with keep alive 60.
pub fn connect_clean(level: u8, client_id: &str) -> Vec<u8> {
    connect(level, 0x02, 60, client_id, &[])
}

/// PUBLISH at QoS 0 (no packet id); 5.0 adds an empty property block.
pub fn publish_qos0(level: u8, topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = field(topic.as_bytes());
    if level == 5 {
        body.push(0);
    }
    body.extend_from_slice(payload);
    packet(0x30, &body)
}

/// PUBLISH at QoS 1 or 2 with a packet id.
pub fn publish(level: u8, qos: u8, retain: bool, topic: &str, id: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = field(topic.as_bytes());
    body.extend_from_slice(&id.to_be_bytes());
    if level == 5 {
        body.push(0);
    }
    body.extend_from_slice(payload);
    packet(0x30 | (qos << 1) | u8::from(retain), &body)
}

/// SUBSCRIBE with one filter and its options byte.
pub fn subscribe(level: u8, id: u16, filter: &str, options: u8) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    if level == 5 {
        body.push(0);
    }
    body.extend(field(filter.as_bytes()));
    body.push(options);
    packet(0x82, &body)
}

pub const PINGREQ: [u8; 2] = [0xC0, 0x00];
pub const DISCONNECT: [u8; 2] = [0xE0, 0x00];
