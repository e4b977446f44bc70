"""Service family: support tickets and deliveries (per-customer only).

Tickets (at `t`: a ticket open at `t` has no closing time or resolution yet, an unanswered one no
first response): counts by window of `opened_at`, open tickets, mean hours to first reply and to
closing, and the share unresolved (open at `t`, or closed with resolved = false). A ticket resolved
by status without a closed_at is open until its status_known_at and closed resolved after it, with
no closing time: the mean hours to closing leave it out.

Deliveries (order parts, purchases with a promised date): an order is late when it was delivered
after its promise, or is still undelivered at `t` past its promise; lateness is the delay in days
(up to `t` when still undelivered). Undelivered orders: promised, not delivered by `t`.
Durations are summed as exact integer microseconds (order-independent results).
"""

from __future__ import annotations

import polars as pl

from pipeline.config import FeaturesConfig
from pipeline.features.tables import OrderParts, Stream, TicketRows
from pipeline.features.timeline import DAY_US, Cut, Sums

HOUR_US = 3_600_000_000


def _known(stream: Stream, cut: Cut) -> Sums:
    """Per row of `cut`: the sums over the stream's rows known before `t`."""
    start, end = cut.rows(stream.timeline)
    return stream.sums.at(end) - stream.sums.at(start)


def _mean_us(total: str, count: str) -> pl.Expr:
    """Exact mean of integer microsecond durations (null when there are none)."""
    return pl.when(pl.col(count) > 0).then(pl.col(total) / pl.col(count))


def ticket_aggregates(tickets: TicketRows, cut: Cut, *, cfg: FeaturesConfig) -> list[pl.Series]:
    """Per row of `cut`: tickets_<w>d, open_tickets and the sums behind the means and the share (_tickets,
    _closed_timed: closed tickets with a closing time, _resolution_us, _closed_unresolved, _responded, _response_us)."""
    opened = tickets.opened.timeline
    _, end = cut.rows(opened)
    at_end = tickets.opened.sums.at(end)
    rows = _known(tickets.opened, cut)["rows"]
    closed, responded = _known(tickets.closed, cut), _known(tickets.responded, cut)
    return [
        *[pl.Series(f"tickets_{w}d", (at_end - tickets.opened.sums.at(cut.positions(opened, cut.since(w))))["rows"])
          for w in cfg.windows_days],
        pl.Series("open_tickets", rows - closed["rows"]),
        pl.Series("_tickets", rows),
        pl.Series("_closed_timed", closed["timed"]),
        pl.Series("_resolution_us", closed["resolution_us"]),
        pl.Series("_closed_unresolved", closed["resolved_false"]),
        pl.Series("_responded", responded["rows"]),
        pl.Series("_response_us", responded["response_us"]),
    ]


def ticket_features() -> list[pl.Expr]:
    """The ticket means and unresolved share from the columns of `ticket_aggregates` (NaN without tickets)."""
    tickets = pl.col("_tickets")
    return [
        (_mean_us("_response_us", "_responded") / HOUR_US).alias("first_response_hours_mean"),
        (_mean_us("_resolution_us", "_closed_timed") / HOUR_US).alias("resolution_hours_mean"),
        pl.when(tickets > 0).then((pl.col("open_tickets") + pl.col("_closed_unresolved")) / tickets)
        .alias("unresolved_share"),
    ]


def delivery_aggregates(parts: OrderParts, cut: Cut) -> list[pl.Series]:
    """Per row of `cut`: late_deliveries, _lateness_us (summed delay of the late parts), undelivered_orders.

    Late parts at `t` are those of `parts.late` known before `t`; their delay runs up to `t`, except
    for those whose delivery is known by then (`parts.late_delivered`), whose delay stops at delivery.
    """
    late, late_delivered = _known(parts.late, cut), _known(parts.late_delivered, cut)
    t_us = cut.t_instant_us  # the streams hold instants: lateness is exact across a DST change
    lateness_us = (t_us * late["rows"] - late["promised_us"]) - (
        t_us * late_delivered["rows"] - late_delivered["delivered_us"]
    )
    start, end = cut.rows(parts.timeline)
    tracked = parts.sums.matrix[end, parts.sums.names.index("tracked")] - parts.sums.matrix[
        start, parts.sums.names.index("tracked")]
    return [
        pl.Series("late_deliveries", late["rows"]),
        pl.Series("_lateness_us", lateness_us),
        pl.Series("undelivered_orders", tracked - _known(parts.delivered, cut)["rows"]),
    ]


def delivery_features() -> list[pl.Expr]:
    """lateness_days_mean from the columns of `delivery_aggregates` (null without late deliveries)."""
    return [(_mean_us("_lateness_us", "late_deliveries") / DAY_US).alias("lateness_days_mean")]
