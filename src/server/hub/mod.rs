//! The fan-out seam: [`Fanout`] takes what the message log committed (and what presence,
//! contacts and conversations have to tell) to the connections that must hear it. Today's
//! implementation is in-process ([`local::LocalHub`]); scale-out puts a publish/subscribe
//! bus between nodes behind the same trait.
//!
//! A connection is an [`Inbox`] here: the WebSocket layer implements it (its mailbox, which
//! may write straight into the socket), so the hub never depends on sockets.

pub mod local;
pub mod nats;

use crate::protocol::{ConversationSummary, ServerFrame};
use std::sync::Arc;
pub use tungstenite::Utf8Bytes as Frame;

/// Serialises a server frame once, for every connection that gets it. The one place frames
/// become text.
pub fn encode(frame: &ServerFrame) -> Frame {
    // serde_json fails only for a map whose keys are not strings or a hand-written
    // `Serialize` that errs; every frame is derived data with neither (`protocol` has no
    // maps), so a failure here is a bug in the protocol types, not a runtime condition.
    Frame::from(serde_json::to_string(frame).expect("server frames serialise"))
}

/// A committed message, serialised once for every recipient; or, with `seq` 0
/// ([`EPHEMERAL`]), a frame that is passed on to live members only and never stored
/// (typing indicators).
#[derive(Debug, Clone)]
pub struct Delivery {
    pub seq: i64,
    /// The whole `msg` frame as JSON text; cloning shares the bytes.
    pub frame: Frame,
}

/// The `seq` of a [`Delivery`] that is not a stored message.
pub const EPHEMERAL: i64 = 0;

/// The `seq` of a [`Delivery`] that is an acknowledgement owed to this connection (an `ack`,
/// or the `error` of a send that could not be stored): sent whatever the conversation's
/// cursor, after what was queued before it, and never dropped. Its conversation is 0.
pub const ACK: i64 = -1;

/// What the hub asks of a connection.
#[derive(Debug, Clone)]
pub enum Control {
    /// The user is now a member of this conversation: subscribe and tell the client.
    /// Boxed: it is rare and large, and it would set the size of every queued item.
    Added(Box<ConversationSummary>),
    /// The user left this conversation: unsubscribe and tell the client.
    Removed(i64),
    /// Send this frame (already serialised; boxed for the same reason).
    Frame(Box<Frame>),
    /// Close the socket with this code and reason.
    Close { code: u16, reason: &'static str },
    /// Send the hello again, read afresh: notices from other nodes may have been lost (this
    /// node's NATS connection came back after a break). Never crosses nodes.
    Refresh,
}

impl Control {
    /// A frame to send as it is.
    pub fn frame(frame: &ServerFrame) -> Self {
        Control::Frame(Box::new(encode(frame)))
    }
}

/// One connection, as the fan-out reaches it.
pub trait Inbox: Send + Sync {
    /// One conversation's deliveries, in order, then `acks` (acknowledgements owed to this
    /// connection, which never overtake a delivery left for it). `scratch` is the
    /// publisher's buffer, reused from one connection to the next.
    fn deliver(&self, deliveries: &[(i64, Delivery)], acks: &[Frame], scratch: &mut Vec<u8>);

    /// A control message. False if the connection let so many pile up that it is being
    /// closed instead (it reconnects to a `hello` that has everything).
    fn control(&self, control: Control) -> bool;

    /// Acknowledgements owed to this connection, behind anything queued before them.
    fn answer(&self, acks: &[Frame]) {
        self.deliver(&[], acks, &mut Vec::new());
    }

    /// A hint that [`Inbox::deliver`] comes soon: start loading the inbox itself, without
    /// waiting for it. The publisher calls it two inboxes ahead (docs/BENCHMARKS.md).
    fn prefetch(&self) {}

    /// The second step of the hint, one inbox ahead: start loading what the inbox points to,
    /// reading the pointers [`Inbox::prefetch`] brought in.
    fn prefetch_linked(&self) {}
}

/// An acknowledgement for the connection that sent a message, published with its commit.
pub struct AckOut {
    /// The sending connection.
    pub conn: u64,
    pub inbox: Arc<dyn Inbox>,
    /// The `ack` frame (or the `error` of a send that could not be stored).
    pub frame: Frame,
    /// The conversation of the new message it acknowledges, published in the same call;
    /// `None` for a resend's acknowledgement or a failure.
    pub follows: Option<i64>,
}

/// Where committed messages, ephemeral frames and per-user notices go.
pub trait Fanout: Send + Sync {
    /// Publishes a commit's messages (each conversation's in order), then the
    /// acknowledgements owed to their senders' connections: a sender holds its `ack` only
    /// once every live member was handed the message.
    fn publish(&self, deliveries: Vec<(i64, Delivery)>, acks: Vec<AckOut>);

    /// A frame for the live members of `conv` that is never stored (typing).
    fn publish_ephemeral(&self, conv: i64, frame: Frame) {
        self.publish(
            vec![(
                conv,
                Delivery {
                    seq: EPHEMERAL,
                    frame,
                },
            )],
            Vec::new(),
        );
    }

    /// A control message for every open connection of `user`.
    fn notify_user(&self, user: i64, control: Control);

    /// Closes every connection opened with `session` (signed out, revoked).
    fn end_session(&self, user: i64, session: i64, code: u16, reason: &'static str);

    /// How many connections `user` has open.
    fn connections_of(&self, user: i64) -> usize;
}

/// An inbox that records what reaches it, for tests of what publishes.
#[cfg(test)]
pub mod testing {
    use super::{Control, Delivery, Frame, Inbox};
    use std::sync::Mutex;

    /// What reached a [`Recorder`], in order.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Got {
        /// A delivery: its conversation and sequence number.
        Msg(i64, i64),
        /// An acknowledgement's frame.
        Ack(String),
        Control(String),
    }

    #[derive(Default)]
    pub struct Recorder(pub Mutex<Vec<Got>>);

    impl Recorder {
        pub fn got(&self) -> Vec<Got> {
            self.0.lock().expect("recorder").clone()
        }
    }

    impl Inbox for Recorder {
        fn deliver(&self, deliveries: &[(i64, Delivery)], acks: &[Frame], _: &mut Vec<u8>) {
            let mut got = self.0.lock().expect("recorder");
            got.extend(deliveries.iter().map(|(c, d)| Got::Msg(*c, d.seq)));
            got.extend(acks.iter().map(|a| Got::Ack(a.as_str().to_owned())));
        }

        fn control(&self, control: Control) -> bool {
            self.0
                .lock()
                .expect("recorder")
                .push(Got::Control(format!("{control:?}")));
            true
        }
    }
}
