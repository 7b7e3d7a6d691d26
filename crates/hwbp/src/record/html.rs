//! `hwbp report --html`: one self-contained HTML page (inline SVG, CSS and a little JS; no
//! network) with, per watch, the value over time as a step plot whose points are the writes
//! coloured by writing function, a legend of writers, the report's tables and the timeline of
//! changes. Large recordings are sampled to [`MAX_POINTS`] points per watch (every change kept
//! first), and the page says so.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde_json::{json, Value};

use super::report::{by_count, changes, filtered, report, Filter, WatchReport};
use super::{Hit, Recording};

/// Points drawn per watch at most.
pub const MAX_POINTS: usize = 5000;

/// Rows of the timeline of changes shown per watch at most.
pub const MAX_CHANGE_ROWS: usize = 500;

/// Writers that get a colour of their own; the rest share grey ("other writers").
const PALETTE: [&str; 9] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22",
];
const OTHER_COLOUR: &str = "#7f7f7f";

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 110.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 34.0;

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Which hits of one watch are drawn: indexes into its hits, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Indexes of the hits drawn.
    pub kept: Vec<usize>,
    /// Hits that changed the value (or, without values, every hit counts as one).
    pub changes: usize,
    /// True when changes had to be sampled too.
    pub changes_sampled: bool,
}

/// Chooses at most `budget` of `hits` to draw: every change of value first (and the first and
/// last hit), then repeats evenly spread; when the changes alone exceed the budget, the
/// changes evenly spread.
pub fn sample(hits: &[&Hit], budget: usize) -> Sample {
    let n = hits.len();
    if n <= budget {
        let changes = hits.iter().filter(|h| h.changed()).count();
        return Sample {
            kept: (0..n).collect(),
            changes,
            changes_sampled: false,
        };
    }
    let is_change: Vec<bool> = hits
        .iter()
        .enumerate()
        .map(|(i, h)| h.changed() || i == 0 || i + 1 == n)
        .collect();
    let change_idx: Vec<usize> = (0..n).filter(|&i| is_change[i]).collect();
    let changes = hits.iter().filter(|h| h.changed()).count();
    if change_idx.len() >= budget {
        return Sample {
            kept: spread(&change_idx, budget),
            changes,
            changes_sampled: true,
        };
    }
    let repeats: Vec<usize> = (0..n).filter(|&i| !is_change[i]).collect();
    let mut kept = change_idx.clone();
    kept.extend(spread(&repeats, budget - change_idx.len()));
    kept.sort_unstable();
    Sample {
        kept,
        changes,
        changes_sampled: false,
    }
}

/// `k` of `items`, evenly spread, first and last included when `k >= 2`.
fn spread(items: &[usize], k: usize) -> Vec<usize> {
    if k == 0 || items.is_empty() {
        return Vec::new();
    }
    if k >= items.len() {
        return items.to_vec();
    }
    if k == 1 {
        return vec![items[0]];
    }
    (0..k)
        .map(|j| items[j * (items.len() - 1) / (k - 1)])
        .collect()
}

/// Interns strings for the page's data table.
#[derive(Default)]
struct Strings {
    list: Vec<String>,
    index: HashMap<String, usize>,
}

impl Strings {
    fn id(&mut self, s: &str) -> usize {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        self.list.push(s.to_string());
        self.index.insert(s.to_string(), self.list.len() - 1);
        self.list.len() - 1
    }
}

fn fmt_value(v: f64) -> String {
    let v = if v.abs() < 1e-9 { 0.0 } else { v };
    if v.abs() >= 1e15 {
        format!("{:#x}", v as u64)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Round ticks from `lo` to `hi`, about `n` of them.
fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    let raw = span / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= n as f64)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 && out.len() < 50 {
        out.push(t);
        t += step;
    }
    out
}

struct Plot {
    svg: String,
    note: String,
    points: Vec<Value>,
    /// Writer, writes, changes, colour.
    legend: Vec<(String, u64, u64, &'static str)>,
}

/// Draws one watch's plot (`index` is its position on the page).
fn plot(index: usize, hits: &[&Hit], end_s: f64, strings: &mut Strings) -> Plot {
    // Writers that changed the value first (they are what one looks for), then by hits: the
    // top ones get a colour.
    let mut writer_counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for h in hits {
        let entry = writer_counts.entry(h.function_or_address()).or_default();
        entry.0 += 1;
        entry.1 += u64::from(h.changed());
    }
    let mut ranked: Vec<(&String, u64, u64)> = writer_counts
        .iter()
        .map(|(w, (n, c))| (w, *n, *c))
        .collect();
    ranked.sort_by(|a, b| b.2.cmp(&a.2).then(b.1.cmp(&a.1)).then(a.0.cmp(b.0)));
    let colour_of: HashMap<&str, usize> = ranked
        .iter()
        .take(PALETTE.len())
        .enumerate()
        .map(|(i, (w, _, _))| (w.as_str(), i))
        .collect();
    let mut legend: Vec<(String, u64, u64, &'static str)> = ranked
        .iter()
        .take(PALETTE.len())
        .enumerate()
        .map(|(i, (w, n, c))| ((*w).clone(), *n, *c, PALETTE[i]))
        .collect();
    let rest = ranked.iter().skip(PALETTE.len());
    let others: u64 = rest.clone().map(|r| r.1).sum();
    let other_changes: u64 = rest.map(|r| r.2).sum();
    if others > 0 {
        legend.push((
            format!("{} other writers", ranked.len() - PALETTE.len()),
            others,
            other_changes,
            OTHER_COLOUR,
        ));
    }

    let sample = sample(hits, MAX_POINTS);
    let kept: Vec<&Hit> = sample.kept.iter().map(|&i| hits[i]).collect();
    let has_values = hits.iter().any(|h| h.value_after.is_some());
    // Without values (a struct watch, values not read): one row per field.
    let mut rows: Vec<String> = Vec::new();
    if !has_values {
        for h in hits {
            let f = h.field.clone().unwrap_or_else(|| "(write)".into());
            if !rows.contains(&f) {
                rows.push(f);
            }
        }
        rows.sort();
    }
    let y_of_hit = |h: &Hit| -> Option<f64> {
        if has_values {
            h.value_after.map(|v| v as f64)
        } else {
            let f = h.field.clone().unwrap_or_else(|| "(write)".into());
            rows.iter().position(|r| *r == f).map(|i| i as f64)
        }
    };
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for h in &kept {
        for v in [
            y_of_hit(h),
            h.value_before.filter(|_| has_values).map(|v| v as f64),
        ]
        .into_iter()
        .flatten()
        {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        (lo, hi) = (lo - 1.0, hi + 1.0);
    } else {
        let pad = (hi - lo) * 0.06;
        (lo, hi) = (lo - pad, hi + pad);
    }
    let t_end = end_s
        .max(kept.last().map_or(0.0, |h| h.time_ns as f64 / 1e9))
        .max(1e-6);
    let px = |t: f64| LEFT + t / t_end * (WIDTH - LEFT - RIGHT);
    let py = |v: f64| TOP + (hi - v) / (hi - lo) * (HEIGHT - TOP - BOTTOM);

    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"plot\" data-watch=\"{index}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\">"
    );
    let _ = write!(
        svg,
        "<rect class=\"frame\" x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\"/>",
        WIDTH - LEFT - RIGHT,
        HEIGHT - TOP - BOTTOM
    );
    // Axes.
    for t in ticks(0.0, t_end, 10) {
        let x = px(t);
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{}\"/>\
             <text class=\"tick\" x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM + 14.0,
            fmt_value_s(t)
        );
    }
    let _ = write!(
        svg,
        "<text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"end\">seconds since armed</text>",
        WIDTH - RIGHT,
        HEIGHT - 4.0
    );
    // A horizontal grid line at `y` with its label on the left.
    let mut value_tick = |y: f64, label: &str| {
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
        );
    };
    if has_values {
        for v in ticks(lo, hi, 6) {
            value_tick(py(v), &fmt_value(v));
        }
    } else {
        for (i, r) in rows.iter().enumerate() {
            value_tick(py(i as f64), &esc(r));
        }
    }
    // The step line: per field, the value holds until the next write.
    if has_values {
        let mut series: BTreeMap<Option<&str>, Vec<&Hit>> = BTreeMap::new();
        for h in &kept {
            if h.value_after.is_some() {
                series.entry(h.field.as_deref()).or_default().push(h);
            }
        }
        for points in series.values() {
            let mut d = String::new();
            let first = points[0];
            let start = first.value_before.or(first.value_after).unwrap_or(0) as f64;
            let _ = write!(d, "M{:.1} {:.1}", px(0.0), py(start));
            for h in points {
                let _ = write!(
                    d,
                    "H{:.1}V{:.1}",
                    px(h.time_ns as f64 / 1e9),
                    py(h.value_after.unwrap_or(0) as f64)
                );
            }
            let _ = write!(d, "H{:.1}", px(t_end));
            let _ = write!(svg, "<path class=\"step\" d=\"{d}\"/>");
        }
    }
    // The writes.
    let mut points = Vec::with_capacity(kept.len());
    for (i, h) in kept.iter().enumerate() {
        let Some(y) = y_of_hit(h) else { continue };
        let writer = h.function_or_address();
        let class = match colour_of.get(writer.as_str()) {
            Some(c) => format!("c{c}"),
            None => "co".to_string(),
        };
        let _ = write!(
            svg,
            "<circle class=\"{class}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" data-i=\"{i}\"/>",
            px(h.time_ns as f64 / 1e9),
            py(y)
        );
        let opt_id = |s: Option<String>, strings: &mut Strings| -> Value {
            s.map_or(Value::from(-1), |s| Value::from(strings.id(&s)))
        };
        points.push(json!([
            (h.time_ns as f64 / 1e3).round() / 1e6,
            h.tid,
            strings.id(&h.comm),
            strings.id(&writer),
            opt_id(h.source_line(), strings),
            h.value_before.map(|v| v.to_string()),
            h.value_after.map(|v| v.to_string()),
            opt_id(h.field.clone(), strings),
            strings.id(&super::report::value_source(h)),
        ]));
    }
    svg.push_str("</svg>");

    let total = hits.len() as u64;
    let note = if hits.is_empty() {
        "no writes recorded".to_string()
    } else if sample.kept.len() == hits.len() {
        format!("all {} writes shown", thousands(total))
    } else if sample.changes_sampled {
        format!(
            "showing {} of {} writes: more changes ({}) than points, changes sampled evenly",
            thousands(sample.kept.len() as u64),
            thousands(total),
            thousands(sample.changes as u64)
        )
    } else {
        format!(
            "showing {} of {} writes: every change kept ({}), repeats sampled",
            thousands(sample.kept.len() as u64),
            thousands(total),
            thousands(sample.changes as u64)
        )
    };
    let note = if has_values {
        note
    } else {
        format!("{note}; no values recorded: each write is drawn on its field's row")
    };
    Plot {
        svg,
        note,
        points,
        legend,
    }
}

fn fmt_value_s(t: f64) -> String {
    let s = format!("{t:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() {
        "0".into()
    } else {
        s.to_string()
    }
}

fn count_table(out: &mut String, title: &str, map: &BTreeMap<String, u64>) {
    if map.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<table><thead><tr><th class=\"n\">hits</th><th>{}</th></tr></thead><tbody>",
        esc(title)
    );
    for (name, count) in by_count(map) {
        let _ = write!(
            out,
            "<tr><td class=\"n\">{}</td><td>{}</td></tr>",
            thousands(count),
            esc(name)
        );
    }
    out.push_str("</tbody></table>");
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:20px;color:#222;background:#fff}\
h1{font-size:20px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 4px;border-top:1px solid #ddd;padding-top:12px}\
.meta{color:#555;font-size:12px}.meta code{font-size:12px}.cut{background:#fff3cd;border:1px solid #e0c36a;padding:6px 10px;margin:8px 0}\
.note{color:#555;font-size:12px;margin:2px 0 6px}svg.plot{display:block;max-width:100%;height:auto}\
.frame{fill:#fafafa;stroke:#bbb}.grid{stroke:#e4e4e4}.tick{font-size:11px;fill:#555}.axis{font-size:11px;fill:#777}\
.step{fill:none;stroke:#444;stroke-width:1.2}circle{stroke:#fff;stroke-width:.6}circle:hover{stroke:#000;stroke-width:1.5}\
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;margin:6px 0;font-size:13px}.legend span.sw{display:inline-block;width:11px;height:11px;border-radius:6px;margin-right:5px;vertical-align:-1px}\
.tables{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}table{border-collapse:collapse;font-size:13px;margin:6px 0}\
th,td{border-bottom:1px solid #eee;padding:2px 8px;text-align:left}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
details{margin:8px 0}#tip{position:fixed;pointer-events:none;background:#222;color:#fff;font:12px/1.4 ui-monospace,monospace;\
padding:6px 8px;border-radius:4px;white-space:pre;display:none;z-index:10;max-width:600px}";

const JS: &str = r#"(function(){
var D=JSON.parse(document.getElementById('hwbp-data').textContent);
var S=D.strings,tip=document.getElementById('tip');
function text(w,i){var p=D.watches[w].points[i];var l=[p[0].toFixed(6)+' s  '+D.watches[w].watch];
if(p[7]>=0)l.push('field '+S[p[7]]);
l.push('thread '+p[1]+' ('+S[p[2]]+')');l.push('by '+S[p[3]]);if(p[4]>=0)l.push('at '+S[p[4]]);
if(p[6]!==null)l.push((p[5]!==null?p[5]+' -> ':'')+p[6]+'  ['+S[p[8]]+']');return l.join('\n');}
var plots=document.querySelectorAll('svg.plot');
for(var k=0;k<plots.length;k++){(function(svg){var w=+svg.getAttribute('data-watch');
svg.addEventListener('mouseover',function(e){var i=e.target.getAttribute('data-i');if(i===null)return;
tip.textContent=text(w,+i);tip.style.display='block';tip.style.left=(e.clientX+14)+'px';tip.style.top=(e.clientY+14)+'px';});
svg.addEventListener('mousemove',function(e){tip.style.left=(e.clientX+14)+'px';tip.style.top=(e.clientY+14)+'px';});
svg.addEventListener('mouseout',function(e){if(e.target.getAttribute('data-i')!==null)tip.style.display='none';});
})(plots[k]);}
document.body.setAttribute('data-ready',String(plots.length));
})();"#;

/// The point colours: `.c0` .. `.c8` for the top writers, `.co` for the rest.
fn palette_css() -> String {
    let mut css = String::new();
    for (i, colour) in PALETTE.iter().enumerate() {
        let _ = write!(css, ".c{i}{{fill:{colour}}}");
    }
    let _ = write!(css, ".co{{fill:{OTHER_COLOUR}}}");
    css
}

/// The page for `recording` under `filter`.
pub fn render(recording: &Recording, filter: &Filter) -> String {
    let rep = report(recording, filter);
    let all_changes = changes(recording, filter);
    let mut strings = Strings::default();
    let mut sections = String::new();
    let mut data_watches = Vec::new();
    let end_s = rep.duration_s;
    for (index, w) in rep.watchpoints.iter().enumerate() {
        let hits: Vec<&Hit> = filtered(recording, filter)
            .filter(|h| h.watch == w.watch)
            .collect();
        let plot = plot(index, &hits, end_s, &mut strings);
        section(&mut sections, w, &plot, &all_changes);
        data_watches.push(json!({"watch": w.watch, "points": plot.points}));
    }
    let data = json!({"strings": strings.list, "watches": data_watches});
    // `</` would end the script element early.
    let data = data.to_string().replace("</", "<\\/");

    let h = &recording.header;
    let mut page = String::new();
    let title = format!(
        "hwbp report: {}",
        recording
            .path
            .file_name()
            .map_or_else(|| rep.file.clone(), |f| f.to_string_lossy().into_owned())
    );
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{CSS}{}</style></head><body>",
        esc(&title),
        palette_css()
    );
    let _ = write!(page, "<h1>{}</h1>", esc(&title));
    let target = match (&h.target.kind[..], h.target.pid, h.target.tid) {
        ("command", _, _) => format!("command {}", h.target.command.join(" ")),
        (_, _, Some(tid)) => format!("thread {tid}"),
        (_, Some(pid), _) => format!("process {pid}"),
        (kind, _, _) => match &h.target.cpus {
            Some(cpus) => format!("CPUs {cpus}"),
            None => kind.to_string(),
        },
    };
    let _ = write!(
        page,
        "<div class=\"meta\">recorded by hwbp {} &middot; <code>{}</code> &middot; target {} \
         &middot; {:.3} s ({}){}</div>",
        esc(&h.hwbp_version),
        esc(&h.command_line.join(" ")),
        esc(&target),
        rep.duration_s,
        esc(&rep.ended_by),
        rep.filter
            .as_ref()
            .map(|f| format!(" &middot; filter <code>{}</code>", esc(f)))
            .unwrap_or_default()
    );
    if let Some(cut) = &rep.cut {
        let _ = write!(
            page,
            "<div class=\"cut\">This recording was {}: what follows is what it holds.</div>",
            esc(cut)
        );
    }
    page.push_str(&sections);
    let _ = writeln!(
        page,
        "<div id=\"tip\"></div><script type=\"application/json\" id=\"hwbp-data\">{data}\
         </script><script>{JS}</script></body></html>"
    );
    page
}

fn section(out: &mut String, w: &WatchReport, plot: &Plot, all_changes: &[super::report::Change]) {
    let _ = write!(
        out,
        "<section class=\"watch\"><h2>{} <span class=\"meta\">{}, {} bytes &middot; {} hits{}</span></h2>",
        esc(&w.watch),
        esc(&w.address),
        w.len,
        thousands(w.hits),
        if w.lost > 0 {
            format!(" &middot; {} not sampled (ring buffer overrun)", thousands(w.lost))
        } else {
            String::new()
        }
    );
    let flexible = w.flexible_text();
    if !flexible.is_empty() {
        let _ = write!(out, "<div class=\"note\">{}</div>", esc(&flexible));
    }
    let _ = write!(out, "<div class=\"note\">{}</div>", esc(&plot.note));
    out.push_str(&plot.svg);
    out.push_str("<div class=\"legend\">");
    for (name, count, changes, colour) in &plot.legend {
        let changes = if *changes > 0 {
            format!(", {} changes", thousands(*changes))
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "<span><span class=\"sw\" style=\"background:{colour}\"></span>{} ({} writes{changes})</span>",
            esc(name),
            thousands(*count)
        );
    }
    out.push_str("</div><div class=\"tables\">");
    count_table(out, "field", &w.members);
    count_table(out, "thread", &w.threads);
    count_table(out, "writer (function, file:line)", &w.functions);
    out.push_str("</div>");
    let mine: Vec<_> = all_changes.iter().filter(|c| c.watch == w.watch).collect();
    let _ = write!(
        out,
        "<details><summary>changes of value: {}{}</summary><table><thead><tr>\
         <th class=\"n\">seconds</th><th>field</th><th class=\"n\">old</th><th class=\"n\">new</th>\
         <th>thread</th><th>writer</th><th>values</th></tr></thead><tbody>",
        thousands(mine.len() as u64),
        if mine.len() > MAX_CHANGE_ROWS {
            format!(" (the first {MAX_CHANGE_ROWS} shown; hwbp report --changes lists all)")
        } else {
            String::new()
        }
    );
    for c in mine.iter().take(MAX_CHANGE_ROWS) {
        let _ = write!(
            out,
            "<tr><td class=\"n\">{:.6}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td>{} ({})</td><td>{}</td><td>{}</td></tr>",
            c.time_ns as f64 / 1e9,
            esc(c.field.as_deref().unwrap_or("")),
            c.old,
            c.new,
            c.tid,
            esc(&c.comm),
            esc(&c.writer),
            esc(&c.value_source)
        );
    }
    out.push_str("</tbody></table></details></section>");
}
