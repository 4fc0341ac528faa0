//! Sans-I/O SMTP server session.
