//! Journal record decoding on arbitrary records. The input is cut into a
//! record: timestamp i64, a wall clock `now_ms` i64, topic length u8,
//! properties length u16 (all little-endian, missing bytes read as 0),
//! then the topic, the properties and, the rest, the payload; lengths are
//! cut to the bytes there are. `decode` must never panic; a decoded entry
//! must encode and decode back to itself.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use strata_journal::{Entry, decode, encode};
use strata_session::Message;
use strata_store::{NewRecord, Record};

/// Takes fields off the front of the input.
struct Cut<'a>(&'a [u8]);

impl<'a> Cut<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0; N];
        let head = self.take(N);
        a[..head.len()].copy_from_slice(head);
        a
    }
}

fn message(e: &Entry) -> Option<&Message> {
    match e {
        Entry::Message(m)
        | Entry::Published { message: m, .. }
        | Entry::Will { message: m, .. } => Some(m),
        _ => None,
    }
}

fn message_mut(e: &mut Entry) -> Option<&mut Message> {
    match e {
        Entry::Message(m)
        | Entry::Published { message: m, .. }
        | Entry::Will { message: m, .. } => Some(m),
        _ => None,
    }
}

/// A record as the log reads it back.
fn read_back(r: NewRecord) -> Record {
    Record {
        offset: 0,
        timestamp: r.timestamp,
        topic: r.topic,
        properties: r.properties,
        payload: r.payload,
    }
}

fn expiry(e: &Entry) -> Option<u32> {
    message(e).and_then(|m| m.properties.message_expiry_interval)
}

fuzz_target!(|data: &[u8]| {
    let mut cut = Cut(data);
    let timestamp = i64::from_le_bytes(cut.array());
    let now_ms = i64::from_le_bytes(cut.array());
    let topic_len = usize::from(u8::from_le_bytes(cut.array()));
    let properties_len = usize::from(u16::from_le_bytes(cut.array()));
    let record = Record {
        offset: 0,
        timestamp,
        topic: cut.take(topic_len).to_vec().into(),
        properties: cut.take(properties_len).to_vec().into(),
        payload: cut.0.to_vec().into(),
    };
    let now = Instant::now();

    // Read at its own timestamp (age 0), a message's receive time is `now`
    // and its expiry stays as stored, so the round trip is exact. At another
    // wall clock the receive time moves back by the age, or, where the
    // monotonic clock cannot reach back that far (not on Linux), the age is
    // taken off the expiry, which a second decode would take off again.
    let Ok(entry) = decode(&record, now, timestamp) else {
        assert!(
            decode(&record, now, now_ms).is_err(),
            "whether a record decodes cannot depend on the clocks"
        );
        return;
    };
    let again = decode(&read_back(encode(&entry, timestamp)), now, timestamp)
        .expect("an encoded entry decodes");
    assert_eq!(again, entry);

    // At another wall clock the same entry comes back, but for when a
    // message was received and how much of its expiry is left (never more
    // than stored).
    let mut aged =
        decode(&record, now, now_ms).expect("whether a record decodes cannot depend on the clocks");
    assert!(expiry(&aged) <= expiry(&entry));
    if let (Some(a), Some(m)) = (message_mut(&mut aged), message(&entry)) {
        a.received = m.received;
        a.properties.message_expiry_interval = m.properties.message_expiry_interval;
    }
    assert_eq!(aged, entry);
});
