//! The decoder on arbitrary input, for every protocol version: the first byte
//! picks the version, the rest is the byte stream. Every decoded packet must
//! survive encode-then-decode unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/codec/tests/common/check.rs"]
mod check;

fuzz_target!(|data: &[u8]| {
    if let Some((&first, rest)) = data.split_first() {
        check::check_total(check::protocol_from_byte(first), rest);
    }
});
