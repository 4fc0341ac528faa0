//! NDR composer/reader: for any remote reply bytes, the NDR's lines are legal and it reads back
//! with the same recipients and statuses. Oracle shared with the stable property test
//! `crates/mailsim-core/tests/ndr_any_reply.rs`.
#![no_main]

#[path = "../../crates/mailsim-core/tests/oracles/ndr.rs"]
mod oracle;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (pick, a, b) = oracle::split_input(data);
    oracle::check(oracle::remote_reply(pick, &a), oracle::remote_reply(pick.wrapping_add(1), &b));
});
