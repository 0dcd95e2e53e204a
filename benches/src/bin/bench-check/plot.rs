//! `bench-check --plot`: the history of a machine class as an SVG chart.

use std::path::Path;

use edgepack_benches::tracking::baseline_figure;
use plotters::prelude::*;
use serde_json::Value;

/// Renders each figure's ratio over the history runs as one line, relative to the baseline's
/// ratio when there is one (1.0 = baseline; the dashed line is the 5 % regression floor).
pub fn plot(
    history: &Path,
    baseline: Option<&Value>,
    out: &Path,
    class: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(history).map_err(|e| format!("{}: {e}", history.display()))?;
    let runs: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    if runs.is_empty() {
        return Err(format!("{} has no runs", history.display()).into());
    }
    let mut names: Vec<String> = runs
        .iter()
        .flat_map(|r| r["figures"].as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default())
        .collect();
    names.sort();
    names.dedup();
    let scale = |name: &str| baseline.and_then(|b| baseline_figure(b, name)).map_or(1.0, |(r, _)| r);
    let value = |run: &Value, name: &str| run["figures"][name].as_f64().map(|v| v / scale(name));
    let values = runs.iter().flat_map(|r| names.iter().filter_map(move |n| value(r, n)));
    let (lo, hi) = values.fold((0.95f64, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let root = SVGBackend::new(out, (960, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            if baseline.is_some() {
                format!("tracked ratios relative to the baseline, {class}")
            } else {
                format!("tracked ratios (ours / reference), {class}")
            },
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..(runs.len().max(2) - 1) as f64, (lo - 0.05)..(hi + 0.05))?;
    chart
        .configure_mesh()
        .x_labels(runs.len().clamp(2, 20))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("run (benches/history, oldest first)")
        .y_desc(if baseline.is_some() { "ratio / baseline ratio" } else { "throughput ratio" })
        .draw()?;
    if baseline.is_some() {
        let last = (runs.len().max(2) - 1) as f64;
        chart.draw_series(DashedLineSeries::new(vec![(0.0, 0.95), (last, 0.95)], 6, 4, BLACK.stroke_width(1)))?;
    }
    for (i, name) in names.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> =
            runs.iter().enumerate().filter_map(|(x, r)| value(r, name).map(|y| (x as f64, y))).collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
