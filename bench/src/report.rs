//! The result line a run prints, and its parsing by the driver.
//!
//! `RESULT key=value ...` on one line, values without spaces, so the driver
//! (or `grep`/`awk`) reads it back; a human line follows it.

use std::collections::BTreeMap;

/// Peak resident set size of this process in KiB: `VmHWM` from
/// `/proc/self/status`, else `getrusage` (both count every page ever
/// resident at once, whichever allocator touched it).
pub fn peak_rss_kib() -> u64 {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status.lines() {
            if let Some(rest) = line.strip_prefix("VmHWM:") {
                let number = rest.trim().trim_end_matches("kB").trim();
                if let Ok(kib) = number.parse() {
                    return kib;
                }
            }
        }
    }
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes only `usage`, which outlives the call.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0 {
        return usage.ru_maxrss.max(0) as u64; // KiB on Linux
    }
    0
}

/// One run's result, as printed and as parsed back.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunResult {
    /// every `key=value` of the line, in key order
    pub fields: BTreeMap<String, String>,
}

impl RunResult {
    /// Starts a result with the fields every run has.
    pub fn new(workload: &str, threads: usize, mode: &str) -> RunResult {
        let mut result = RunResult::default();
        result.set("workload", workload);
        result.set("threads", threads);
        result.set("mode", mode);
        result
    }

    /// Sets a field; spaces in the value become `_`.
    pub fn set(&mut self, key: &str, value: impl ToString) {
        let value = value.to_string().replace(char::is_whitespace, "_");
        self.fields.insert(key.to_string(), value);
    }

    /// A field parsed as a number.
    pub fn number(&self, key: &str) -> Option<f64> {
        self.fields.get(key)?.parse().ok()
    }

    /// The machine-readable line, `RESULT workload=... ...`; `workload`
    /// first, then the rest in key order.
    pub fn line(&self) -> String {
        let mut line = String::from("RESULT");
        if let Some(workload) = self.fields.get("workload") {
            line.push_str(&format!(" workload={workload}"));
        }
        for (key, value) in &self.fields {
            if key != "workload" {
                line.push_str(&format!(" {key}={value}"));
            }
        }
        line
    }

    /// Finds and parses the last `RESULT` line of a run's output.
    pub fn parse_output(output: &str) -> Option<RunResult> {
        let line = output.lines().rev().find(|l| l.starts_with("RESULT "))?;
        let mut result = RunResult::default();
        for word in line.split_whitespace().skip(1) {
            let (key, value) = word.split_once('=')?;
            result.fields.insert(key.to_string(), value.to_string());
        }
        Some(result)
    }

    /// A one-line summary for people.
    pub fn human(&self) -> String {
        let get = |key: &str| self.number(key).unwrap_or(f64::NAN);
        format!(
            "{}: {} thread(s), {} iters, {:.1} M allocator calls in {:.3} s \
             ({:.2} M calls/s, {:.1} ns/call), peak RSS {:.1} MiB, malloc from {}",
            self.fields.get("workload").map_or("?", String::as_str),
            get("threads"),
            get("iters"),
            get("ops") / 1e6,
            get("seconds"),
            get("ops_per_sec") / 1e6,
            get("ns_per_op"),
            get("peak_rss_kib") / 1024.0,
            self.fields.get("malloc_from").map_or("?", String::as_str),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_line_parses_back_to_the_same_fields() {
        let mut result = RunResult::new("larson", 2, "iters");
        result.set("seconds", 1.25);
        result.set("note", "two words");
        let output = format!("noise\n{}\nhuman line\n", result.line());
        let parsed = RunResult::parse_output(&output).unwrap();
        assert_eq!(parsed, result);
        assert_eq!(parsed.number("seconds"), Some(1.25));
        assert_eq!(parsed.fields["note"], "two_words");
        assert!(result.line().starts_with("RESULT workload=larson "));
    }

    #[test]
    fn peak_rss_is_positive_on_linux() {
        assert!(peak_rss_kib() > 0);
    }
}
