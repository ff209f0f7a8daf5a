//! The data plane's side towards its upstreams: HTTP/1.1 over kept-alive connections,
//! one pool per origin, each answer read whole (bounded), as `routing/upstream.py`.
//! A connection goes back to its pool when its answer ended cleanly and both sides
//! keep it alive; anything else closes it. A kept-alive connection the upstream closed
//! while it sat idle fails before any answer byte: the request is then sent once
//! more, on a new connection, as HTTP clients do.

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::{timeout_at, Instant};

use crate::chunked::{ChunkError, Chunked};
use crate::messages::{connection_tokens, Headers};

pub const MAX_ANSWER_BYTES: usize = 64 << 20;
const MAX_HEAD_BYTES: usize = 64 << 10;
const MAX_HEADERS: usize = 128;
const MAX_IDLE: usize = 256; // kept-alive connections per origin; more are closed

pub enum Address {
    Tcp(String), // host:port
    Unix(PathBuf),
}

/// Where an upstream is (from the route table, never from a request).
pub struct Origin {
    pub address: Address,
    pub prefix: Vec<u8>, // prepended to the client's path, without a trailing /
    pub host_header: Vec<u8>,
    pub url: String,
}

impl Origin {
    /// `http://host:port[/prefix]`: what `parse_upstreams` accepted on the Python side.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url}: not http://"))?;
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{url}: no host"));
        }
        let address = if authority.rsplit_once(':').is_some_and(|(_, p)| !p.ends_with(']')) {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            address: Address::Tcp(address),
            prefix: path.trim_end_matches('/').as_bytes().to_vec(),
            host_header: authority.as_bytes().to_vec(),
            url: format!("http://{authority}"),
        })
    }

    pub fn unix(path: PathBuf) -> Self {
        let url = format!("unix:{}", path.display());
        Self {
            address: Address::Unix(path),
            prefix: Vec::new(),
            host_header: b"localhost".to_vec(),
            url,
        }
    }
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Tcp(s) => s.write_all(data).await,
            Self::Unix(s) => s.write_all(data).await,
        }
    }

    async fn read_buf(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        buf.reserve(16 << 10);
        match self {
            Self::Tcp(s) => s.read_buf(buf).await,
            Self::Unix(s) => s.read_buf(buf).await,
        }
    }
}

struct Connection {
    stream: Stream,
    used: bool, // has answered before: a failure may be a stale keep-alive
    buf: Vec<u8>,
}

pub struct UpstreamAnswer {
    pub status: u16,
    pub headers: Headers, // names lowercased
    pub body: Vec<u8>,
}

pub enum UpstreamError {
    Timeout,
    Failed(String),
}

struct Broken {
    received: bool, // some of an answer arrived: the request is not sent again
    why: String,
}

/// Kept-alive connections to one origin.
pub struct Pool {
    pub origin: Origin,
    idle: RefCell<Vec<Connection>>,
}

impl Pool {
    pub fn new(origin: Origin) -> Self {
        Self { origin, idle: RefCell::new(Vec::new()) }
    }

    async fn connect(&self) -> Result<Connection, String> {
        let stream = match &self.origin.address {
            Address::Tcp(address) => {
                let stream = TcpStream::connect(address.as_str())
                    .await
                    .map_err(|e| format!("cannot connect: {e}"))?;
                let _ = stream.set_nodelay(true);
                Stream::Tcp(stream)
            }
            Address::Unix(path) => Stream::Unix(
                UnixStream::connect(path).await.map_err(|e| format!("cannot connect: {e}"))?,
            ),
        };
        Ok(Connection { stream, used: false, buf: Vec::new() })
    }

    /// A new connection, or the error to answer when none is made by `deadline`.
    async fn connect_by(&self, deadline: Instant) -> Result<Connection, UpstreamError> {
        match timeout_at(deadline, self.connect()).await {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(Err(why)) => Err(UpstreamError::Failed(why)),
            Ok(Ok(connection)) => Ok(connection),
        }
    }

    /// Send one request (`data`: its head and body) and read its answer, in at most
    /// `timeout`, connecting included.
    pub async fn request(
        &self,
        data: &[u8],
        timeout: Duration,
        head_only: bool,
    ) -> Result<UpstreamAnswer, UpstreamError> {
        let deadline = Instant::now() + timeout;
        let idle = self.idle.borrow_mut().pop();
        let mut connection = match idle {
            Some(connection) => connection,
            None => self.connect_by(deadline).await?,
        };
        loop {
            match timeout_at(deadline, exchange(&mut connection, data, head_only)).await {
                Err(_) => return Err(UpstreamError::Timeout),
                Ok(Ok((answer, reusable))) => {
                    connection.used = true;
                    if reusable {
                        let mut idle = self.idle.borrow_mut();
                        if idle.len() < MAX_IDLE {
                            idle.push(connection);
                        }
                    }
                    return Ok(answer);
                }
                Ok(Err(broken)) => {
                    if connection.used && !broken.received && Instant::now() < deadline {
                        connection = self.connect_by(deadline).await?;
                        continue; // closed while it was idle: once more, on a new one
                    }
                    return Err(UpstreamError::Failed(broken.why));
                }
            }
        }
    }
}

struct ResponseHead {
    status: u16,
    version: u8,
    headers: Headers,
}

fn parse_answer_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, String> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    match response.parse(buf) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(length)) => Ok(Some((
            ResponseHead {
                status: response.code.unwrap_or(0),
                version: response.version.unwrap_or(1),
                headers: response
                    .headers
                    .iter()
                    .map(|h| (h.name.to_ascii_lowercase().into_bytes(), h.value.to_vec()))
                    .collect(),
            },
            length,
        ))),
        Err(error) => Err(format!("the upstream sent an invalid answer: {error}")),
    }
}

async fn exchange(
    connection: &mut Connection,
    data: &[u8],
    head_only: bool,
) -> Result<(UpstreamAnswer, bool), Broken> {
    let broken = |received: bool, why: &str| Broken { received, why: why.to_string() };
    connection.buf.clear();
    if let Err(error) = connection.stream.write_all(data).await {
        return Err(broken(false, &format!("cannot send: {error}")));
    }
    let buf = &mut connection.buf;
    let head = loop {
        match parse_answer_head(buf) {
            Err(why) => return Err(broken(true, &why)),
            Ok(Some((head, length))) if head.status < 200 => {
                buf.drain(..length); // an interim answer (100 Continue): the final one follows
            }
            Ok(Some((head, length))) => {
                buf.drain(..length);
                break head;
            }
            Ok(None) if buf.len() > MAX_HEAD_BYTES => {
                return Err(broken(true, "the answer's head is too large"))
            }
            Ok(None) => {}
        }
        let received = !buf.is_empty();
        match connection.stream.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(broken(received, "the upstream closed the connection")),
            Ok(_) => {}
        }
    };
    let tokens = connection_tokens(&head.headers);
    let mut reusable = if head.version == 1 {
        !tokens.iter().any(|t| t == b"close")
    } else {
        tokens.iter().any(|t| t == b"keep-alive")
    };
    let no_body = head_only || head.status == 204 || head.status == 304;
    let chunked = head
        .headers
        .iter()
        .any(|(n, v)| n == b"transfer-encoding" && v.to_ascii_lowercase().ends_with(b"chunked"));
    let length = head
        .headers
        .iter()
        .find(|(n, _)| n == b"content-length")
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok());
    let too_large = || broken(true, &format!("the answer is over {MAX_ANSWER_BYTES} bytes"));
    let body = if no_body {
        reusable = reusable && !head_only; // as the Python pool: a HEAD's connection is not reused
        Vec::new()
    } else if chunked {
        let mut chunks = Chunked::new(MAX_ANSWER_BYTES);
        loop {
            match chunks.feed(buf) {
                Ok(true) => break chunks.body,
                Ok(false) => {}
                Err(ChunkError::TooLarge) => return Err(too_large()),
                Err(ChunkError::Invalid(why)) => return Err(broken(true, why)),
            }
            match connection.stream.read_buf(buf).await {
                Ok(0) | Err(_) => return Err(broken(true, "the upstream closed the connection")),
                Ok(_) => {}
            }
        }
    } else if let Some(length) = length {
        if length > MAX_ANSWER_BYTES {
            return Err(too_large());
        }
        while buf.len() < length {
            match connection.stream.read_buf(buf).await {
                Ok(0) | Err(_) => return Err(broken(true, "the upstream closed the connection")),
                Ok(_) => {}
            }
        }
        let rest = buf.split_off(length);
        std::mem::replace(buf, rest)
    } else {
        reusable = false; // the body ends where the connection does
        loop {
            if buf.len() > MAX_ANSWER_BYTES {
                return Err(too_large());
            }
            match connection.stream.read_buf(buf).await {
                Ok(0) => break std::mem::take(buf),
                Err(_) => return Err(broken(true, "the upstream broke the connection")),
                Ok(_) => {}
            }
        }
    };
    let reusable = reusable && buf.is_empty();
    Ok((UpstreamAnswer { status: head.status, headers: head.headers, body }, reusable))
}
