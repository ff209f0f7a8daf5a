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
use crate::messages::{connection_tokens, decoded_path, Answer, Headers, Request};

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
const NO_UPGRADE: &str =
    "the gateway does not upgrade connections (websocket, h2c): send HTTP/1.1 requests";

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

struct Refusal(u16, String);

struct Head {
    method: String,
    target: Vec<u8>,
    version: u8,
    headers: Headers,
}

enum Parsed {
    Partial,
    Complete(Head, usize),
    Refused(Refusal),
}

fn parse_head(buf: &[u8], max_headers: usize) -> Parsed {
    let mut slots = vec![httparse::EMPTY_HEADER; max_headers];
    let mut request = httparse::Request::new(&mut slots);
    match request.parse(buf) {
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Ok(httparse::Status::Complete(length)) => Parsed::Complete(
            Head {
                method: request.method.unwrap_or_default().to_string(),
                target: request.path.unwrap_or_default().as_bytes().to_vec(),
                version: request.version.unwrap_or(1),
                headers: request
                    .headers
                    .iter()
                    .map(|h| (h.name.to_ascii_lowercase().into_bytes(), h.value.to_vec()))
                    .collect(),
            },
            length,
        ),
        Err(httparse::Error::TooManyHeaders) => Parsed::Refused(Refusal(
            431,
            format!("the request has over {max_headers} headers"),
        )),
        Err(error) => Parsed::Refused(Refusal(
            400,
            format!("this is not a valid HTTP/1.1 request: {error}"),
        )),
    }
}

/// The path and query of a request target: origin form as sent, or the path of an
/// absolute form; never an authority (`*@host/...`, `*`), which must not pick a host.
fn split_target(target: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Refusal> {
    let refused = || {
        Refusal(
            400,
            "the request target must be a path starting with /".into(),
        )
    };
    let lower = target.to_ascii_lowercase();
    let whole = if target.starts_with(b"/") {
        target
    } else if let Some(scheme) = [&b"http://"[..], b"https://"]
        .iter()
        .find(|s| lower.starts_with(s))
    {
        let rest = &target[scheme.len()..];
        let start = rest
            .iter()
            .position(|&b| matches!(b, b'/' | b'?' | b'#'))
            .ok_or_else(refused)?;
        if rest[start] != b'/' {
            return Err(refused());
        }
        &rest[start..]
    } else {
        return Err(refused());
    };
    let whole = &whole[..whole.iter().position(|&b| b == b'#').unwrap_or(whole.len())];
    Ok(match whole.iter().position(|&b| b == b'?') {
        Some(at) => (whole[..at].to_vec(), whole[at + 1..].to_vec()),
        None => (whole.to_vec(), Vec::new()),
    })
}

enum Body {
    Length(usize),
    Chunked,
}

/// What the head says of the body, and the checks of `on_header` in the Python data plane.
fn check_head(head: &Head, limits: &Limits) -> Result<(Body, bool, Option<Vec<u8>>), Refusal> {
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut expects = false;
    let mut given_id = None;
    let mut upgrade = false;
    for (name, value) in &head.headers {
        match name.as_slice() {
            b"content-length" => {
                let text = std::str::from_utf8(value).unwrap_or("").trim();
                let parsed = text
                    .parse::<usize>()
                    .ok()
                    .filter(|_| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()));
                let Some(declared) = parsed else {
                    return Err(Refusal(
                        400,
                        "this is not a valid HTTP/1.1 request: invalid content-length".into(),
                    ));
                };
                if length.is_some_and(|known| known != declared) {
                    return Err(Refusal(
                        400,
                        "this is not a valid HTTP/1.1 request: two content-lengths".into(),
                    ));
                }
                if declared > limits.max_body {
                    let limit = limits.max_body;
                    return Err(Refusal(
                        413,
                        format!("the request body is {declared} bytes; the limit is {limit}"),
                    ));
                }
                length = Some(declared);
            }
            b"transfer-encoding" => {
                let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
                if !last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                    return Err(Refusal(400, "this is not a valid HTTP/1.1 request: a transfer-encoding other than chunked".into()));
                }
                chunked = true;
            }
            b"x-request-id" => given_id = Some(value.clone()),
            b"expect" => {
                if !value.eq_ignore_ascii_case(b"100-continue") {
                    return Err(Refusal(
                        417,
                        "the only expectation the gateway meets is 100-continue".into(),
                    ));
                }
                expects = true;
            }
            b"upgrade" => upgrade = true,
            _ => {}
        }
    }
    if chunked && length.is_some() {
        return Err(Refusal(
            400,
            "this is not a valid HTTP/1.1 request: both content-length and chunked".into(),
        ));
    }
    let upgrades = upgrade
        && connection_tokens(&head.headers)
            .iter()
            .any(|t| t == b"upgrade");
    if head.method == "CONNECT" || upgrades {
        return Err(Refusal(400, NO_UPGRADE.into()));
    }
    let body = if chunked {
        Body::Chunked
    } else {
        Body::Length(length.unwrap_or(0))
    };
    Ok((body, expects, given_id))
}

fn keeps_alive(head: &Head) -> bool {
    let tokens = connection_tokens(&head.headers);
    if head.version == 1 {
        !tokens.iter().any(|t| t == b"close")
    } else {
        tokens.iter().any(|t| t == b"keep-alive")
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
            if self
                .stream
                .write_all(&answer.encode(keep_alive, &plane.date()))
                .await
                .is_err()
            {
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
        Refusal(
            431,
            format!("the request line and headers exceed {limit} bytes"),
        )
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
        if self
            .stream
            .write_all(&answer.encode(false, &date))
            .await
            .is_err()
        {
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
    let mut connection = Connection {
        stream,
        client,
        plane: plane.clone(),
        buf: Vec::new(),
    };
    if plane.connections.get() >= plane.limits.max_connections {
        let full = Refusal(
            503,
            "the gateway is at its connection limit; retry shortly".into(),
        );
        let answer = Answer::error(full.0, &full.1);
        let _ = connection
            .stream
            .write_all(&answer.encode(false, &plane.date()))
            .await;
        let _ = connection.stream.shutdown().await;
        return;
    }
    plane.connections.set(plane.connections.get() + 1);
    connection.run().await;
    plane.connections.set(plane.connections.get() - 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(target: &[u8]) -> Result<(String, String), u16> {
        split_target(target)
            .map(|(path, query)| (latin1(&path), latin1(&query)))
            .map_err(|refusal| refusal.0)
    }

    fn latin1(bytes: &[u8]) -> String {
        crate::messages::latin1(bytes)
    }

    #[test]
    fn a_target_is_a_path_never_a_host() {
        assert_eq!(
            split(b"/predict?x=%2F#frag"),
            Ok(("/predict".into(), "x=%2F".into()))
        );
        assert_eq!(
            split(b"//127.0.0.1:9/predict"),
            Ok(("//127.0.0.1:9/predict".into(), "".into()))
        );
        assert_eq!(
            split(b"http://127.0.0.1:9/predict?q"),
            Ok(("/predict".into(), "q".into()))
        );
        for refused in [
            &b"*"[..],
            b"*@127.0.0.1:9/admin",
            b"@127.0.0.1:9/x",
            b"http://host",
            b"http://h?/x",
        ] {
            assert_eq!(split(refused), Err(400));
        }
    }

    fn head(headers: &[(&str, &str)]) -> Head {
        Head {
            method: "POST".into(),
            target: b"/".to_vec(),
            version: 1,
            headers: headers
                .iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    fn limits() -> Limits {
        let second = Duration::from_secs(1);
        Limits {
            max_body: 100,
            max_head: 1000,
            max_headers: 10,
            header_timeout: second,
            body_timeout: second,
            idle_timeout: second,
            max_connections: 1,
            drain: second,
        }
    }

    fn refusal(headers: &[(&str, &str)]) -> Option<u16> {
        check_head(&head(headers), &limits())
            .err()
            .map(|refused| refused.0)
    }

    #[test]
    fn heads_are_checked_as_the_python_data_plane_checks_them() {
        assert_eq!(refusal(&[("content-length", "100")]), None);
        assert_eq!(refusal(&[("content-length", "101")]), Some(413));
        assert_eq!(refusal(&[("content-length", "-1")]), Some(400));
        assert_eq!(
            refusal(&[("content-length", "1"), ("content-length", "2")]),
            Some(400)
        );
        assert_eq!(refusal(&[("transfer-encoding", "gzip")]), Some(400));
        assert_eq!(
            refusal(&[("transfer-encoding", "chunked"), ("content-length", "1")]),
            Some(400)
        );
        assert_eq!(refusal(&[("expect", "100-Continue")]), None);
        assert_eq!(refusal(&[("expect", "something")]), Some(417));
        assert_eq!(
            refusal(&[("connection", "Upgrade"), ("upgrade", "websocket")]),
            Some(400)
        );
        assert_eq!(refusal(&[("upgrade", "websocket")]), None); // not asked for by Connection
    }
}
