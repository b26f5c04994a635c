"""Matplotlib figures of the report: digit forensics, election fingerprint, reader confidence and accuracy.

Figures use the object-oriented API (``Figure``, no pyplot state) so building them never opens a window and
never leaks memory across thousands of calls. Each function takes tables and returns a figure or ``None`` when
the data it needs is absent; :func:`save` writes it.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

from pipeline.atomic import write_bytes_atomic

#: Colours shared with the CSS palette (report.css), so charts and badges agree.
INK, ACCENT, WARN, MUTED = "#1f2937", "#2563eb", "#dc2626", "#9ca3af"
#: Two-sided 95% normal quantile for the expected-frequency bands.
Z95 = 1.96
#: Counts below this have no meaningful last/second digit (a single digit is both).
MIN_TWO_DIGIT = 10
FINGERPRINT_BINS = 40
CONFIDENCE_BINS = 40
GRID_COLS = 4
#: The accuracy axis starts here (or lower, if a field reads worse): on 0-1 every bar looks full.
ACCURACY_AXIS_MIN = 0.8
#: A field's name in a panel title or on an axis is cut to this many characters (a form's printed label can be a
#: whole line: "suara sah pasangan 1 (H. Prabowo Subianto - ...)").
MAX_LABEL_CHARS = 32
#: A small multiple's title (a quarter of the figure's width) is wrapped at this many characters a line, on at
#: most this many lines.
PANEL_LINE_CHARS, PANEL_LINES = 26, 2


def short_label(text: str, max_chars: int = MAX_LABEL_CHARS) -> str:
    """``text`` cut to ``max_chars`` characters, an ellipsis marking the cut."""
    text = str(text)
    return text if len(text) <= max_chars else text[:max_chars - 1].rstrip() + "…"


def panel_title(text: str, line_chars: int = PANEL_LINE_CHARS, lines: int = PANEL_LINES) -> str:
    """``text`` wrapped on at most ``lines`` lines of ``line_chars`` characters, the last one cut with an ellipsis
    when it does not fit (two labels that differ at their end, "... suara sah" and "... suara tidak sah", stay
    apart)."""
    wrapped = textwrap.wrap(str(text), line_chars) or [""]
    if len(wrapped) > lines:
        wrapped = [*wrapped[:lines - 1], short_label(" ".join(wrapped[lines - 1:]), line_chars)]
    return "\n".join(wrapped)


def save(fig: Figure, path: Path, dpi: int) -> str:
    """Write ``fig`` as PNG to ``path`` and return the file name (for the page's ``<img src>``). The PNG carries no
    timestamp, and a file already holding the same bytes is left alone (a rebuild rewrites only what changed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white", metadata={"Software": None})
    data = buffer.getvalue()
    try:
        if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
            return path.name
    except OSError:
        pass
    write_bytes_atomic(path, data)
    return path.name


def counts_of(sheets: pd.DataFrame, field: str) -> np.ndarray:
    """The non-missing counts read for ``field``, as integers."""
    if field not in sheets.columns:
        return np.array([], dtype=int)
    return pd.to_numeric(sheets[field], errors="coerce").dropna().astype(int).to_numpy()


def benford_second_digit() -> np.ndarray:
    """Benford's law for the second significant digit, P(d) for d = 0..9 (the 2BL test's expectation)."""
    return np.array([sum(np.log10(1 + 1 / (10 * k + d)) for k in range(1, 10)) for d in range(10)])


def second_digit(values: np.ndarray) -> np.ndarray:
    """Second significant digit of each value (values must be >= 10)."""
    return np.array([int(str(v)[1]) for v in values], dtype=int)


def _digit_panel(ax, digits: np.ndarray, expected: np.ndarray, title: str) -> None:
    """Bar chart of digit frequencies with the expected line and its 95% band for this sample size."""
    n = len(digits)
    freq = np.bincount(digits, minlength=10) / max(n, 1)
    band = Z95 * np.sqrt(expected * (1 - expected) / max(n, 1))
    ax.bar(range(10), freq, color=ACCENT, alpha=0.85, label="observed")
    ax.step(np.arange(-0.5, 10.5), np.append(expected, expected[-1]), where="post", color=WARN, label="expected")
    low, high = np.clip(expected - band, 0, 1), np.clip(expected + band, 0, 1)
    ax.fill_between(np.arange(-0.5, 10.5), np.append(low, low[-1]), np.append(high, high[-1]), step="post",
                    color=WARN, alpha=0.12)
    ax.set_ylim(0, max(float(freq.max()), float(high.max())) * 1.1)
    ax.set_title(f"{title} (n={n})", fontsize=9)
    ax.set_xticks(range(10))
    ax.set_xlabel("digit", fontsize=7)
    ax.set_ylabel("share of counts", fontsize=7)
    ax.tick_params(labelsize=7)


def last_digit_figure(sheets: pd.DataFrame, fields: list[str], names: dict[str, str] | None = None) -> Figure | None:
    """Small multiples: last-digit frequency per count field (counts >= 10) against the uniform 10% line, each
    panel titled with the field's display name from ``names``."""
    samples = {f: counts_of(sheets, f) for f in fields}
    samples = {f: v[v >= MIN_TWO_DIGIT] % 10 for f, v in samples.items() if (v >= MIN_TWO_DIGIT).any()}
    if not samples:
        return None
    rows = -(-len(samples) // GRID_COLS)
    fig = Figure(figsize=(2.6 * GRID_COLS, 2.1 * rows), layout="constrained")
    axes = fig.subplots(rows, GRID_COLS, squeeze=False).ravel()
    for ax, (field, digits) in zip(axes, samples.items(), strict=False):
        _digit_panel(ax, digits, np.full(10, 0.1), panel_title((names or {}).get(field, field)))
    for ax in axes[len(samples):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle("Last digits of the counts (shaded: 95% band around uniform)", fontsize=10)
    return fig


def second_digit_figure(sheets: pd.DataFrame, fields: list[str]) -> Figure | None:
    """2BL test: second-digit frequency of all party counts >= 10 pooled, against Benford's law."""
    values = np.concatenate([counts_of(sheets, f) for f in fields] or [np.array([], dtype=int)])
    values = values[values >= MIN_TWO_DIGIT]
    if not len(values):
        return None
    fig = Figure(figsize=(5.5, 3.2), layout="constrained")
    ax = fig.subplots()
    _digit_panel(ax, second_digit(values), benford_second_digit(), "Second digits, party counts")
    ax.legend(fontsize=8)
    ax.set_xlabel("second digit")
    ax.set_ylabel("share")
    return fig


def fingerprint_figure(sheets: pd.DataFrame, party: str, votes: Sequence[str], registered: str,
                       names: Mapping[str, str] | None = None) -> Figure | None:
    """Election fingerprint: 2-D histogram of turnout (the sum of the ``votes`` fields, the votes cast, over the
    ``registered`` field) against ``party``'s share of the votes cast, one point per sheet; fields named by
    ``names``. ``None`` when a field is absent or no sheet has them all."""
    needed = list(dict.fromkeys((*votes, registered, party)))
    if not votes or not all(c in sheets.columns for c in needed):
        return None
    num = sheets[needed].apply(pd.to_numeric, errors="coerce").dropna()
    cast = num[list(votes)].sum(axis=1)
    keep = (num[registered] > 0) & (cast > 0)
    num, cast = num[keep], cast[keep]
    if num.empty:
        return None
    names = names or {}
    turnout = (cast / num[registered]).clip(0, 1)
    share = (num[party] / cast).clip(0, 1)
    fig = Figure(figsize=(5.0, 4.2), layout="constrained")
    ax = fig.subplots()
    _, _, _, image = ax.hist2d(turnout, share, bins=FINGERPRINT_BINS, range=[[0, 1], [0, 1]], cmap="viridis", cmin=1)
    fig.colorbar(image, ax=ax, label="sheets")
    cast_words = " + ".join(short_label(names.get(v, v)) for v in votes)
    ax.set_xlabel(f"turnout ({cast_words} / {short_label(names.get(registered, registered))})", fontsize=8)
    party_name = short_label(names.get(party, party))
    ax.set_ylabel(f"{party_name} vote share")
    ax.set_title(f"Turnout vs {party_name} share (n={len(num)})", fontsize=10)
    return fig


def confidence_figure(fields: pd.DataFrame | None, digits: pd.DataFrame | None) -> Figure | None:
    """Histograms of the calibrated confidence of every digit read and every field (log counts)."""
    series = []
    if digits is not None and "confidence" in digits.columns:
        series.append(("digits", pd.to_numeric(digits["confidence"], errors="coerce").dropna()))
    if fields is not None and "confidence" in fields.columns:
        series.append(("fields", pd.to_numeric(fields["confidence"], errors="coerce").dropna()))
    series = [(name, s) for name, s in series if len(s)]
    if not series:
        return None
    fig = Figure(figsize=(3.2 * len(series), 2.6), layout="constrained")
    for ax, (name, values) in zip(fig.subplots(1, len(series), squeeze=False).ravel(), series, strict=True):
        ax.hist(values, bins=CONFIDENCE_BINS, range=(0, 1), color=ACCENT, log=True)
        ax.set_title(f"Confidence of {name} (n={len(values)})", fontsize=9)
        ax.set_xlabel("calibrated confidence", fontsize=8)
        ax.set_ylabel(f"{name} (log scale)", fontsize=8)
        ax.tick_params(labelsize=7)
    return fig


def confusion_figure(pairs: pd.DataFrame) -> Figure | None:
    """Confusion matrix of the digits read against the digits written (rows: truth)."""
    if pairs is None or pairs.empty:
        return None
    matrix = confusion_matrix(pairs["truth"], pairs["label"], labels=list(range(10)))
    fig = Figure(figsize=(5.2, 4.6), layout="constrained")
    ax = fig.subplots()
    ConfusionMatrixDisplay(matrix, display_labels=list(range(10))).plot(ax=ax, cmap="Blues", colorbar=False,
                                                                         values_format="d")
    ax.set_title(f"Digits read vs written (n={len(pairs)})", fontsize=10)
    ax.set_xlabel("digit read")
    ax.set_ylabel("digit written")
    return fig


def accuracy_figure(per_field: pd.Series | None) -> Figure | None:
    """Horizontal bars: share of each field read exactly as written."""
    if per_field is None or per_field.dropna().empty:
        return None
    per_field = per_field.dropna()
    fig = Figure(figsize=(5.0, 0.2 * len(per_field) + 0.9), layout="constrained")
    ax = fig.subplots()
    values = per_field.to_numpy()[::-1]
    ax.barh(np.arange(len(values)), values, color=ACCENT)  # by position: two labels may read the same once cut
    ax.set_yticks(np.arange(len(values)), [short_label(f) for f in per_field.index[::-1]])
    low = min(ACCURACY_AXIS_MIN, math.floor(float(values.min()) * 20) / 20)  # zoomed: on 0-1 every bar looks full
    ax.set_xlim(low, 1)
    for y, v in enumerate(values):
        ax.text(max(v, low), y, f" {100 * v:.1f}%", va="center", fontsize=7)
    ax.set_xlabel(f"share of fields read exactly as written (axis from {100 * low:.0f}%)")
    ax.set_title("Reading accuracy per field", fontsize=10)
    ax.tick_params(labelsize=8)
    return fig


def cantu_figure(groups: list[dict], level: float) -> Figure | None:
    """Alteration rate with its ``level`` interval for each group of one Cantú comparison."""
    groups = [g for g in groups if g.get("rate") is not None][::-1]  # barh draws bottom-up: keep the table's order
    if not groups:
        return None
    fig = Figure(figsize=(4.6, 0.5 * len(groups) + 0.9), layout="constrained")
    ax = fig.subplots()
    rates = np.array([g["rate"] for g in groups], dtype=float)
    lo = np.array([g["ci"][0] if g.get("ci") else g["rate"] for g in groups], dtype=float)
    hi = np.array([g["ci"][1] if g.get("ci") else g["rate"] for g in groups], dtype=float)
    colours = [(MUTED, ACCENT)[i % 2] for i in range(len(groups))]
    ax.barh([g["label"] for g in groups], rates, xerr=[rates - lo, hi - rates], color=colours, capsize=4)
    ax.set_xlabel(f"share of sheets altered ({100 * level:.0f}% interval)")
    ax.set_xlim(0, max(float(hi.max()) * 1.15, 0.05))
    return fig


def curve_label(key: str) -> str:
    """A Keras history key in words: ``val_loss`` -> ``validation``, ``loss`` -> ``training``."""
    return "validation" if key.startswith("val_") else "training" if key in ("loss", "accuracy", "acc") else key


def training_figure(history, stop_reason: str | None = None, best_epoch: int | None = None) -> Figure | None:
    """Loss and accuracy per epoch from a Keras ``history`` mapping (``{"loss": [...], "val_loss": [...]}``), training
    vs validation, with the best epoch (``best_epoch``, else the lowest validation loss) marked and the stopping
    reason in the title."""
    if not isinstance(history, dict):
        return None
    curves = {k: v for k, v in history.items() if isinstance(v, list) and len(v) > 0
              and all(isinstance(x, int | float) for x in v)}
    panels = [[k for k in curves if "loss" in k], [k for k in curves if "acc" in k]]
    panels = [p for p in panels if p]
    if not panels:
        return None
    best = best_epoch if isinstance(best_epoch, int) and best_epoch > 0 else \
        int(np.argmin(curves["val_loss"])) + 1 if "val_loss" in curves else None
    fig = Figure(figsize=(4.2 * len(panels), 3.0), layout="constrained")
    for ax, keys in zip(fig.subplots(1, len(panels), squeeze=False).ravel(), panels, strict=True):
        for key in keys:
            ax.plot(np.arange(1, len(curves[key]) + 1), curves[key], marker="o", markersize=3, label=curve_label(key))
        if best is not None:
            ax.axvline(best, color=WARN, linestyle="--", linewidth=1, label=f"best epoch ({best})")
        is_loss = "loss" in keys[0]
        ax.set_title("Loss (lower is better)" if is_loss else "Accuracy (higher is better)", fontsize=9)
        ax.set_ylabel("cross-entropy loss" if is_loss else "share of digits right")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    if stop_reason:
        fig.suptitle(f"Training stopped: {stop_reason}", fontsize=9)
    return fig
