"""`--report scan.html`: one self-contained HTML page of a scan (no network, no external files).

A summary (files, hours, how many called AI, errors), then a table sortable by any column
(click its heading) with each file's timeline as an inline SVG. Rows are streamed to a
temporary file while the scan runs, so memory stays flat; `close` assembles the page.
"""

from __future__ import annotations

import itertools
import os
import time
from html import escape
from pathlib import Path

from src.atomic import open_line_stream, partial_path, write_chunks_atomic
from src.timeline import timeline_svg

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px;margin:0 0 8px}
.summary{display:flex;gap:24px;flex-wrap:wrap;margin:12px 0 16px}
.summary div{background:#f3f4f6;border-radius:6px;padding:8px 14px}
.summary b{display:block;font-size:20px}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #e5e7eb;padding:4px 8px;text-align:left;vertical-align:middle}
th{cursor:pointer;user-select:none;background:#f9fafb;position:sticky;top:0}
th.sorted-asc::after{content:" \\25B2"}th.sorted-desc::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.ai td.verdict{color:#b91c1c;font-weight:600}tr.human td.verdict{color:#15803d}
tr.error td.verdict{color:#6b7280}
.name{word-break:break-all;max-width:420px}
svg .bg{fill:#fafafa}svg .ai{fill:#fca5a5;opacity:.6}svg .thr{stroke:#111;stroke-dasharray:3 3;stroke-width:1}
svg .p{fill:none;stroke:#2563eb;stroke-width:1.5}
.note{color:#6b7280;font-size:12px}
"""

# Click a heading to sort by it (again to reverse). Numbers sort as numbers; errors sort last.
_SCRIPT = """
function sortBy(th){
  const table=th.closest('table'),body=table.tBodies[0],key=th.dataset.key,num=th.dataset.type==='num';
  const asc=!th.classList.contains('sorted-asc');
  table.querySelectorAll('th').forEach(h=>h.classList.remove('sorted-asc','sorted-desc'));
  th.classList.add(asc?'sorted-asc':'sorted-desc');
  const value=r=>{const v=r.dataset[key];return num?(v===''?NaN:parseFloat(v)):v.toLowerCase();};
  const rows=Array.from(body.rows).sort((a,b)=>{
    const x=value(a),y=value(b);
    if(num){if(isNaN(x))return isNaN(y)?0:1;if(isNaN(y))return -1;return asc?x-y:y-x;}
    return asc?x.localeCompare(y):y.localeCompare(x);});
  rows.forEach(r=>body.appendChild(r));
}
document.querySelectorAll('th[data-key]').forEach(th=>th.addEventListener('click',()=>sortBy(th)));
"""

_COLUMNS = [("index", "num", "#"), ("name", "text", "file"), ("verdict", "text", "verdict"),
            ("p", "num", "P(AI)"), ("pct", "num", "windows called AI"), ("dur", "num", "duration"),
            (None, None, "timeline (P(AI) per 3-s window; shaded: called AI)")]


def _duration(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:04.1f}" if hours else f"{minutes}:{secs:04.1f}"


class ReportWriter:
    """Collects a scan's results into an HTML report, one streamed row at a time."""

    def __init__(self, path: str | os.PathLike, threshold: float, model: dict):
        self.path = Path(path)
        self.threshold = threshold
        self.model = model
        self.files = self.errors = self.called_ai = 0
        self.seconds = 0.0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._rows_path = partial_path(self.path.with_name(self.path.name + ".rows"))
        self._rows = open_line_stream(self._rows_path)

    def add(self, result: dict) -> None:
        self.files += 1
        name = escape(result["name"])
        if "error" in result:
            self.errors += 1
            self._rows.write(
                f'<tr class="error" data-index="{self.files}" data-name="{name}" data-verdict="error" data-p="" '
                f'data-pct="" data-dur=""><td class="num">{self.files}</td><td class="name">{name}</td>'
                f'<td class="verdict">error</td><td colspan="4">{escape(result["error"])}</td></tr>\n')
            return
        self.seconds += result["duration_s"]
        self.called_ai += result["Prediction"] == "ai"
        svg = timeline_svg(result, self.threshold) or '<span class="note">no timeline in this output</span>'
        self._rows.write(
            f'<tr class="{result["Prediction"]}" data-index="{self.files}" data-name="{name}" '
            f'data-verdict="{result["Prediction"]}" data-p="{result["mean_ai_probability"]}" '
            f'data-pct="{result["Percent_AI"]}" data-dur="{result["duration_s"]}">'
            f'<td class="num">{self.files}</td><td class="name">{name}</td>'
            f'<td class="verdict">{result["Prediction"]}</td><td class="num">{result["mean_ai_probability"]:.3f}</td>'
            f'<td class="num">{result["Percent_AI"]:.1f} %</td><td class="num">{_duration(result["duration_s"])}</td>'
            f'<td>{svg}</td></tr>\n')

    def _head(self) -> str:
        scored = self.files - self.errors
        share = f"{100.0 * self.called_ai / scored:.1f} % of scored" if scored else "none scored"
        audio = f"{self.seconds / 3600:.2f} h" if self.seconds >= 360 else f"{self.seconds / 60:.1f} min"
        cards = [("files", f"{self.files:,}"), ("audio", audio),
                 ("called AI", f"{self.called_ai:,} <span class='note'>({share})</span>"),
                 ("errors", f"{self.errors:,}")]
        model = escape(f"{self.model.get('architecture', '?').upper()} {self.model.get('weights', '')}")
        headings = "".join(f'<th data-key="{key}" data-type="{kind}">{label}</th>' if key else f"<th>{label}</th>"
                           for key, kind, label in _COLUMNS)
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width\"><title>AI speech scan report</title>"
                f"<style>{_STYLE}</style></head><body>\n<h1>AI speech scan report</h1>\n"
                f"<p class=\"note\">model {model}, threshold {self.threshold:g}; written "
                f"{time.strftime('%Y-%m-%d %H:%M:%S')}. A file is called AI when its mean P(AI) over 3-s windows "
                "reaches the threshold. Click a column heading to sort.</p>\n<div class=\"summary\">"
                + "".join(f"<div>{label}<b>{value}</b></div>" for label, value in cards)
                + f"</div>\n<table id=\"results\"><thead><tr>{headings}</tr></thead><tbody>\n")

    def close(self) -> None:
        """Write the page (atomically) and remove the streamed rows."""
        self._rows.close()
        try:
            with open(self._rows_path, encoding="utf-8", errors="surrogateescape") as rows:
                write_chunks_atomic(self.path, itertools.chain(
                    [self._head()], iter(lambda: rows.read(1 << 20), ""),
                    [f"</tbody></table>\n<script>{_SCRIPT}</script>\n</body></html>\n"]))
        finally:
            self._rows_path.unlink(missing_ok=True)
