"""The human-readable per-class table of an evaluation result, and what its numbers are in.

Results (the JSON files and the dicts the Python API returns) hold every score as a fraction of 1
(mIoU 0.4213); the printed table shows percent (42.13 %). Both say so: the results under
:data:`UNITS_KEY`, the table in its column heads and last line.
"""

from __future__ import annotations

UNITS_KEY = "units"
UNITS = "fraction: every IoU, mIoU and accuracy is in [0, 1] (0.42 = 42 %); the printed table shows percent"

METRIC_LABELS = {
    "mIoU": "mIoU (plain: no matching, classes that occur)",
    "open_hbird_hungarian_mIoU": "mIoU (open-hummingbird-eval: Hungarian, all classes)",
}


def format_scores(result: dict) -> str:
    """Per-class IoU table followed by the summary lines of an evaluation result."""
    per_class = result["per_class_iou"]
    width = max([len(n) for n in per_class] + [5])
    lines = [f"{'class':<{width}}  IoU (%)"]
    for name, iou in per_class.items():
        lines.append(f"{name:<{width}}  {'  n/a' if iou is None else f'{100 * iou:5.1f}'}")
    lines.append("")
    headline = result.get("headline", "mIoU")
    for key, label in METRIC_LABELS.items():
        if key in result:
            mark = "  <- reported by this protocol" if key == headline else ""
            lines.append(f"{label:<48} {100 * result[key]:6.2f} %{mark}")
    lines.append(f"{'pixel accuracy':<48} {100 * result['pixel_accuracy']:6.2f} %")
    lines.append("(percent here; the JSON holds the same scores as fractions of 1)")
    return "\n".join(lines)
