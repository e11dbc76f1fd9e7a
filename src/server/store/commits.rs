//! What every message log does around a group commit, whatever its database: the queue's
//! items ([`Job`], [`Cmd`]), what committing one job produced ([`Outcome`]), and after the
//! commit, the answers ([`settle`]) and the publisher thread that hands the commit's messages
//! and acknowledgements to the fan-out in commit order ([`Publisher`]). The SQLite writer
//! (`sqlite/writer.rs`) and the PostgreSQL log (`postgres/log.rs`) share all of it, so the
//! guarantee "acknowledged only after the commit, published in commit order" is written once.

use crate::protocol::{MessageKind, MessageView, ServerFrame};
use crate::server::{
    hub::{encode, AckOut, Delivery, Fanout},
    metrics::Metrics,
    store::{Ack, NewMessage, Observer, Reply, WriteFailed},
};
use std::{
    sync::{mpsc::SyncSender, Arc},
    time::{Duration, Instant},
};
use tokio::sync::{mpsc, oneshot};

/// A message waiting for its commit, and where its acknowledgement goes.
pub(crate) struct Job {
    pub msg: NewMessage,
    pub reply: Reply,
}

/// What a log's queue carries.
pub(crate) enum Cmd {
    Send(Job),
    /// Refuse new sends, commit what is queued, and end.
    Stop,
}

/// What committing one job produced.
pub(crate) enum Outcome {
    New(MessageView),
    /// A resend of a stored message: its first acknowledgement, and no new number.
    Duplicate(Ack),
}

/// A commit's messages, the acknowledgements owed to the senders' connections, and the
/// other callers' answers.
pub(crate) type Committed = (
    Vec<(i64, Delivery)>,
    Vec<AckOut>,
    Vec<(
        oneshot::Sender<Result<Ack, WriteFailed>>,
        Result<Ack, WriteFailed>,
    )>,
);

/// Commits waiting for the publisher; the log waits when it is this far ahead.
pub(crate) const PUBLISH_QUEUE: usize = 2;

/// Turns a commit's outcomes into what the publisher sends: the new messages (offered to
/// the observer too), the acknowledgements owed to sockets and the other callers' answers.
/// `committing` is how long the commit itself took (counted in the metrics).
pub(crate) fn settle(
    jobs: impl Iterator<Item = Job>,
    outcomes: Vec<Result<Outcome, WriteFailed>>,
    observer: Option<&Observer>,
    metrics: &Metrics,
    committing: Duration,
) -> Committed {
    // The commit's messages are published all at once, so that each connection gets them
    // in one batch, with the acknowledgements owed to the senders' connections; other
    // callers hear afterwards.
    let mut published = Vec::with_capacity(outcomes.len());
    let mut acks = Vec::with_capacity(outcomes.len());
    let mut replies = Vec::new();
    for (job, outcome) in jobs.zip(outcomes) {
        let (result, follows) = match outcome {
            Ok(Outcome::New(view)) => {
                let ack = Ack {
                    conv: view.conv,
                    client_id: view.client_id.clone(),
                    seq: view.seq,
                    at: view.at,
                };
                if let Some(o) = observer {
                    observe(o, &view);
                }
                let conv = view.conv;
                published.push(delivery(view));
                (Ok(ack), Some(conv))
            }
            Ok(Outcome::Duplicate(ack)) => (Ok(ack), None),
            Err(failed) => (Err(failed), None),
        };
        match job.reply {
            Reply::Socket(owed) => acks.push(owed.answer(result, follows)),
            Reply::Wait(reply) => replies.push((reply, result)),
        }
    }
    if !published.is_empty() {
        metrics.committed(published.len(), committing);
    }
    #[cfg(feature = "test-support")]
    if injected_fault(&published, "fault:panic-writer") {
        panic!("injected fault: the writer panics after a commit");
    }
    (published, acks, replies)
}

/// The publisher thread: it publishes commits in the order they were committed, so that the
/// next commit (and its wait for the disk) overlaps the sends of the previous one.
pub(crate) struct Publisher {
    pub queue: SyncSender<Committed>,
    pub thread: std::thread::JoinHandle<()>,
}

impl Publisher {
    pub fn start(fanout: Arc<dyn Fanout>, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        let (queue, commits) = std::sync::mpsc::sync_channel::<Committed>(PUBLISH_QUEUE);
        let thread = std::thread::Builder::new()
            .name("publisher".into())
            .spawn(move || {
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    publish(&*fanout, commits, &metrics)
                }));
                if ran.is_err() {
                    engine_failed("publisher");
                }
            })?;
        Ok(Self { queue, thread })
    }
}

/// Publishes commits in the order they were committed, then answers their other callers.
///
/// Commits that queued up while the previous one was being sent go out together, as if
/// they were one: each connection then gets their messages in one write. Without this, a
/// publisher behind a fast writer sent one small commit after another, each to every
/// member (a thousand writes per message in a fan-out to 1000), and fell further behind.
pub(crate) fn publish(
    fanout: &dyn Fanout,
    commits: std::sync::mpsc::Receiver<Committed>,
    metrics: &Metrics,
) {
    while let Ok((mut published, mut acks, mut replies)) = commits.recv() {
        // What is already queued, at most as many commits as the queue holds.
        for (p, a, r) in commits.try_iter().take(PUBLISH_QUEUE) {
            published.extend(p);
            acks.extend(a);
            replies.extend(r);
        }
        #[cfg(feature = "test-support")]
        if injected_fault(&published, "fault:panic-publisher") {
            panic!("injected fault: the publisher panics");
        }
        let started = Instant::now();
        fanout.publish(published, acks);
        metrics
            .fanout_seconds
            .observe(started.elapsed().as_secs_f64());
        for (reply, result) in replies {
            // The sender may have gone; the message is stored all the same.
            let _ = reply.send(result);
        }
    }
}

/// The engine (a log's writer or its publisher) panicked: the acknowledgements of the
/// commit in hand are lost and nothing more would be committed or delivered. Rather than
/// limp on, the process ends at once, loudly; clients reconnect (to this server restarted,
/// or another node), resend what was not acknowledged with the same ids, and resync.
/// Nothing acknowledged is lost: acknowledgements go out only after their commit.
pub(crate) fn engine_failed(thread: &str) -> ! {
    tracing::error!(
        thread,
        "an engine thread panicked; exiting now so that clients reconnect and resync \
         (status 70; restart the server)"
    );
    eprintln!("messenger: the {thread} thread panicked; exiting (status 70)");
    std::process::exit(70)
}

/// Test builds only, with `MESSENGER_FAULTS` set: whether a message of the commit carries
/// `marker` (the tests' way to make an engine thread panic at a chosen point).
#[cfg(feature = "test-support")]
fn injected_fault(published: &[(i64, Delivery)], marker: &str) -> bool {
    std::env::var_os("MESSENGER_FAULTS").is_some()
        && published
            .iter()
            .any(|(_, d)| d.frame.as_str().contains(marker))
}

/// Hands a committed message to the observer: every join and leave, and text messages of
/// the conversations it wants. Never waits: if the observer is that far behind, it misses
/// the message (and says so).
fn observe((queue, wants): &Observer, view: &MessageView) {
    let offered = match view.kind {
        MessageKind::Join | MessageKind::Leave => true,
        MessageKind::Text => wants(view.conv),
        _ => false,
    };
    if offered {
        if let Err(mpsc::error::TrySendError::Full(_)) = queue.try_send(view.clone()) {
            tracing::warn!(
                conv = view.conv,
                seq = view.seq,
                "bot dispatcher behind; a message was not offered to the bots"
            );
        }
    }
}

/// A new message as it was committed: number `seq`, at `now`.
pub(crate) fn view_of(msg: &NewMessage, seq: i64, now: i64) -> MessageView {
    MessageView {
        conv: msg.conv,
        seq,
        from: msg.sender,
        from_name: msg.sender_name.clone(),
        client_id: msg.client_id.as_str().to_owned(),
        body: msg.content.body().into_owned(),
        at: now,
        kind: msg.content.kind(),
    }
}

/// The `msg` frame of a committed message, serialised once for every recipient.
pub(crate) fn delivery(view: MessageView) -> (i64, Delivery) {
    let (conv, seq) = (view.conv, view.seq);
    let frame = encode(&ServerFrame::Msg(view));
    (conv, Delivery { seq, frame })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{
        hub::{
            local::LocalHub,
            testing::{Got, Recorder},
        },
        store::Owed,
    };

    /// Two commits already queued when the publisher looks are published as one: the
    /// connection gets both messages, then both acknowledgements (one at a time it would
    /// get message, ack, message, ack), and every other caller hears.
    #[test]
    fn commits_queued_for_the_publisher_go_out_as_one_in_commit_order() {
        let hub = LocalHub::new();
        let inbox = Arc::new(Recorder::default());
        let id = hub.register(1, 100, inbox.clone());
        hub.subscribe(5, id, inbox.clone());
        let (to_publisher, commits) = std::sync::mpsc::sync_channel::<Committed>(PUBLISH_QUEUE);
        let mut answers = Vec::new();
        for seq in 1..=2 {
            let ack = Ack {
                conv: 5,
                client_id: format!("c-{seq}"),
                seq,
                at: 0,
            };
            let owed = Owed::new(inbox.clone(), id, 5, ack.client_id.clone());
            let (reply, answer) = oneshot::channel();
            answers.push(answer);
            let delivery = Delivery {
                seq,
                frame: format!("m{seq}").into(),
            };
            to_publisher
                .send((
                    vec![(5, delivery)],
                    vec![owed.answer(Ok(ack.clone()), Some(5))],
                    vec![(reply, Ok(ack))],
                ))
                .expect("queued");
        }
        drop(to_publisher);
        publish(&hub, commits, &Metrics::new());
        let got = inbox.got();
        assert_eq!(&got[..2], [Got::Msg(5, 1), Got::Msg(5, 2)]);
        assert!(
            matches!(&got[2..], [Got::Ack(a), Got::Ack(b)] if a.contains("c-1") && b.contains("c-2")),
            "both messages, then both acknowledgements: {got:?}"
        );
        for (seq, mut answer) in (1..).zip(answers) {
            let ack = answer.try_recv().expect("answered").expect("stored");
            assert_eq!(ack.seq, seq);
        }
    }
}
