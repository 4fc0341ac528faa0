//! Which scenario files a run takes: `--partition K/N` splits a library by count, as
//! cargo-nextest's `count:K/N` does, so that a CI matrix of N jobs runs every file exactly once.
//!
//! The files are numbered in the order the run lists them (the paths as given, a directory's
//! `*.toml` files sorted by name), after `--filter`; file `i` (0-based) belongs to partition
//! `i % N + 1`. The same library and filter give the same partitions on every run and machine.

use std::fmt;
use std::str::FromStr;

/// `K/N`: the K-th (1-based) of N partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    /// This partition, 1..=N.
    pub index: usize,
    /// How many partitions.
    pub count: usize,
}

impl Partition {
    /// Whether the `position`-th (0-based) selected file belongs to this partition.
    pub fn takes(&self, position: usize) -> bool {
        position % self.count + 1 == self.index
    }

    /// The items of `all` in this partition, in order.
    pub fn select<T>(&self, all: Vec<T>) -> Vec<T> {
        all.into_iter().enumerate().filter(|(i, _)| self.takes(*i)).map(|(_, t)| t).collect()
    }
}

impl FromStr for Partition {
    type Err = String;

    /// `K/N` or nextest's `count:K/N`, with 1 <= K <= N.
    fn from_str(text: &str) -> Result<Self, String> {
        let spec = text.trim().strip_prefix("count:").unwrap_or(text.trim());
        let bad = || format!("{text:?} is not a partition: write K/N (or count:K/N) with 1 <= K <= N, e.g. 2/4");
        let (k, n) = spec.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) =
            (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(Partition { index, count })
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!("2/4".parse(), Ok(Partition { index: 2, count: 4 }));
        assert_eq!("count:1/3".parse(), Ok(Partition { index: 1, count: 3 }));
        for bad in ["0/3", "4/3", "1/0", "x/2", "2", "hash:1/2"] {
            assert!(bad.parse::<Partition>().is_err(), "{bad}");
        }
    }

    /// Every item lands in exactly one of the N partitions, in order, and the partitions differ in
    /// size by at most one.
    #[test]
    fn every_item_exactly_once() {
        for total in 0..40usize {
            for n in 1..9usize {
                let mut seen = Vec::new();
                let mut sizes = Vec::new();
                for k in 1..=n {
                    let part = Partition { index: k, count: n }.select((0..total).collect());
                    assert!(part.windows(2).all(|w| w[0] < w[1]));
                    sizes.push(part.len());
                    seen.extend(part);
                }
                seen.sort();
                assert_eq!(seen, (0..total).collect::<Vec<_>>());
                assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
            }
        }
    }
}
