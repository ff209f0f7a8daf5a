//! The chunked transfer coding (RFC 9112 7.1), decoded as the bytes arrive: requests
//! from clients and answers from upstreams both may use it.

pub enum ChunkError {
    TooLarge,
    Invalid(&'static str),
}

enum State {
    Size,
    Data(usize),
    DataEnd,
    Trailers,
    Done,
}

/// Feed it what has arrived (`feed` takes what it consumed off the front of the
/// buffer); the body grows in `body`, at most `limit` bytes.
pub struct Chunked {
    state: State,
    pub body: Vec<u8>,
    limit: usize,
}

const MAX_LINE: usize = 4096; // a size line with its extensions, or one trailer

fn line_end(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

impl Chunked {
    pub fn new(limit: usize) -> Self {
        Self { state: State::Size, body: Vec::new(), limit }
    }

    /// Ok(true) once the last chunk and the trailers are in.
    pub fn feed(&mut self, buf: &mut Vec<u8>) -> Result<bool, ChunkError> {
        let mut at = 0;
        let result = loop {
            let rest = &buf[at..];
            match self.state {
                State::Done => break Ok(true),
                State::Size | State::Trailers | State::DataEnd => {
                    let Some(end) = line_end(rest) else {
                        if rest.len() > MAX_LINE {
                            break Err(ChunkError::Invalid("a chunk's size line is too long"));
                        }
                        break Ok(false);
                    };
                    let line = &rest[..end];
                    at += end + 2;
                    match self.state {
                        State::DataEnd if !line.is_empty() => {
                            break Err(ChunkError::Invalid(
                                "a chunk's data is longer than its size",
                            ))
                        }
                        State::DataEnd => self.state = State::Size,
                        State::Trailers if line.is_empty() => self.state = State::Done,
                        State::Trailers => {}
                        _ => {
                            let digits = line.split(|&b| b == b';').next().unwrap_or_default();
                            let size = std::str::from_utf8(digits)
                                .ok()
                                .map(str::trim)
                                .filter(|d| !d.is_empty() && d.len() <= 15)
                                .and_then(|d| usize::from_str_radix(d, 16).ok());
                            let Some(size) = size else {
                                break Err(ChunkError::Invalid(
                                    "a chunk's size is not hexadecimal",
                                ));
                            };
                            if self.body.len() + size > self.limit {
                                break Err(ChunkError::TooLarge);
                            }
                            self.state =
                                if size == 0 { State::Trailers } else { State::Data(size) };
                        }
                    }
                }
                State::Data(left) => {
                    if rest.is_empty() {
                        break Ok(false);
                    }
                    let take = left.min(rest.len());
                    self.body.extend_from_slice(&rest[..take]);
                    at += take;
                    self.state =
                        if take == left { State::DataEnd } else { State::Data(left - take) };
                }
            }
        };
        buf.drain(..at);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(parts: &[&[u8]], limit: usize) -> Result<Option<Vec<u8>>, &'static str> {
        let mut chunks = Chunked::new(limit);
        let mut buf = Vec::new();
        for part in parts {
            buf.extend_from_slice(part);
            match chunks.feed(&mut buf) {
                Ok(true) => return Ok(Some(chunks.body)),
                Ok(false) => {}
                Err(ChunkError::TooLarge) => return Err("too large"),
                Err(ChunkError::Invalid(why)) => return Err(why),
            }
        }
        Ok(None)
    }

    #[test]
    fn chunks_decode_as_they_arrive_byte_by_byte() {
        let whole = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n";
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(decode(&bytes, 100), Ok(Some(b"hello world".to_vec())));
        assert_eq!(decode(&[&whole[..20]], 100), Ok(None));
    }

    #[test]
    fn a_body_over_its_limit_and_bad_framing_are_refused() {
        assert_eq!(decode(&[b"b\r\nhello world\r\n0\r\n\r\n"], 10), Err("too large"));
        assert_eq!(decode(&[b"zz\r\n"], 10), Err("a chunk's size is not hexadecimal"));
        assert_eq!(decode(&[b"1\r\nab\r\n"], 10), Err("a chunk's data is longer than its size"));
        let huge = [b'1'; 5000];
        assert_eq!(decode(&[&huge], 10), Err("a chunk's size line is too long"));
    }
}
