//! The SMTP phases, named once: where a session refused a message (exo-behaviour §8.1: the trace
//! says `Rejected at RCPT`), and where an outbound conversation failed (§3.3: a timeout at connect
//! is not a timeout after MAIL). RFC 5321 §3 for the commands; RFC 3207 for STARTTLS; RFC 3030
//! for BDAT.

/// A step of an SMTP conversation, either side. It has no `Display`: a text names it either by
/// [`SmtpPhase::as_str`] (the client's reports) or by [`SmtpPhase::command`] (trace, protocol log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SmtpPhase {
    /// TCP connect and the greeting.
    Connect,
    /// EHLO (or HELO).
    Ehlo,
    /// The STARTTLS command and the TLS handshake.
    StartTls,
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// The DATA command (up to the 354 reply).
    Data,
    /// The message body and the reply after the final dot (end of DATA).
    Dot,
    /// The last BDAT chunk and its reply.
    Bdat,
    /// RSET.
    Rset,
    /// QUIT.
    Quit,
    /// Any other command.
    Command,
}

impl SmtpPhase {
    /// Lower-case name, as used in the client's messages and reports (`timed out waiting at rcpt`).
    pub const fn as_str(self) -> &'static str {
        match self {
            SmtpPhase::Connect => "connect",
            SmtpPhase::Ehlo => "ehlo",
            SmtpPhase::StartTls => "starttls",
            SmtpPhase::Mail => "mail",
            SmtpPhase::Rcpt => "rcpt",
            SmtpPhase::Data => "data",
            SmtpPhase::Dot => "dot",
            SmtpPhase::Bdat => "bdat",
            SmtpPhase::Rset => "rset",
            SmtpPhase::Quit => "quit",
            SmtpPhase::Command => "command",
        }
    }

    /// The command the phase's reply answers, as the trace and the protocol log name it
    /// (`Rejected at RCPT`, `Rejected at DATA` for the end of data).
    pub const fn command(self) -> &'static str {
        match self {
            SmtpPhase::Connect => "CONNECT",
            SmtpPhase::Ehlo => "EHLO",
            SmtpPhase::StartTls => "STARTTLS",
            SmtpPhase::Mail => "MAIL",
            SmtpPhase::Rcpt => "RCPT",
            SmtpPhase::Data | SmtpPhase::Dot => "DATA",
            SmtpPhase::Bdat => "BDAT",
            SmtpPhase::Rset => "RSET",
            SmtpPhase::Quit => "QUIT",
            SmtpPhase::Command => "COMMAND",
        }
    }
}

/// A phase equals the name of the command it answers (`phase == "RCPT"`).
impl PartialEq<&str> for SmtpPhase {
    fn eq(&self, other: &&str) -> bool {
        self.command() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for (phase, lower, command) in [
            (SmtpPhase::Connect, "connect", "CONNECT"),
            (SmtpPhase::Rcpt, "rcpt", "RCPT"),
            (SmtpPhase::Data, "data", "DATA"),
            (SmtpPhase::Dot, "dot", "DATA"),
            (SmtpPhase::Bdat, "bdat", "BDAT"),
        ] {
            assert_eq!(phase.as_str(), lower);
            assert_eq!(phase.command(), command);
            assert!(phase == command);
        }
    }
}
