"""The sweep's outputs: points.json, points.csv, front PNGs and one self-contained report.html.

Every file is written to a temporary sibling and renamed into place.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path

from .cache import write_atomic

#: The columns of points.csv and of the report's table, in order.
COLUMNS = ["target", "weight_bits", "act_bits", "pwl_segments", "delta_budget", "lanes",
           "seeds", "status", "pareto", "metric", "weight_memory_bits", "macs_eliminated",
           "LUT", "FF", "DSP", "BRAM", "SPRAM", "utilization", "fits", "fmax_mhz",
           "cycles_per_step", "latency_us", "throughput", "sim_passed", "thresholds",
           "reason"]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def points_csv(points: list) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for p in points:
        writer.writerow([_cell(p.get(c)) for c in COLUMNS])
    return buf.getvalue()


def front_figure(points: list, targets: list, metric_name: str, higher: bool) -> bytes:
    """PNG bytes: per target (a row), the metric against utilization and against throughput;
    points on the front in red and labelled ``w<bits> p<lanes>``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(targets), 2, figsize=(9, 3.2 * len(targets)), squeeze=False)
    for row, target in zip(axes, targets):
        pts = [p for p in points if p["target"] == target and p["metric"] is not None
               and p["utilization"] is not None]
        for ax, key, xlabel in ((row[0], "utilization", "utilization (max of LUT, FF, BRAM, "
                                                        "SPRAM)"),
                                (row[1], "throughput", "throughput (sequences/s)")):
            for group, style in ((False, dict(c="0.6", marker="o")),
                                 (True, dict(c="tab:red", marker="*", s=90))):
                sel = [p for p in pts if p["pareto"] == group and p.get(key) is not None]
                ax.scatter([p[key] for p in sel], [p["metric"] for p in sel],
                           label="Pareto front" if group else "other points", **style)
                for p in sel if group else []:
                    ax.annotate(f"w{p['weight_bits']} p{p['lanes']}", (p[key], p["metric"]),
                                fontsize=7, xytext=(3, 3), textcoords="offset points")
            nofit = [p for p in pts if not p.get("fits")]
            if nofit and key == "utilization":
                ax.scatter([p[key] for p in nofit], [p["metric"] for p in nofit], c="0.6",
                           marker="x", label="does not fit")
            xs = [p[key] for p in pts if p.get(key)]
            if key == "throughput" and xs and max(xs) > 20 * min(xs):
                ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"{metric_name} ({'higher' if higher else 'lower'} is better)")
            ax.set_title(target, fontsize=9)
            ax.grid(alpha=0.3)
        row[0].legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


_JS = """<script>
function sortBy(th){const t=th.closest('table'),i=[...th.parentNode.children].indexOf(th),
d=th.dataset.d=th.dataset.d==='1'?'-1':'1',rows=[...t.tBodies[0].rows];
const v=r=>{const s=r.cells[i].textContent,n=parseFloat(s);return isNaN(n)?s:n;};
rows.sort((a,b)=>{const x=v(a),y=v(b);return (x>y?1:x<y?-1:0)*d;});
rows.forEach(r=>t.tBodies[0].appendChild(r));}
</script>"""


def report_html(points: list, title: str, figures: dict, metric_name: str,
                higher: bool) -> str:
    """One self-contained page: the figures (base64 PNG) and a table sorted by a click."""
    head = "".join(f'<th onclick="sortBy(this)">{html.escape(c)}</th>' for c in COLUMNS)
    rows = "\n".join(
        f"<tr{' class=front' if p.get('pareto') else ''}>"
        + "".join(f"<td>{html.escape(_cell(p.get(c)))}</td>" for c in COLUMNS) + "</tr>"
        for p in points)
    imgs = "\n".join(f'<h3>{html.escape(name)}</h3><img alt="{html.escape(name)}" '
                     f'src="data:image/png;base64,{base64.b64encode(png).decode()}">'
                     for name, png in figures.items())
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}
</title><style>body{{font-family:sans-serif;margin:1em}} table{{border-collapse:collapse;
font-size:12px}} td,th{{border:1px solid #ccc;padding:2px 5px}} th{{cursor:pointer;
background:#eee}} tr.front td{{background:#fde2e2}}</style>{_JS}</head><body>
<h1>{html.escape(title)}</h1>
<p>{len(points)} points; Pareto front (red rows) per target over {html.escape(metric_name)}
({'higher' if higher else 'lower'} is better), utilization (the largest used/available
over LUT, FF, BRAM, SPRAM; lower is better; DSPs are listed but left out, as the iCE40 flow
fills them all) and throughput (sequences/s at the achieved
Fmax; higher is better), among points that fit. Click a column to sort.</p>
{imgs}
<table><thead><tr>{head}</tr></thead><tbody>
{rows}
</tbody></table></body></html>
"""


def write_outputs(points: list, out_dir, name: str, metric_name: str, higher: bool) -> list:
    """Write points.json, points.csv, front_<target>.png, front.png, report.html."""
    out_dir = Path(out_dir)
    targets = list(dict.fromkeys(p["target"] for p in points))
    figures = {t: front_figure(points, [t], metric_name, higher) for t in targets}
    paths = [write_atomic(out_dir / "points.json", json.dumps(points, indent=1) + "\n"),
             write_atomic(out_dir / "points.csv", points_csv(points))]
    paths += [write_atomic(out_dir / f"front_{t}.png", png) for t, png in figures.items()]
    paths.append(write_atomic(out_dir / "front.png",
                              front_figure(points, targets, metric_name, higher)))
    paths.append(write_atomic(out_dir / "report.html", report_html(
        points, f"hwgen explore: {name}", figures, metric_name, higher)))
    return paths
