//! Keep-alive connections released between requests, against raw client sockets: each
//! test checks what the client receives and how many hyper connections served it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioTimer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsConnector;

use super::{Activity, IdleSweep, ResponseBody, Transport, serve, track};
use crate::server::Shutdown;

type Reply = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

/// The transport every test runs on: each test runs once with each.
#[derive(Clone, Copy, Debug)]
enum Wire {
    Plain,
    Tls,
}

/// A client's connection, plain or TLS.
trait ClientIo: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> ClientIo for T {}

type Client = Box<dyn ClientIo>;

/// A server whose service responds with `PATH BYTES`: the path and the request body's
/// length. `/unread` responds without reading the body, and `/big` sends 2 MiB.
struct Server {
    address: std::net::SocketAddr,
    /// hyper connections built, across every client connection.
    hyper_connections: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
    /// The client side of the server's TLS, on a TLS server.
    connector: Option<TlsConnector>,
}

async fn start(wire: Wire, idle_timeout: Duration) -> Server {
    start_with_sweep(wire, idle_timeout, SWEEP_INTERVAL).await
}

async fn start_with_sweep(wire: Wire, idle_timeout: Duration, sweep_interval: Duration) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let hyper_connections = Arc::new(AtomicUsize::new(0));
    let (stop, listening) = watch::channel(false);
    let (acceptor, connector) = match wire {
        Wire::Plain => (None, None),
        Wire::Tls => {
            let tls = crate::test_tls::loopback_tls();
            (Some(tls.acceptor), Some(tls.connector))
        }
    };
    let counter = Arc::clone(&hyper_connections);
    tokio::spawn(async move {
        let sweep = IdleSweep::start(sweep_interval);
        let mut builder = http1::Builder::new();
        // As in the proxy, hyper's header read timeout is the idle timeout.
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(idle_timeout);
        let builder = Arc::new(builder);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let served = Served {
                builder: Arc::clone(&builder),
                counter: Arc::clone(&counter),
                sweep: Arc::clone(&sweep),
                shutdown: Shutdown(listening.clone()),
                idle_timeout,
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match acceptor {
                    None => served.serve(stream).await,
                    Some(acceptor) => served.serve(acceptor.accept(stream).await.unwrap()).await,
                }
            });
        }
    });
    Server {
        address,
        hyper_connections,
        stop,
        connector,
    }
}

/// What one accepted connection is served with.
struct Served {
    builder: Arc<http1::Builder>,
    counter: Arc<AtomicUsize>,
    sweep: Arc<IdleSweep>,
    shutdown: Shutdown,
    idle_timeout: Duration,
}

impl Served {
    async fn serve<T: Transport + Send + 'static>(mut self, stream: T) {
        let counter = self.counter;
        let service = |activity: Arc<Activity>| {
            counter.fetch_add(1, Ordering::SeqCst);
            service_fn(move |request: Request<Incoming>| -> Reply {
                let (parts, body) = request.into_parts();
                let (body, in_flight) = track(Some(&activity), body);
                Box::pin(async move {
                    let path = parts.uri.path().to_owned();
                    let text = match path.as_str() {
                        "/unread" => "/unread 0".to_owned(),
                        "/big" => "x".repeat(2 * 1024 * 1024),
                        _ => {
                            let read = body.collect().await.unwrap().to_bytes().len();
                            format!("{path} {read}")
                        }
                    };
                    let body = crate::body::full(Bytes::from(text));
                    Ok(Response::new(ResponseBody::new(body, in_flight)))
                })
            })
        };
        let _ = serve(
            stream,
            &self.builder,
            service,
            &self.sweep,
            self.idle_timeout,
            &mut self.shutdown,
        )
        .await;
    }
}

impl Server {
    fn hyper_connections(&self) -> usize {
        self.hyper_connections.load(Ordering::SeqCst)
    }

    /// Opens a client connection, with a TLS handshake on a TLS server.
    async fn connect(&self) -> Client {
        let stream = TcpStream::connect(self.address).await.unwrap();
        let Some(connector) = &self.connector else {
            return Box::new(stream);
        };
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        Box::new(connector.connect(name, stream).await.unwrap())
    }
}

/// Defines a plain and a TLS test that run the test function of the same name.
macro_rules! on_each_wire {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn plain() {
                    super::$name(super::Wire::Plain).await;
                }

                #[tokio::test]
                async fn tls() {
                    super::$name(super::Wire::Tls).await;
                }
            }
        )*
    };
}

on_each_wire!(
    idle_connection_served_again,
    busy_connection_not_released,
    split_head_parsed_whole,
    pipelined_requests_in_order,
    read_bodies_allow_release,
    arrived_unread_body_discarded,
    late_unread_body_never_parsed,
    large_response_reaches_slow_reader,
    shutdown_closes_idle_connection,
    idle_timeout_closes_connection,
);

/// Reads `count` responses and returns their bodies; panics on a status other than 200.
async fn read_responses(stream: &mut Client, count: usize) -> Vec<String> {
    let mut received = Vec::new();
    let mut bodies = Vec::new();
    while bodies.len() < count {
        let mut chunk = [0; 64 * 1024];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("a response within 5 s")
            .unwrap();
        assert!(
            read > 0,
            "connection closed after {} responses",
            bodies.len()
        );
        received.extend_from_slice(&chunk[..read]);
        while let Some((body, used)) = parse_response(&received) {
            bodies.push(body);
            received.drain(..used);
        }
    }
    assert!(received.is_empty(), "unexpected bytes after the responses");
    bodies
}

/// Parses one whole response with a `content-length`; returns its body and its length in
/// bytes.
fn parse_response(data: &[u8]) -> Option<(String, usize)> {
    let end = data.windows(4).position(|window| window == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&data[..end]).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "response was {head}");
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("a content-length");
    let body = data.get(end..end + length)?;
    Some((String::from_utf8(body.to_vec()).unwrap(), end + length))
}

/// The sweep tick in these tests: a connection idle for 20 to 40 ms is released.
const SWEEP_INTERVAL: Duration = Duration::from_millis(20);

/// Waits until an idle connection has been released.
async fn settle() {
    tokio::time::sleep(SWEEP_INTERVAL * 3).await;
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n")
}

async fn idle_connection_served_again(wire: Wire) {
    let server = start(wire, Duration::from_secs(30)).await;
    let mut client = server.connect().await;

    client.write_all(get("/a").as_bytes()).await.unwrap();
    assert_eq!(read_responses(&mut client, 1).await, ["/a 0"]);
    settle().await;
    client.write_all(get("/b").as_bytes()).await.unwrap();
    assert_eq!(read_responses(&mut client, 1).await, ["/b 0"]);

    assert_eq!(server.hyper_connections(), 2);
}

async fn busy_connection_not_released(wire: Wire) {
    let server = start_with_sweep(wire, Duration::from_secs(30), Duration::from_secs(60)).await;
    let mut client = server.connect().await;

    for path in ["/1", "/2", "/3"] {
        client.write_all(get(path).as_bytes()).await.unwrap();
        assert_eq!(read_responses(&mut client, 1).await, [format!("{path} 0")]);
    }

    assert_eq!(server.hyper_connections(), 1);
}

async fn split_head_parsed_whole(wire: Wire) {
    let server = start(wire, Duration::from_secs(30)).await;
    let mut client = server.connect().await;

    client
        .write_all(b"GET /split HTTP/1.1\r\nho")
        .await
        .unwrap();
    settle().await;
    client.write_all(b"st: x\r\n").await.unwrap();
    settle().await;
    client.write_all(b"\r\n").await.unwrap();
    assert_eq!(read_responses(&mut client, 1).await, ["/split 0"]);
    settle().await;
    client.write_all(get("/after").as_bytes()).await.unwrap();
    assert_eq!(read_responses(&mut client, 1).await, ["/after 0"]);
}

async fn pipelined_requests_in_order(wire: Wire) {
    let server = start(wire, Duration::from_secs(30)).await;
    let mut client = server.connect().await;

    let pipeline = format!("{}{}{}", get("/1"), get("/2"), get("/3"));
    // The third head arrives later, so hyper hands back the start of it.
    let (now, later) = pipeline.split_at(pipeline.len() - 10);
    client.write_all(now.as_bytes()).await.unwrap();
    settle().await;
    client.write_all(later.as_bytes()).await.unwrap();

    assert_eq!(
        read_responses(&mut client, 3).await,
        ["/1 0", "/2 0", "/3 0"]
    );
}

async fn read_bodies_allow_release(wire: Wire) {
    let server = start(wire, Duration::from_secs(30)).await;
    let mut client = server.connect().await;

    client
        .write_all(b"POST /sized HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello")
        .await
        .unwrap();
    assert_eq!(read_responses(&mut client, 1).await, ["/sized 5"]);
    settle().await;
    client
        .write_all(b"POST /chunked HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_responses(&mut client, 1).await, ["/chunked 3"]);
    settle().await;
    client.write_all(get("/last").as_bytes()).await.unwrap();
    assert_eq!(read_responses(&mut client, 1).await, ["/last 0"]);

    assert_eq!(server.hyper_connections(), 3);
}

/// A body that looks like a request, so a response to it would show it was parsed as one.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\n\r\n";

async fn arrived_unread_body_discarded(wire: Wire) {
    let server = start(wire, Duration::from_secs(30)).await;
    let mut client = server.connect().await;

    let request = format!(
        "POST /unread HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{SMUGGLED}",
        SMUGGLED.len()
    );
    client.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(read_responses(&mut client, 1).await, ["/unread 0"]);
    settle().await;
    client.write_all(get("/next").as_bytes()).await.unwrap();

    assert_eq!(read_responses(&mut client, 1).await, ["/next 0"]);
    // The connection stayed with the hyper connection that discarded the body.
    assert_eq!(server.hyper_connections(), 1);
}

async fn late_unread_body_never_parsed(wire: Wire) {
    let server = start(wire, Duration::from_secs(30)).await;
    let mut client = server.connect().await;

    let head = format!(
        "POST /unread HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
        SMUGGLED.len()
    );
    client.write_all(head.as_bytes()).await.unwrap();
    assert_eq!(read_responses(&mut client, 1).await, ["/unread 0"]);
    settle().await;
    // hyper closes a connection whose unread body has not arrived, so nothing the client
    // sends after that gets a response.
    let _ = client.write_all(SMUGGLED.as_bytes()).await;
    assert_closed(&mut client).await;
    assert_eq!(server.hyper_connections(), 1);
}

async fn large_response_reaches_slow_reader(wire: Wire) {
    let server = start(wire, Duration::from_secs(30)).await;
    let mut client = server.connect().await;

    client.write_all(get("/big").as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let bodies = read_responses(&mut client, 1).await;
    assert_eq!(bodies[0].len(), 2 * 1024 * 1024);
    settle().await;
    client.write_all(get("/after").as_bytes()).await.unwrap();
    assert_eq!(read_responses(&mut client, 1).await, ["/after 0"]);

    assert_eq!(server.hyper_connections(), 2);
}

/// Waits for the server to close `client`; panics after 2 s.
async fn assert_closed(client: &mut Client) {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), client.read_to_end(&mut rest))
        .await
        .expect("the server closes the connection within 2 s");
    assert!(
        read.is_ok_and(|count| count == 0),
        "unexpected bytes: {rest:?}"
    );
}

async fn shutdown_closes_idle_connection(wire: Wire) {
    let server = start(wire, Duration::from_secs(30)).await;
    let mut client = server.connect().await;
    client.write_all(get("/a").as_bytes()).await.unwrap();
    read_responses(&mut client, 1).await;
    settle().await;

    server.stop.send_replace(true);

    assert_closed(&mut client).await;
}

async fn idle_timeout_closes_connection(wire: Wire) {
    let server = start(wire, Duration::from_millis(100)).await;
    let mut client = server.connect().await;
    client.write_all(get("/a").as_bytes()).await.unwrap();
    read_responses(&mut client, 1).await;

    assert_closed(&mut client).await;
}

/// A TLS record sent a byte at a time never reaches hyper as plaintext, so only the idle
/// timeout, kept across releases, bounds how long the client may take to send its head.
#[tokio::test]
async fn trickled_tls_record_times_out() {
    let server = start(Wire::Tls, Duration::from_millis(300)).await;
    let stream = TcpStream::connect(server.address).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connector = server.connector.as_ref().unwrap();
    let (socket, mut session) = connector.connect(name, stream).await.unwrap().into_inner();
    let head = format!(
        "GET /a HTTP/1.1\r\nhost: x\r\npadding: {}\r\n\r\n",
        "x".repeat(200)
    );
    std::io::Write::write_all(&mut session.writer(), head.as_bytes()).unwrap();
    let mut record = Vec::new();
    session.write_tls(&mut record).unwrap();

    // One byte every 50 ms, for more than 10 s, keeps the socket busy for much longer than
    // the idle timeout, but no request ever starts.
    let (mut reader, mut writer) = socket.into_split();
    let trickle = tokio::spawn(async move {
        for byte in &record[..record.len() - 1] {
            if writer.write_all(std::slice::from_ref(byte)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        std::future::pending::<()>().await;
    });

    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(2), reader.read_to_end(&mut rest)).await;
    trickle.abort();
    assert!(
        closed.is_ok(),
        "the connection stayed open for 2 s without a request"
    );
}
