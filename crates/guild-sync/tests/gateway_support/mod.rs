//! A fake Discord gateway on a local port (tokio-tungstenite) for the tests that drive the real
//! twilight-gateway shard: HELLO → IDENTIFY → READY → scripted dispatches, heartbeats
//! answered, zlib-stream transport compression when the client asks for it, a
//! gateway-requested reconnect between scripted connections, and — for tests that act in
//! steps — dispatches sent live on the last connection.

// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::io::Write;

use flate2::Compression;
use flate2::write::ZlibEncoder;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// The guild the fake's READY names.
pub const GUILD: &str = "4242";

/// What the fake gateway saw from the client.
#[derive(Debug)]
pub enum Seen {
    Connected { query: String },
    Identify(Value),
    Resume(Value),
    Heartbeat,
    Closed,
}

/// A dispatch to send live: its event name (`t`) and data (`d`).
pub type Dispatch = (String, Value);

/// A fake gateway: connection `i` plays `script[i]` (dispatch `{t, d}` pairs) after the
/// handshake, then asks the client to reconnect if another connection is scripted.
pub async fn start_fake_gateway(
    script: Vec<Vec<(&'static str, Value)>>,
) -> (String, mpsc::UnboundedReceiver<Seen>) {
    start(script, None).await
}

/// A fake gateway with one connection that plays `first`, then sends whatever the returned
/// sender is given, in order, as long as the connection lasts.
pub async fn start_live_gateway(
    first: Vec<(&'static str, Value)>,
) -> (
    String,
    mpsc::UnboundedReceiver<Seen>,
    mpsc::UnboundedSender<Dispatch>,
) {
    let (live, live_rx) = mpsc::unbounded_channel();
    let (url, seen) = start(vec![first], Some(live_rx)).await;
    (url, seen, live)
}

/// What the connection loop got next.
enum Next {
    FromClient(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Live(Dispatch),
}

// tungstenite's handshake callback returns its (large) error response type by value.
#[allow(clippy::result_large_err)]
async fn start(
    script: Vec<Vec<(&'static str, Value)>>,
    mut live: Option<mpsc::UnboundedReceiver<Dispatch>>,
) -> (String, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let (seen, seen_rx) = mpsc::unbounded_channel();
    let resume_url = url.clone();
    tokio::spawn(async move {
        let mut sequence = 0u64;
        for (n, dispatches) in script.iter().enumerate() {
            let last = n + 1 == script.len();
            let (stream, _) = listener.accept().await.unwrap();
            let mut query = String::new();
            let mut ws =
                tokio_tungstenite::accept_hdr_async(stream, |req: &Request, res: Response| {
                    query = req.uri().query().unwrap_or_default().to_owned();
                    Ok(res)
                })
                .await
                .unwrap();
            // `.ok()` throughout: a test that does not watch may drop the receiver.
            seen.send(Seen::Connected {
                query: query.clone(),
            })
            .ok();
            // Speak what the client asked for: one zlib stream per connection, each message
            // ending in a sync flush (00 00 ff ff), as Discord does.
            let mut zlib = query
                .contains("compress=zlib-stream")
                .then(|| ZlibEncoder::new(Vec::new(), Compression::default()));
            macro_rules! send {
                ($payload:expr) => {{
                    let text = serde_json::to_string(&$payload).unwrap();
                    let message = match zlib.as_mut() {
                        Some(encoder) => {
                            encoder.write_all(text.as_bytes()).unwrap();
                            encoder.flush().unwrap();
                            Message::Binary(std::mem::take(encoder.get_mut()).into())
                        }
                        None => Message::Text(text.into()),
                    };
                    ws.send(message).await.unwrap();
                }};
            }
            send!(json!({"op": 10, "s": null, "t": null, "d": {"heartbeat_interval": 250}}));
            let mut played = false;
            loop {
                let live_now = if played && last { live.as_mut() } else { None };
                let next = tokio::select! {
                    message = ws.next() => Next::FromClient(message),
                    Some(dispatch) = async {
                        match live_now {
                            Some(rx) => rx.recv().await,
                            None => std::future::pending().await,
                        }
                    } => Next::Live(dispatch),
                };
                let message = match next {
                    Next::Live((kind, data)) => {
                        sequence += 1;
                        send!(json!({"op": 0, "s": sequence, "t": kind, "d": data}));
                        continue;
                    }
                    Next::FromClient(Some(Ok(message))) => message,
                    Next::FromClient(_) => break,
                };
                let payload: Value = match &message {
                    Message::Text(text) => serde_json::from_str(text).unwrap(),
                    // tungstenite answers the close on the next read, which then ends the
                    // stream — a clean close, as Discord does it.
                    _ => continue,
                };
                match payload["op"].as_u64() {
                    Some(1) => {
                        seen.send(Seen::Heartbeat).ok();
                        send!(json!({"op": 11, "s": null, "t": null, "d": null}));
                    }
                    Some(op @ (2 | 6)) if !played => {
                        played = true;
                        if op == 2 {
                            seen.send(Seen::Identify(payload["d"].clone())).ok();
                            sequence += 1;
                            send!(json!({"op": 0, "s": sequence, "t": "READY", "d": {
                                "v": 10,
                                "user": {"id": "7000", "username": "guild-sync", "bot": true},
                                "guilds": [{"id": GUILD, "unavailable": true}],
                                "session_id": "fake-session",
                                "resume_gateway_url": resume_url,
                                "shard": [0, 1],
                                "application": {"id": "7000", "flags": 0}
                            }}));
                        } else {
                            seen.send(Seen::Resume(payload["d"].clone())).ok();
                            sequence += 1;
                            send!(json!({"op": 0, "s": sequence, "t": "RESUMED", "d": null}));
                        }
                        for (kind, data) in dispatches {
                            sequence += 1;
                            send!(json!({"op": 0, "s": sequence, "t": kind, "d": data}));
                        }
                        if !last {
                            send!(json!({"op": 7, "s": null, "t": null, "d": null}));
                        }
                    }
                    _ => {}
                }
            }
            seen.send(Seen::Closed).ok();
        }
    });
    (url, seen_rx)
}

/// Wait for the next thing the fake saw that `pick` accepts.
pub async fn next_seen<T>(
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    pick: impl Fn(Seen) -> Option<T>,
) -> T {
    loop {
        let seen = rx.recv().await.expect("the fake gateway stopped");
        if let Some(value) = pick(seen) {
            return value;
        }
    }
}
