//! NDRs stay RFC-clean for any remote reply (issue 14 item 5): the stable, bounded form of the
//! `ndr_compose` fuzz target (`fuzz/`), with the same oracle (`oracles/ndr.rs`), and the
//! regressions the issue names.

#[path = "oracles/ndr.rs"]
mod oracle;

use mailsim_core::reply::Reply;
use proptest::prelude::*;

fn parse(wire: &str) -> Reply {
    Reply::parse(&format!("{wire}\r\n")).expect("a reply")
}

/// `550 5.1.1 ` + 1,000 characters gave a 1,002-octet `Diagnostic-Code` line.
#[test]
fn regression_1000_character_reply_stays_within_998_octets() {
    let long = parse(&format!("550 5.1.1 {}", "x".repeat(1_000)));
    oracle::check(long.clone(), long);
    let very_long = parse(&format!("550 5.1.1 {}", "y".repeat(1_990)));
    oracle::check(very_long, parse("550 5.1.1 short"));
}

/// A run of 120 spaces gave a whitespace-only continuation line that ended the delivery-status
/// group: a two-recipient report read back as four groups.
#[test]
fn regression_run_of_spaces_never_makes_a_blank_line() {
    for spaces in [79, 120, 997, 998, 1_500, 1_990] {
        let reply = parse(&format!("550 5.1.1 User{}unknown{}", " ".repeat(spaces), " ".repeat(spaces)));
        oracle::check(reply.clone(), reply);
    }
    oracle::check(parse(&format!("550 {}", " ".repeat(120))), parse(&format!("451 4.7.0 {}x", " ".repeat(120))));
}

/// Control characters and invalid UTF-8, and every seed of the fuzz target's corpus.
#[test]
#[allow(clippy::disallowed_methods, reason = "a test reads the fuzz corpus; the library never reads files")]
fn control_characters_invalid_utf8_and_the_fuzz_seeds() {
    let mut cases: Vec<Vec<u8>> =
        [&b"\x05\x05User\tunknown\x00\x1b[31m"[..], b"\x08\xff\xfe\xc3(\x80 bad utf-8", b"\x0b\x0c\x7f", b""]
            .iter()
            .map(|c| c.to_vec())
            .collect();
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/ndr_compose");
    for entry in std::fs::read_dir(corpus).expect("the fuzz corpus") {
        cases.push(std::fs::read(entry.expect("a corpus entry").path()).expect("a seed"));
    }
    for data in cases {
        let (pick, a, b) = oracle::split_input(&data);
        oracle::check(oracle::remote_reply(pick, &a), oracle::remote_reply(pick.wrapping_add(1), &b));
    }
}

/// Reply lines rich in what breaks folding: runs of spaces, tabs, controls, long words, non-UTF-8.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        (1usize..200).prop_map(|n| vec![b' '; n]),
        (1usize..1200).prop_map(|n| vec![b'z'; n]),
        proptest::collection::vec(any::<u8>(), 0..40),
        Just(b"\t".to_vec()),
        Just(b"User unknown".to_vec()),
    ];
    proptest::collection::vec(piece, 0..6).prop_map(|pieces| {
        let mut line: Vec<u8> = pieces.concat();
        line.retain(|b| *b != b'\r' && *b != b'\n');
        line.truncate(2_000);
        line
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_remote_reply_gives_a_clean_ndr(
        pick in any::<u8>(),
        a in proptest::collection::vec(line(), 1..3),
        b in proptest::collection::vec(line(), 1..3),
    ) {
        oracle::check(oracle::remote_reply(pick, &a), oracle::remote_reply(pick / 2, &b));
    }

    #[test]
    fn any_fuzz_input_gives_a_clean_ndr(data in proptest::collection::vec(any::<u8>(), 0..3_000)) {
        let (pick, a, b) = oracle::split_input(&data);
        oracle::check(oracle::remote_reply(pick, &a), oracle::remote_reply(pick, &b));
    }
}
