"""The input contract: per source, its columns, their validated types and allowed values.

Validated files (`data/validated/<source>.parquet`) hold exactly `columns(source)` in this order,
with the dtypes of `DTYPES`: optional columns absent from the input are present and all-null.
Timestamps are UTC. Every later stage may rely on this, except that a file written before a
derived column existed lacks it (readers take it as all-null).

Derived columns are computed by ingest, never read from an export: support_tickets'
`status_known_at` is, for a ticket resolved by status without a closed_at, the newest time of
the source's kept rows (the status is known from then on; null for every other ticket).

Customer attributes: the validated customers file may carry, after the contract columns, one column
`attribute_<slug>` per file column named in `sources.customers.attributes` (`attribute_column`: "Age band" ->
`attribute_age_band`): a category as String, its values stripped of surrounding blanks, a blank one null; a number
(kind number) as float64, null where the export gave none. They are static attributes like region; a reader keeps
them with their type (`conform`, `attribute_columns`) and the features read the configured ones.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import pandas as pd
import polars as pl

TIMESTAMP = "datetime64[us, UTC]"
STRING = "str"
FLOAT = "float64"
BOOLEAN = "boolean"


@dataclass(frozen=True)
class SourceContract:
    """Required and optional columns of one source, with their validated dtypes."""

    name: str
    required: dict[str, str]
    optional: dict[str, str]
    id_columns: tuple[str, ...]
    time_column: str | None
    derived: dict[str, str] = field(default_factory=dict)  # computed by ingest, after the input columns

    @property
    def columns(self) -> list[str]:
        return [*self.required, *self.optional, *self.derived]

    @property
    def dtypes(self) -> dict[str, str]:
        return {**self.required, **self.optional, **self.derived}

    @property
    def input_dtypes(self) -> dict[str, str]:
        """The columns an export may give (required and optional), with their dtypes."""
        return {**self.required, **self.optional}

    @property
    def timestamp_columns(self) -> list[str]:
        """The timestamp columns an export may give."""
        return [name for name, dtype in self.input_dtypes.items() if dtype == TIMESTAMP]


FEEDBACK_KINDS = ("nps", "csat", "review")
FEEDBACK_SCORE_RANGES = {"nps": (0, 10), "csat": (1, 5), "review": (1, 5)}
TICKET_CHANNELS = ("phone", "email", "chat", "social", "other")
LOYALTY_KINDS = ("enroll", "earn", "redeem", "tier_change", "expire")
# A transactions export without `amount` but with these columns gets amount = quantity x unit_price,
# minus discount when given (pipeline.ingest.derive_amount).
AMOUNT_FACTORS = ("quantity", "unit_price")

CONTRACTS: dict[str, SourceContract] = {
    "transactions": SourceContract(
        name="transactions",
        required={"order_id": STRING, "customer_id": STRING, "ordered_at": TIMESTAMP, "amount": FLOAT},
        optional={
            "quantity": FLOAT,
            "unit_price": FLOAT,
            "product_id": STRING,
            "category": STRING,
            "discount": FLOAT,
            "channel": STRING,
            "promised_delivery_at": TIMESTAMP,
            "delivered_at": TIMESTAMP,
        },
        id_columns=("order_id", "customer_id"),
        time_column="ordered_at",
    ),
    "feedback": SourceContract(
        name="feedback",
        required={"customer_id": STRING, "submitted_at": TIMESTAMP, "kind": STRING, "score": FLOAT},
        optional={"feedback_id": STRING, "order_id": STRING, "comment": STRING},
        id_columns=("customer_id",),
        time_column="submitted_at",
    ),
    "support_tickets": SourceContract(
        name="support_tickets",
        required={"ticket_id": STRING, "customer_id": STRING, "opened_at": TIMESTAMP},
        optional={
            "closed_at": TIMESTAMP,
            "first_response_at": TIMESTAMP,
            "channel": STRING,
            "topic": STRING,
            "resolved": BOOLEAN,
        },
        id_columns=("ticket_id", "customer_id"),
        time_column="opened_at",
        derived={"status_known_at": TIMESTAMP},
    ),
    "loyalty_events": SourceContract(
        name="loyalty_events",
        required={"customer_id": STRING, "occurred_at": TIMESTAMP, "kind": STRING},
        optional={"points": FLOAT, "tier": STRING},
        id_columns=("customer_id",),
        time_column="occurred_at",
    ),
    "customers": SourceContract(
        name="customers",
        required={"customer_id": STRING},
        optional={"signup_at": TIMESTAMP, "region": STRING, "acquisition_channel": STRING},
        id_columns=("customer_id",),
        time_column=None,
    ),
}


ATTRIBUTE_PREFIX = "attribute_"  # validated customers columns holding the attributes of sources.customers.attributes


def attribute_slug(name: str) -> str:
    """`name` (a customers export's column) in lower case without accents, each run of characters other than ASCII
    letters and digits one `_`, none at either end: "Age band" -> "age_band", "Género" -> "genero", "Plan (2024)" ->
    "plan_2024"; "" when nothing is left."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^0-9a-z]+", "_", plain.lower()).strip("_")


def attribute_column(name: str) -> str:
    """The validated customers column (and feature) of the attribute `name`: `attribute_<slug>`."""
    return ATTRIBUTE_PREFIX + attribute_slug(name)


def attribute_columns(columns: list[str] | pd.Index) -> list[str]:
    """The attribute columns among `columns` (in their order)."""
    return [str(c) for c in columns if str(c).startswith(ATTRIBUTE_PREFIX)]


def _number_dtype(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)


def purchase_line() -> pl.Expr:
    """Whether a transaction line is a purchase (polars; on the contract's amount and quantity): an amount above 0, or
    of 0 without a negative quantity (a free item bought). Every other line is a return or refund: a negative amount,
    or goods given back at no price (a free sample returned, a cancelled line priced 0), which is no purchase."""
    amount = pl.col("amount")
    return (amount > 0) | ((amount == 0) & (pl.col("quantity").fill_null(0) >= 0))


def purchase_lines(transactions: pd.DataFrame) -> pd.Series:
    """`purchase_line` of a pandas frame of transactions (amount; quantity, read as unknown where absent): a boolean
    Series."""
    amount = transactions["amount"]
    if "quantity" not in transactions:
        return amount >= 0
    return (amount > 0) | ((amount == 0) & (transactions["quantity"].fillna(0) >= 0))


def contract(source: str) -> SourceContract:
    """The contract of `source`; KeyError names the known sources."""
    try:
        return CONTRACTS[source]
    except KeyError:
        raise KeyError(f"unknown source {source!r}; known: {', '.join(CONTRACTS)}") from None


def empty_frame(source: str) -> pd.DataFrame:
    """A zero-row frame with the validated columns and dtypes of `source`."""
    spec = contract(source)
    return pd.DataFrame({name: pd.Series([], dtype=dtype) for name, dtype in spec.dtypes.items()})


def conform(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Return `df` with exactly the contract columns of `source` in order, cast to their dtypes; for customers, its
    attribute columns (`attribute_columns`) after them: numbers (not booleans) as float64, anything else as "str".

    Missing optional columns are added as nulls. Input is not mutated. Used by `Events.from_frames`
    (events handed over in memory) and by tests to build validated fixtures.
    """
    spec = contract(source)
    out = {}
    for name, dtype in spec.dtypes.items():
        if name in df.columns:
            column = df[name]
            if dtype == TIMESTAMP:
                column = pd.to_datetime(column, utc=True).astype(TIMESTAMP)
            else:
                column = column.astype(dtype)
        else:
            column = pd.Series(pd.NA if dtype == BOOLEAN else None, index=df.index, dtype=dtype)
        out[name] = column
    if source == "customers":
        out.update({name: df[name].astype(FLOAT if _number_dtype(df[name]) else STRING)
                    for name in attribute_columns(df.columns)})
    return pd.DataFrame(out, index=df.index).reset_index(drop=True)
