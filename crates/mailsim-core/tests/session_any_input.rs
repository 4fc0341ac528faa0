//! The server session under any input (issue 14 item 8): the stable, bounded form of the `session`
//! fuzz target (`fuzz/`), with the same oracle (`oracles/session.rs`): progress, well-formed
//! replies, no smuggling; plain, after STARTTLS, inside DATA and inside a BDAT chunk.

#[path = "oracles/session.rs"]
mod oracle;

use proptest::prelude::*;

/// Pieces that matter to SMTP framing, so that random input reaches the interesting states.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"\r\n".to_vec()),
        Just(b"\r\n.\r\n".to_vec()),
        Just(b"\n.\n".to_vec()),
        Just(b"\r.\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b".".to_vec()),
        Just(b"\x00".to_vec()),
        Just(b"MAIL FROM:<evil@x.test>\r\n".to_vec()),
        Just(b"RCPT TO:<alice@contoso.test>\r\n".to_vec()),
        Just(b"DATA\r\n".to_vec()),
        Just(b"BDAT 5\r\n".to_vec()),
        Just(b"BDAT 3 LAST\r\n".to_vec()),
        Just(b"STARTTLS\r\n".to_vec()),
        Just(b"EHLO x.test\r\n".to_vec()),
        Just(b"RSET\r\n".to_vec()),
        (1usize..1100).prop_map(|n| vec![b'x'; n]),
        proptest::collection::vec(any::<u8>(), 0..24),
    ]
}

fn input() -> impl Strategy<Value = Vec<u8>> {
    (any::<u8>(), any::<u8>(), proptest::collection::vec(piece(), 0..24)).prop_map(|(mode, seed, pieces)| {
        let mut data = vec![mode, seed];
        data.extend(pieces.concat());
        data
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_input_in_any_chunking(data in input()) {
        oracle::check(&data);
    }

    #[test]
    fn any_bytes(data in proptest::collection::vec(any::<u8>(), 0..2_000)) {
        oracle::check(&data);
    }
}

/// The smuggling variants and the fuzz target's seeds, in every mode and a few chunkings.
#[test]
#[allow(clippy::disallowed_methods, reason = "a test reads the fuzz corpus; the library never reads files")]
fn smuggling_variants_and_the_fuzz_seeds() {
    let mut bodies: Vec<Vec<u8>> = [&b"\n.\n"[..], b"\r.\r", b"\n.\r\n", b"\r\n.\r", b"\r\n\x00.\r\n", b"\r\n.\r\n"]
        .iter()
        .map(|v| [b"Subject: x\r\n\r\nhello".as_slice(), v, b"MAIL FROM:<evil@x.test>\r\n\r\n.\r\n"].concat())
        .collect();
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/session");
    for entry in std::fs::read_dir(corpus).expect("the fuzz corpus") {
        let seed = std::fs::read(entry.expect("a corpus entry").path()).expect("a seed");
        bodies.push(seed.get(2..).unwrap_or_default().to_vec());
    }
    for body in &bodies {
        for mode in 0..4u8 {
            for seed in [0u8, 1, 7, 96, 255] {
                oracle::check(&[&[mode, seed][..], body].concat());
            }
        }
    }
}
