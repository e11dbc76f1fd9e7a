//! Language-model providers. [`OpenAiCompatible`] speaks the chat-completions protocol with
//! streaming (server-sent events): Ollama, llama.cpp's server, vLLM, OpenAI and Cloudflare
//! Workers AI's compatible endpoint all answer it. The offline engine (`offline.rs`) is not
//! a provider: it is what answers when there is none, or when one fails.

use crate::server::config::Secret;
use futures::{future::BoxFuture, StreamExt};
use serde::Serialize;

/// One turn of the conversation a model sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Turn {
    /// "system", "user" or "assistant".
    pub role: &'static str,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("the provider answered HTTP {0}")]
    Status(u16),
    #[error("the provider could not be reached: {0}")]
    Network(String),
    #[error("the provider's answer was empty")]
    Empty,
    #[error("the provider took too long")]
    Timeout,
    #[error("the provider reported an error: {0}")]
    Reported(String),
}

/// Something that turns a conversation into the bot's next line.
pub trait Provider: Send + Sync {
    fn complete<'a>(&'a self, turns: &'a [Turn]) -> BoxFuture<'a, Result<String, ProviderError>>;
}

/// A chat-completions endpoint with streaming.
pub struct OpenAiCompatible {
    client: reqwest::Client,
    /// Up to and including the version, e.g. `http://127.0.0.1:11434/v1`.
    base_url: String,
    model: String,
    api_key: Option<Secret>,
    max_tokens: u32,
}

impl OpenAiCompatible {
    pub fn new(base_url: &str, model: &str, api_key: Option<Secret>, max_tokens: u32) -> Self {
        Self {
            client: reqwest::Client::new(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            model: model.to_owned(),
            api_key: api_key.filter(|k| !k.expose().is_empty()),
            max_tokens,
        }
    }
}

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    messages: &'a [Turn],
    stream: bool,
    max_tokens: u32,
}

impl Provider for OpenAiCompatible {
    fn complete<'a>(&'a self, turns: &'a [Turn]) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move {
            let body = Request {
                model: &self.model,
                messages: turns,
                stream: true,
                max_tokens: self.max_tokens,
            };
            let mut req = self
                .client
                .post(format!("{}/chat/completions", self.base_url))
                .header("Accept", "text/event-stream")
                .json(&body);
            if let Some(key) = &self.api_key {
                req = req.bearer_auth(key.expose());
            }
            let res = req
                .send()
                .await
                .map_err(|e| ProviderError::Network(e.to_string()))?;
            if !res.status().is_success() {
                return Err(ProviderError::Status(res.status().as_u16()));
            }
            let mut events = SseParser::default();
            let mut text = Completion::default();
            let mut stream = res.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| ProviderError::Network(e.to_string()))?;
                for data in events.push(&chunk) {
                    if text.add(&data)? {
                        return text.finish();
                    }
                }
            }
            // The stream ended without [DONE]; what arrived is the answer.
            for data in events.finish() {
                if text.add(&data)? {
                    break;
                }
            }
            text.finish()
        })
    }
}

/// Splits a server-sent event stream into the data of each event. Bytes are kept until an
/// event is complete (a blank line), so a chunk may end anywhere, even inside a UTF-8
/// character. Comment lines (`:`, used for keep-alives) and fields other than `data` are
/// skipped. Line ends may be `\n` or `\r\n`.
#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
}

impl SseParser {
    /// Adds bytes; returns the data of every event they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buf
            .extend(bytes.iter().copied().filter(|&b| b != b'\r'));
        let mut out = Vec::new();
        while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = self.buf.drain(..end + 2).collect();
            if let Some(data) = event_data(&event[..end]) {
                out.push(data);
            }
        }
        out
    }

    /// The data of a last event that was not followed by a blank line.
    pub fn finish(&mut self) -> Vec<String> {
        let rest = std::mem::take(&mut self.buf);
        event_data(&rest).into_iter().collect()
    }
}

fn event_data(event: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(event);
    let mut data: Option<String> = None;
    for line in text.split('\n') {
        if let Some(value) = line.strip_prefix("data:") {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            }
        }
    }
    data
}

/// The text of a streamed completion, put together from its events.
#[derive(Default)]
struct Completion {
    text: String,
    skipped: usize,
}

impl Completion {
    /// Adds one event's data; true at `[DONE]`. An event that is not the JSON expected is
    /// skipped (and logged): one bad event does not lose the rest of the answer.
    fn add(&mut self, data: &str) -> Result<bool, ProviderError> {
        let data = data.trim();
        if data == "[DONE]" {
            return Ok(true);
        }
        let value: serde_json::Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => {
                self.skipped += 1;
                tracing::warn!(error = %e, "skipping a malformed event from the provider");
                return Ok(false);
            }
        };
        if let Some(err) = value.get("error") {
            let message = err
                .get("message")
                .and_then(|m| m.as_str())
                .map_or_else(|| err.to_string(), str::to_owned);
            return Err(ProviderError::Reported(message));
        }
        let choice = &value["choices"][0];
        let piece = choice["delta"]["content"]
            .as_str()
            .or_else(|| choice["message"]["content"].as_str());
        if let Some(piece) = piece {
            self.text.push_str(piece);
        }
        Ok(false)
    }

    fn finish(&mut self) -> Result<String, ProviderError> {
        if self.text.trim().is_empty() {
            return Err(ProviderError::Empty);
        }
        Ok(std::mem::take(&mut self.text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::bots::stand_in::{delta, Answer, StandIn};
    use std::time::Duration;

    fn turns() -> Vec<Turn> {
        vec![Turn {
            role: "user",
            content: "hi".into(),
        }]
    }

    async fn model(answer: Answer) -> (StandIn, OpenAiCompatible) {
        let s = StandIn::start(answer).await.expect("stand-in");
        let p = OpenAiCompatible::new(&s.url, "test-model", Some("key".into()), 100);
        (s, p)
    }

    fn chunks(parts: &[String], pause: Duration) -> Answer {
        Answer {
            status: 200,
            chunks: parts.iter().map(|p| p.as_bytes().to_vec()).collect(),
            pause,
        }
    }

    #[tokio::test]
    async fn a_streamed_reply_is_put_together_with_keep_alives_and_done() {
        let body = [
            ": keep-alive\n\n".to_string(),
            delta("Hello"),
            "event: ping\n\n".into(),
            delta(", friend"),
            "data: [DONE]\n\n".into(),
            delta(" (after done: ignored)"),
        ];
        let (s, p) = model(chunks(&body, Duration::from_millis(5))).await;
        assert_eq!(p.complete(&turns()).await.unwrap(), "Hello, friend");
        assert_eq!(s.requests(), 1);
    }

    #[tokio::test]
    async fn an_event_split_inside_a_utf8_character_is_put_back_together() {
        let all = format!("{}{}data: [DONE]\n\n", delta("Café "), delta("ça va? 🎉"));
        let bytes = all.into_bytes();
        // Cut inside the 'é' (2 bytes) and inside the emoji (4 bytes).
        let e = bytes.windows(2).position(|w| w == "é".as_bytes()).unwrap() + 1;
        let party = bytes.windows(4).position(|w| w == "🎉".as_bytes()).unwrap() + 2;
        let answer = Answer {
            status: 200,
            chunks: vec![
                bytes[..e].to_vec(),
                bytes[e..party].to_vec(),
                bytes[party..].to_vec(),
            ],
            pause: Duration::from_millis(5),
        };
        let (_s, p) = model(answer).await;
        assert_eq!(p.complete(&turns()).await.unwrap(), "Café ça va? 🎉");
        // And byte by byte, with \r\n line ends, through the parser alone.
        let crlf = delta("é🎉").replace('\n', "\r\n").into_bytes();
        let mut parser = SseParser::default();
        let mut got = Vec::new();
        for b in &crlf {
            got.extend(parser.push(std::slice::from_ref(b)));
        }
        assert_eq!(got.len(), 1);
        assert!(got[0].contains("é🎉"));
    }

    #[tokio::test]
    async fn a_malformed_event_is_skipped_and_the_rest_kept() {
        let body = [
            delta("one"),
            "data: {not json\n\n".into(),
            delta(" two"),
            "data: [DONE]\n\n".into(),
        ];
        let (_s, p) = model(chunks(&body, Duration::ZERO)).await;
        assert_eq!(p.complete(&turns()).await.unwrap(), "one two");
    }

    #[tokio::test]
    async fn a_server_error_an_empty_answer_and_a_reported_error_are_errors() {
        let (s, p) = model(Answer::status(500)).await;
        assert_eq!(p.complete(&turns()).await, Err(ProviderError::Status(500)));

        s.set(Answer::streaming(&[]));
        assert_eq!(p.complete(&turns()).await, Err(ProviderError::Empty));

        let err = "data: {\"error\": {\"message\": \"model not found\"}}\n\n".to_string();
        s.set(chunks(&[err], Duration::ZERO));
        assert_eq!(
            p.complete(&turns()).await,
            Err(ProviderError::Reported("model not found".into()))
        );

        // Nobody listening.
        let p = OpenAiCompatible::new("http://127.0.0.1:9/v1", "m", None, 100);
        assert!(matches!(
            p.complete(&turns()).await,
            Err(ProviderError::Network(_))
        ));
    }
}
