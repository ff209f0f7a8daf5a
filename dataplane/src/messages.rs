//! What the data plane reads and writes: a client's request as parsed, an answer as
//! written back, and the header rules both ways (as `routing/messages.py`).

/// The headers that stop at the data plane, as the Python side defines them
/// (`routing/messages.py`, `routing/gateway.py`) and sends them with the routes.
#[derive(serde::Deserialize, Default)]
pub struct HeaderRules {
    /// hop-by-hop (RFC 9110 7.6.1), and what the data plane sets itself; so are the
    /// headers a message's own Connection header names
    pub hop_by_hop: Vec<String>,
    /// what an answer does not pass on besides the hop-by-hop headers
    pub passed_over: Vec<String>,
    /// what the gateway sets itself, never taken from a client or an upstream
    pub own: Vec<String>,
}

pub type Headers = Vec<(Vec<u8>, Vec<u8>)>;

pub struct Request {
    pub method: String,
    pub raw_path: Vec<u8>, // as sent: still percent-encoded, always starting with /
    pub path: String,      // decoded: what rules match
    pub query: Vec<u8>,    // as sent, without the ?
    pub headers: Headers,  // lowercase names, every one, in order
    pub body: Vec<u8>,
    pub given_id: Option<Vec<u8>>, // its x-request-id as sent (the last one), if any
    pub client: std::net::SocketAddr,
}

pub struct Answer {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
    pub length: Option<usize>, // for HEAD: the length a GET would have had
    pub upstream_seconds: f64,
}

impl Answer {
    pub fn new(status: u16, headers: Headers, body: Vec<u8>) -> Self {
        Self { status, headers, body, length: None, upstream_seconds: 0.0 }
    }

    /// `{"error": message}`, as every mlpatterns server words its refusals.
    pub fn error(status: u16, message: &str) -> Self {
        let body = serde_json::to_vec(&serde_json::json!({ "error": message })).unwrap_or_default();
        Self::new(status, vec![(b"content-type".to_vec(), b"application/json".to_vec())], body)
    }

    /// The answer as written to the client, `connection: close` unless `keep_alive`.
    pub fn encode(&self, keep_alive: bool, date: &[u8]) -> Vec<u8> {
        let length = self.length.unwrap_or(self.body.len());
        let mut out = Vec::with_capacity(256 + self.body.len());
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(self.status.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(reason(self.status).as_bytes());
        write_headers(&mut out, &self.headers);
        out.extend_from_slice(b"\r\ncontent-length: ");
        out.extend_from_slice(length.to_string().as_bytes());
        out.extend_from_slice(b"\r\ndate: ");
        out.extend_from_slice(date);
        out.extend_from_slice(if keep_alive {
            b"\r\n\r\n"
        } else {
            b"\r\nconnection: close\r\n\r\n"
        });
        if self.length.is_none() {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// Each header on a line of its own, each line after a CRLF.
fn write_headers(out: &mut Vec<u8>, headers: &Headers) {
    for (name, value) in headers {
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
    }
}

/// The tokens of a message's Connection headers, lowercased.
pub fn connection_tokens(headers: &Headers) -> Vec<Vec<u8>> {
    headers
        .iter()
        .filter(|(name, _)| name == b"connection")
        .flat_map(|(_, value)| value.split(|&b| b == b','))
        .map(|token| token.trim_ascii().to_ascii_lowercase())
        .collect()
}

/// `headers` minus those in any of `dropped` and those their Connection header names.
pub fn kept_headers(headers: &Headers, dropped: &[&[String]]) -> Headers {
    let named = connection_tokens(headers);
    headers
        .iter()
        .filter(|(name, _)| {
            let listed = dropped.iter().any(|list| list.iter().any(|d| d.as_bytes() == name));
            !listed && !named.iter().any(|t| t == name)
        })
        .cloned()
        .collect()
}

/// A request's line and headers, up to and including the blank line.
pub fn request_head(
    method: &str,
    target: &[u8],
    host: &[u8],
    headers: &Headers,
    length: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host);
    write_headers(&mut out, headers);
    out.extend_from_slice(b"\r\ncontent-length: ");
    out.extend_from_slice(length.to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out
}

/// The request target sent upstream: the origin's path prefix, then the client's path
/// and query exactly as they were sent.
pub fn upstream_target(prefix: &[u8], raw_path: &[u8], query: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + raw_path.len() + query.len() + 1);
    out.extend_from_slice(prefix);
    out.extend_from_slice(raw_path);
    if !query.is_empty() {
        out.push(b'?');
        out.extend_from_slice(query);
    }
    out
}

/// Bytes as latin-1 text (every byte one character), as the Python data plane reads them.
pub fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The path rules match: percent-escapes decoded as UTF-8 (invalid sequences replaced),
/// every other byte as latin-1, as Python's `unquote` of the latin-1 text.
pub fn decoded_path(raw: &[u8]) -> String {
    if !raw.contains(&b'%') {
        return latin1(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut escaped = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let (Some(high), Some(low)) = (hex_value(raw[i + 1]), hex_value(raw[i + 2])) {
                escaped.push(high * 16 + low);
                i += 3;
                continue;
            }
        }
        if !escaped.is_empty() {
            out.push_str(&String::from_utf8_lossy(&escaped));
            escaped.clear();
        }
        out.push(raw[i] as char);
        i += 1;
    }
    out.push_str(&String::from_utf8_lossy(&escaped));
    out
}

/// Whether `given` may be echoed, logged and remembered: 1 to 128 of `[A-Za-z0-9._:-]`.
pub fn is_valid_request_id(given: &[u8]) -> bool {
    (1..=128).contains(&given.len())
        && given
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_decode_as_pythons_unquote_of_latin1() {
        assert_eq!(decoded_path(b"/predict"), "/predict");
        assert_eq!(decoded_path(b"/a%2Fb%3F"), "/a/b?");
        assert_eq!(decoded_path(b"/caf%C3%A9"), "/caf\u{e9}");
        assert_eq!(decoded_path(b"/bad%FF%zz%4"), "/bad\u{fffd}%zz%4");
        assert_eq!(decoded_path(b"/\xe9"), "/\u{e9}"); // an unescaped byte is latin-1
    }

    #[test]
    fn request_ids_are_short_and_inert() {
        assert!(is_valid_request_id(b"user-1:a.b_c"));
        for bad in [&b""[..], b"a b", b"<script>", &[b'x'; 129]] {
            assert!(!is_valid_request_id(bad));
        }
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_dropped() {
        let headers: Headers = vec![
            (b"connection".to_vec(), b"x-secret, keep-alive".to_vec()),
            (b"x-secret".to_vec(), b"1".to_vec()),
            (b"te".to_vec(), b"trailers".to_vec()),
            (b"x-kept".to_vec(), b"yes".to_vec()),
            (b"x-own".to_vec(), b"no".to_vec()),
        ];
        let hop_by_hop = ["connection".to_string(), "te".to_string()];
        let kept = kept_headers(&headers, &[&hop_by_hop, &["x-own".to_string()]]);
        assert_eq!(kept, vec![(b"x-kept".to_vec(), b"yes".to_vec())]);
    }

    #[test]
    fn answers_are_written_with_their_length_and_date() {
        let answer = Answer::error(503, "version svc is unavailable");
        let written = String::from_utf8(answer.encode(false, b"D")).unwrap();
        assert_eq!(
            written,
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
             content-length: 38\r\ndate: D\r\nconnection: close\r\n\r\n\
             {\"error\":\"version svc is unavailable\"}"
        );
    }
}
