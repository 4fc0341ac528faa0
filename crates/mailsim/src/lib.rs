//! mailsim
