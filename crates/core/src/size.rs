//! Byte sizes as written on the command line: `1048576`, `512KiB`, `1MiB`, `2MB`.

use std::fmt;
use std::str::FromStr;

/// A text that is not a byte size.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a size: write bytes or a number with KiB, MiB, GiB, KB, MB or GB")]
pub struct SizeError(pub String);

/// A number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = SizeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || SizeError(text.to_owned());
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let amount: u64 = trimmed[..split].parse().map_err(|_| err())?;
        let factor: u64 = match trimmed[split..].trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            _ => return Err(err()),
        };
        amount.checked_mul(factor).map(Self).ok_or_else(err)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (size, unit) in [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_units() {
        assert_eq!("1MiB".parse(), Ok(ByteSize(1 << 20)));
        assert_eq!("512KiB".parse(), Ok(ByteSize(512 << 10)));
        assert_eq!("2000".parse(), Ok(ByteSize(2000)));
        assert!("1 TB".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize(1 << 20).to_string(), "1MiB");
    }
}
