//! The client's frames, read off the socket (RFC 6455, the server's side).
//!
//! Written here rather than taken from tungstenite, which the server used until the second
//! performance round: tungstenite keeps a read buffer (at least 512 bytes, more once a large
//! frame came) and about 300 bytes of state in every connection for as long as it lives,
//! and an idle connection reads nothing. Here a read goes into one buffer per thread; a
//! connection keeps bytes only while a frame is unfinished (or more frames than one came in
//! one read), and frees them once it is whole. The server's own frames are written by
//! [`super::mailbox::put_text_frame`] and [`control_frame`].

use std::{cell::RefCell, io, ops::ControlFlow};
use tokio::net::TcpStream;

/// One read's room: a send is ~150 bytes, so one read usually takes every frame a client has
/// sent meanwhile.
const READ_AT_ONCE: usize = 16 * 1024;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_AT_ONCE].into_boxed_slice());
}

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
pub(super) const OP_PING: u8 = 0x9;
pub(super) const OP_PONG: u8 = 0xA;

/// What the client sent: a whole message or a control frame.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Incoming {
    /// A text message, its fragments joined (valid UTF-8).
    Text(String),
    /// A ping, to be answered with a pong that carries its payload.
    Ping(Vec<u8>),
    /// A pong (the answer to the server's heartbeat).
    Pong,
    /// The client's close frame, with its code if it gave one.
    Close(Option<u16>),
}

/// Why the client's frames end here.
#[derive(Debug)]
pub(super) enum WireError {
    /// The client closed its side without a close frame.
    Ended,
    /// The socket failed.
    Io(io::Error),
    /// A message larger than the limit: refused from its header, before its body came.
    TooBig,
    /// A binary message (the protocol is JSON text).
    Binary,
    /// A text message that is not UTF-8.
    NotUtf8,
    /// Not the WebSocket protocol a client speaks.
    Protocol(&'static str),
}

/// The reading side of one connection. Empty (no allocation) between frames.
#[derive(Default)]
pub(super) struct Reader {
    /// Bytes read and not yet taken (from `taken` on): an unfinished frame, or frames after
    /// the message last returned.
    pending: Vec<u8>,
    /// How much of `pending` was taken: frames are served from the front without moving the
    /// rest each time (a read of many small frames would otherwise cost its length squared).
    taken: usize,
    /// A fragmented text message being put together (its fragments so far).
    message: Option<Vec<u8>>,
}

impl From<Vec<u8>> for Reader {
    /// A reader that starts with bytes already read (past the upgrade request).
    fn from(pending: Vec<u8>) -> Self {
        Self {
            pending,
            taken: 0,
            message: None,
        }
    }
}

impl Reader {
    /// The next message or control frame, reading the socket when what was read before
    /// holds none; `None` when nothing more has come for now. `max` bounds a message's size
    /// (all its fragments together).
    pub(super) fn next(
        &mut self,
        tcp: &TcpStream,
        max: usize,
    ) -> Result<Option<Incoming>, WireError> {
        loop {
            if self.taken < self.pending.len() {
                let mut pending = std::mem::take(&mut self.pending);
                let (used, found) = self.parse(&mut pending[self.taken..], max)?;
                self.taken += used;
                if self.taken < pending.len() {
                    self.pending = pending;
                } else {
                    // All taken: the buffer is freed (an idle connection keeps none).
                    self.taken = 0;
                }
                if found.is_some() {
                    return Ok(found);
                }
            }
            // `Break` ends this call with what it holds; `Continue` parses what was read.
            let read = SCRATCH.with_borrow_mut(|buf| -> Result<_, WireError> {
                let n = match tcp.try_read(buf) {
                    Ok(n) => n,
                    // Nothing more to read now.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Ok(ControlFlow::Break(None))
                    }
                    Err(e) => return Err(WireError::Io(e)),
                };
                if n == 0 {
                    return Err(WireError::Ended);
                }
                if !self.pending.is_empty() {
                    // The rest of an unfinished frame: parsed above, with what was before
                    // (what was taken goes first, once per read).
                    self.pending.drain(..self.taken);
                    self.taken = 0;
                    self.pending.extend_from_slice(&buf[..n]);
                    return Ok(ControlFlow::Continue(()));
                }
                let (used, found) = self.parse(&mut buf[..n], max)?;
                self.pending.extend_from_slice(&buf[used..n]);
                Ok(match found {
                    Some(found) => ControlFlow::Break(Some(found)),
                    None => ControlFlow::Continue(()),
                })
            })?;
            if let ControlFlow::Break(found) = read {
                return Ok(found);
            }
        }
    }

    /// Takes whole frames from the front of `buf` until one completes a message or a control
    /// frame, or what is left is unfinished: how many bytes it took, and what it found.
    /// Unmasks payloads in place.
    fn parse(
        &mut self,
        buf: &mut [u8],
        max: usize,
    ) -> Result<(usize, Option<Incoming>), WireError> {
        let mut at = 0;
        while let Some(header) = Header::parse(&buf[at..])? {
            let so_far = self.message.as_ref().map_or(0, Vec::len);
            if header.opcode < OP_CLOSE && so_far as u64 + header.len > max as u64 {
                return Err(WireError::TooBig);
            }
            let start = at + header.size;
            let Some(end) = start
                .checked_add(header.len as usize)
                .filter(|end| *end <= buf.len())
            else {
                // The frame's body has not all come yet.
                break;
            };
            let payload = &mut buf[start..end];
            unmask(payload, header.mask);
            at = end;
            if let Some(found) = self.frame(&header, payload)? {
                return Ok((at, Some(found)));
            }
        }
        Ok((at, None))
    }

    /// One whole frame: what it completes, if anything.
    fn frame(&mut self, header: &Header, payload: &[u8]) -> Result<Option<Incoming>, WireError> {
        match header.opcode {
            OP_TEXT | OP_BINARY | OP_CONTINUATION => {
                let message = match (header.opcode, self.message.take()) {
                    (OP_CONTINUATION, None) => {
                        return Err(WireError::Protocol("a continuation of nothing"))
                    }
                    (OP_CONTINUATION, Some(mut so_far)) => {
                        so_far.extend_from_slice(payload);
                        so_far
                    }
                    (_, Some(_)) => {
                        return Err(WireError::Protocol("a new message inside a fragmented one"))
                    }
                    (OP_BINARY, None) => return Err(WireError::Binary),
                    (_, None) => payload.to_vec(),
                };
                if !header.fin {
                    self.message = Some(message);
                    return Ok(None);
                }
                String::from_utf8(message)
                    .map(|text| Some(Incoming::Text(text)))
                    .map_err(|_| WireError::NotUtf8)
            }
            OP_PING => Ok(Some(Incoming::Ping(payload.to_vec()))),
            OP_PONG => Ok(Some(Incoming::Pong)),
            OP_CLOSE => match payload {
                [] => Ok(Some(Incoming::Close(None))),
                [a, b, reason @ ..] if std::str::from_utf8(reason).is_ok() => {
                    Ok(Some(Incoming::Close(Some(u16::from_be_bytes([*a, *b])))))
                }
                _ => Err(WireError::Protocol("a malformed close frame")),
            },
            _ => Err(WireError::Protocol("an unknown opcode")),
        }
    }
}

/// A frame's header, as a client must send it.
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    /// The payload's length.
    len: u64,
    /// The header's own length.
    size: usize,
}

impl Header {
    /// The header at the front of `b`, or `None` if it has not all come yet.
    fn parse(b: &[u8]) -> Result<Option<Self>, WireError> {
        let [first, second, ..] = *b else {
            return Ok(None);
        };
        if first & 0x70 != 0 {
            return Err(WireError::Protocol("reserved bits set"));
        }
        let fin = first & 0x80 != 0;
        let opcode = first & 0x0F;
        if second & 0x80 == 0 {
            return Err(WireError::Protocol("an unmasked client frame"));
        }
        let (len, at) = match second & 0x7F {
            126 => match b.get(2..4) {
                Some(l) => (u64::from(u16::from_be_bytes([l[0], l[1]])), 4),
                None => return Ok(None),
            },
            127 => match b.get(2..10) {
                Some(l) => {
                    let mut n = [0; 8];
                    n.copy_from_slice(l);
                    (u64::from_be_bytes(n), 10)
                }
                None => return Ok(None),
            },
            short => (u64::from(short), 2),
        };
        if opcode >= OP_CLOSE && (!fin || len > 125) {
            return Err(WireError::Protocol("a fragmented or long control frame"));
        }
        let Some(mask) = b.get(at..at + 4) else {
            return Ok(None);
        };
        Ok(Some(Self {
            fin,
            opcode,
            mask: [mask[0], mask[1], mask[2], mask[3]],
            len,
            size: at + 4,
        }))
    }
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// A control frame from the server (unmasked, final): a pong or a close.
pub(super) fn control_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + payload.len());
    out.push(0x80 | opcode);
    out.push(payload.len().min(125) as u8);
    out.extend_from_slice(&payload[..payload.len().min(125)]);
    out
}

/// The answer to a client's close: its code back, or an empty close if it gave none.
pub(super) fn close_answer(code: Option<u16>) -> Vec<u8> {
    match code {
        Some(code) => close_frame(code, ""),
        None => control_frame(OP_CLOSE, b""),
    }
}

/// A close frame from the server with its code and reason.
pub(super) fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    control_frame(OP_CLOSE, &payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's frame: masked, as a browser sends it.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        out
    }

    /// Everything `bytes` holds, fed to a reader `step` bytes at a time (as reads would).
    fn read_all(bytes: &[u8], step: usize, max: usize) -> Result<Vec<Incoming>, String> {
        let mut reader = Reader::default();
        let mut found = Vec::new();
        for chunk in bytes.chunks(step) {
            reader.pending.extend_from_slice(chunk);
            loop {
                let mut pending = std::mem::take(&mut reader.pending);
                let (used, got) = reader
                    .parse(&mut pending, max)
                    .map_err(|e| format!("{e:?}"))?;
                pending.drain(..used);
                reader.pending = pending;
                match got {
                    Some(got) => found.push(got),
                    None => break,
                }
            }
        }
        if !reader.pending.is_empty() || reader.message.is_some() {
            return Err("left unfinished".into());
        }
        Ok(found)
    }

    #[test]
    fn frames_of_every_length_read_whole_or_byte_by_byte() {
        let long = "é".repeat(40_000);
        let mut bytes = client_frame(true, OP_TEXT, b"{\"t\":\"ping\"}");
        bytes.extend(client_frame(true, OP_TEXT, "x".repeat(300).as_bytes()));
        bytes.extend(client_frame(true, OP_TEXT, long.as_bytes()));
        bytes.extend(client_frame(true, OP_PING, b"are you there"));
        bytes.extend(client_frame(true, OP_PONG, b""));
        bytes.extend(client_frame(true, OP_CLOSE, &[0x03, 0xE8, b'o', b'k']));
        for step in [1, 7, 150, bytes.len()] {
            assert_eq!(
                read_all(&bytes, step, 1 << 20).expect("read"),
                vec![
                    Incoming::Text("{\"t\":\"ping\"}".into()),
                    Incoming::Text("x".repeat(300)),
                    Incoming::Text(long.clone()),
                    Incoming::Ping(b"are you there".to_vec()),
                    Incoming::Pong,
                    Incoming::Close(Some(1000)),
                ],
                "read {step} bytes at a time"
            );
        }
    }

    #[test]
    fn fragments_join_with_control_frames_between_them() {
        let mut bytes = client_frame(false, OP_TEXT, "hé".as_bytes()[..2].as_ref());
        bytes.extend(client_frame(true, OP_PING, b""));
        bytes.extend(client_frame(false, OP_CONTINUATION, &"hé".as_bytes()[2..]));
        bytes.extend(client_frame(true, OP_CONTINUATION, b"llo"));
        assert_eq!(
            read_all(&bytes, 3, 100).expect("read"),
            vec![Incoming::Ping(Vec::new()), Incoming::Text("héllo".into())]
        );
    }

    #[test]
    fn what_a_client_may_not_send_is_refused() {
        let refused = |bytes: Vec<u8>, max: usize| read_all(&bytes, bytes.len(), max).unwrap_err();
        // Too big, from the header alone (the body never came).
        let mut header = client_frame(true, OP_TEXT, &vec![b'a'; 70_000]);
        header.truncate(14);
        assert_eq!(refused(header, 65_536), "TooBig");
        // Too big across fragments.
        let mut two = client_frame(false, OP_TEXT, &[b'a'; 60]);
        two.extend(client_frame(true, OP_CONTINUATION, &[b'a'; 60]));
        assert_eq!(refused(two, 100), "TooBig");
        assert_eq!(
            refused(client_frame(true, OP_BINARY, b"\x00"), 100),
            "Binary"
        );
        assert_eq!(
            refused(client_frame(true, OP_TEXT, b"\xff\xfe"), 100),
            "NotUtf8"
        );
        // A fragment's split character is not refused, a broken one is.
        let mut split = client_frame(false, OP_TEXT, &[0xC3]);
        split.extend(client_frame(true, OP_CONTINUATION, &[0x28]));
        assert_eq!(refused(split, 100), "NotUtf8");
        let mut unmasked = client_frame(true, OP_TEXT, b"hi");
        unmasked[1] &= 0x7F;
        assert!(refused(unmasked, 100).starts_with("Protocol"));
        let mut reserved = client_frame(true, OP_TEXT, b"hi");
        reserved[0] |= 0x40;
        assert!(refused(reserved, 100).starts_with("Protocol"));
        assert!(refused(client_frame(true, 0x3, b""), 100).starts_with("Protocol"));
        assert!(refused(client_frame(true, OP_CONTINUATION, b"x"), 100).starts_with("Protocol"));
        assert!(refused(client_frame(false, OP_PING, b""), 100).starts_with("Protocol"));
        assert!(refused(client_frame(true, OP_PING, &[0; 126]), 1000).starts_with("Protocol"));
        assert!(refused(client_frame(true, OP_CLOSE, &[3]), 100).starts_with("Protocol"));
        let mut inside = client_frame(false, OP_TEXT, b"a");
        inside.extend(client_frame(true, OP_TEXT, b"b"));
        assert!(refused(inside, 100).starts_with("Protocol"));
    }

    #[test]
    fn the_servers_control_frames() {
        assert_eq!(control_frame(OP_PONG, b"hi"), vec![0x8A, 2, b'h', b'i']);
        assert_eq!(
            close_frame(1009, "big"),
            vec![0x88, 5, 0x03, 0xF1, b'b', b'i', b'g']
        );
        assert_eq!(close_answer(Some(1000)), vec![0x88, 2, 0x03, 0xE8]);
        assert_eq!(close_answer(None), vec![0x88, 0]);
    }

    /// A real socket: several frames in one read are served one by one, then the reader
    /// holds nothing (an idle connection keeps no buffer).
    #[tokio::test]
    async fn a_reader_empties_once_its_frames_are_served() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listener");
        let mut client = TcpStream::connect(listener.local_addr().expect("address"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let mut bytes = client_frame(true, OP_TEXT, b"one");
        bytes.extend(client_frame(true, OP_TEXT, b"two"));
        bytes.extend(&client_frame(true, OP_TEXT, b"three")[..4]);
        client.write_all(&bytes).await.expect("write");
        let mut reader = Reader::default();
        let mut read = Vec::new();
        while read.len() < 2 {
            server.readable().await.expect("readable");
            match reader.next(&server, 100) {
                Ok(Some(m)) => read.push(m),
                Ok(None) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(
            read,
            [Incoming::Text("one".into()), Incoming::Text("two".into())]
        );
        // The third frame's start waits; its rest completes it.
        client
            .write_all(&client_frame(true, OP_TEXT, b"three")[4..])
            .await
            .expect("write");
        loop {
            server.readable().await.expect("readable");
            match reader.next(&server, 100) {
                Ok(Some(m)) => break assert_eq!(m, Incoming::Text("three".into())),
                Ok(None) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(
            reader.pending.capacity(),
            0,
            "an idle reader keeps no buffer"
        );
        assert!(reader.message.is_none());
        drop(client);
        loop {
            server.readable().await.expect("readable");
            match reader.next(&server, 100) {
                Err(WireError::Ended) => break,
                Ok(None) => {}
                other => panic!("{other:?}"),
            }
        }
    }
}
