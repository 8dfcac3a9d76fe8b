//! Statistics for the comparison: medians, geometric means, ratio tables.

/// The median of `values` (the mean of the middle two for an even count);
/// None when empty. NaNs are not expected and sort last.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

/// The geometric mean of `values`, all positive; None when empty or when
/// any value is not positive and finite.
pub fn geomean(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return None;
    }
    let log_sum: f64 = values.iter().map(|v| v.ln()).sum();
    Some((log_sum / values.len() as f64).exp())
}

/// A table of values (rows: workloads, columns: allocators) read as ratios
/// to one reference column.
#[derive(Clone, Debug)]
pub struct RatioTable {
    /// row names, e.g. workloads
    pub rows: Vec<String>,
    /// column names, e.g. allocators
    pub cols: Vec<String>,
    /// the column every ratio divides by, if any
    pub reference: Option<usize>,
    /// `values[row][col]`, None where nothing was measured
    values: Vec<Vec<Option<f64>>>,
}

impl RatioTable {
    /// An empty table.
    pub fn new(rows: Vec<String>, cols: Vec<String>, reference: Option<usize>) -> RatioTable {
        let values = vec![vec![None; cols.len()]; rows.len()];
        RatioTable {
            rows,
            cols,
            reference,
            values,
        }
    }

    /// Records the value of one cell.
    pub fn set(&mut self, row: usize, col: usize, value: Option<f64>) {
        self.values[row][col] = value;
    }

    /// The value of one cell.
    pub fn value(&self, row: usize, col: usize) -> Option<f64> {
        self.values[row][col]
    }

    /// `value(row, col) / value(row, reference)`, when both exist and the
    /// reference is positive.
    pub fn ratio(&self, row: usize, col: usize) -> Option<f64> {
        let reference = self.value(row, self.reference?)?;
        let value = self.value(row, col)?;
        (reference > 0.0).then(|| value / reference)
    }

    /// The geometric mean of a column's ratios over the rows that have one,
    /// and how many rows that is.
    pub fn geomean_ratio(&self, col: usize) -> Option<(f64, usize)> {
        let ratios: Vec<f64> = (0..self.rows.len())
            .filter_map(|row| self.ratio(row, col))
            .collect();
        geomean(&ratios).map(|g| (g, ratios.len()))
    }

    /// The largest and smallest ratio anywhere (for chart scales).
    pub fn ratio_range(&self) -> Option<(f64, f64)> {
        let ratios = (0..self.rows.len())
            .flat_map(|row| (0..self.cols.len()).map(move |col| (row, col)))
            .filter_map(|(row, col)| self.ratio(row, col));
        ratios.fold(None, |range, r| match range {
            None => Some((r, r)),
            Some((lo, hi)) => Some((f64::min(lo, r), f64::max(hi, r))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn geomean_is_the_nth_root_of_the_product() {
        let g = geomean(&[1.0, 4.0, 16.0]).unwrap();
        assert!((g - 4.0).abs() < 1e-12);
        let g = geomean(&[0.5, 2.0]).unwrap();
        assert!((g - 1.0).abs() < 1e-12);
        assert_eq!(geomean(&[]), None);
        assert_eq!(geomean(&[1.0, 0.0]), None);
        assert_eq!(geomean(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn ratios_divide_by_the_reference_and_skip_missing_cells() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        let mut table = RatioTable::new(names(&["a", "b", "c"]), names(&["x", "ref"]), Some(1));
        table.set(0, 0, Some(2.0));
        table.set(0, 1, Some(1.0));
        table.set(1, 0, Some(1.0));
        table.set(1, 1, Some(4.0));
        table.set(2, 0, Some(9.0)); // no reference value in row c
        assert_eq!(table.ratio(0, 0), Some(2.0));
        assert_eq!(table.ratio(1, 0), Some(0.25));
        assert_eq!(table.ratio(2, 0), None);
        assert_eq!(table.ratio(0, 1), Some(1.0));
        let (g, n) = table.geomean_ratio(0).unwrap();
        assert!((g - (0.5f64).sqrt()).abs() < 1e-12);
        assert_eq!(n, 2);
        assert_eq!(table.geomean_ratio(1), Some((1.0, 2)));
        assert_eq!(table.ratio_range(), Some((0.25, 2.0)));
    }

    #[test]
    fn a_table_without_reference_has_no_ratios() {
        let mut table = RatioTable::new(vec!["a".into()], vec!["x".into()], None);
        table.set(0, 0, Some(1.0));
        assert_eq!(table.ratio(0, 0), None);
        assert_eq!(table.geomean_ratio(0), None);
    }
}
