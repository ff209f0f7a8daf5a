//! The data plane's HTTP/1.1 server, with the limits `routing/dataplane.py` enforces:
//! the request line and headers bounded in bytes and count (431); a body over its
//! limit refused as soon as its declared length or its bytes so far exceed it (413);
//! `header_timeout` from a request's first byte to its last header and `body_timeout`
//! more for the body (408); an idle connection closed; beyond `max_connections` a
//! connection gets 503 at once. A refusal is written, what the client still sends is
//! read and dropped for a moment, and the connection closes, so that the client reads
//! the answer rather than a reset. Pipelined requests are answered in order: the next
//! one is read once the one before is answered. `expect: 100-continue` is answered here.
//!
//! Parsing is httparse's (hyper's parser); the server is written here because its
//! refusals and limits must be exactly the Python data plane's, which hyper's server
//! does not let one word or time.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{timeout_at, Instant};

use crate::chunked::{ChunkError, Chunked};
use crate::gateway::Gateway;
use crate::head::{check_head, keeps_alive, parse_head, split_target, Body, Parsed, Refusal};
use crate::messages::{decoded_path, Answer, Request};

pub struct Limits {
    pub max_body: usize,
    pub max_head: usize,
    pub max_headers: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub drain: Duration,
}

const LINGER: Duration = Duration::from_secs(1);
const READ_SIZE: usize = 16 << 10;
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What every connection shares: the gateway, the limits, the counts the connection
/// limit and the drain need, and the Date header of this second.
pub struct Plane {
    pub gateway: Rc<Gateway>,
    pub limits: Limits,
    pub connections: Cell<usize>,
    pub busy: Cell<usize>,
    pub draining: Cell<bool>,
    pub stopping: Cell<bool>,
    pub stop: Notify,
    date: RefCell<(u64, Vec<u8>)>,
}

impl Plane {
    pub fn new(gateway: Rc<Gateway>, limits: Limits) -> Self {
        Self {
            gateway,
            limits,
            connections: Cell::new(0),
            busy: Cell::new(0),
            draining: Cell::new(false),
            stopping: Cell::new(false),
            stop: Notify::new(),
            date: RefCell::new((0, Vec::new())),
        }
    }

    pub fn date(&self) -> Vec<u8> {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut cached = self.date.borrow_mut();
        if cached.0 != second {
            *cached = (second, httpdate::fmt_http_date(now).into_bytes());
        }
        cached.1.clone()
    }
}

enum Read {
    Data,
    Closed,
    Late,
}

struct Connection {
    stream: TcpStream,
    client: SocketAddr,
    plane: Rc<Plane>,
    buf: Vec<u8>,
}

impl Connection {
    async fn read_until(&mut self, deadline: Instant) -> Read {
        self.buf.reserve(READ_SIZE);
        match timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
            Err(_) => Read::Late,
            Ok(Ok(0)) | Ok(Err(_)) => Read::Closed,
            Ok(Ok(_)) => Read::Data,
        }
    }

    /// Wait for a request's first byte; false when the connection should close.
    async fn wait_for_request(&mut self) -> bool {
        if !self.buf.is_empty() {
            return true;
        }
        let limits = &self.plane.limits;
        let deadline = Instant::now() + limits.idle_timeout + limits.header_timeout;
        if self.plane.stopping.get() {
            return false;
        }
        let plane = self.plane.clone();
        tokio::select! {
            read = self.read_until(deadline) => matches!(read, Read::Data),
            () = plane.stop.notified() => false,
        }
    }

    async fn run(&mut self) {
        loop {
            if !self.wait_for_request().await {
                return;
            }
            let started = Instant::now();
            let plane = self.plane.clone();
            let limits = &plane.limits;
            let (head, length) = loop {
                match parse_head(&self.buf, limits.max_headers) {
                    Parsed::Complete(head, length) => break (head, length),
                    Parsed::Refused(refusal) => return self.refuse(refusal).await,
                    Parsed::Partial => {}
                }
                if self.buf.len() > limits.max_head {
                    return self.refuse(self.head_too_large()).await;
                }
                match self.read_until(started + limits.header_timeout).await {
                    Read::Data => {}
                    Read::Closed => return,
                    Read::Late => {
                        return self
                            .refuse(Refusal(408, "the request headers took too long".into()))
                            .await
                    }
                }
            };
            if length > limits.max_head {
                return self.refuse(self.head_too_large()).await;
            }
            let (body, expects, given_id) = match check_head(&head, limits) {
                Ok(checked) => checked,
                Err(refusal) => return self.refuse(refusal).await,
            };
            let (raw_path, query) = match split_target(&head.target) {
                Ok(split) => split,
                Err(refusal) => return self.refuse(refusal).await,
            };
            self.buf.drain(..length);
            let Some(body) = self.read_body(body, expects).await else {
                return;
            };
            let keep_alive = keeps_alive(&head);
            let request = Request {
                path: decoded_path(&raw_path),
                method: head.method,
                raw_path,
                query,
                headers: head.headers,
                body,
                given_id,
                client: self.client,
            };
            plane.busy.set(plane.busy.get() + 1);
            let answer = plane.gateway.answer(request).await;
            plane.busy.set(plane.busy.get() - 1);
            let keep_alive = keep_alive && !plane.draining.get();
            if self.stream.write_all(&answer.encode(keep_alive, &plane.date())).await.is_err() {
                return;
            }
            if !keep_alive {
                let _ = self.stream.shutdown().await;
                return;
            }
        }
    }

    fn head_too_large(&self) -> Refusal {
        let limit = self.plane.limits.max_head;
        Refusal(431, format!("the request line and headers exceed {limit} bytes"))
    }

    /// The body whole, or None once the connection is done with (refused, or gone).
    async fn read_body(&mut self, body: Body, expects: bool) -> Option<Vec<u8>> {
        let plane = self.plane.clone();
        let limits = &plane.limits;
        let deadline = Instant::now() + limits.body_timeout;
        let complete = match body {
            Body::Length(length) => self.buf.len() >= length,
            Body::Chunked => false,
        };
        if expects && !complete && self.stream.write_all(CONTINUE).await.is_err() {
            return None;
        }
        let late = || Refusal(408, "the request body took too long".into());
        match body {
            Body::Length(length) => {
                while self.buf.len() < length {
                    match self.read_until(deadline).await {
                        Read::Data => {}
                        Read::Closed => return self.gone(),
                        Read::Late => return self.refused(late()).await,
                    }
                }
                let rest = self.buf.split_off(length);
                Some(std::mem::replace(&mut self.buf, rest))
            }
            Body::Chunked => {
                let mut chunks = Chunked::new(limits.max_body);
                loop {
                    match chunks.feed(&mut self.buf) {
                        Ok(true) => return Some(chunks.body),
                        Ok(false) => {}
                        Err(ChunkError::TooLarge) => {
                            let limit = self.plane.limits.max_body;
                            let message =
                                format!("the request body exceeds the limit of {limit} bytes");
                            return self.refused(Refusal(413, message)).await;
                        }
                        Err(ChunkError::Invalid(why)) => {
                            let message = format!("this is not a valid HTTP/1.1 request: {why}");
                            return self.refused(Refusal(400, message)).await;
                        }
                    }
                    match self.read_until(deadline).await {
                        Read::Data => {}
                        Read::Closed => return self.gone(),
                        Read::Late => return self.refused(late()).await,
                    }
                }
            }
        }
    }

    /// The client closed its connection mid-body: nothing is forwarded, it is counted.
    fn gone(&self) -> Option<Vec<u8>> {
        self.plane.gateway.client_gone();
        None
    }

    async fn refused(&mut self, refusal: Refusal) -> Option<Vec<u8>> {
        self.refuse(refusal).await;
        None
    }

    /// Answer `refusal` and close: what the client still sends is dropped for LINGER.
    async fn refuse(&mut self, refusal: Refusal) {
        let answer = Answer::error(refusal.0, &refusal.1);
        let date = self.plane.date();
        if self.stream.write_all(&answer.encode(false, &date)).await.is_err() {
            return;
        }
        let _ = self.stream.shutdown().await;
        let until = Instant::now() + LINGER;
        let mut sink = vec![0u8; READ_SIZE];
        while let Ok(Ok(read)) = timeout_at(until, self.stream.read(&mut sink)).await {
            if read == 0 {
                break;
            }
        }
    }
}

/// Serve one client connection until it closes, idles out or is refused.
pub async fn serve(stream: TcpStream, client: SocketAddr, plane: Rc<Plane>) {
    let _ = stream.set_nodelay(true);
    let mut connection = Connection { stream, client, plane: plane.clone(), buf: Vec::new() };
    if plane.connections.get() >= plane.limits.max_connections {
        let full = Refusal(503, "the gateway is at its connection limit; retry shortly".into());
        let answer = Answer::error(full.0, &full.1);
        let _ = connection.stream.write_all(&answer.encode(false, &plane.date())).await;
        let _ = connection.stream.shutdown().await;
        return;
    }
    plane.connections.set(plane.connections.get() + 1);
    connection.run().await;
    plane.connections.set(plane.connections.get() - 1);
}
