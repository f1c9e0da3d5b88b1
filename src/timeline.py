"""A file's timeline: P(AI) of each 3-s window over time, the threshold, and the stretches called AI.

Drawn as an inline SVG for the HTML report and as a PNG (matplotlib) for `--plot`.
"""

from __future__ import annotations

import io
import os
from html import escape

from src.atomic import write_bytes_atomic


def ai_stretches(windows: list[dict], threshold: float) -> list[tuple[float, float]]:
    """(start, end) seconds of the runs of overlapping windows whose P(AI) reaches the threshold."""
    stretches: list[list[float]] = []
    for window in windows:
        if window["ai_probability"] < threshold:
            continue
        if stretches and window["start"] <= stretches[-1][1]:
            stretches[-1][1] = max(stretches[-1][1], window["end"])
        else:
            stretches.append([window["start"], window["end"]])
    return [(start, end) for start, end in stretches]


def steps(windows: list[dict]) -> list[tuple[float, float]]:
    """(time, P(AI)) corners of a step line: each window's score held until the next window starts."""
    points = []
    for i, window in enumerate(windows):
        until = min(window["end"], windows[i + 1]["start"]) if i + 1 < len(windows) else window["end"]
        points += [(window["start"], window["ai_probability"]), (until, window["ai_probability"])]
    return points


def timeline_svg(result: dict, threshold: float, width: int = 320, height: int = 48) -> str:
    """An inline SVG of the file's timeline (empty string for a result without windows)."""
    windows = result.get("windows") or []
    if not windows:
        return ""
    duration = max(result.get("duration_s") or 0.0, windows[-1]["end"])

    def x(t: float) -> float:
        return round(width * t / duration, 1)

    def y(p: float) -> float:
        return round((height - 2) * (1.0 - p) + 1, 1)

    shaded = "".join(f'<rect x="{x(a)}" y="0" width="{max(x(b) - x(a), 0.5)}" height="{height}" class="ai"/>'
                     for a, b in ai_stretches(windows, threshold))
    line = " ".join(f"{x(t)},{y(p)}" for t, p in steps(windows))
    title = escape(f"P(AI) per 3-s window over {duration:.1f} s; dashed line: threshold {threshold:g}")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img"><title>{title}</title>'
            f'<rect width="{width}" height="{height}" class="bg"/>{shaded}'
            f'<line x1="0" x2="{width}" y1="{y(threshold)}" y2="{y(threshold)}" class="thr"/>'
            f'<polyline points="{line}" class="p"/></svg>')


def plot_timeline(result: dict, threshold: float, path: str | os.PathLike) -> None:
    """Write the file's timeline as a PNG with matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    windows = result["windows"]
    times, probabilities = zip(*steps(windows), strict=True)
    figure, axes = plt.subplots(figsize=(10, 3))
    for start, end in ai_stretches(windows, threshold):
        axes.axvspan(start, end, color="tab:red", alpha=0.15, lw=0)
    axes.plot(times, probabilities, color="tab:blue", label="P(AI) per 3-s window")
    axes.axhline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    axes.set(xlim=(0, max(result.get("duration_s") or 0.0, windows[-1]["end"])), ylim=(0, 1),
             xlabel="time (s)", ylabel="P(AI)",
             title=f"{os.path.basename(result['name'])}: {result['Prediction']} "
                   f"(mean P(AI) {result['mean_ai_probability']:.3f}; shaded: windows called AI)")
    axes.legend(loc="upper right", fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    write_bytes_atomic(path, buffer.getvalue())
