//! The transcript: the typed record of one conversation, in order, with the time of each line
//! and whether it travelled inside TLS.
//!
//! Contract: the dialogue records [`Event`]s as it writes and reads; readers take them as they
//! are. The SEND protocol log (`crate::protocol_log`) is written from the events, never from the
//! rendered text; the swaks-style rendering ([`Transcript::render`], `Display`) is for people.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Direction of a transcript line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    Sent,
    /// Server to client.
    Received,
    /// A note from the client (connected, TLS started, body summarised).
    Info,
}

/// What the client did or saw: the typed record the SEND protocol log is written from (the log
/// reads these, never the rendered text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Connecting to the server.
    Connecting {
        /// The server's socket.
        server: SocketAddr,
    },
    /// The connection is open.
    Connected {
        /// The server's socket.
        server: SocketAddr,
        /// The bound source socket.
        local: SocketAddr,
    },
    /// STARTTLS succeeded.
    TlsStarted {
        /// rustls' name of the version (`TLSv1.3`).
        version: String,
        /// The cipher suite.
        cipher: String,
    },
    /// The subject of the server's certificate.
    TlsPeerSubject(String),
    /// A command line written (without CRLF).
    Command(String),
    /// A line of message content written, as sent (dot-stuffed, without CRLF).
    ContentLine(String),
    /// Lines of content left out of the transcript; `total_bytes` is the whole body as written,
    /// the final `.` line included.
    ContentElided {
        /// Lines not shown.
        lines: usize,
        /// Octets of the whole body on the wire.
        total_bytes: usize,
    },
    /// The final `.` line: the content before it was `bytes` octets on the wire.
    ContentEnd {
        /// Octets of content, the `.` line excluded.
        bytes: usize,
    },
    /// A reply line read (without CRLF).
    Reply(String),
    /// The client closed the connection after QUIT.
    Closed,
    /// A note added by the caller.
    Note(String),
}

impl Event {
    /// Who said it.
    pub fn direction(&self) -> Direction {
        match self {
            Event::Command(_) | Event::ContentLine(_) | Event::ContentEnd { .. } => Direction::Sent,
            Event::Reply(_) => Direction::Received,
            Event::Connecting { .. }
            | Event::Connected { .. }
            | Event::TlsStarted { .. }
            | Event::TlsPeerSubject(_)
            | Event::ContentElided { .. }
            | Event::Closed
            | Event::Note(_) => Direction::Info,
        }
    }
}

impl fmt::Display for Event {
    /// The line as swaks shows it (without its marker).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Connecting { server } => write!(f, "Trying {server}..."),
            Event::Connected { server, local } => write!(f, "Connected to {server} from {local}."),
            Event::TlsStarted { version, cipher } => write!(f, "TLS started with cipher {version}:{cipher}"),
            Event::TlsPeerSubject(subject) => write!(f, "TLS peer subject DN=\"{subject}\""),
            Event::Command(text) | Event::ContentLine(text) | Event::Reply(text) | Event::Note(text) => {
                f.write_str(text)
            }
            Event::ContentElided { lines, total_bytes } => {
                write!(f, "[{lines} more lines of data not shown; {total_bytes} bytes in all]")
            }
            Event::ContentEnd { .. } => f.write_str("."),
            Event::Closed => f.write_str("Connection closed with remote host."),
        }
    }
}

/// One line of a transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranscriptLine {
    /// Time since the client started connecting.
    pub at: Duration,
    /// Whether it travelled inside TLS.
    pub tls: bool,
    /// What happened.
    pub event: Event,
}

impl TranscriptLine {
    /// Who said it.
    pub fn dir(&self) -> Direction {
        self.event.direction()
    }

    /// The swaks marker: `===` for notes, ` ->`/` ~>` sent in plain text/TLS, `<- `/`<~ ` received,
    /// `<**`/`<~*` for a received 4xx/5xx.
    pub fn marker(&self) -> &'static str {
        let negative =
            matches!(&self.event, Event::Reply(text) if matches!(text.as_bytes().first(), Some(b'4' | b'5')));
        match (self.dir(), self.tls, negative) {
            (Direction::Info, _, _) => "===",
            (Direction::Sent, false, _) => " ->",
            (Direction::Sent, true, _) => " ~>",
            (Direction::Received, false, false) => "<- ",
            (Direction::Received, true, false) => "<~ ",
            (Direction::Received, false, true) => "<**",
            (Direction::Received, true, true) => "<~*",
        }
    }
}

impl fmt::Display for TranscriptLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.marker(), self.event)
    }
}

/// Every line sent and received, in order, with notes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transcript {
    /// The lines.
    pub lines: Vec<TranscriptLine>,
}

impl Transcript {
    /// swaks-style text, one line per entry, optionally prefixed by seconds since the start.
    pub fn render(&self, timestamps: bool) -> String {
        let mut out = String::new();
        for line in &self.lines {
            if timestamps {
                out.push_str(&format!("[{:>8.3}] ", line.at.as_secs_f64()));
            }
            out.push_str(&line.to_string());
            out.push('\n');
        }
        out
    }
}

impl fmt::Display for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}
