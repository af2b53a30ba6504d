//! A syslog receiver for the forwarding tests, on loopback: plain TCP, or TLS with the
//! certificate the test CA signed for 127.0.0.1. It parses octet-counted (RFC 6587) RFC 5424
//! frames and records each one in order, with the connection it came on; it can drop a
//! connection after a number of frames, or close every connection, to play an unreliable peer.

use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;

pub const CA_PEM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/syslog_ca.pem");
const SERVER_PEM: &[u8] = include_bytes!("../fixtures/syslog_server.pem");
const SERVER_KEY: &[u8] = include_bytes!("../fixtures/syslog_server_key.pem");

/// One syslog message as received: the RFC 5424 header fields and MSG.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Which connection it came on (0 for the first).
    pub conn: usize,
    /// `<PRI>VERSION`, e.g. `<85>1`.
    pub pri_version: String,
    pub timestamp: String,
    pub hostname: String,
    pub app_name: String,
    pub procid: String,
    pub msgid: String,
    pub structured_data: String,
    /// Whether MSG started with the UTF-8 BOM.
    pub bom: bool,
    /// MSG without the BOM.
    pub msg: String,
}

impl Frame {
    /// The `seq` of the entry MSG holds.
    pub fn seq(&self) -> i64 {
        let v: Value = serde_json::from_str(&self.msg).expect("MSG is JSON");
        v["seq"].as_i64().expect("MSG has a seq")
    }
}

#[derive(Default)]
struct SyslogInner {
    frames: Vec<Frame>,
    /// Frames that did not parse: a test asserts there are none.
    errors: Vec<String>,
    connections: usize,
    /// Close the connection once it has brought this many frames (once).
    drop_after: Option<usize>,
}

/// A syslog receiver; it stops (its port closed, its connections dropped) when dropped.
pub struct SyslogReceiver {
    pub addr: SocketAddr,
    inner: Arc<Mutex<SyslogInner>>,
    /// Bumped to close every open connection.
    close: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SyslogReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(SERVER_PEM).collect::<Result<Vec<_>, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(SERVER_KEY).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

impl SyslogReceiver {
    /// Plain TCP on 127.0.0.1, a free port.
    pub async fn start() -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), false).await
    }

    /// TLS with the certificate the test CA ([`CA_PEM`]) signed for 127.0.0.1.
    pub async fn start_tls() -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), true).await
    }

    /// On `listener` (a test that brings a receiver back on the same port binds it again).
    pub async fn start_on(listener: TcpListener, tls: bool) -> Self {
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Mutex::new(SyslogInner::default()));
        let shared = inner.clone();
        let acceptor = tls.then(tls_acceptor);
        let close = tokio::sync::watch::channel(0).0;
        let closing = close.clone();
        let task = tokio::spawn(async move {
            // Owned here, so aborting the receiver drops every connection too.
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let (inner, acceptor, close) = (shared.clone(), acceptor.clone(), closing.subscribe());
                conns.spawn(async move {
                    match acceptor {
                        None => serve(tcp, inner, close).await,
                        // A client that refuses the certificate ends here.
                        Some(a) => {
                            if let Ok(stream) = a.accept(tcp).await {
                                serve(stream, inner, close).await;
                            }
                        }
                    }
                });
            }
        });
        Self { addr, inner, close, task }
    }

    pub fn frames(&self) -> Vec<Frame> {
        let inner = self.inner.lock().unwrap();
        assert!(inner.errors.is_empty(), "frames that did not parse: {:?}", inner.errors);
        inner.frames.clone()
    }

    /// The seq of each message, in the order received.
    pub fn seqs(&self) -> Vec<i64> {
        self.frames().iter().map(Frame::seq).collect()
    }

    /// How many connections were accepted (and, with TLS, completed the handshake).
    pub fn connections(&self) -> usize {
        self.inner.lock().unwrap().connections
    }

    /// The next connection to bring `n` frames is closed right after the `n`-th.
    pub fn drop_after(&self, n: usize) {
        self.inner.lock().unwrap().drop_after = Some(n);
    }

    /// Closes every open connection now (the receiver keeps listening).
    pub fn close_connections(&self) {
        self.close.send_modify(|n| *n += 1);
    }
}

async fn serve(
    mut stream: impl AsyncRead + Unpin,
    inner: Arc<Mutex<SyslogInner>>,
    mut close: tokio::sync::watch::Receiver<u64>,
) {
    let conn = {
        let mut i = inner.lock().unwrap();
        i.connections += 1;
        i.connections - 1
    };
    close.borrow_and_update();
    let (mut buf, mut chunk, mut count) = (Vec::new(), [0u8; 4096], 0usize);
    loop {
        let read = tokio::select! {
            _ = close.changed() => return,
            read = stream.read(&mut chunk) => read,
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        while let Some((frame, used)) = parse_frame(&buf) {
            buf.drain(..used);
            let mut i = inner.lock().unwrap();
            match frame.and_then(|m| parse_message(conn, &m)) {
                Ok(f) => i.frames.push(f),
                Err(e) => i.errors.push(e),
            }
            count += 1;
            if i.drop_after == Some(count) {
                i.drop_after = None;
                return;
            }
        }
    }
}

/// One octet-counted frame at the start of `buf` (`LEN SP MSG`) and the bytes it takes, or
/// `None` until all of it has arrived.
fn parse_frame(buf: &[u8]) -> Option<(Result<Vec<u8>, String>, usize)> {
    let space = buf.iter().position(|b| *b == b' ')?;
    let len = match std::str::from_utf8(&buf[..space]).ok().and_then(|l| l.parse::<usize>().ok()) {
        Some(len) if buf[..space].iter().all(u8::is_ascii_digit) && buf[0] != b'0' => len,
        _ => return Some((Err(format!("bad frame length {:?}", String::from_utf8_lossy(&buf[..space]))), buf.len())),
    };
    let end = space + 1 + len;
    (buf.len() >= end).then(|| (Ok(buf[space + 1..end].to_vec()), end))
}

/// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG`, with SD `-` (dualkey sends none).
fn parse_message(conn: usize, bytes: &[u8]) -> Result<Frame, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let parts: Vec<&str> = text.splitn(8, ' ').collect();
    let [pri_version, timestamp, hostname, app_name, procid, msgid, sd, msg] = parts[..] else {
        return Err(format!("not an RFC 5424 message: {text:?}"));
    };
    let (bom, msg) = match msg.strip_prefix('\u{feff}') {
        Some(rest) => (true, rest),
        None => (false, msg),
    };
    Ok(Frame {
        conn,
        pri_version: pri_version.into(),
        timestamp: timestamp.into(),
        hostname: hostname.into(),
        app_name: app_name.into(),
        procid: procid.into(),
        msgid: msgid.into(),
        structured_data: sd.into(),
        bom,
        msg: msg.into(),
    })
}
