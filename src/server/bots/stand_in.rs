//! A stand-in for a language-model server: it speaks just enough of the chat-completions
//! streaming protocol (HTTP/1.1, chunked server-sent events) to answer with canned events.
//! The provider's tests use it, and it lets anyone try the provider path on a machine with
//! no model. It listens on port 0 of 127.0.0.1.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// How the stand-in answers the next requests.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// Body pieces, each written as its own chunk after `pause`.
    pub chunks: Vec<Vec<u8>>,
    pub pause: Duration,
}

impl Answer {
    /// A 200 streaming `text` in one `delta` event per piece, then `[DONE]`.
    pub fn streaming(pieces: &[&str]) -> Self {
        let mut chunks: Vec<Vec<u8>> = pieces.iter().map(|p| delta(p).into_bytes()).collect();
        chunks.push(b"data: [DONE]\n\n".to_vec());
        Self {
            status: 200,
            chunks,
            pause: Duration::ZERO,
        }
    }

    pub fn status(status: u16) -> Self {
        Self {
            status,
            chunks: vec![b"{\"error\": \"stand-in failure\"}".to_vec()],
            pause: Duration::ZERO,
        }
    }
}

/// One `data:` event carrying a piece of the answer, as servers stream it.
pub fn delta(text: &str) -> String {
    let event = serde_json::json!({ "choices": [{ "delta": { "content": text } }] });
    format!("data: {event}\n\n")
}

/// A running stand-in.
pub struct StandIn {
    /// The base URL to configure (`.../v1`).
    pub url: String,
    answer: Arc<Mutex<Answer>>,
    requests: Arc<AtomicUsize>,
    /// The body of every request, in order (what the server told the model).
    bodies: Arc<Mutex<Vec<String>>>,
}

impl StandIn {
    pub async fn start(first: Answer) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/v1", listener.local_addr()?);
        let answer = Arc::new(Mutex::new(first));
        let requests = Arc::new(AtomicUsize::new(0));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (a, n, b) = (answer.clone(), requests.clone(), bodies.clone());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                n.fetch_add(1, Ordering::SeqCst);
                let now = a.lock().unwrap_or_else(|e| e.into_inner()).clone();
                tokio::spawn(serve(sock, now, b.clone()));
            }
        });
        Ok(Self {
            url,
            answer,
            requests,
            bodies,
        })
    }

    /// Answers the next requests this way.
    pub fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap_or_else(|e| e.into_inner()) = answer;
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// The bodies of the requests received so far.
    pub fn bodies(&self) -> Vec<String> {
        self.bodies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

async fn serve(mut sock: tokio::net::TcpStream, answer: Answer, bodies: Arc<Mutex<Vec<String>>>) {
    // Read the request: its head, then as much body as Content-Length says.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let Ok(n) = sock.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
                bodies.lock().unwrap_or_else(|e| e.into_inner()).push(body);
                break;
            }
        }
    }
    let head = format!(
        "HTTP/1.1 {} Stand-in\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        answer.status
    );
    if sock.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    for c in answer.chunks {
        tokio::time::sleep(answer.pause).await;
        let framed = [
            format!("{:x}\r\n", c.len()).into_bytes(),
            c,
            b"\r\n".to_vec(),
        ]
        .concat();
        if sock.write_all(&framed).await.is_err() || sock.flush().await.is_err() {
            return;
        }
    }
    let _ = sock.write_all(b"0\r\n\r\n").await;
}
