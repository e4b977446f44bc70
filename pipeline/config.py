"""One validated YAML configuration, loaded into typed objects at start-up.

`load_config(path, overrides)` reads the YAML, applies `key.path=value` overrides, resolves
relative paths against the config file's folder and validates everything with pydantic.
Unknown keys and bad values raise `ConfigError` naming the key.
"""

from __future__ import annotations

import codecs
import copy
import datetime as dt
import difflib
import graphlib
import math
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.contract import FEEDBACK_SCORE_RANGES, attribute_column, attribute_slug, contract
from pipeline.errors import ConfigError

SOURCE_NAMES = ("transactions", "feedback", "support_tickets", "loyalty_events", "customers")
# Cell values read as missing in every column (read.na_values). 'NA' is not among them: it is a
# region code (North America, Namibia) as often as a null.
NULL_TOKENS = ("", "NULL", "null", "Null", "NaN", "nan", "NAN", "N/A", "n/a", "#N/A", "None", "none", "NONE", "<NA>")
# The largest |amount| a row may carry: money is summed as int64 ten-thousandths downstream
# (pipeline/features/tables.py), so one row must stay well inside 2**63 / 10,000 ~ 9.2e14.
MAX_ABS_AMOUNT_LIMIT = 1e14


class _ConfigLoader(yaml.SafeLoader):
    """YAML that reads booleans as YAML 1.2 does: only true and false (any case). YAML 1.1 also reads yes, no, on
    and off as booleans, so an export's own words listed in the config became 'true' and 'false' (Superstore's
    Returns sheet writes `Returned: Yes`: `when: {Returned: [Yes]}` matched no row)."""


_ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))


def load_yaml(text: str) -> Any:
    """`text` read as YAML, with only true and false as booleans (see `_ConfigLoader`)."""
    return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 - a SafeLoader with fewer booleans


def _scalar_text(value: Any) -> Any:
    """A YAML scalar as the text a CSV cell would hold (1 -> '1', true -> 'true'); other values unchanged."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if isinstance(value, int | float) else value


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ReadOptions(StrictModel):
    """How to read one source file (CSV options are ignored for Parquet; Excel uses header, column_names,
    na_values, sheet and the number marks of text cells)."""

    sep: str = Field(",", min_length=1)
    encoding: str = "utf-8"
    # strptime codes ('%d.%m.%Y %H:%M'); 'unix' / 'unix_ms': seconds / milliseconds since 1970-01-01 UTC;
    # 'excel': a spreadsheet's date serial, days since 1899-12-30 (45322.5 is 2024-01-31 12:00)
    date_format: str | None = None
    header: bool = True
    column_names: list[str] | None = None  # for files without a header row
    skip_rows: int = Field(0, ge=0)  # lines above the header row (a report's title, its export date) to skip
    na_values: list[str] = Field(default_factory=lambda: list(NULL_TOKENS))  # cells read as missing
    # Excel workbooks: the sheet to read, by name or 0-based position; "*" reads every sheet, in order.
    sheet: str | int = 0
    currency: str | None = None  # a currency sign or code written before or after numbers ('£2.55', '12,50 EUR')
    # Numbers written as text (CSV): the decimal mark ('2,55' with ','), and a thousands separator to drop
    # ('1.234,56' with decimal ',' and thousands '.'; None: a number holds no separator).
    decimal: Literal[".", ","] = "."
    thousands: Literal[".", ",", " ", "'", "\u00a0", "\u202f"] | None = None
    # Negative numbers written as accounting and ERP exports do: in parentheses ('(12.50)') or with a trailing
    # minus ('12.50-'); without it those cells are not numbers (and the reason says to set this).
    accounting_negatives: bool = False
    # JSON: where the rows stand in a file that is one object ('data' for {"data": [...]}, 'result.orders' deeper);
    # None: JSON lines (one object per line) or an array of objects.
    json_records: str | None = None

    @model_validator(mode="after")
    def _names_when_no_header(self) -> ReadOptions:
        if not self.header and not self.column_names:
            raise ValueError("header: false needs column_names")
        return self

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r} (e.g. utf-8, cp1252, latin-1, utf-16)") from None
        return value

    @field_validator("currency")
    @classmethod
    def _currency_sign_or_code(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^\d\s.,+\-]{1,3}", value):
            raise ValueError(f"{value!r} is not a currency sign or code: 1 to 3 characters, no digits, spaces or marks")
        return value

    @model_validator(mode="after")
    def _distinct_number_marks(self) -> ReadOptions:
        if self.thousands == self.decimal:
            raise ValueError(f"thousands and decimal are both {self.decimal!r}: a number could not be read")
        return self


# Source settings that only one source has: (setting, the source, why).
ONE_SOURCE_SETTINGS = (
    ("returns_when", "transactions", "only transactions have returns"),
    ("currency_rates", "transactions", "only transactions have amounts"),
    ("refunds", "transactions", "only transactions have refunds"),
    ("score_scales", "feedback", "only feedback has scores"),
    ("discount_is", "transactions", "only transactions have discounts"),
    ("attributes", "customers", "only the customers source has static attributes"),
)
MAX_ATTRIBUTES = 20  # sources.customers.attributes names at most this many columns


class CurrencyRates(StrictModel):
    """A source's `currency_rates`: the file column naming each row's currency, and each currency's rate."""

    column: str = Field(min_length=1)
    rates: dict[str, float] = Field(min_length=1)

    @field_validator("rates")
    @classmethod
    def _positive_rates(cls, value: dict[str, float]) -> dict[str, float]:
        for code, rate in value.items():
            if not (math.isfinite(rate) and rate > 0):
                raise ValueError(f"the rate of {code!r} is {rate}: a rate is a positive number")
        codes = [code.strip().upper() for code in value]
        if len(set(codes)) != len(codes):
            raise ValueError("a currency is listed twice (currencies are compared in upper case)")
        return value


class RefundsColumn(StrictModel):
    """A transactions export's column of money refunded on an order without a row of its own (Shopify's `Refunded
    Amount` on an order's first line, a `Total Refunded` beside an order's total): each value becomes a refund row of
    its order, timed at `at` (a file column of the refund's time, read like the export's other times) or, without
    it or where it is blank, at the order. `per: order` (one value per order, on one of its lines or repeated on
    each); `per: row` (each row's own refund)."""

    column: str = Field(min_length=1)
    per: Literal["order", "row"] = "order"
    at: str | None = Field(None, min_length=1)
    # Only the rows whose file column holds one of these values give a refund ({Returned: [Yes]}: a returns list
    # taken with lookup flags the lines returned in full, and `column: Sales, per: row` refunds each line's own
    # money); the others give none, whatever their cell. Compared as text, surrounding blanks aside.
    when: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("when", mode="before")
    @classmethod
    def _values_as_text(cls, value: Any) -> Any:  # YAML reads [1] as a number; cells are text
        if isinstance(value, dict):
            return {key: [_scalar_text(item) for item in items] if isinstance(items, list) else items
                    for key, items in value.items()}
        return value


# What a lookup table's `read` may set: how its file is read. Its values (times, numbers) are parsed with the settings
# of the export that takes them, as if the export had the columns.
LOOKUP_READ_SETTINGS = ("sep", "encoding", "header", "column_names", "skip_rows", "na_values", "sheet", "json_records")


def member_label(path: Path | str, member: str | None) -> str:
    """How rows and messages name a file read from `path`: the path, with ` [file <member>]` for a zip's member."""
    return str(path) if member is None else f"{path} [file {member}]"


def checked_member(value: str | None) -> str | None:
    """A `member` setting (a file inside a zip archive, or a glob of them), unchanged; ValueError when it could name
    no file inside one: an absolute path, or a '..' part."""
    if value is not None and (value.startswith(("/", "\\")) or ".." in value.replace("\\", "/").split("/")):
        raise ValueError(f"{value!r} names no file inside the archive; give the file's name as the archive lists it "
                         "(e.g. orders.csv or 'orders/part-*.csv'), without '..' or a leading '/'")
    return value


class LookupConfig(StrictModel):
    """A further table the rows of an export take columns from, by a key (a database export in several tables: order
    lines that name the order, orders that name the customer). Every row whose `by` cell is found takes the table's
    other columns (or `columns`); a row whose `by` cell is not in the table, or is on two different rows of it, is
    quarantined with the reason."""

    path: Path
    member: str | None = Field(None, min_length=1)  # the file (or a glob of files) to read inside a zip archive
    format: Literal["auto", "csv", "parquet", "excel", "json"] = "auto"
    read: ReadOptions = ReadOptions()
    # The column of the export (or of an earlier lookup) holding the key (`on`, as pandas names it, is read as `by`).
    by: str = Field(min_length=1)
    key: str | None = Field(None, min_length=1)  # the table's column holding it, when not named like `by`
    columns: list[str] | None = Field(None, min_length=1)  # the table's columns to take (None: all but the key)
    # A row whose key the table lacks: quarantined, or (keep) kept without the table's columns, for a table that
    # lists only some keys (a returns list naming the returned orders).
    missing: Literal["quarantine", "keep"] = "quarantine"

    def key_column(self) -> str:
        """The table's key column."""
        return self.key or self.by

    @model_validator(mode="before")
    @classmethod
    def _on_is_by(cls, data: Any) -> Any:
        # `on: order_id`, as pandas names it (a YAML 1.1 reader makes the key true).
        on = next((key for key in (True, "on") if isinstance(data, dict) and key in data), None)
        if on is not None and "by" not in data:
            return {("by" if key == on and type(key) is type(on) else key): value for key, value in data.items()}
        return data

    _member = field_validator("member")(checked_member)

    @field_validator("read")
    @classmethod
    def _reading_only(cls, value: ReadOptions) -> ReadOptions:
        parsing = [key for key in ReadOptions.model_fields if key not in LOOKUP_READ_SETTINGS
                   and getattr(value, key) != ReadOptions.model_fields[key].default]
        if parsing:
            raise ValueError(f"{parsing[0]}: a lookup table's values are read with the export's own settings (set "
                             f"read.{parsing[0]} of the export); a table's read takes only {', '.join(LOOKUP_READ_SETTINGS)}")
        return value

    @model_validator(mode="after")
    def _key_not_taken(self) -> LookupConfig:
        if self.columns and self.key_column() in self.columns:
            raise ValueError(f"columns: {self.key_column()!r} is the key; list only the columns to take besides it")
        if self.columns and len(set(self.columns)) != len(self.columns):
            raise ValueError("columns: a column is listed twice")
        return self


DURATION_UNITS = ("seconds", "minutes", "hours", "days")


class TimeAfter(StrictModel):
    """A contract time an export gives as a duration after another time of the row (a help desk's `First reply time
    in minutes` after its `Created at`): the time is the contract column `from` (mapped, read and converted to UTC,
    or given by another `after`) plus the duration in the file column `column`: a number in `unit`, or text
    (`pipeline.durations`: '36:15:00', '1 day, 2:03:04', 'PT1H30M', '2h 30m'; '1:30' as h:mm or m:ss by `unit`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    column: str
    unit: Literal["seconds", "minutes", "hours", "days"]
    start: str = Field(alias="from")  # `from`, as the config writes it (a Python keyword)

    @field_validator("column", "start", mode="before")
    @classmethod
    def _names_as_text(cls, value: Any) -> Any:  # YAML reads a column named 2024 as a number
        return _scalar_text(value)

    @field_validator("column")
    @classmethod
    def _column_named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a blank name: name the file column holding the duration, as the export writes it")
        return value


def known_timezone(value: str) -> str:
    """`value` when it names an IANA time zone (e.g. "America/New_York", "UTC"); else ValueError."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


class CustomerAttribute(StrictModel):
    """One column of the customers export kept as an attribute: `column`, as the export writes it; `kind`: `category`
    (its values are text, each a group of customers: a segment, a plan) or `number` (a quantity read with the
    source's read settings, as amounts are: an age, an income, a number of seats). In the config a plain name is a
    category: `attributes: [Segment, {column: Age, kind: number}]`."""

    column: str
    kind: Literal["category", "number"] = "category"

    @field_validator("column", mode="before")
    @classmethod
    def _name_as_text(cls, value: Any) -> Any:  # YAML reads a column named 2024 as a number
        return _scalar_text(value)

    @property
    def feature(self) -> str:
        """Its validated customers column and feature, `attribute_<slug>`."""
        return attribute_column(self.column)


def checked_attribute_names(value: list[str]) -> list[str]:
    """`value` (customer attribute names, as the customers export writes its columns) when there are at most
    MAX_ATTRIBUTES, none blank, and no two give one attribute_<slug> column; else ValueError saying which."""
    if len(value) > MAX_ATTRIBUTES:
        raise ValueError(f"at most {MAX_ATTRIBUTES} attributes, not {len(value)}: keep the few that describe a "
                         "customer (a segment, a plan, an age band)")
    columns: dict[str, str] = {}
    for name in value:
        if not name.strip():
            raise ValueError("a blank name: name each column as the export writes it")
        if not attribute_slug(name):
            raise ValueError(f"{name!r} has no letter or digit (A-Z, 0-9) to name its feature by")
        column = attribute_column(name)
        if column in columns:
            same = "is listed twice" if columns[column] == name else f"and {columns[column]!r} give one column"
            raise ValueError(f"{name!r} {same} ({column}): list each column once")
        columns[column] = name
    return value


class SourceConfig(StrictModel):
    """Where one source lives and how to map it onto the input contract."""

    path: Path
    # A zip archive of several files (a Kaggle download, a shop's export of part files): the file to read inside it,
    # as the archive names it (olist_orders_dataset.csv), or a glob of files read in name order ('orders/part-*.csv').
    member: str | None = Field(None, min_length=1)
    format: Literal["auto", "csv", "parquet", "excel", "json"] = "auto"
    read: ReadOptions = ReadOptions()
    rename: dict[str, str] = Field(default_factory=dict)
    timezone: str = "UTC"
    one_order_per_row: bool = False
    # Rows to leave out, by the values of a file column (e.g. {Status: [cancelled, failed]}): quarantined with
    # the value as reason, not counted as bad. Values are compared as text, surrounding whitespace stripped.
    exclude: dict[str, list[str]] = Field(default_factory=dict)
    # Rows to leave out because a file column holds anything at all (e.g. [Cancelled at], a time filled only when the
    # order was cancelled): quarantined like `exclude`'s, not counted as bad; a blank cell keeps its row.
    exclude_when_filled: list[str] = Field(default_factory=list)
    # Transactions only: rows that are returns or refunds by the values of a file column, for an export that
    # writes them with positive amounts (e.g. {Type: [refund]}): their amount and quantity are made negative.
    returns_when: dict[str, list[str]] = Field(default_factory=dict)
    # Contract columns the export lacks, one value for every row (e.g. {kind: nps} for an NPS tool's export).
    constants: dict[str, str] = Field(default_factory=dict)
    # Contract columns written across several file columns, joined by a space in this order before they are
    # read (e.g. {ordered_at: [Date, Time]}, or {customer_id: [Store, CustomerNo]} for numbers unique per store).
    combine: dict[str, list[str]] = Field(default_factory=dict)
    # The export's words for a contract column's values (e.g. {kind: {Net Promoter: nps, Rating: review}});
    # compared as text with surrounding whitespace stripped; values not listed are read as they are.
    recode: dict[str, dict[str, str]] = Field(default_factory=dict)
    # Feedback only: the scale an export's scores of a kind are on, when it is not the contract's (e.g. {csat: [1, 10]}
    # or {review: [0, 100]}); they are mapped linearly onto the kind's contract scale (csat and review 1-5).
    score_scales: dict[str, tuple[float, float]] = Field(default_factory=dict)
    # Transactions only: the file column naming each row's currency and the rate that turns an amount in each
    # currency into the one the features sum (e.g. {column: Currency, rates: {EUR: 1, USD: 0.92}}): amount,
    # unit_price and discount are multiplied by their row's rate; a row in a currency without a rate is quarantined.
    currency_rates: CurrencyRates | None = None
    # Transactions only: a file column of money refunded on the order (or the row) that the export writes beside the
    # sale instead of as a row of its own (e.g. {column: Refunded Amount}): each becomes a refund row (negative amount).
    refunds: RefundsColumn | None = None
    # Transactions only: what the discount column holds: money taken off the line (`money`, the contract's), or a
    # share of the line's quantity × unit_price (`share`: 0.15 is 15% off, as Northwind's and AdventureWorks' write it).
    discount_is: Literal["money", "share"] = "money"
    # More exports of this source in layouts of their own (NPS from one tool and reviews from another, orders
    # before and after a platform change), each mapped with its own keys; their rows join this export's.
    other_exports: list[SourceConfig] = Field(default_factory=list)
    # Further tables each row takes columns from by a key, joined in this order before the mapping (so `rename`,
    # `exclude` and the rest see their columns): [{path: orders.csv, by: order_id}, {path: customers.csv, by:
    # customer_id}] gives order lines the customer and time their orders name.
    lookup: list[LookupConfig] = Field(default_factory=list)
    # Contract times an export gives as a duration after another time of the row, each named by the contract column
    # it fills (e.g. {first_response_at: {column: First reply time in minutes, unit: minutes, from: opened_at}}): the
    # `from` time (which `after` may give too, computed first) plus the file column's duration, a number in `unit`
    # or text such as 36:15:00 or PT1H30M; a blank duration leaves the time empty.
    after: dict[str, TimeAfter] = Field(default_factory=dict)
    # Customers only: file columns of the export (named as the file writes them, e.g. [Segment, Gender, Age band])
    # kept as static attributes: validated as `attribute_<slug>` columns, each a feature of that name. A name is a
    # category (text); {column: Age, kind: number} a number, read with `read`'s decimal and thousands marks.
    attributes: list[CustomerAttribute] = Field(default_factory=list)

    _member = field_validator("member")(checked_member)

    @field_validator("other_exports")
    @classmethod
    def _one_level(cls, value: list[SourceConfig]) -> list[SourceConfig]:
        if any(export.other_exports for export in value):
            raise ValueError("an export listed in other_exports has no other_exports of its own: list them all here")
        if any(export.attributes for export in value):
            raise ValueError("an export listed in other_exports has no attributes of its own: list them once, under "
                             "the source's attributes (every export must have those columns)")
        return value

    @field_validator("attributes", mode="before")
    @classmethod
    def _names_as_categories(cls, value: Any) -> Any:  # a plain name (YAML reads 2024 as a number) is a category
        if not isinstance(value, list):
            return value
        for item in value:
            if not isinstance(item, str | int | float | dict | CustomerAttribute):
                raise ValueError(f"{item!r} is neither a column name nor {{column: <name>, kind: category or number}}")
        return [{"column": item} if isinstance(item, str | int | float) else item for item in value]

    @field_validator("attributes")
    @classmethod
    def _distinct_attribute_names(cls, value: list[CustomerAttribute]) -> list[CustomerAttribute]:
        checked_attribute_names([attribute.column for attribute in value])
        return value

    def attribute_names(self) -> list[str]:
        """The export's columns of `attributes`, in order."""
        return [attribute.column for attribute in self.attributes]

    def number_attributes(self) -> list[str]:
        """The export's columns of `attributes` that are numbers, in order."""
        return [attribute.column for attribute in self.attributes if attribute.kind == "number"]

    def exports(self) -> list[SourceConfig]:
        """This export and its `other_exports`, in that order."""
        return [self, *self.other_exports]

    def money_from_constants(self) -> bool:
        """Whether an export gives amount, or the unit_price it is derived from, by `constants`: the export holds no
        money, and every sum of amounts counts lines times that constant."""
        return any(column in export.constants for export in self.exports() for column in ("amount", "unit_price"))

    @field_validator("exclude", "returns_when", mode="before")
    @classmethod
    def _values_as_text(cls, value: Any) -> Any:  # YAML reads [0] or [true] as numbers and booleans; cells are text
        if isinstance(value, dict):
            return {key: [_scalar_text(item) for item in items] if isinstance(items, list) else items
                    for key, items in value.items()}
        return value

    @field_validator("exclude_when_filled", mode="before")
    @classmethod
    def _names_as_text(cls, value: Any) -> Any:  # YAML reads a column named 2024 as a number
        return [_scalar_text(item) for item in value] if isinstance(value, list) else value

    @field_validator("exclude_when_filled")
    @classmethod
    def _named_once(cls, value: list[str]) -> list[str]:
        for number, name in enumerate(value):
            if not name.strip():
                raise ValueError("a blank name: name each column as the export writes it")
            if name in value[:number]:
                raise ValueError(f"{name!r} is listed twice: list each column once")
        return value

    @field_validator("constants", mode="before")
    @classmethod
    def _constants_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: _scalar_text(item) for key, item in value.items()}
        return value

    @field_validator("recode", mode="before")
    @classmethod
    def _recode_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: ({_scalar_text(k): _scalar_text(v) for k, v in words.items()} if isinstance(words, dict)
                          else words) for key, words in value.items()}
        return value

    @field_validator("score_scales")
    @classmethod
    def _known_kinds_and_rising_scales(cls, value: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for kind, (low, high) in value.items():
            if kind not in FEEDBACK_SCORE_RANGES:
                raise ValueError(f"{kind!r} is not a feedback kind ({', '.join(FEEDBACK_SCORE_RANGES)})")
            if not low < high:
                raise ValueError(f"{kind}: the scale's low end ({low:g}) must be below its high end ({high:g})")
        return value

    @field_validator("combine")
    @classmethod
    def _at_least_two_columns(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for column, parts in value.items():
            if len(parts) < 2:
                raise ValueError(f"{column}: name two or more file columns to join (one is a rename)")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return known_timezone(value)


def time_after_problem(name: str, export: SourceConfig, target: str, offset: TimeAfter) -> str | None:
    """What is wrong with the `after` entry `target` of an export of source `name` ('first_response_at: ...', naming
    the key from `after` on), or None: its target must be a time column of the contract other than the row's own
    time, filled by no other mapping key; its `from` another time column (one `after` gives too is computed first:
    `after_order`)."""
    spec = contract(name)
    times = spec.timestamp_columns
    listed = ", ".join(times)
    if target not in times:
        return (f"{target}: {target!r} is not a time column of the {name} contract (its time columns: {listed}); name "
                "the contract column the duration gives")
    if target == spec.time_column:
        return (f"{target}: {target} is the row's own time, which the others are measured from; map it with "
                f"{name}.rename")
    renamed = [column for column, contract_column in export.rename.items() if contract_column == target]
    given = [f"rename ({renamed[0]!r} renamed onto it)"] if renamed else []
    given += [setting for setting in ("combine", "constants") if target in getattr(export, setting)]
    if given:
        return f"{target}: {target} is also given by {name}.{given[0]}; give it one way, remove one of the two"
    if offset.start not in times:
        return (f"{target}.from: {offset.start!r} is not a time column of the {name} contract (its time columns: "
                f"{listed}); name the contract time the duration runs from")
    if offset.start == target:
        return f"{target}.from: {target} cannot be measured from itself; name the time the duration runs from"
    return None


def after_order(after: Mapping[str, TimeAfter]) -> list[str]:
    """The targets of an export's `after` in the order they are computed: each after the one its `from` names, when
    `after` gives that time too (resolved_at from first_response_at, itself from opened_at). graphlib.CycleError
    when they are measured from each other in a circle."""
    graph = {target: {offset.start} & after.keys() for target, offset in after.items()}
    return list(graphlib.TopologicalSorter(graph).static_order())


def after_circle_problem(export: SourceConfig, time_column: str) -> str | None:
    """'first_response_at.from: ...' (naming the key from `after` on) when the times of an export's `after` are
    measured from each other in a circle, so that none can be computed first; None otherwise."""
    try:
        after_order(export.after)
    except graphlib.CycleError as error:
        circle = error.args[1][::-1]  # graphlib lists each time before the one measured from it
        chain = ", which is measured from ".join(circle[1:])
        return (f"{circle[0]}.from: {circle[0]} is measured from {chain}: a circle, so none can be computed first; "
                f"measure one of them from a time the export gives (e.g. {time_column})")
    return None


class SourcesConfig(StrictModel):
    """Per-source mapping. `feedback` may be omitted (an empty feedback source)."""

    transactions: SourceConfig
    feedback: SourceConfig | None = None
    support_tickets: SourceConfig | None = None
    loyalty_events: SourceConfig | None = None
    customers: SourceConfig | None = None

    @model_validator(mode="after")
    def _settings_of_one_source(self) -> SourcesConfig:
        for name, source in self.configured().items():
            for setting, owner, why in ONE_SOURCE_SETTINGS:
                default = SourceConfig.model_fields[setting].get_default(call_default_factory=True)
                # a value other than the default (a dumped config states discount_is: money on every source)
                if name != owner and any(getattr(export, setting) != default for export in source.exports()):
                    raise ValueError(f"{name}.{setting}: {why}; remove the setting")
        return self

    @model_validator(mode="after")
    def _contract_columns_only(self) -> SourcesConfig:
        for name, source in self.configured().items():
            columns = contract(name).input_dtypes
            for export in source.exports():
                for setting in ("constants", "combine", "recode"):
                    unknown = [column for column in getattr(export, setting) if column not in columns]
                    if unknown:
                        raise ValueError(f"{name}.{setting}: {unknown[0]!r} is not a column of the {name} contract "
                                         f"(its columns: {', '.join(columns)}); name the contract column to fill")
                both = sorted(set(export.constants) & set(export.combine))
                if both:
                    raise ValueError(f"{name}: {both[0]!r} is in both constants and combine; remove one of the two")
        return self

    @model_validator(mode="after")
    def _times_after_mapped_times(self) -> SourcesConfig:
        """Each `after` fills a time column of the source's contract that no other mapping key fills, but the row's own
        time (the others are measured from it), from another time column; the times `after` measures from times it
        gives too form no circle."""
        for name, source in self.configured().items():
            for number, export in enumerate(source.exports()):
                key = f"{name}.after" if number == 0 else f"{name}.other_exports[{number - 1}].after"
                problems = [time_after_problem(name, export, target, offset) for target, offset in export.after.items()]
                problems.append(after_circle_problem(export, contract(name).time_column))
                found = next((problem for problem in problems if problem), None)
                if found:
                    raise ValueError(f"{key}.{found}")
        return self

    @model_validator(mode="after")
    def _attributes_are_unread_columns(self) -> SourcesConfig:
        """sources.customers.attributes names file columns that no mapping reads as a contract column."""
        if self.customers is None:
            return self
        columns = contract("customers").input_dtypes
        mappings = self.customers.exports()
        for attribute in self.customers.attribute_names():
            if attribute in columns:
                raise ValueError(f"customers.attributes: {attribute!r} is a column of the customers contract (read as "
                                 "it is): list only columns the contract does not read")
            targets = [setting for export in mappings for setting in ("rename", "combine")
                       if attribute in (export.rename.values() if setting == "rename" else export.combine)]
            if targets:
                raise ValueError(f"customers.attributes: {attribute!r} is a target of sources.customers.{targets[0]}; "
                                 "name the column as the export writes it")
            mapped = next((export.rename[attribute] for export in mappings
                           if export.rename.get(attribute) in columns), None)
            if mapped:
                raise ValueError(f"customers.attributes: {attribute!r} is read as {mapped} (sources.customers.rename); "
                                 "list only columns the contract does not read")
        return self

    def configured(self) -> dict[str, SourceConfig]:
        """The sources that have a mapping, by name."""
        return {name: getattr(self, name) for name in SOURCE_NAMES if getattr(self, name) is not None}


class PathsConfig(StrictModel):
    """Output folders (relative paths resolve against the config file's folder; by default beside it, so that
    configs in sibling folders never share data, models or a model registry)."""

    data_dir: Path = Path("data")
    models_dir: Path = Path("models")


# Timestamps are stored as nanoseconds since 1970 in int64 (to 2262-04-11): the last day ingest.latest may name, and
# the longest ingest.future_tolerance_days (a century) that keeps the data's end + tolerance inside that range.
LATEST_TIMESTAMP_DAY = dt.date(2261, 12, 31)
MAX_FUTURE_TOLERANCE_DAYS = 36_500


MIN_SAMPLE_ROWS = 1_000  # the smallest train.search_sample_rows but 0 (off)
MIN_PARTITION_ROWS = 100_000  # the smallest features.partition_rows
DASK_STALL_SECONDS = 300.0  # the default features.dask_stall_seconds


class IngestConfig(StrictModel):
    """Validation limits (see pipeline/ingest.py and README "What bad input gets")."""

    max_bad_share: float = Field(0.2, ge=0.0, le=1.0)
    # Rows without customer_id (guest checkouts) are quarantined as 'anonymous', not counted as bad;
    # more than this share of a source's rows means the id column is probably mis-mapped.
    max_anonymous_share: float = Field(0.5, ge=0.0, le=1.0)
    future_tolerance_days: float = Field(1.0, ge=0.0, le=MAX_FUTURE_TOLERANCE_DAYS)
    # Timestamps before this date (its midnight in the business time zone, features.timezone) are quarantined; null:
    # before the data's own start (a robust rule like the one for future dates, see pipeline.ingest.data_start).
    earliest: dt.date | None = None
    # Timestamps after this day (of the business time zone) are quarantined: the data end there, whatever later rows
    # say (a test order past the export's real end, days whose orders were not all written yet). null: the data's own
    # end.
    latest: dt.date | None = Field(None, le=LATEST_TIMESTAMP_DAY)
    # Rows whose amount, discount, unit_price, quantity or loyalty points exceed this in absolute value are
    # quarantined (the sums downstream are exact int64 ten-thousandths).
    max_abs_amount: float = Field(1e9, gt=0.0, le=MAX_ABS_AMOUNT_LIMIT)
    # Id normalisation beyond whitespace and '17850.0' -> '17850' (always done): keep, lower or upper case.
    id_case: Literal["keep", "lower", "upper"] = "keep"
    # Customer ids that stand for no customer in every source (a shop system that writes 0 or 'guest' for guest
    # checkouts): their rows are read as anonymous, like an empty cell. Compared after the normalisation above.
    guest_ids: list[str] = Field(default_factory=list)

    @field_validator("guest_ids", mode="before")
    @classmethod
    def _guest_ids_as_text(cls, value: Any) -> Any:
        return [_scalar_text(item) for item in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _latest_after_earliest(self) -> IngestConfig:
        if self.earliest is not None and self.latest is not None and self.latest < self.earliest:
            raise ValueError(f"latest ({self.latest}) is before earliest ({self.earliest})")
        return self


class SnapshotsConfig(StrictModel):
    """Snapshot dates: an explicit list, or start/end/freq (pandas offset alias, e.g. MS). A missing start
    or end is derived from the validated transactions (`resolve`): with no dates at all, a mapping config
    gets month starts over its data."""

    dates: list[dt.date] | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    freq: str = "MS"

    @field_validator("freq")
    @classmethod
    def _an_offset_of_a_day_or_more(cls, value: str) -> str:
        try:
            offset = pd.tseries.frequencies.to_offset(value)
        except (ValueError, TypeError):
            raise ValueError(f"unknown frequency {value!r}: use a pandas offset alias such as MS (month starts), "
                             "W-MON, QS or D") from None
        day = pd.Timestamp("2024-01-01")
        if day + offset < day + pd.Timedelta(days=1):  # snapshots are days: 'h' would give each day 24 times
            raise ValueError(f"{value!r} steps less than a day forward: snapshots are days; use D or longer")
        return value

    @model_validator(mode="after")
    def _one_way(self) -> SnapshotsConfig:
        if self.dates is not None and (self.start is not None or self.end is not None):
            raise ValueError("give either dates, or start/end, not both")
        if self.dates is not None and not self.dates:
            raise ValueError("dates is empty: list at least one date, or leave it out to derive them from the data")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError("start is after end")
        return self

    @property
    def derived(self) -> bool:
        """True when some dates come from the data (`start` or `end` not given)."""
        return self.dates is None and (self.start is None or self.end is None)

    def resolve(
        self, *, first_event: dt.date | None = None, last_event: dt.date | None = None, horizon_days: int = 90
    ) -> list[dt.date]:
        """The sorted snapshot dates. A missing `start` is the data's first day plus `horizon_days` (each
        snapshot then has at least one horizon of history behind it); a missing `end` is the data's last day.
        Snapshots whose label window has not passed are scored only, never trained on."""
        if self.dates is not None:
            return sorted(set(self.dates))
        start = self.start
        if start is None and first_event is not None:
            start = first_event + dt.timedelta(days=horizon_days)
        end = self.end if self.end is not None else last_event
        if start is None or end is None:
            return []
        return [ts.date() for ts in pd.date_range(start, end, freq=self.freq)]


class FeaturesConfig(StrictModel):
    snapshots: SnapshotsConfig = SnapshotsConfig()
    windows_days: list[int] = Field(default_factory=lambda: [30, 90, 180, 365])
    lookback_days: int = Field(365, gt=0)
    horizon_days: int = Field(90, gt=0)
    loyalty_tiers: dict[str, float] = Field(
        default_factory=lambda: {"bronze": 0.0, "silver": 500.0, "gold": 2000.0, "platinum": 5000.0}
    )
    btyd: bool = True
    engine: Literal["polars", "dask"] = "polars"
    dask_partitions: int = Field(4, gt=0)
    # The Dask engine restarts a worker that holds tasks this long without running any, and fails on a second
    # stall (pipeline.dask_engine.gathered): a cluster that stops running tasks never makes the run wait forever.
    dask_stall_seconds: float = Field(DASK_STALL_SECONDS, gt=0)
    # Snapshots computed at once by the polars engine (threads). Each one in flight holds one snapshot's
    # intermediates (~0.5 GB per 500k customers). One, while the writer thread uses the other core: at 10M
    # rows on 2 cores two were no faster (median 49.9 s against 45.3 s over 5 runs each) and peaked at up
    # to 6.7 GiB against 6.0 GiB; the per-customer step holds the GIL for part of its time.
    snapshot_workers: int = Field(1, gt=0)
    # The polars engine prepares its event tables per customer partition of about this many transaction
    # rows, one partition at a time: peak memory follows the partition, not the whole history.
    partition_rows: int = 2_000_000

    @field_validator("partition_rows")
    @classmethod
    def _partitions_worth_their_cost(cls, value: int) -> int:
        # Every partition costs tens of milliseconds per snapshot whatever its size (87,724 demo rows, 18
        # snapshots: 15 s in one partition, 38 s in 18), while the tables of 100,000 rows hold about 20 MB
        # (1.9 GB at 10M rows, README).
        if value < MIN_PARTITION_ROWS:
            raise ValueError(f"{value:,} is too small a partition: at least {MIN_PARTITION_ROWS:,} transaction rows "
                             "(each partition costs time on every snapshot; smaller ones save little memory)")
        return value
    # The business time zone whose wall-clock days every day count uses (snapshot and scoring midnights, purchase
    # days, label windows, seasons). None: the transactions source's `timezone` (Config fills it in).
    timezone: str | None = None
    # The customers export's columns kept as attributes (features `attribute_<slug>`): Config fills it in from
    # sources.customers.attributes, so that the feature list (built from this section alone) knows them.
    customer_attributes: list[str] = Field(default_factory=list)
    # Those of customer_attributes that are numbers (kind: number), filled in alike: numeric features; the others
    # are categorical.
    number_attributes: list[str] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        return None if value is None else known_timezone(value)

    @property
    def zone(self) -> str:
        """`timezone`, "UTC" when unset (a FeaturesConfig built outside a Config)."""
        return self.timezone or "UTC"

    @property
    def attribute_columns(self) -> list[str]:
        """The validated customers columns (and features) of `customer_attributes`: `attribute_<slug>`, in order."""
        return [attribute_column(name) for name in self.customer_attributes]

    @property
    def number_attribute_columns(self) -> list[str]:
        """The columns (and features) of `number_attributes`: `attribute_<slug>`, in order."""
        return [attribute_column(name) for name in self.number_attributes]

    @field_validator("customer_attributes")
    @classmethod
    def _distinct_customer_attributes(cls, value: list[str]) -> list[str]:
        return checked_attribute_names(value)

    @model_validator(mode="after")
    def _numbers_are_attributes(self) -> FeaturesConfig:
        unlisted = [name for name in self.number_attributes if name not in self.customer_attributes]
        if unlisted:
            raise ValueError(f"number_attributes: {unlisted[0]!r} is not one of customer_attributes")
        return self

    @field_validator("windows_days")
    @classmethod
    def _positive_windows(cls, value: list[int]) -> list[int]:
        if not value or any(w <= 0 for w in value):
            raise ValueError("windows_days must be a non-empty list of positive day counts")
        return sorted(set(value))

    @field_validator("loyalty_tiers")
    @classmethod
    def _increasing_tiers(cls, value: dict[str, float]) -> dict[str, float]:
        thresholds = list(value.values())
        if not value or thresholds != sorted(thresholds) or len(set(thresholds)) != len(thresholds):
            raise ValueError("loyalty_tiers must map tier names to strictly increasing point thresholds")
        keys: dict[str, str] = {}
        for name in value:  # tier names are matched whatever their case and blanks (features.loyalty.tier_key)
            key = " ".join(name.split()).lower()
            if key in keys or not key:
                raise ValueError(f"loyalty_tiers names {keys.get(key, '')!r} and {name!r} are one tier: tier names "
                                 "are matched whatever their case and blanks; give each tier one name"
                                 if key else "loyalty_tiers has a blank tier name")
            keys[key] = name
        return value


class TrainConfig(StrictModel):
    model_name: str = "churn"
    seed: int = 42
    champion_metric: Literal["pr_auc", "roc_auc", "log_loss", "brier", "ece", "lift_top_decile"] = "pr_auc"
    calibration: Literal["auto", "isotonic", "sigmoid"] = "auto"
    search_trials: int = Field(6, ge=1, le=50)
    # Rolling-origin validation folds (each a later labelled snapshot) that choose LightGBM's configuration
    # and number of rounds and give the out-of-fold predictions the calibrator is fitted on.
    cv_folds: int = Field(3, ge=1, le=12)
    # Customer folds of the final model's training rows: the final configuration is refitted on all but one
    # fold and scores it, and the calibrator is fitted on those cross-fitted predictions.
    calibration_folds: int = Field(3, ge=2, le=10)
    # Above this many training rows the calibrator is fitted on the rolling-origin folds' out-of-fold predictions
    # instead (said in metrics "calibration"."fitted_on"): the cross-fit costs about two refits of the final
    # model, and production_model two more. 0: always cross-fit.
    calibration_cross_fit_rows: int = Field(500_000, ge=0)
    # The labelled snapshot rows training reads at most: the newest first (never fewer than give the same splits as
    # all of them), the older ones left out with a warning. Training holds about 3.5 KB per row (13.7 GiB at 3.9M
    # rows, 10M-row benchmark): a long history of a big shop would not fit in memory. 0: every labelled snapshot.
    max_training_rows: int = Field(4_000_000, ge=0)
    # The logistic baseline (and candidate) is fitted on a seeded sample of at most this many rows.
    logistic_fit_rows: int = Field(500_000, ge=2)  # a sample holds both classes (model.fit_rows_sample)
    # Paired bootstrap resamples of the test snapshot behind each candidate's interval against the best baseline.
    bootstrap_resamples: int = Field(1000, ge=100, le=100_000)
    # Above this many training rows the search trials run on a customer-level sample of about this many
    # rows (seeded), and the best configuration is refitted on all rows; 0 searches on all rows.
    search_sample_rows: int = Field(500_000, ge=0)

    @field_validator("search_sample_rows")
    @classmethod
    def _off_or_enough_rows(cls, value: int) -> int:
        if 0 < value < MIN_SAMPLE_ROWS:  # a sample of a few rows leaves a fold without rows, which LightGBM refuses
            raise ValueError(f"{value} is too small a sample: 0 (search on all rows) or at least {MIN_SAMPLE_ROWS:,}")
        return value
    num_boost_round: int = Field(2000, gt=0)
    early_stopping_rounds: int = Field(50, gt=0)
    max_depth: int = Field(6, ge=-1)
    backtest_folds: int = Field(3, ge=1)
    engine: Literal["local", "dask"] = "local"
    # LightGBM threads (1 below 50,000 training rows); fixed so the same seed gives the same model anywhere.
    num_threads: int = Field(2, ge=1)
    # Retention value metric (pipeline/evaluate.py): a contacted churner is kept with probability retention_uplift
    # and is worth customer_value_feature (spend over the last 365 days), or default_customer_value when unknown;
    # the list holds the customers whose expected gain exceeds contact_cost, largest first, at most
    # budget/contact_cost of them (budget = score.budget).
    contact_cost: float = Field(10.0, gt=0.0)
    retention_uplift: float = Field(0.1, ge=0.0, le=1.0)
    customer_value_feature: str = "monetary_365d"
    default_customer_value: float = Field(100.0, ge=0.0)


class MlflowConfig(StrictModel):
    tracking_uri: str = "sqlite:///mlruns.db"
    artifact_root: Path = Path("mlartifacts")
    experiment: str = "churn-training"
    scoring_experiment: str = "churn-scoring"
    ui_port: int = Field(5000, gt=0, lt=65536)


# The multiples of the mean of relative risk tiers that name none: twice and 1.5 times the average customer's risk. On
# the Retail Case Study export (11% churn in 180 days, mean 0.104) the highest was 1.82 times the mean: 3 and 2 listed
# nobody, 2 and 1.5 the riskiest quarter (1,709 of 6,781).
RELATIVE_HIGH, RELATIVE_MEDIUM = 2.0, 1.5


class RiskTiersConfig(StrictModel):
    """From which churn probability a customer is in the high and in the medium risk tier.

    relative_to null: high and medium are churn probabilities (0 < medium < high < 1). relative_to mean_probability:
    they are multiples (1 < medium < high; default 2 and 1.5) of the mean churn probability of the customers scored in
    the list, resolved per list (pipeline.score.tier_thresholds); a tier whose multiple of the mean is above 1 holds
    nobody.
    """

    high: float = 0.5
    medium: float = 0.25
    relative_to: Literal["mean_probability"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _relative_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("relative_to") is not None:
            return {"high": RELATIVE_HIGH, "medium": RELATIVE_MEDIUM, **data}
        return data

    @model_validator(mode="after")
    def _valid(self) -> RiskTiersConfig:
        for key in ("high", "medium"):
            value = getattr(self, key)
            if self.relative_to is None and not 0.0 < value < 1.0:
                raise ValueError(f"{key}: {value:g} is not a churn probability (between 0 and 1); for a multiple of "
                                 "the mean churn probability add relative_to: mean_probability")
            if self.relative_to is not None and not 1.0 < value < math.inf:
                raise ValueError(f"{key}: {value:g} is not a multiple above 1 of the mean churn probability "
                                 f"(relative_to: {self.relative_to}; 1 is the average customer); for a churn "
                                 "probability drop relative_to")
        if self.medium >= self.high:
            raise ValueError("medium must be below high")
        return self


class ScoreConfig(StrictModel):
    playbook: Path = Path("playbook.yaml")
    # Set by load_config when the config names no playbook: `churn score` then writes the starter playbook
    # (pipeline/starter_playbook.yaml, the same as configs/playbook.yaml) at `playbook` if no file is there.
    starter_playbook: bool = False
    budget: float = Field(5000.0, ge=0.0)
    # The share of the selected customers held out as the control group: those whose id hashed with `seed` falls below
    # it, in every list (pipeline.actions.assign_control); a new seed draws a new control group.
    control_share: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 7
    risk_tiers: RiskTiersConfig = RiskTiersConfig()
    value_horizon_days: int = Field(365, gt=0)
    reasons: int = Field(3, ge=1, le=10)
    # What a retained customer is worth (see pipeline/actions.py): run_rate = spend in the longest
    # monetary window scaled to value_horizon_days; btyd = BTYD expected purchases x average order value.
    value_model: Literal["run_rate", "btyd"] = "run_rate"
    value_margin: float = Field(1.0, gt=0.0, le=1.0)  # share of spend that is margin (1.0: revenue)
    # Knapsack: a MILP over all candidates when at most this many have a positive-value action, else a core
    # of this size around the greedy break point (see pipeline/actions.py).
    exact_limit: int = Field(2000, ge=1)
    # Reasons (LightGBM pred_contrib: ~0.5 ms of CPU a customer for 110 trees, ~2.5 ms for 530) are computed
    # for every selected customer and for the `reason_limit` highest-risk customers of these tiers
    # ([] or 0: the selected only; reason_limit null: the whole tiers). reasons_status says why a row has none.
    reason_tiers: list[Literal["high", "medium", "low"]] = Field(default_factory=lambda: ["high", "medium"])
    reason_limit: int | None = Field(5000, ge=0)
    # An --as-of more than this many days after the data's last event is refused: recency would keep
    # growing while nothing was recorded, and every customer would look at risk.
    max_data_lag_days: int = Field(7, ge=0)
    # Customers with a churn probability below this get no action, whatever their value (null: the medium
    # tier's threshold of the list, so low-risk customers are never treated; 0: value alone decides).
    min_probability: float | None = Field(None, ge=0.0, le=1.0)


class UpliftConfig(StrictModel):
    """`churn uplift` (per-customer uplift models from past campaigns) and whether `churn score` uses them."""

    # churn score uses the uplift model for the actions whose model beat a constant uplift on held-out
    # campaigns (the others keep the playbook's uplift); false: the playbook's uplift for every action.
    use_model: bool = False
    holdout_campaigns: int = Field(1, ge=1)  # latest past lists held out to evaluate the model
    min_customers: int = Field(200, ge=20)  # per action and arm (treated, control) to fit a model
    rounds: int = Field(100, gt=0)  # boosting rounds of each of the two LightGBM models per action
    bootstrap: int = Field(200, ge=20)  # resamples for the Qini / AUUC intervals
    seed: int = 42


class MonitorConfig(StrictModel):
    """`churn monitor` alert thresholds (exit code 3) and the drift warnings of `churn score`."""

    experiment: str = "churn-monitoring"
    min_roc_auc: float = Field(0.65, ge=0.0, le=1.0)  # realised ROC-AUC of a past list below this: exit 3
    max_calibration_error: float = Field(0.1, gt=0.0, le=1.0)  # realised ECE above this: exit 3
    psi_warning: float = Field(0.25, gt=0.0)  # PSI of a feature or the score above this: drift warning
    min_shift: float = Field(0.1, ge=0.0)  # ... when its values also moved this many standard deviations (numbers)
    missing_share_warning: float = Field(0.1, gt=0.0, le=1.0)  # change in a feature's missing share above this
    churn_rate_gap_warning: float = Field(0.1, gt=0.0, le=1.0)  # |predicted - recently observed churn rate|
    drift_top: int = Field(5, ge=1)  # largest shifts shown in the scoring summary


class Config(StrictModel):
    """The whole validated configuration."""

    project: str = "churn"
    config_path: Path | None = None
    paths: PathsConfig = PathsConfig()
    sources: SourcesConfig
    ingest: IngestConfig = IngestConfig()
    features: FeaturesConfig = FeaturesConfig()
    train: TrainConfig = TrainConfig()
    mlflow: MlflowConfig = MlflowConfig()
    score: ScoreConfig = ScoreConfig()
    uplift: UpliftConfig = UpliftConfig()
    monitor: MonitorConfig = MonitorConfig()

    @model_validator(mode="after")
    def _business_timezone(self) -> Config:
        """features.timezone defaults to the transactions source's `timezone`."""
        if self.features.timezone is None:
            features = self.features.model_copy(update={"timezone": self.sources.transactions.timezone})
            object.__setattr__(self, "features", features)  # frozen: set once, while validating
        return self

    @model_validator(mode="after")
    def _customer_attributes(self) -> Config:
        """features.customer_attributes is sources.customers.attributes, and features.number_attributes those of
        kind number (the feature list reads the features section alone)."""
        customers = self.sources.customers
        listed = {"customer_attributes": customers.attribute_names() if customers is not None else [],
                  "number_attributes": customers.number_attributes() if customers is not None else []}
        for key, names in listed.items():
            if getattr(self.features, key) and getattr(self.features, key) != names:
                raise ValueError(f"features.{key} is filled from sources.customers.attributes: list the columns "
                                 "there")
        if listed["customer_attributes"] and not self.features.customer_attributes:
            features = self.features.model_copy(update=listed)
            object.__setattr__(self, "features", features)  # frozen: set once, while validating
        return self

    # Derived locations; every runner uses these, never literal paths.
    @property
    def validated_dir(self) -> Path:
        return self.paths.data_dir / "validated"

    @property
    def quarantine_dir(self) -> Path:
        return self.paths.data_dir / "quarantine"

    @property
    def features_dir(self) -> Path:
        return self.paths.data_dir / "features"

    @property
    def scores_dir(self) -> Path:
        return self.paths.data_dir / "scores"

    @property
    def reports_dir(self) -> Path:
        return self.paths.data_dir / "reports"

    @property
    def bundle_dir(self) -> Path:
        return self.paths.models_dir / self.train.model_name

    def tracking_uri(self) -> str:
        """MLFLOW_TRACKING_URI from the environment wins over the config."""
        return os.environ.get("MLFLOW_TRACKING_URI") or self.mlflow.tracking_uri


def data_identity(cfg: Config) -> dict[str, str]:
    """What a model bundle records of the data it was trained on, for `churn score` to tell another shop's model:
    the config's project and its transactions path (as configured: a glob stays a glob), with the file read inside
    a zip archive as rows name it (`path [file member]`), so that two files of one archive are told apart."""
    source = cfg.sources.transactions
    return {"project": cfg.project, "transactions": member_label(source.path, source.member)}


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    keys = dotted.split(".")
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = {}
            node[key] = child
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: '{key}' is not a section")
        node = child
    node[keys[-1]] = value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of `raw` with each `key.path=value` applied (value parsed as YAML)."""
    result = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key.path=value")
        key, text = item.split("=", 1)
        try:
            value = load_yaml(text) if text.strip() else None
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({problem})") from None
        _set_dotted(result, key.strip(), value)
    return result


def _submodel(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The config model inside a field's annotation, and whether it sits in a dict or a list (an error location names
    the entry by its key or position)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = typing.get_origin(annotation)
    for arg in typing.get_args(annotation):
        model, _ = _submodel(arg)
        if model is not None:
            return model, origin in (dict, list)
    return None, False


def known_keys(loc: tuple[Any, ...], root: type[BaseModel] | None = None) -> list[str]:
    """The keys the config section at `loc` (a pydantic error location, without the last part) accepts."""
    model: type[BaseModel] | None = root or Config
    parts = list(loc)
    while parts and model is not None:
        field = model.model_fields.get(str(parts.pop(0)))
        if field is None:
            return []
        model, keyed = _submodel(field.annotation)
        if keyed and parts:
            parts.pop(0)  # the entry's own name or position, e.g. sources.<name>, other_exports.<n>
    return [field.alias or key for key, field in model.model_fields.items()] if model is not None else []


def _unknown_key_message(loc: tuple[Any, ...]) -> str:
    close = difflib.get_close_matches(str(loc[-1]), known_keys(loc[:-1]), n=1, cutoff=0.6) if loc else []
    return f"unknown key (did you mean '{close[0]}'?)" if close else "unknown key"


def _resolve(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else (base / path).resolve()


def _resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make every file path in `raw` absolute against `base` (the config file's folder)."""
    paths = raw.setdefault("paths", {}) or {}
    raw["paths"] = paths
    for key, default in (("data_dir", "data"), ("models_dir", "models")):
        paths[key] = str(_resolve(base, Path(paths.get(key) or default)))
    for source in (raw.get("sources") or {}).values():
        others = source.get("other_exports") if isinstance(source, dict) else None
        for export in [source, *(others if isinstance(others, list) else [])]:
            if not isinstance(export, dict):
                continue
            lookups = export.get("lookup")
            for table in [export, *(lookups if isinstance(lookups, list) else [])]:
                if isinstance(table, dict) and table.get("path"):
                    table["path"] = str(_resolve(base, Path(str(table["path"]))))
    mlflow_raw = raw.setdefault("mlflow", {}) or {}
    raw["mlflow"] = mlflow_raw
    uri = str(mlflow_raw.get("tracking_uri") or "sqlite:///mlruns.db")
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(_resolve(base, Path(uri[len("sqlite:///") :])))
    mlflow_raw["tracking_uri"] = uri
    mlflow_raw["artifact_root"] = str(_resolve(base, Path(mlflow_raw.get("artifact_root") or "mlartifacts")))
    score_raw = raw.get("score")
    if isinstance(score_raw, dict) and score_raw.get("playbook"):
        score_raw["playbook"] = str(_resolve(base, Path(score_raw["playbook"])))
    else:
        raw.setdefault("score", {})
        raw["score"] = dict(raw["score"] or {})
        raw["score"]["playbook"] = str(_resolve(base, Path("playbook.yaml")))
        raw["score"].setdefault("starter_playbook", True)
    return raw


def _format_validation_error(exc: ValidationError, origin: str, overrides: list[str] | None = None) -> str:
    """One line per problem naming the key; a key given by `--set` names the `--set`, not the file."""
    set_by = {item.split("=", 1)[0].strip(): item for item in overrides or [] if "=" in item}
    lines = []
    from_set = 0
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(part) for part in loc) or "(top level)"
        message = _unknown_key_message(loc) if err["type"] == "extra_forbidden" else err["msg"]
        given = next((item for k, item in set_by.items() if key == k or key.startswith(k + ".")), None)
        from_set += given is not None
        lines.append(f"  --set {given}: {key}: {message}" if given else f"  {key}: {message}")
    header = "invalid --set value:" if from_set == len(lines) else f"invalid configuration in {origin}:"
    return "\n".join([header, *lines])


def config_from_dict(
    raw: dict[str, Any], *, base_dir: Path, origin: str = "<dict>", overrides: list[str] | None = None
) -> Config:
    """Validate a raw mapping into a Config; relative paths resolve against `base_dir`.

    `overrides`: the `--set` items already applied to `raw`, so that errors in them name the `--set`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid configuration in {origin}: the top level must be a mapping")
    try:
        resolved = _resolve_paths(apply_overrides(raw, []), base_dir)
        return Config.model_validate(resolved)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, origin, overrides)) from None
    except (TypeError, AttributeError) as exc:
        raise ConfigError(f"invalid configuration in {origin}: {exc}") from None


def load_config(path: Path | str, overrides: list[str] | None = None) -> Config:
    """Read, override, resolve and validate the YAML config at `path`."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = load_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid configuration in {path}: the top level must be a mapping")
    raw = apply_overrides(raw, overrides or [])
    raw["config_path"] = str(path)
    return config_from_dict(raw, base_dir=path.parent, origin=str(path), overrides=overrides)


def config_as_dict(cfg: Config) -> dict[str, Any]:
    """The resolved config as plain JSON-able data (for MLflow and reports)."""
    return cfg.model_dump(mode="json")
