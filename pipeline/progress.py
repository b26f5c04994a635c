"""Progress bars whose time left is shown only once it means something.

Every stage that takes more than a few seconds shows a tqdm bar. The first steps of a stage carry its start-up
costs (imports, a model loading, a pool of workers starting), so a time left computed from them is wildly off (the
alteration features once showed three hours for a two-minute job). :class:`SettledBar` says "estimating..." until
the estimate has settled.
"""

from __future__ import annotations

from tqdm import tqdm

#: A progress bar shows its time left only once it has settled: after this many seconds and this share of the work
#: (the first batches carry start-up costs, so an early estimate is wildly off).
SETTLE_SECONDS = 5.0
SETTLE_FRACTION = 0.05
#: The bar's layout while the time left is not yet known.
UNSETTLED_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<estimating..., {rate_fmt}{postfix}]"


class SettledBar(tqdm):
    """A tqdm bar whose time left ("ETA") appears only once it has settled: after ``settle_s`` seconds and
    ``settle_n`` steps (default: :data:`SETTLE_FRACTION` of the total); until then it says "estimating..."."""

    def __init__(self, *args, settle_s: float = SETTLE_SECONDS, settle_n: float | None = None, **kwargs):
        self.settle_s, self.settle_n = settle_s, settle_n
        super().__init__(*args, **kwargs)

    def settled(self, n: float, total: float | None, elapsed: float) -> bool:
        """Whether the time left can be shown at ``n`` of ``total`` steps after ``elapsed`` seconds."""
        need = self.settle_n if self.settle_n is not None else SETTLE_FRACTION * (total or 0)
        return elapsed >= self.settle_s and n >= need and n > 0

    @property
    def format_dict(self):
        d = super().format_dict
        if d.get("total") and not self.settled(d["n"], d["total"], d["elapsed"]):
            d = {**d, "bar_format": UNSETTLED_FORMAT}
        return d
