//! cargo-fuzz target: `mailsim::fuzz_oracle::scenario_file` (its oracles are documented there). The
//! same function runs as a bounded property test on stable: `tests/e2e/loader_fuzz.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mailsim::fuzz_oracle::scenario_file(data));
