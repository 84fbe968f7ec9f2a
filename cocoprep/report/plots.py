"""The report's plots: matplotlib figures as PNG data URIs, one function per plot.

Figures are made with `matplotlib.figure.Figure` (no pyplot, no global state) and
saved without the Software stamp, so the same numbers give the same bytes.
"""

from __future__ import annotations

import base64
import io
from typing import Sequence

import numpy as np

from cocoprep.errors import CocoprepError
from cocoprep.report.gather import ASPECT_BINS, OBJECTS_CAP, REL_SIZE_BINS

# One colour per split (matplotlib's tab10), the same in every plot.
SPLIT_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
_DPI = 96


class MissingExtra(CocoprepError):
    """An optional dependency a command needs is not installed."""

    def __init__(self, module: str, extra: str):
        self.module, self.extra = module, extra
        super().__init__(f"`cocoprep report` draws its plots with {module}, which is not "
                         f"installed; install it with: pip install \"{module}>=3.7\" (the "
                         f"`{extra}` extra: pip install \".[{extra}]\" in a cocoprep checkout)")


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingExtra("matplotlib", "report") from None


def color(i: int) -> str:
    return SPLIT_COLORS[i % len(SPLIT_COLORS)]


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    return fig


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def class_bars(names: Sequence[str], per_split: dict[str, dict[str, int]], units: Sequence[str],
               counts: Sequence[dict[str, dict[str, int]]]) -> str:
    """Side-by-side horizontal bars per class, one bar per split; one panel per
    entry of `units` (e.g. objects and images), `counts[i][split][name]`."""
    rows = max(1, len(names))
    fig = _figure(4.2 * len(units) + 1.5, min(40.0, 1.0 + 0.22 * rows * max(1, len(per_split))))
    axes = fig.subplots(1, len(units), sharey=True, squeeze=False)[0]
    splits = list(per_split)
    height = 0.8 / max(1, len(splits))
    y = np.arange(rows)
    for ax, unit, table in zip(axes, units, counts):
        for i, split in enumerate(splits):
            values = [table.get(split, {}).get(n, 0) for n in names]
            ax.barh(y + i * height, values, height, color=color(i), label=split)
        ax.set_xlabel(unit)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y + height * (len(splits) - 1) / 2, names)
    axes[0].invert_yaxis()
    axes[-1].legend(loc="lower right", fontsize="small")
    return _png(fig)


def _overlay(ax, edges: np.ndarray, hists: dict[str, np.ndarray]) -> None:
    """Each split's histogram as a share of its total, drawn as steps."""
    for i, (split, h) in enumerate(hists.items()):
        total = h.sum()
        if total:
            ax.stairs(h / total, edges, color=color(i), label=split, linewidth=1.8)
    ax.set_ylabel("share")
    ax.grid(alpha=0.3)


def box_sizes(rel: dict[str, np.ndarray], coco: dict[str, np.ndarray]) -> str:
    """Relative box size per split, next to COCO's small / medium / large shares."""
    fig = _figure(9.5, 3.2)
    left, right = fig.subplots(1, 2, width_ratios=(2, 1))
    _overlay(left, REL_SIZE_BINS, rel)
    left.set_xlabel("box size relative to the image, sqrt(box area / image area)")
    left.legend(fontsize="small")
    width = 0.8 / max(1, len(coco))
    for i, (split, c) in enumerate(coco.items()):
        total = c.sum() or 1
        right.bar(np.arange(3) + i * width, c / total, width, color=color(i), label=split)
    right.set_xticks(np.arange(3) + width * (len(coco) - 1) / 2,
                     ["small\n< 32²", "medium", "large\n≥ 96²"])
    right.set_ylabel("share of boxes")
    right.set_title("COCO size (pixels²)", fontsize="medium")
    return _png(fig)


def aspect_and_counts(aspect: dict[str, np.ndarray], per_image: dict[str, np.ndarray]) -> str:
    """Box aspect ratio and objects per image, per split."""
    fig = _figure(9.5, 3.2)
    left, right = fig.subplots(1, 2)
    _overlay(left, ASPECT_BINS, aspect)
    left.set_xticks([-4, -2, 0, 2, 4], ["1:16", "1:4", "1:1", "4:1", "16:1"])
    left.set_xlabel("box aspect ratio, width : height")
    _overlay(right, np.arange(OBJECTS_CAP + 2) - 0.5, per_image)
    top = max((int(np.nonzero(h)[0].max()) for h in per_image.values() if h.any()), default=0)
    right.set_xlim(-0.5, max(5, top + 1) + 0.5)  # up to the most objects an image holds
    right.set_xlabel(f"objects per image (last bin: {OBJECTS_CAP} or more)")
    right.legend(fontsize="small")
    return _png(fig)


def centres(grids: dict[str, np.ndarray]) -> str:
    """Where box centres fall, one heatmap per split (image coordinates)."""
    n = max(1, len(grids))
    fig = _figure(2.9 * n + 0.6, 3.0)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (split, grid) in zip(axes, grids.items()):
        total = grid.sum() or 1
        im = ax.imshow(grid / total, extent=(0, 1, 1, 0), cmap="viridis", interpolation="nearest")
        ax.set_title(split, fontsize="medium")
        ax.set_xticks([0, 0.5, 1])
        ax.set_yticks([0, 0.5, 1])
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="share of box centres")
    return _png(fig)


def image_sizes(sizes: dict[str, dict[tuple[int, int], int]]) -> str:
    """Width by height of the stored images, a dot per size (area: how many)."""
    fig = _figure(5.5, 4.0)
    ax = fig.subplots()
    top = max((c for s in sizes.values() for c in s.values()), default=1)
    for i, (split, counts) in enumerate(sizes.items()):
        if not counts:
            continue
        wh = np.array(list(counts), dtype=np.float64)
        n = np.array(list(counts.values()), dtype=np.float64)
        ax.scatter(wh[:, 0], wh[:, 1], s=12 + 300 * n / top, color=color(i), alpha=0.5,
                   label=split, edgecolors="none")
    ax.set_xlabel("width (pixels)")
    ax.set_ylabel("height (pixels)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _png(fig)


def pixel_shares(names: Sequence[str], shares: dict[str, Sequence[float]]) -> str:
    """Each class's share of the labelled pixels, per split."""
    rows = max(1, len(names))
    fig = _figure(6.5, min(40.0, 1.0 + 0.22 * rows * max(1, len(shares))))
    ax = fig.subplots()
    height = 0.8 / max(1, len(shares))
    y = np.arange(rows)
    for i, (split, values) in enumerate(shares.items()):
        ax.barh(y + i * height, values, height, color=color(i), label=split)
    ax.set_yticks(y + height * (len(shares) - 1) / 2, names)
    ax.invert_yaxis()
    ax.set_xlabel("share of pixels")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return _png(fig)


def picture(image) -> str:
    """A photo (examples, thumbnails) as a JPEG data URI: a tenth of a PNG's bytes,
    which keeps the page small enough to attach."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
