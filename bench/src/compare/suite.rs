//! The default suite: which workloads the comparison runs, with which
//! options. Each entry runs for about a second under glibc at `--scale 1`.

/// One row of the comparison.
pub struct Entry {
    /// the row's name (also what `--only` matches, besides the workload)
    pub label: &'static str,
    /// the workload given to `hakmem-bench run`
    pub workload: &'static str,
    /// extra options for it
    pub args: &'static [&'static str],
}

const fn entry(
    label: &'static str,
    workload: &'static str,
    args: &'static [&'static str],
) -> Entry {
    Entry {
        label,
        workload,
        args,
    }
}

/// The default suite, in order.
pub const SUITE: &[Entry] = &[
    entry("pair", "pair", &[]),
    entry("glibc-simple", "glibc-simple", &[]),
    entry("glibc-thread", "glibc-thread", &[]),
    entry("random-mixed", "random-mixed", &[]),
    entry("fixed-16", "fixed-size", &["--size", "16"]),
    entry("fixed-256", "fixed-size", &["--size", "256"]),
    entry("fixed-1024", "fixed-size", &["--size", "1024"]),
    entry("larson", "larson", &[]),
    // Oversubscribed: 4 threads on 2 cores must not collapse (DESIGN §6).
    entry("larson-4t", "larson", &["--threads", "4"]),
    entry("xmalloc", "xmalloc", &[]),
    entry("cache-scratch", "cache-scratch", &[]),
    entry("mstress", "mstress", &[]),
    entry("mid-large", "mid-large", &[]),
    entry("realloc-growth", "realloc-growth", &[]),
    entry("malloc-large", "malloc-large", &[]),
];

/// The entries `--only` selects: a name matches a label or a workload.
pub fn select(only: Option<&str>) -> Result<Vec<&'static Entry>, String> {
    let Some(only) = only else {
        return Ok(SUITE.iter().collect());
    };
    let names: Vec<&str> = only
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    for name in &names {
        if !SUITE
            .iter()
            .any(|e| e.label == *name || e.workload == *name)
        {
            let labels: Vec<&str> = SUITE.iter().map(|e| e.label).collect();
            return Err(format!(
                "--only: no entry `{name}`; entries: {}",
                labels.join(", ")
            ));
        }
    }
    Ok(SUITE
        .iter()
        .filter(|e| names.iter().any(|n| e.label == *n || e.workload == *n))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_names_a_real_workload_and_labels_are_unique() {
        for (idx, entry) in SUITE.iter().enumerate() {
            assert!(
                crate::workloads::find(entry.workload).is_some(),
                "{}",
                entry.workload
            );
            assert!(SUITE[..idx].iter().all(|e| e.label != entry.label));
        }
    }

    #[test]
    fn only_matches_labels_and_workload_names() {
        let picked = select(Some("larson,fixed-size")).unwrap();
        let labels: Vec<&str> = picked.iter().map(|e| e.label).collect();
        assert_eq!(
            labels,
            ["fixed-16", "fixed-256", "fixed-1024", "larson", "larson-4t"]
        );
        assert!(select(Some("nope")).is_err());
        assert_eq!(select(None).unwrap().len(), SUITE.len());
    }
}
