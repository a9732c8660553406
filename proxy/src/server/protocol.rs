//! The HTTP version of a new connection, chosen without consuming any of its bytes: by
//! ALPN on TLS, and on plain HTTP by peeking for the HTTP/2 connection preface.
//!
//! hyper-util's automatic builder reads the first bytes itself and hands them back to
//! hyper's HTTP/1 parser as a separate short read, after which hyper grows the
//! connection's read buffer from 8 to 16 KiB for the connection's life. Choosing first and
//! serving with hyper's own builders keeps it at 8 KiB (bench/RESULTS.md has the figures).

use std::time::Duration;

use tokio::net::TcpStream;

/// The client connection preface of HTTP/2 with prior knowledge (RFC 9113, section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The wait before peeking again when the first bytes are only part of the preface.
const PARTIAL_PREFACE_WAIT: Duration = Duration::from_millis(5);

/// The HTTP version a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Protocol {
    Http1,
    Http2,
}

impl Protocol {
    /// Returns the protocol TLS negotiated: HTTP/2 needs ALPN `h2` (RFC 9113, section
    /// 3.2), and anything else is HTTP/1.1.
    pub(super) fn from_alpn(alpn: Option<&[u8]>) -> Protocol {
        if alpn == Some(b"h2") {
            Protocol::Http2
        } else {
            Protocol::Http1
        }
    }

    /// Returns the protocol the first bytes of a plain connection show, or `None` while
    /// they are a strict prefix of the HTTP/2 preface.
    fn from_first_bytes(first: &[u8]) -> Option<Protocol> {
        if !PREFACE.starts_with(first) {
            Some(Protocol::Http1)
        } else if first.len() == PREFACE.len() {
            Some(Protocol::Http2)
        } else {
            None
        }
    }
}

/// Waits for the first bytes of a plain connection and returns its protocol, or `None`
/// when the client closed it before sending any. The bytes stay in the socket for hyper.
pub(super) async fn sniff(stream: &TcpStream) -> std::io::Result<Option<Protocol>> {
    let mut first = [0; PREFACE.len()];
    loop {
        let read = stream.peek(&mut first).await?;
        if read == 0 {
            return Ok(None);
        }
        if let Some(protocol) = Protocol::from_first_bytes(&first[..read]) {
            return Ok(Some(protocol));
        }
        // Peeking again at once would return the same bytes, so wait for the rest.
        tokio::time::sleep(PARTIAL_PREFACE_WAIT).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_choose_the_version() {
        assert_eq!(
            Protocol::from_first_bytes(b"GET / HTTP/1.1\r\n"),
            Some(Protocol::Http1)
        );
        assert_eq!(Protocol::from_first_bytes(PREFACE), Some(Protocol::Http2));
        assert_eq!(Protocol::from_first_bytes(b"PRI * HTTP/2"), None);
        assert_eq!(
            Protocol::from_first_bytes(b"PRI * HTTP/1.1\r\n"),
            Some(Protocol::Http1)
        );
        assert_eq!(Protocol::from_first_bytes(b"P"), None);
    }

    #[test]
    fn alpn_chooses_the_version() {
        assert_eq!(Protocol::from_alpn(Some(b"h2")), Protocol::Http2);
        assert_eq!(Protocol::from_alpn(Some(b"http/1.1")), Protocol::Http1);
        assert_eq!(Protocol::from_alpn(None), Protocol::Http1);
    }

    #[tokio::test]
    async fn sniff_leaves_the_bytes_in_the_socket() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut stream = TcpStream::connect(address).await.unwrap();
            stream.write_all(b"PRI * HTTP").await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            stream.write_all(&PREFACE[10..]).await.unwrap();
            stream
        });
        let (mut server, _) = listener.accept().await.unwrap();

        assert_eq!(sniff(&server).await.unwrap(), Some(Protocol::Http2));
        let mut received = [0; PREFACE.len()];
        server.read_exact(&mut received).await.unwrap();
        assert_eq!(&received, PREFACE);
        drop(client.await.unwrap());
    }

    #[tokio::test]
    async fn sniff_reports_a_connection_closed_before_any_byte() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        drop(TcpStream::connect(address).await.unwrap());
        let (server, _) = listener.accept().await.unwrap();
        assert_eq!(sniff(&server).await.unwrap(), None);
    }
}
