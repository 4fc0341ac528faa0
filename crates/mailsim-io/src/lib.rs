//! mailsim-io
