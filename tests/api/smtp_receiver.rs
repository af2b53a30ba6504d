//! A tiny SMTP server for tests: plain ESMTP on 127.0.0.1 (no STARTTLS, no AUTH), recording
//! every message it accepts, and able to refuse the next DATA commands with 451 or 550.
//! Shared by the crate's unit tests (through `#[path]`) and the integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One message as received: the envelope and the DATA (dot-unstuffed, CRLF line ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

/// How the next DATA commands are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataReply {
    /// `451 4.3.0`: try again later.
    Transient,
    /// `550 5.7.1`: never.
    Permanent,
}

#[derive(Default)]
struct State {
    messages: Vec<ReceivedMail>,
    refusals: Vec<DataReply>,
}

/// A running receiver; it stops when dropped.
pub struct SmtpReceiver {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpReceiver {
    /// Binds 127.0.0.1:0 and serves every connection until dropped.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the SMTP receiver");
        let addr = listener.local_addr().expect("its address");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        Self { addr, state, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `smtp://127.0.0.1:<port>`, for a channel's `smtp_url`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// The messages accepted so far, in order.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.state.lock().unwrap().messages.clone()
    }

    /// Answers the next `n` DATA commands with `reply` instead of accepting them.
    pub fn refuse_next(&self, n: usize, reply: DataReply) {
        self.state.lock().unwrap().refusals.extend(std::iter::repeat_n(reply, n));
    }
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(stream: TcpStream, state: Arc<Mutex<State>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut envelope = ReceivedMail { from: String::new(), to: Vec::new(), data: String::new() };
    if write.write_all(b"220 test.invalid ESMTP ready\r\n").await.is_err() {
        return;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let command = line.trim_end().to_string();
        let verb = command.split([' ', ':']).next().unwrap_or_default().to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" => "250-test.invalid\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n".into(),
            "HELO" => "250 test.invalid\r\n".into(),
            "MAIL" => {
                envelope = ReceivedMail { from: address(&command), to: Vec::new(), data: String::new() };
                "250 2.1.0 ok\r\n".into()
            }
            "RCPT" => {
                envelope.to.push(address(&command));
                "250 2.1.5 ok\r\n".into()
            }
            "DATA" => {
                if write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await.is_err() {
                    return;
                }
                let Some(data) = read_data(&mut lines).await else { return };
                envelope.data = data;
                let mut s = state.lock().unwrap();
                match (!s.refusals.is_empty()).then(|| s.refusals.remove(0)) {
                    Some(DataReply::Transient) => "451 4.3.0 mailbox busy, try later\r\n".into(),
                    Some(DataReply::Permanent) => "550 5.7.1 relaying denied\r\n".into(),
                    None => {
                        s.messages.push(envelope.clone());
                        "250 2.0.0 queued\r\n".into()
                    }
                }
            }
            "RSET" | "NOOP" => "250 2.0.0 ok\r\n".into(),
            "QUIT" => {
                let _ = write.write_all(b"221 2.0.0 bye\r\n").await;
                return;
            }
            _ => "502 5.5.2 command not implemented\r\n".into(),
        };
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// The address between `<` and `>` of `MAIL FROM:<a@b> ...`.
fn address(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command[start..].find('>').map_or(command.len(), |i| start + i);
    command[start..end].to_string()
}

async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut R) -> Option<String> {
    let mut data = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        if line == ".\r\n" || line == ".\n" {
            return Some(data);
        }
        data.push_str(line.strip_prefix('.').unwrap_or(&line));
    }
}
