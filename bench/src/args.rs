//! A tiny `--key value` / `--key=value` parser: the CLI needs nothing more,
//! and it keeps the benchmark binary free of dependencies that allocate in
//! surprising ways.

use std::str::FromStr;

/// Command-line options not yet consumed, in order. Keys keep their `--`.
#[derive(Clone, Debug, Default)]
pub struct Args {
    pairs: Vec<(String, Option<String>)>,
}

/// Options that never take a value.
const FLAGS: &[&str] = &["--quick", "--no-install", "--no-build", "--help"];

impl Args {
    /// Parses `--key value`, `--key=value` and the bare flags in [`FLAGS`].
    pub fn parse(words: &[String]) -> Result<Args, String> {
        let mut pairs = Vec::new();
        let mut words = words.iter();
        while let Some(word) = words.next() {
            if !word.starts_with("--") {
                return Err(format!("unexpected argument `{word}`"));
            }
            if let Some((key, value)) = word.split_once('=') {
                pairs.push((key.to_string(), Some(value.to_string())));
            } else if FLAGS.contains(&word.as_str()) {
                pairs.push((word.clone(), None));
            } else {
                let value = words
                    .next()
                    .ok_or_else(|| format!("option `{word}` needs a value"))?;
                pairs.push((word.clone(), Some(value.clone())));
            }
        }
        Ok(Args { pairs })
    }

    /// Removes and returns the last value given for `key`, if any.
    pub fn take_str(&mut self, key: &str) -> Result<Option<String>, String> {
        let mut found = None;
        let mut kept = Vec::with_capacity(self.pairs.len());
        for (k, v) in self.pairs.drain(..) {
            if k == key {
                found = Some(v.ok_or_else(|| format!("option `{key}` needs a value"))?);
            } else {
                kept.push((k, v));
            }
        }
        self.pairs = kept;
        Ok(found)
    }

    /// Removes `key` and parses its value, if given.
    pub fn take<T: FromStr>(&mut self, key: &str) -> Result<Option<T>, String> {
        match self.take_str(key)? {
            None => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|_| format!("option `{key}`: cannot parse `{text}`")),
        }
    }

    /// Removes `key` and parses its value, or returns `default`.
    pub fn take_or<T: FromStr>(&mut self, key: &str, default: T) -> Result<T, String> {
        Ok(self.take(key)?.unwrap_or(default))
    }

    /// Removes a bare flag; true if it was given.
    pub fn take_flag(&mut self, key: &str) -> bool {
        let before = self.pairs.len();
        self.pairs.retain(|(k, _)| k != key);
        self.pairs.len() != before
    }

    /// Fails if any option was not consumed (a typo, or one this command
    /// does not know).
    pub fn finish(&self) -> Result<(), String> {
        match self.pairs.first() {
            None => Ok(()),
            Some((key, _)) => Err(format!("unknown option `{key}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn both_spellings_parse_and_leftovers_are_reported() {
        let mut args = Args::parse(&words("--threads 4 --size=64 --quick --bogus 1")).unwrap();
        assert_eq!(args.take::<usize>("--threads").unwrap(), Some(4));
        assert_eq!(args.take_or("--size", 16usize).unwrap(), 64);
        assert_eq!(args.take_or("--slots", 7usize).unwrap(), 7);
        assert!(args.take_flag("--quick"));
        assert!(args.finish().unwrap_err().contains("--bogus"));
    }

    #[test]
    fn a_bad_number_is_an_error_not_a_default() {
        let mut args = Args::parse(&words("--iters ten")).unwrap();
        assert!(args.take::<u64>("--iters").is_err());
    }
}
