//! mailsim-testkit
