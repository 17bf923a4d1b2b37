//! The growth chart of `snap stats`: stored bytes over time, in the
//! terminal (block characters) or as an SVG file. Pure: series in, text out.

use super::bytes;

/// Rows of the terminal chart.
const ROWS: usize = 8;
/// Columns of the terminal chart at most.
const COLS: usize = 60;
const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The series at `cols` evenly spaced times: the value of the last point
/// at or before each.
fn resample(points: &[(i64, u64)], cols: usize) -> Vec<u64> {
    let (t0, t1) = (points[0].0, points[points.len() - 1].0);
    let span = (t1 - t0).max(1) as f64;
    (0..cols)
        .map(|c| {
            let t = t0 + (span * c as f64 / (cols - 1).max(1) as f64).round() as i64;
            let at = points.partition_point(|p| p.0 <= t);
            points[at.saturating_sub(1)].1
        })
        .collect()
}

fn day(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// A bar chart of `points` (time in seconds, bytes), `ROWS` lines high.
pub fn terminal(points: &[(i64, u64)]) -> String {
    if points.is_empty() {
        return String::new();
    }
    let cols = COLS;
    let values = resample(points, cols);
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    let mut out = String::new();
    for row in (0..ROWS).rev() {
        let label = match row {
            r if r == ROWS - 1 => bytes(max),
            0 => bytes(0),
            _ => String::new(),
        };
        out.push_str(&format!("{label:>10} │"));
        for v in &values {
            // Eighths of a row filled at this height.
            let filled = (*v as f64 / max as f64 * (ROWS * 8) as f64).round() as usize;
            let here = filled.saturating_sub(row * 8).min(8);
            out.push(if here == 0 { ' ' } else { BLOCKS[here - 1] });
        }
        out.push('\n');
    }
    let first = day(points[0].0);
    let last = day(points[points.len() - 1].0);
    let pad = (cols + 1).saturating_sub(first.len() + last.len());
    out.push_str(&format!("{:>10} └{}\n", "", "─".repeat(cols)));
    out.push_str(&format!("{:>12}{first}{}{last}\n", "", " ".repeat(pad)));
    out
}

/// The same chart as a standalone SVG document.
pub fn svg(points: &[(i64, u64)]) -> String {
    let (w, h, left, bottom) = (640.0, 240.0, 80.0, 30.0);
    let (pw, ph) = (w - left - 10.0, h - bottom - 10.0);
    let (t0, t1) = (points[0].0, points[points.len() - 1].0);
    let span = (t1 - t0).max(1) as f64;
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
    let xy = |(t, v): (i64, u64)| {
        let x = left + (t - t0) as f64 / span * pw;
        let y = 10.0 + ph - v as f64 / max * ph;
        format!("{x:.1},{y:.1}")
    };
    // A step line: each snapshot's bytes stay until the next one.
    let mut line = vec![xy(points[0])];
    for pair in points.windows(2) {
        line.push(xy((pair[1].0, pair[0].1)));
        line.push(xy(pair[1]));
    }
    let base = 10.0 + ph;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">
<title>snap: stored bytes over time</title>
<rect width="{w}" height="{h}" fill="white"/>
<line x1="{left}" y1="10" x2="{left}" y2="{base}" stroke="#444"/>
<line x1="{left}" y1="{base}" x2="{r}" y2="{base}" stroke="#444"/>
<text x="{lx}" y="16" text-anchor="end">{top}</text>
<text x="{lx}" y="{base}" text-anchor="end">0 B</text>
<text x="{left}" y="{ty}">{first}</text>
<text x="{r}" y="{ty}" text-anchor="end">{last}</text>
<polyline fill="none" stroke="#1f6feb" stroke-width="2" points="{pts}"/>
</svg>
"##,
        r = left + pw,
        lx = left - 6.0,
        ty = h - 10.0,
        top = bytes(max as u64),
        first = day(t0),
        last = day(t1),
        pts = line.join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_rises_with_the_series() {
        let pts = [(0, 0), (3600, 50 << 20), (7200, 100 << 20)];
        let text = terminal(&pts);
        assert_eq!(text.lines().count(), ROWS + 2);
        let top = text.lines().next().unwrap();
        assert!(top.ends_with('█'), "{text}");
        assert!(svg(&pts).contains("<polyline"));
        assert_eq!(resample(&pts, 3), vec![0, 50 << 20, 100 << 20]);
    }
}
