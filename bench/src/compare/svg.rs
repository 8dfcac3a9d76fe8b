//! `ratios.svg`: a grouped bar chart of time ratios, one group per workload
//! plus the geometric mean, one bar per allocator, on a log scale around
//! 1× (bars up: slower than the reference; down: faster). Drawn as plain
//! SVG text.

use crate::stats::RatioTable;

/// Fixed colours for the known allocators, so charts from different runs
/// read alike; others take the spare colours in order.
const NAMED_COLORS: &[(&str, &str)] = &[
    ("hakmem", "#d62728"),
    ("glibc", "#7f7f7f"),
    ("mimalloc", "#1f77b4"),
    ("jemalloc", "#2ca02c"),
    ("tcmalloc", "#ff7f0e"),
    ("mimalloc-v2", "#17becf"),
    ("mimalloc-current", "#9467bd"),
];
const SPARE_COLORS: &[&str] = &["#8c564b", "#e377c2", "#bcbd22"];

fn color(name: &str, idx: usize) -> &'static str {
    NAMED_COLORS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(SPARE_COLORS[idx % SPARE_COLORS.len()], |(_, c)| c)
}
const BAR_WIDTH: f64 = 11.0;
const GROUP_GAP: f64 = 18.0;
const LEFT: f64 = 64.0;
const TOP: f64 = 78.0;
const PLOT_HEIGHT: f64 = 320.0;
const BOTTOM: f64 = 120.0;

/// Escapes text for XML.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The chart for `table`'s ratios (the reference column gets no bars).
pub fn ratio_chart(table: &RatioTable, title: &str) -> String {
    let cols: Vec<usize> = (0..table.cols.len())
        .filter(|&c| Some(c) != table.reference)
        .collect();
    // Groups: each row, then the geometric mean.
    let mut groups: Vec<(String, Vec<Option<f64>>)> = (0..table.rows.len())
        .map(|r| {
            (
                table.rows[r].clone(),
                cols.iter().map(|&c| table.ratio(r, c)).collect(),
            )
        })
        .collect();
    groups.push((
        "geomean".to_string(),
        cols.iter()
            .map(|&c| table.geomean_ratio(c).map(|(g, _)| g))
            .collect(),
    ));

    let (lo, hi) = table.ratio_range().unwrap_or((1.0, 1.0));
    let lo_exp = lo.min(0.5).log2().floor().max(-6.0) as i32;
    let hi_exp = hi.max(2.0).log2().ceil().min(6.0) as i32;
    let y_of = |ratio: f64| {
        let e = ratio.log2().clamp(lo_exp as f64, hi_exp as f64);
        TOP + PLOT_HEIGHT * (hi_exp as f64 - e) / (hi_exp - lo_exp) as f64
    };
    let group_width = cols.len().max(1) as f64 * BAR_WIDTH + GROUP_GAP;
    let width = LEFT + groups.len() as f64 * group_width + 20.0;
    let height = TOP + PLOT_HEIGHT + BOTTOM;

    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
        esc(title)
    );
    // Legend.
    let mut x = LEFT;
    for (i, &c) in cols.iter().enumerate() {
        let color = color(&table.cols[c], i);
        svg.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"32\" width=\"10\" height=\"10\" fill=\"{color}\"/>\
             <text x=\"{:.1}\" y=\"41\">{}</text>\n",
            x + 14.0,
            esc(&table.cols[c])
        ));
        x += 26.0 + 7.0 * table.cols[c].len() as f64;
    }
    // Grid lines at powers of two.
    for e in lo_exp..=hi_exp {
        let y = y_of(2f64.powi(e));
        let (stroke, dash) = if e == 0 {
            ("#000", "")
        } else {
            ("#ccc", " stroke-dasharray=\"3,3\"")
        };
        let label = if e >= 0 {
            format!("{}×", 1u64 << e)
        } else {
            format!("1/{}×", 1u64 << -e)
        };
        svg.push_str(&format!(
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{stroke}\"{dash}/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>\n",
            width - 20.0,
            LEFT - 6.0,
            y + 4.0
        ));
    }
    // Bars.
    let base = y_of(1.0);
    for (g, (label, ratios)) in groups.iter().enumerate() {
        let gx = LEFT + g as f64 * group_width + GROUP_GAP / 2.0;
        for (i, ratio) in ratios.iter().enumerate() {
            let color = color(&table.cols[cols[i]], i);
            let bx = gx + i as f64 * BAR_WIDTH;
            let name = esc(&table.cols[cols[i]]);
            match ratio {
                Some(r) => {
                    let y = y_of(*r);
                    let (top, h) = if y < base {
                        (y, base - y)
                    } else {
                        (base, y - base)
                    };
                    svg.push_str(&format!(
                        "<rect x=\"{bx:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\">\
                         <title>{} × {name}: {r:.3}×</title></rect>\n",
                        BAR_WIDTH - 1.0,
                        h.max(1.0),
                        esc(label)
                    ));
                }
                None => svg.push_str(&format!(
                    "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{color}\" text-anchor=\"middle\">✕\
                     <title>{} × {name}: no result</title></text>\n",
                    bx + BAR_WIDTH / 2.0,
                    base + 4.0,
                    esc(label)
                )),
            }
        }
        let lx = gx + ratios.len() as f64 * BAR_WIDTH / 2.0;
        let ly = TOP + PLOT_HEIGHT + 12.0;
        svg.push_str(&format!(
            "<text x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"end\" transform=\"rotate(-45 {lx:.1} {ly:.1})\"{}>{}</text>\n",
            if label == "geomean" { " font-weight=\"bold\"" } else { "" },
            esc(label)
        ));
    }
    svg.push_str(&format!(
        "<text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">\
         time ratio (log scale, lower is better)</text>\n</svg>\n",
        TOP + PLOT_HEIGHT / 2.0,
        TOP + PLOT_HEIGHT / 2.0
    ));
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_has_one_bar_per_measured_ratio_and_marks_missing_ones() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut table = RatioTable::new(names(&["w1", "w<2>"]), names(&["a", "b", "ref"]), Some(2));
        for (r, c, v) in [
            (0, 0, 2.0),
            (0, 1, 0.5),
            (0, 2, 1.0),
            (1, 0, 3.0),
            (1, 2, 1.0),
        ] {
            table.set(r, c, Some(v));
        }
        let svg = ratio_chart(&table, "t");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // 3 measured ratios + 2 geomeans, plus the background and 2 legend squares.
        assert_eq!(svg.matches("<rect").count(), 5 + 1 + 2);
        assert_eq!(svg.matches("no result").count(), 1);
        assert!(svg.contains("w&lt;2&gt;"));
    }
}
