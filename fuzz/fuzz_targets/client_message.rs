//! The WebSocket client-message decoder on arbitrary frames: a message or a protocol error,
//! never a panic; whatever decodes must encode and decode to itself.
#![no_main]

use datavista_shared::protocol::ClientMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = ClientMessage::from_json(text) {
        let again = ClientMessage::from_json(&message.to_json()).expect("our own encoding decodes");
        assert_eq!(again, message);
    }
});
