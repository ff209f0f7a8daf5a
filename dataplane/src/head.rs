//! A request's head as the server reads it: parsed by httparse, then checked as
//! `on_header` and `on_headers_complete` check it in `routing/dataplane.py` (the body's
//! declared length and coding, 100-continue, upgrades, the request id), and its
//! target split into the path and query, never an authority.

use crate::messages::{connection_tokens, Headers};
use crate::server::Limits;

pub const NO_UPGRADE: &str =
    "the gateway does not upgrade connections (websocket, h2c): send HTTP/1.1 requests";

pub struct Refusal(pub u16, pub String);

pub struct Head {
    pub method: String,
    pub target: Vec<u8>,
    pub version: u8,
    pub headers: Headers,
}

pub enum Parsed {
    Partial,
    Complete(Head, usize),
    Refused(Refusal),
}

pub fn parse_head(buf: &[u8], max_headers: usize) -> Parsed {
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
        Err(httparse::Error::TooManyHeaders) => {
            Parsed::Refused(Refusal(431, format!("the request has over {max_headers} headers")))
        }
        Err(error) => {
            Parsed::Refused(Refusal(400, format!("this is not a valid HTTP/1.1 request: {error}")))
        }
    }
}

/// The path and query of a request target: origin form as sent, or the path of an
/// absolute form; never an authority (`*@host/...`, `*`), which must not pick a host.
pub fn split_target(target: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Refusal> {
    let refused = || Refusal(400, "the request target must be a path starting with /".into());
    let lower = target.to_ascii_lowercase();
    let whole = if target.starts_with(b"/") {
        target
    } else if let Some(scheme) =
        [&b"http://"[..], b"https://"].iter().find(|s| lower.starts_with(s))
    {
        let rest = &target[scheme.len()..];
        let start =
            rest.iter().position(|&b| matches!(b, b'/' | b'?' | b'#')).ok_or_else(refused)?;
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

pub enum Body {
    Length(usize),
    Chunked,
}

/// What the head says of the body, and the checks of `on_header` in the Python data plane.
pub fn check_head(head: &Head, limits: &Limits) -> Result<(Body, bool, Option<Vec<u8>>), Refusal> {
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
    let upgrades = upgrade && connection_tokens(&head.headers).iter().any(|t| t == b"upgrade");
    if head.method == "CONNECT" || upgrades {
        return Err(Refusal(400, NO_UPGRADE.into()));
    }
    let body = if chunked { Body::Chunked } else { Body::Length(length.unwrap_or(0)) };
    Ok((body, expects, given_id))
}

pub fn keeps_alive(head: &Head) -> bool {
    let tokens = connection_tokens(&head.headers);
    if head.version == 1 {
        !tokens.iter().any(|t| t == b"close")
    } else {
        tokens.iter().any(|t| t == b"keep-alive")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        assert_eq!(split(b"/predict?x=%2F#frag"), Ok(("/predict".into(), "x=%2F".into())));
        assert_eq!(
            split(b"//127.0.0.1:9/predict"),
            Ok(("//127.0.0.1:9/predict".into(), "".into()))
        );
        assert_eq!(split(b"http://127.0.0.1:9/predict?q"), Ok(("/predict".into(), "q".into())));
        for refused in
            [&b"*"[..], b"*@127.0.0.1:9/admin", b"@127.0.0.1:9/x", b"http://host", b"http://h?/x"]
        {
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
        check_head(&head(headers), &limits()).err().map(|refused| refused.0)
    }

    #[test]
    fn heads_are_checked_as_the_python_data_plane_checks_them() {
        assert_eq!(refusal(&[("content-length", "100")]), None);
        assert_eq!(refusal(&[("content-length", "101")]), Some(413));
        assert_eq!(refusal(&[("content-length", "-1")]), Some(400));
        assert_eq!(refusal(&[("content-length", "1"), ("content-length", "2")]), Some(400));
        assert_eq!(refusal(&[("transfer-encoding", "gzip")]), Some(400));
        assert_eq!(
            refusal(&[("transfer-encoding", "chunked"), ("content-length", "1")]),
            Some(400)
        );
        assert_eq!(refusal(&[("expect", "100-Continue")]), None);
        assert_eq!(refusal(&[("expect", "something")]), Some(417));
        assert_eq!(refusal(&[("connection", "Upgrade"), ("upgrade", "websocket")]), Some(400));
        assert_eq!(refusal(&[("upgrade", "websocket")]), None); // not asked for by Connection
    }
}
