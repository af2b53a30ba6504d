//! The syslog connection: TCP, or TLS over it (RFC 5425), every step bounded by the
//! forwarder's timeout, and a look at whether the receiver is still there. The bounds are real
//! time, as reqwest's are for HEC: they measure the network, which a test's clock cannot hurry.
//!
//! Plain syslog over TCP has no acknowledgement. What dualkey can know is that the connection
//! is still open: a read that would block (no EOF, no error, no reset) after the batch was
//! written. [`Connection::is_open`] is that read; the delivery loop calls it before each batch.

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

/// Where a syslog forwarder connects.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// With TLS: the client configuration (roots from `ca_file` or the system) and the name the
    /// receiver's certificate must carry (the host of `address`).
    pub(crate) tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open connection to the receiver.
pub(crate) struct Connection {
    io: Box<dyn Io>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connection")
    }
}

/// Runs `work`, or fails with "`what` took longer than `timeout`".
async fn bounded<T>(
    timeout: Duration,
    what: &str,
    work: impl Future<Output = std::io::Result<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r.map_err(|e| format!("{what} failed: {e}")),
        Err(_) => Err(format!("{what} took longer than {}", humantime::format_duration(timeout))),
    }
}

impl Endpoint {
    /// Connects (and with TLS, completes the handshake, the receiver's certificate checked),
    /// within `timeout`. The error adds no address (a TLS error may quote the certificate's names).
    pub(crate) async fn connect(&self, timeout: Duration) -> Result<Connection, String> {
        let work = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
            let io: Box<dyn Io> = match &self.tls {
                None => Box::new(tcp),
                Some((config, name)) => {
                    let connector = tokio_rustls::TlsConnector::from(config.clone());
                    Box::new(connector.connect(name.clone(), tcp).await?)
                }
            };
            Ok(io)
        };
        let what = if self.tls.is_some() { "connecting with TLS" } else { "connecting" };
        bounded(timeout, what, work).await.map(|io| Connection { io })
    }
}

impl Connection {
    /// Writes `bytes` and flushes them to the socket, within `timeout` (a receiver that stops
    /// reading fills the buffers and makes this time out).
    pub(crate) async fn send(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), String> {
        let io = &mut self.io;
        bounded(timeout, "writing", async move {
            io.write_all(bytes).await?;
            io.flush().await
        })
        .await
    }

    /// Whether the receiver is still there: a read that does not wait. EOF (the receiver
    /// closed, or sent a TLS close_notify), a reset or another error means it is gone. A syslog
    /// receiver sends nothing; bytes it sends anyway are read and dropped.
    pub(crate) async fn is_open(&mut self) -> Result<(), String> {
        let mut buf = [0u8; 1024];
        let io = &mut self.io;
        std::future::poll_fn(|cx| {
            // Bounded, so a receiver that floods us cannot keep this from returning.
            for _ in 0..64 {
                let mut read = ReadBuf::new(&mut buf);
                match Pin::new(&mut **io).poll_read(cx, &mut read) {
                    Poll::Pending => return Poll::Ready(Ok(())),
                    Poll::Ready(Ok(())) if read.filled().is_empty() => {
                        return Poll::Ready(Err("the receiver closed the connection".to_string()));
                    }
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(format!("the connection failed: {e}"))),
                }
            }
            Poll::Ready(Ok(()))
        })
        .await
    }
}
