//! Lingering close against raw loopback sockets: a server that rejects a request while
//! its client is still sending must not reset the connection under the response.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Lingering;

const RESPONSE: &[u8] =
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";

/// Accepts one connection, reads 1 KiB of it, writes the response and shuts it down,
/// lingering or not. Returns the client's result: the bytes it read after sending 16 MiB.
async fn reject_while_sending(linger: bool) -> std::io::Result<Vec<u8>> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut head = [0u8; 1024];
        if linger {
            let mut stream = Lingering::new(stream);
            stream.read_exact(&mut head).await.unwrap();
            stream.write_all(RESPONSE).await.unwrap();
            stream.shutdown().await.unwrap();
        } else {
            let mut stream = stream;
            stream.read_exact(&mut head).await.unwrap();
            stream.write_all(RESPONSE).await.unwrap();
            stream.shutdown().await.unwrap();
        }
    });

    let mut client = TcpStream::connect(address).await.unwrap();
    // The client closes once it has read the response, which ends the server's linger.
    let sent = async move {
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..256 {
            client.write_all(&chunk).await?;
        }
        let mut received = Vec::new();
        client.read_to_end(&mut received).await?;
        Ok(received)
    };
    let received = tokio::time::timeout(Duration::from_secs(10), sent)
        .await
        .expect("the client timed out");
    server.await.unwrap();
    received
}

/// Returns both ends of a new loopback connection: the client's, then the server's.
async fn connected_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let client = TcpStream::connect(address).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

#[tokio::test]
async fn linger_keeps_the_response_intact() {
    let received = reject_while_sending(true).await.unwrap();
    assert_eq!(received, RESPONSE);
}

#[tokio::test]
async fn close_without_linger_resets_the_client() {
    // The case lingering exists for: without it the client's send or read fails.
    let result = reject_while_sending(false).await;
    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn linger_ends_when_the_client_closes() {
    let (mut client, stream) = connected_pair().await;
    let mut stream = Lingering::new(stream);
    client.write_all(b"unread").await.unwrap();
    drop(client);

    let started = tokio::time::Instant::now();
    stream.shutdown().await.unwrap();
    assert!(started.elapsed() < super::LINGER_TIMEOUT);
}

#[tokio::test]
async fn drain_closes_an_idle_connection_promptly() {
    // At shutdown, hyper closes a keep-alive connection between requests. An SDK's pool
    // keeps such a connection open without reading it. The client sends nothing, so the
    // close ends after the quiet time instead of the linger timeout.
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;

    let (mut client, stream) = connected_pair().await;
    let service = hyper::service::service_fn(|_request| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(
            http_body_util::Empty::<bytes::Bytes>::new(),
        ))
    });
    let connection =
        http1::Builder::new().serve_connection(TokioIo::new(Lingering::new(stream)), service);
    let mut connection = std::pin::pin!(connection);

    client
        .write_all(b"GET / HTTP/1.1\r\nhost: proxy\r\n\r\n")
        .await
        .unwrap();
    let mut response = [0u8; 1024];
    let read = tokio::select! {
        read = client.read(&mut response) => read.unwrap(),
        result = connection.as_mut() => panic!("the connection ended early: {result:?}"),
    };
    assert!(response[..read].starts_with(b"HTTP/1.1 200 OK"));

    connection.as_mut().graceful_shutdown();
    let started = tokio::time::Instant::now();
    let finished = tokio::time::timeout(Duration::from_secs(2), connection).await;
    assert!(
        finished.is_ok(),
        "the drained connection was still open after {:?}",
        started.elapsed()
    );
    drop(client);
}

#[tokio::test(start_paused = true)]
async fn linger_ends_at_timeout_while_client_sends() {
    let (mut client, stream) = connected_pair().await;
    let mut stream = Lingering::new(stream);
    // The client never stops sending, so only the timeout ends the linger.
    let sender = tokio::spawn(async move {
        let chunk = [b'a'; 1024];
        while client.write_all(&chunk).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    let started = tokio::time::Instant::now();
    stream.shutdown().await.unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed >= super::LINGER_TIMEOUT, "{elapsed:?}");
    assert!(
        elapsed < super::LINGER_TIMEOUT + Duration::from_secs(1),
        "{elapsed:?}"
    );
    drop(stream);
    sender.await.unwrap();
}
