//! Server session: any bytes in any chunking, plain, after STARTTLS, inside DATA or a BDAT chunk.
//! Oracles (shared with the stable property test `crates/mailsim-core/tests/session_any_input.rs`):
//! progress, well-formed replies, no smuggling (a DATA message ends only at CRLF.CRLF).
#![no_main]

#[path = "../../crates/mailsim-core/tests/oracles/session.rs"]
mod oracle;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracle::check(data));
