//! The configuration fuzz targets (`fuzz/`, cargo-fuzz on nightly) as bounded property tests on
//! stable: the same oracle functions (`mailsim::fuzz_oracle`) over the targets' seeds
//! (`fuzz/corpus/<target>/`) mutated by proptest, a fixed number of cases each (issue 14 item 8).
//! A failure prints the minimized input; add it to the corpus as `regress-*` when fixed.

use std::path::Path;

use mailsim::fuzz_oracle;
use proptest::prelude::*;

/// Cases per target: enough to cover each seed with many edits, a few seconds in all.
const CASES: u32 = 1000;

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Bytes that matter to TOML and zone files, and some that break UTF-8 or are multi-byte.
const TOKENS: &[&[u8]] = &[
    b"[",
    b"]",
    b"[[",
    b"]]",
    b"=",
    b"\"",
    b"'''",
    b"\"\"\"",
    b"\\",
    b"\\u00e9",
    b"\n",
    b"\r\n",
    b"#",
    b".",
    b",",
    b"{",
    b"}",
    b"*",
    b"*.",
    b"smtp:",
    b";1",
    b"ms",
    b"d",
    b"18446744073709551615",
    b"-1",
    b"999",
    b"0",
    b"$TTL ",
    b"$ORIGIN ",
    b" MX ",
    b" A ",
    b"xn--",
    "ß".as_bytes(),
    "straße".as_bytes(),
    "例子".as_bytes(),
    b"\xff",
    b"\xc3",
    b"\0",
    b"\t",
    b"..",
    b"a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a",
];

#[derive(Clone, Debug)]
enum Edit {
    Insert(usize, usize),
    Delete(usize, usize),
    Replace(usize, usize),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, t)| Edit::Insert(at, t)),
        (any::<usize>(), 1usize..40).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, t)| Edit::Replace(at, t)),
        (any::<usize>(), 1usize..200).prop_map(|(at, n)| Edit::Duplicate(at, n)),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len();
        match *e {
            Edit::Insert(at, t) => {
                let at = at % (len + 1);
                bytes.splice(at..at, TOKENS[t].iter().copied());
            }
            Edit::Delete(at, n) if len > 0 => {
                let at = at % len;
                bytes.drain(at..(at + n).min(len));
            }
            Edit::Replace(at, t) if len > 0 => {
                let at = at % len;
                let end = (at + TOKENS[t].len()).min(len);
                bytes.splice(at..end, TOKENS[t].iter().copied());
            }
            Edit::Duplicate(at, n) if len > 0 => {
                let at = at % len;
                let piece = bytes[at..(at + n).min(len)].to_vec();
                bytes.splice(at..at, piece);
            }
            _ => {}
        }
    }
    bytes
}

fn mutated(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds(target);
    (0..seeds.len(), proptest::collection::vec(edit(), 1..8))
        .prop_map(move |(i, edits)| apply(seeds[i].clone(), &edits))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn tenant_loader(bytes in mutated("tenant_loader")) {
        fuzz_oracle::tenant_file(&bytes);
    }

    #[test]
    fn scenario_loader(bytes in mutated("scenario_loader")) {
        fuzz_oracle::scenario_file(&bytes);
    }

    #[test]
    fn zone_parser(bytes in mutated("zone_parser")) {
        fuzz_oracle::zone_records(&bytes);
    }

    #[test]
    fn loaders_on_arbitrary_text(text in "\\PC{0,400}") {
        fuzz_oracle::tenant_file(text.as_bytes());
        fuzz_oracle::scenario_file(text.as_bytes());
        fuzz_oracle::zone_records(text.as_bytes());
    }
}

/// Every seed passes the oracles unmutated (the regressions among them are issue 14's panics).
#[test]
fn seeds_pass() {
    for b in seeds("tenant_loader") {
        fuzz_oracle::tenant_file(&b);
    }
    for b in seeds("scenario_loader") {
        fuzz_oracle::scenario_file(&b);
    }
    for b in seeds("zone_parser") {
        fuzz_oracle::zone_records(&b);
    }
}
