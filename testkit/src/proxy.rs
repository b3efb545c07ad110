//! A TCP proxy in front of a store, for the network conditions an emulator on
//! the same machine never has.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::emulator::{port_of, with_port};

/// A TCP proxy on 127.0.0.1 in front of one store, for conditions a local
/// emulator never has: network latency (each direction delayed by half the round
/// trip, chunks kept in order but not serialised behind each other's delays), and
/// a store that is slow rather than down (a stall: bytes are held, not refused),
/// from the start or after a number of bytes of an answer. It also counts the
/// bytes the store sent, so a test can tell whether a body was downloaded.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub addr: SocketAddr,
    one_way_micros: Arc<AtomicU64>,
    stalled: Arc<AtomicBool>,
    /// Per connection: hold answers after this many bytes (`u64::MAX`: never).
    stall_answers_after: Arc<AtomicU64>,
    answered_bytes: Arc<AtomicU64>,
    /// Requests seen: chunks from the client that start with an HTTP method
    /// (HTTP/1.1 clients send the next request once the last was answered).
    requests: Arc<AtomicU64>,
    /// The next request starting with these bytes is forwarded, and its answer lost.
    lose_answer_to: Arc<std::sync::Mutex<Option<Vec<u8>>>>,
}

impl Proxy {
    /// Starts forwarding a free local port to `upstream` (on the current runtime).
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy = Self {
            addr: listener.local_addr()?,
            one_way_micros: Arc::new(AtomicU64::new(0)),
            stalled: Arc::new(AtomicBool::new(false)),
            stall_answers_after: Arc::new(AtomicU64::new(u64::MAX)),
            answered_bytes: Arc::new(AtomicU64::new(0)),
            requests: Arc::new(AtomicU64::new(0)),
            lose_answer_to: Arc::new(std::sync::Mutex::new(None)),
        };
        let shared = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let p = shared.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        let (cr, cw) = client.into_split();
                        let (sr, sw) = server.into_split();
                        let lose = Arc::new(AtomicBool::new(false));
                        tokio::join!(p.pipe(cr, sw, false, lose.clone()), p.pipe(sr, cw, true, lose));
                    }
                });
            }
        });
        Ok(proxy)
    }

    /// A proxy in front of the store at `endpoint` (`http://127.0.0.1:PORT/...`).
    pub async fn in_front_of(endpoint: &str) -> std::io::Result<Self> {
        Self::start(SocketAddr::from(([127, 0, 0, 1], port_of(endpoint)))).await
    }

    /// Adds `round_trip` to every request-response exchange through the proxy.
    pub fn set_round_trip(&self, round_trip: Duration) {
        self.one_way_micros.store(round_trip.as_micros() as u64 / 2, Ordering::Relaxed);
    }

    /// While stalled, connections are accepted and bytes are held, never forwarded.
    pub fn set_stalled(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::Relaxed);
    }

    /// On each connection, holds the store's answers after `bytes` bytes (`None`: never).
    pub fn stall_answers_after(&self, bytes: Option<u64>) {
        self.stall_answers_after.store(bytes.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The next request that starts with `prefix` (say `b"DELETE "`) reaches the
    /// store, but its answer is lost: the connection closes instead. The store did
    /// the work; the client cannot know.
    pub fn lose_answer_to_next(&self, prefix: &[u8]) {
        if let Ok(mut armed) = self.lose_answer_to.lock() {
            *armed = Some(prefix.to_vec());
        }
    }

    /// Requests sent through the proxy so far (see the field's note).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Bytes the store has sent through the proxy so far.
    pub fn answered_bytes(&self) -> u64 {
        self.answered_bytes.load(Ordering::Relaxed)
    }

    /// `endpoint` routed through the proxy (same path, the proxy's port).
    pub fn endpoint_for(&self, endpoint: &str) -> String {
        with_port(endpoint, self.addr.port())
    }

    async fn pipe(
        &self,
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        answers: bool,
        lose_answer: Arc<AtomicBool>,
    ) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
        let delay = self.one_way_micros.clone();
        let requests = (!answers).then(|| self.requests.clone());
        let reader = async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match from.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        const METHODS: [&[u8]; 6] = [b"GET ", b"PUT ", b"POST ", b"HEAD ", b"DELETE ", b"PATCH "];
                        if let Some(requests) = &requests
                            && METHODS.iter().any(|m| buf[..n].starts_with(m))
                        {
                            requests.fetch_add(1, Ordering::Relaxed);
                        }
                        let due = tokio::time::Instant::now() + Duration::from_micros(delay.load(Ordering::Relaxed));
                        if tx.send((due, buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                }
            }
        };
        let me = self.clone();
        let writer = async move {
            let mut sent: u64 = 0;
            while let Some((due, mut bytes)) = rx.recv().await {
                tokio::time::sleep_until(due).await;
                while me.stalled.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if !answers
                    && let Ok(mut armed) = me.lose_answer_to.lock()
                    && armed.as_ref().is_some_and(|prefix| bytes.starts_with(prefix))
                {
                    *armed = None;
                    lose_answer.store(true, Ordering::SeqCst);
                }
                if answers && lose_answer.load(Ordering::SeqCst) {
                    break;
                }
                if answers {
                    let limit = me.stall_answers_after.load(Ordering::Relaxed);
                    if sent.saturating_add(bytes.len() as u64) > limit {
                        // Send up to the limit, then hold the rest for as long as the stall lasts.
                        let head = limit.saturating_sub(sent) as usize;
                        if head > 0 && to.write_all(&bytes[..head]).await.is_err() {
                            break;
                        }
                        me.answered_bytes.fetch_add(head as u64, Ordering::Relaxed);
                        sent += head as u64;
                        bytes.drain(..head);
                        while me.stall_answers_after.load(Ordering::Relaxed) <= sent {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    me.answered_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    sent += bytes.len() as u64;
                }
                if to.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            let _ = to.shutdown().await;
        };
        tokio::join!(reader, writer);
    }
}
