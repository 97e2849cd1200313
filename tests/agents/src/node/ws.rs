//! The websocket transport of remote command sessions (`v5.channel.k8s.io` … `channel.k8s.io`): one
//! channel byte per binary message (0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize, 255 close in
//! v5), an empty message on the first output channel once connected, the status on channel 3, then
//! close 1000.

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::exec::{Input, Outcome, Protocol, Streams, TerminalSize, Transport, status_payload};

type Sink<S> = futures::stream::SplitSink<WebSocketStream<S>, Message>;

/// A session's websocket: the sending half, and the task decoding what the client sends.
pub struct WsTransport<S> {
    sink: Sink<S>,
    proto: Protocol,
    reader: JoinHandle<()>,
}

impl<S> Drop for WsTransport<S> {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The channel that carries the "connected" message: stdout if asked for, else stderr, else status.
fn first_channel(s: Streams) -> u8 {
    if s.stdout {
        1
    } else if s.stderr {
        2
    } else {
        3
    }
}

/// Start a session on an upgraded websocket: say "connected" and decode the client's messages.
pub async fn accept<S>(
    ws: WebSocketStream<S>,
    proto: Protocol,
    streams: Streams,
) -> (WsTransport<S>, mpsc::Receiver<Input>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, rx) = ws.split();
    send(&mut sink, first_channel(streams), &[]).await;
    let (tx, in_rx) = mpsc::channel(16);
    let reader = tokio::spawn(read_input(rx, proto, tx));
    (
        WsTransport {
            sink,
            proto,
            reader,
        },
        in_rx,
    )
}

async fn send<S>(sink: &mut Sink<S>, channel: u8, data: &[u8]) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut m = Vec::with_capacity(data.len() + 1);
    m.push(channel);
    m.extend_from_slice(data);
    sink.send(Message::binary(m)).await.is_ok()
}

/// Read client messages: stdin data, resizes, the v5 close signal, and a websocket close (EOF for
/// stdin).
async fn read_input<S>(
    mut rx: futures::stream::SplitStream<WebSocketStream<S>>,
    proto: Protocol,
    tx: mpsc::Sender<Input>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(Ok(m)) = rx.next().await {
        match m {
            Message::Binary(b) => match b.first() {
                Some(0) if tx.send(Input::Stdin(b[1..].to_vec())).await.is_err() => return,
                Some(4) => {
                    if let Ok(t) = serde_json::from_slice::<TerminalSize>(&b[1..]) {
                        let _ = tx
                            .send(Input::Resize {
                                width: t.width,
                                height: t.height,
                            })
                            .await;
                    }
                }
                Some(255) if proto == Protocol::V5 && b.len() == 2 && b[1] == 0 => {
                    let _ = tx.send(Input::CloseStdin).await;
                }
                Some(255) => return,
                _ => {}
            },
            Message::Close(_) => break,
            _ => {}
        }
    }
    let _ = tx.send(Input::CloseStdin).await;
}

impl<S> Transport for WsTransport<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn send(&mut self, stream: u8, data: &[u8]) -> bool {
        send(&mut self.sink, stream, data).await
    }

    async fn finish(mut self, outcome: &Outcome) {
        if let Some(p) = status_payload(self.proto, outcome) {
            send(&mut self.sink, 3, &p).await;
        }
        let _ = self
            .sink
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })))
            .await;
        let _ = self.sink.flush().await;
    }
}
