//! Every frame a Meeting Server sends on its events socket, parsed and then fed through the
//! client's state machine (acks, model updates, resubscriptions). Never a panic, and the
//! subscription set never exceeds the server's limit of 100.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomd::meeting_server::session::EventsSession;
use roomd::proto::meeting_server::{self, MAX_SUBSCRIPTIONS};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = meeting_server::parse(text);
    let mut session = EventsSession::new();
    session.on_open();
    // Frames separated by newlines: a short conversation.
    for line in text.lines() {
        let parsed = meeting_server::parse(line);
        if let Ok(replies) = session.on_text(line) {
            // Every server message is acked, first.
            if let Ok(meeting_server::ServerFrame::Message { message_id, .. }) = parsed {
                assert!(replies[0].contains(&format!("\"messageId\":{message_id}")));
            }
        }
        assert!(session.subscriptions().len() <= MAX_SUBSCRIPTIONS);
    }
});
