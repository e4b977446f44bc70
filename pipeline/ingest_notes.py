"""Ingest's notes: what looks wrong, or is worth saying, in rows ingest has parsed or validated.

Pure functions that only look, never change a row. Input: what ingest has made of a source — a `SourceResult` (its
`validated` frame, sometimes its report's `derived`), a parsed frame of contract columns with the mask of rows kept
(`kept`) and the file columns' labels, the raw text of a column, or the exports' raw rows (`currency_counts`).
Output: a sentence for the ingest report, or None (`dates_on_both_sides_note`: ''; `unread_attributes_note`: a list
of at most one; `id_match_notes`: one per source). `pipeline.ingest` calls them, adds them to the source's report
notes and logs the ones a user must see as warnings.

They cover durations read from a column (`time_after_note`), ticket dates without a time of day, discounts read as
shares or looking like shares, currencies (mixed, or amounts in cents), customer attributes that name customers
rather than group them, differ between a customer's rows or are not read, times written with a UTC offset or
read as UTC for want of a source `timezone` (`unset_zone_note`), tickets (resolved without a close, closed before
the first reply, first replies weeks late), customer ids (not matching across sources, written more than one way,
one order each, one id with outsized orders) and orders (quiet spans and a quiet end, free orders, an order's total
on each line, money given by a constant, negative loyalty earns), and transactions columns the mapping leaves unread
that say an order is no purchase or was refunded (`unmapped_column_notes`: a status, a yes/no flag, a Return row with
a positive amount, a cancellation's time, a refunded amount).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa_arrow
import pyarrow.compute as pa_compute

from pipeline.config import CustomerAttribute, ReadOptions, SourceConfig, TimeAfter
from pipeline.contract import attribute_columns, contract, purchase_lines
from pipeline.durations import CLOCK, DAY_WORDS, DAYS_CLOCK, ISO, SHORT_CLOCK, SHORT_CLOCK_LAYOUTS, WORDS
from pipeline.snapshot import in_business_time_pandas
from pipeline.sources import (
    FALSE_WORDS,
    TRUE_WORDS,
    RawSource,
    SourceResult,
    blank_cells,
    each_distinct_once,
    export_setting,
    holds_dates,
    is_text,
    kept_mask,
    named_file_columns,
    numbers_as_read,
    parse_timestamps,
    text_array,
    text_series,
    value_text,
    yaml_word,
)


def dates_on_both_sides_note(
    times: pd.Series, earlier_times: pd.Series, *, timezone: str, later: str, earlier: str, what: tuple[str, str]
) -> str:
    """A note when a ticket's later time (`times`: its closing or first response) and its opening (`earlier_times`)
    both hold dates without a time of day (RavenStack's submitted_at and closed_at): the hours between them are whole
    days, 0 for a ticket closed on its opening day, which a reason says as 'less than an hour'. `later`, `earlier`: the
    columns' labels; `what`: the step ('closed') and the feature that reads it. '' otherwise."""
    if not (holds_dates(times, timezone) and holds_dates(earlier_times, timezone)):
        return ""
    step, feature = what
    same = int((times == earlier_times).sum())
    tickets = f"{same:,} ticket{'s' * (same != 1)} {step} on the day {'they were' if same != 1 else 'it was'} opened"
    return (f"{earlier} and {later} both hold dates without a time of day: the hours from one to the other are whole "
            f"days, so {feature} counts 0 hours for the {tickets} (said 'less than an hour' in a reason) and 24, 48, "
            "... for the others, not the time it took; map the export's times with a time of day where it has them")


def time_after_note(
    values: pd.Series, times: pd.Series, forms: pd.Series, *, target: str, after: TimeAfter, start_label: str,
    start_dates: bool,
) -> str:
    """How many rows took `target` from the duration column (`values` as read, `times` the times computed, `forms`
    the form each cell was read in: `pipeline.durations.durations_read`) and how many left it empty with a blank
    duration: '3 rows have first_response_at from First reply time in minutes (minutes after Created at); 1 with it
    blank has none'; of those with a time, how many were written in each text form, with the first one's cell
    (`text_forms_read`); `start_dates`: the `from` column holds dates without a time of day (RavenStack's
    submitted_at), so the times are counted from the start of the day, which the note says."""
    given, blank = int(times.notna().sum()), int(blank_cells(values).sum())
    written = text_forms_read(values, forms.where(times.notna()), unit=after.unit)
    note = (f"{given:,} row{'s have' if given != 1 else ' has'} {target} from {after.column} ({after.unit} after "
            f"{start_label}{'; ' + written if written else ''})")
    note += f"; {blank:,} with it blank {'have' if blank != 1 else 'has'} none" if blank else ""
    return note + (f"; {start_label} holds dates without a time of day, so {target} is counted from the start of that "
                   f"day: the {after.unit} from one to the other are as written, its time of day is not known"
                   if start_dates else "")


def text_forms_read(values: pd.Series, forms: pd.Series, *, unit: str) -> str:
    """'2 of them written as H:MM:SS (e.g. '36:15:00'), 1 in ISO 8601 (e.g. 'PT1H30M')': how many cells of a duration
    column (`values`) were read in each text form (`forms`, null for none), with the first one's cell as written; ''
    when none was (numbers only)."""
    shown = {CLOCK: "as H:MM:SS", SHORT_CLOCK: f"as {SHORT_CLOCK_LAYOUTS.get(unit, '')} by unit: {unit}",
             DAYS_CLOCK: "as days and H:MM:SS", ISO: "in ISO 8601", WORDS: "in words",
             DAY_WORDS: "in words with days, a day as 24 hours"}
    text = forms[forms.isin(list(shown)).to_numpy(dtype=bool)].astype("str")
    if text.empty:
        return ""
    counts = text.value_counts()
    first = pd.Series(text.index, index=text.to_numpy())
    first = first[~first.index.duplicated()]  # the row of each form's first cell
    parts = [f"{counts[form]:,} {shown[form]} (e.g. {value_text(values.loc[[first[form]]]).iloc[0]!r})"
             for form in shown if form in counts]
    return f"{len(text):,} of them written as text: " + ", ".join(parts)


def discount_share_read_note(shares: pd.Series, typed: dict[str, pd.Series], *, export: str) -> str | None:
    """The note of an export whose discount column was read as shares (`shares`: the cells as mapped; `typed`: the
    parsed columns, discount already money): how many lines, with one line's sum. None without a discounted line."""
    money = typed["discount"]
    rows = np.flatnonzero((money > 0).fillna(False).to_numpy(dtype=bool))
    if not len(rows):
        return None
    row = rows[0]
    share = money.iloc[row] / abs(typed["quantity"].iloc[row] * typed["unit_price"].iloc[row])
    return (f"discount read as a share of quantity × unit_price ({export}.discount_is: share) on {len(rows):,} "
            f"discounted lines, e.g. {str(shares.iloc[row]).strip()} of {typed['quantity'].iloc[row]:g} × "
            f"{_price_text(typed['unit_price'].iloc[row])}: {money.iloc[row]:,.2f} off ({share:.0%})")


def discount_share_of_net_note(
    shares: pd.Series, share: pd.Series, amount: pd.Series, money: pd.Series, *, export: str
) -> str | None:
    """The note of an export whose discount column was read as shares of the price before the discount, from the
    line's amount after it (`shares`: the cells as mapped; `share`, `amount`: parsed; `money`: the discounts as
    money): how many lines, with one line's sum, and how many at a share of 1 left without one. None without a
    discounted line."""
    rows = np.flatnonzero((money > 0).fillna(False).to_numpy(dtype=bool))
    whole = int((share == 1).fillna(False).sum())
    if not len(rows) and not whole:
        return None
    parts = []
    if len(rows):
        row = rows[0]
        parts.append(f"{len(rows):,} discounted lines, e.g. {str(shares.iloc[row]).strip()} off a line worth "
                     f"{abs(amount.iloc[row]):,.2f} after it: {money.iloc[row]:,.2f} off a price of "
                     f"{abs(amount.iloc[row]) + money.iloc[row]:,.2f}")
    if whole:
        parts.append(f"{whole:,} line{'s' if whole != 1 else ''} at a share of 1 (all off) "
                     f"give{'s' if whole == 1 else ''} no price to take it from: "
                     f"{'its' if whole == 1 else 'their'} discount is left empty (unknown)")
    return (f"discount read as a share of each line's price before the discount, whose amount is after it ({export}."
            f"discount_is: share): " + "; ".join(parts))


def _price_text(price: float) -> str:
    """A unit price as a sum shows it: with cents ('14.00'), or with the further digits it has ('112.998', which
    '113.00' would hide from the product beside it)."""
    return f"{price:,.2f}" if round(price, 2) == price else f"{price:,.6g}"


def currency_counts(exports: Sequence[tuple[RawSource, SourceConfig, np.ndarray]]) -> list[tuple[str, pd.Series]]:
    """(file column named like a currency, rows per code in upper case among the rows kept) of the exports that do not
    set `currency_rates`; an export whose own currency column stands beside a one-valued converted one gives none."""
    counts: list[tuple[str, pd.Series]] = []
    for raw, source, left_out in exports:
        if source.currency_rates is not None:
            continue  # converted into one currency
        named = [c for c in raw.frame.columns if "currency" in str(c).casefold() and source.rename.get(c, c) == c]
        kept = kept_mask(len(raw.frame), left_out)
        found = []
        for column in named:
            codes = value_text(raw.frame[column]).str.upper().replace("", None)
            found.append((column, codes[kept].value_counts()))
        if len(found) > 1 and any(len(values) == 1 for _, values in found):
            continue  # converted amounts: this export's own currency column does not apply
        counts += found
    return counts


# ISO 4217 currencies without a minor unit: their amounts are whole numbers anyway
ZERO_DECIMAL_CURRENCIES = frozenset({"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX",
                                     "VND", "VUV", "XAF", "XOF", "XPF"})
MINOR_UNIT_MIN_ROWS = 200  # whole-number amounts in one currency on at least this many rows ...
MINOR_UNIT_MEDIAN = 100  # ... whose median purchase is at least this: the currency's minor unit (cents)?


def minor_unit_note(
    counts: list[tuple[str, pd.Series]], exports: Sequence[tuple[RawSource, SourceConfig, np.ndarray]],
    amounts: pd.Series,
) -> str | None:
    """A note when the transactions' amounts (`amounts`, as parsed, of all the `exports`' rows in order) are whole
    numbers on every kept row, their median purchase is at least MINOR_UNIT_MEDIAN, and the exports' currency
    column (`counts`: `currency_counts` of the exports) holds one currency that has a minor unit: amounts in cents,
    as payment APIs write them, make every sentence about money a hundred times too large. None otherwise (two
    currencies get `mixed_currency_note`)."""
    codes = pd.concat([values for _, values in counts]).groupby(level=0).sum() if counts else pd.Series(dtype=int)
    if len(codes) != 1 or codes.index[0] in ZERO_DECIMAL_CURRENCIES:
        return None
    kept = np.concatenate([kept_mask(len(raw.frame), left_out) for raw, _, left_out in exports])
    values = amounts.to_numpy(dtype=float, na_value=np.nan)[kept]
    values = values[~np.isnan(values)]
    purchases = values[values > 0]
    if len(values) < MINOR_UNIT_MIN_ROWS or not len(purchases) or (values != np.round(values)).any():
        return None
    median = float(np.median(purchases))
    if median < MINOR_UNIT_MEDIAN:
        return None
    code, column = codes.index[0], counts[0][0]
    return (f"every amount is a whole number (median purchase {median:,.0f} {code}): if the export writes them in "
            f"{code}'s minor unit (cents, as payment APIs such as Stripe's do), every sentence about money and every "
            f"customer value is a hundred times too large; read them with sources.transactions.currency_rates: "
            f"{{column: {column}, rates: {{{code.lower() if code.isalpha() else code}: 0.01}}}}")


def mixed_currency_note(counts: list[tuple[str, pd.Series]], *, name: str) -> str | None:
    """A note when the file columns named like a currency ('Currency', 'currency_code') of source `name`'s exports
    (`counts`: `currency_counts` of them, the rows their `exclude` leaves out left out) hold more than one value among
    the rows kept, in the exports that do not set `currency_rates`: amounts in different currencies would be summed as
    one. None otherwise, and when a currency column holds one value only beside another (a payment export's 'Converted
    Currency' beside the customer's 'Currency': its converted amounts are in one currency)."""
    if not counts:
        return None
    together = pd.concat([values for _, values in counts]).groupby(level=0).sum().sort_values(ascending=False)
    if len(together) < 2:
        return None
    columns = " / ".join(dict.fromkeys(column for column, values in counts if len(values)))
    shown = ", ".join(f"{code} {rows:,}" for code, rows in together.head(4).items())
    return (f"amounts in {len(together)} currencies ({columns}: {shown} rows) are summed as written; convert them "
            f"with sources.{name}.currency_rates: {{column: {columns.split(' / ')[0]}, rates: {{...}}}}, or keep one "
            f"currency with sources.{name}.exclude")


# Words of a state that is not a completed purchase, matched as whole words once '_' and '-' are spaces
# ('partially_refunded', 'Payment-Declined'). Not 'pending' or 'on hold': most such orders are paid later, so every
# export taken while orders are open would get the note; nor 'return' or 'refund' alone, which name a row's kind
# (a return written as its own row: returns_when), not an order's state.
NOT_PURCHASE_WORDS = ("cancelled", "canceled", "refunded", "void", "voided", "returned", "failed", "declined",
                      "chargeback", "charged back", "disputed", "fraud", "fraudulent", "unpaid", "abandoned",
                      "unavailable", "expired", "rejected")
# Words of a row's kind that undoes a sale or gives money back ('Return', 'Refund', 'Cancellation' in a Type column):
# such a row is read as a return when its amount is negative, else it counts as a purchase.
UNDOING_KINDS = ("return", "refund", "cancellation", "cancelation", "reversal")
# A column named like a cancellation, refund or return ('Cancelled at', 'is_refunded', 'returnedAt'; not 'returning')
NOT_PURCHASE_NAMES = {"cancel": r"cancel(?:l?ed|l?ations?)?", "refund": r"refund(?:ed|s)?",
                      "return": r"return(?:ed|s)?", "void": r"void(?:ed)?"}
MONEY_NAME = r"amount|total|sum|value|price|money"  # a refund column of money, not a yes/no flag
# A time filled on fewer rows than this share marks the exception (a cancellation), not a step of every order (a
# rental's Return date).
FILLED_MAX_SHARE = 0.5
STATUS_MAX_VALUES = 50  # a status column holds at most this many values, case and surrounding blanks aside
STATUS_MAX_WORDS = 3  # a state is a word or a few ('Payment Declined'); longer cells are comments, not states
STATUS_SAMPLE = 10_000  # rows a column's values are first counted on: a free-text column is passed over there
STATUS_SHOWN = 3  # values named in the note


def unmapped_columns(columns: Sequence[str], source: SourceConfig, *, name: str) -> list[str]:
    """The file `columns` of an export of source `name` that its mapping (`source`) leaves unread: no key names them
    (`named_file_columns`) and they are not named like a column of the contract."""
    named, read = named_file_columns(source), set(contract(name).input_dtypes)
    return [column for column in columns if column not in named and column not in read]


def names_a_non_purchase(column: str, *, refunds: bool = False) -> bool:
    """Whether a column's name has a word of a cancellation, refund, return or void ('Cancelled at', 'is_refunded',
    'returnedAt', 'Void'), camelCase split; 'returning' or 'Refundable' are no such word. `refunds`: the export gives
    its refunds as money (sources.<name>.refunds), so a refund is no order to leave out."""
    words = "|".join(pattern for word, pattern in NOT_PURCHASE_NAMES.items() if not (refunds and word == "refund"))
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", column).casefold()
    return re.search(rf"(?:^|[^a-z])(?:{words})(?:[^a-z]|$)", spaced) is not None


def distinct_cells(values: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """A text column (`values`) as (each row's position among its distinct cells, -1 for a missing cell; the distinct
    cells, as written): one hashing pass, after which a column's few values are looked at instead of its rows."""
    text = text_array(values)
    encoded = (text.combine_chunks() if isinstance(text, pa_arrow.ChunkedArray) else text).dictionary_encode()
    codes = pa_compute.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    return codes, text_series(encoded.dictionary, pd.RangeIndex(len(encoded.dictionary)))


def status_values(values: pd.Series, kept: np.ndarray) -> tuple[pd.DataFrame, np.ndarray, pd.Series] | None:
    """The values of a text or categorical column (`values`, as read) on the rows `kept`, case and surrounding blanks
    aside: one row per value (`folded`) with its most frequent spelling as written (`written`), every spelling
    (`spellings`) and its rows (`rows`), most rows first; blank cells left out. With it, each row's position among the
    column's distinct cells (-1 for a missing cell) and each distinct cell's value (`folded`), so that the rows of a
    value are found without reading the column again. None when the column is neither text nor categorical (typed
    numbers, times) or holds more than STATUS_MAX_VALUES values (a name, an id, a description): the first
    STATUS_SAMPLE rows say so for most such columns at little cost."""
    if not (is_text(values) or isinstance(values.dtype, pd.CategoricalDtype)):
        return None
    sample = pa_compute.utf8_lower(pa_compute.utf8_trim_whitespace(text_array(values.iloc[:STATUS_SAMPLE])))
    if pa_compute.count_distinct(sample).as_py() > STATUS_MAX_VALUES + 1:  # (+1: a blank cell is one of them)
        return None
    codes, distinct = distinct_cells(values)
    written = distinct.str.strip()
    cells = pd.DataFrame({"written": written,
                          "rows": np.bincount(codes[kept & (codes >= 0)], minlength=len(distinct))})
    cells = cells[(cells["rows"] > 0) & (cells["written"] != "")]
    spellings = cells.groupby("written", sort=False, as_index=False)["rows"].sum()
    spellings["folded"] = spellings["written"].str.casefold()
    if spellings["folded"].nunique() > STATUS_MAX_VALUES:
        return None
    spellings = spellings.sort_values("rows", ascending=False, kind="stable")
    found = (spellings.groupby("folded", sort=False)
             .agg(written=("written", "first"), spellings=("written", list), rows=("rows", "sum"))
             .reset_index().sort_values("rows", ascending=False, kind="stable").reset_index(drop=True))
    return found, codes, written.str.casefold()


def not_purchase_values(folded: pd.Series, *, refunds: bool) -> np.ndarray:
    """Which of the values `folded` (lower case) name a state that is not a completed purchase: a word of
    NOT_PURCHASE_WORDS in a value of at most STATUS_MAX_WORDS words. `refunds`: the export gives its refunds as money
    (sources.<name>.refunds), which takes a refunded order's money off already, so 'refunded' is not one."""
    words = [word for word in NOT_PURCHASE_WORDS if not (refunds and word == "refunded")]
    spaced = folded.str.replace(r"[_\-\s]+", " ", regex=True).str.strip()
    return (spaced.str.contains(rf"\b(?:{'|'.join(words)})\b", regex=True)
            & (spaced.str.count(" ") < STATUS_MAX_WORDS)).to_numpy(dtype=bool)


def flag_values(folded: pd.Series) -> np.ndarray:
    """Which of the values `folded` (lower case) say yes (true, t, yes, y, 1) when every one of them is a yes or a no
    (a flag column: Refunded true/false, is_cancelled 1/0); none otherwise."""
    return (folded.isin(TRUE_WORDS) & folded.isin(TRUE_WORDS + FALSE_WORDS).all()).to_numpy(dtype=bool)


def undoing_kind_values(folded: pd.Series) -> np.ndarray:
    """Which of the values `folded` (lower case) are a row's kind that undoes a sale: a word of UNDOING_KINDS alone
    ('Return', 'refunds', 'Cancellation'); not 'return requested', which is a state of a purchase."""
    return folded.str.strip().str.fullmatch(rf"(?:{'|'.join(UNDOING_KINDS)})s?").to_numpy(dtype=bool)


def unmapped_status_note(values: pd.Series, kept: np.ndarray, *, column: str, setting: str, refunds: bool = False,
                         amounts: pd.Series | None = None, orders: pd.Series | None = None) -> str | None:
    """A note when an unmapped column of transactions (`values`, as read; `column` its name) holds few values
    (`status_values`) and some of them, on the rows `kept`, say an order is no purchase: a state that is not a
    completed purchase (`not_purchase_values`: Shopify's Financial Status 'voided', Olist's order_status 'canceled'),
    or yes in a yes/no column named like a cancellation, refund or return (`flag_values`: Refunded 'true'). The note
    says how many rows, the values as written (most rows first), with `orders` (each row's parsed order id) the orders
    and lines they are on when these are more (a status on an order's first line only), and the `exclude` of export
    `setting` that leaves them out. Else, rows of a kind that undoes a sale (`undoing_kind_values`: Type 'Return')
    whose `amounts` (as parsed) are above 0: `undoing_rows_note`. None otherwise."""
    flag = names_a_non_purchase(column, refunds=refunds) and re.search(MONEY_NAME, column.casefold()) is None
    typed = not (is_text(values) or isinstance(values.dtype, pd.CategoricalDtype))
    text = value_text(values) if flag and typed else values  # a typed flag (Parquet's booleans, 1/0) as written
    status = status_values(text, kept)
    if status is None:
        return None
    found, codes, cell_values = status
    states = not_purchase_values(found["folded"], refunds=refunds) | (flag_values(found["folded"]) if flag else False)
    if not states.any():
        kinds = found[undoing_kind_values(found["folded"])]
        return (undoing_rows_note(codes, cell_values, kept, kinds, amounts, column=column, setting=setting)
                if len(kinds) and amounts is not None else None)
    matched = found[states]
    rows = int(matched["rows"].sum())
    on, orders_count = orders_clause(_rows_holding(codes, cell_values, kept, matched["folded"]), kept, orders)
    listed = ", ".join(yaml_word(written) for spellings in matched["spellings"] for written in spellings)
    return (f"{column} is not mapped, but {rows:,} of its {int(kept.sum()):,} rows say{'s' * (rows == 1)} "
            f"{_values_said(matched)}{on}: {_counted_as_purchases(orders_count or rows, orders=bool(on))} "
            f"{setting}.exclude: {{{yaml_word(column)}: [{listed}]}}")


def undoing_rows_note(codes: np.ndarray, cell_values: pd.Series, kept: np.ndarray, kinds: pd.DataFrame,
                      amounts: pd.Series, *, column: str, setting: str) -> str | None:
    """A note when rows `kept` of an unmapped column (`column`; `codes`, `cell_values`: its rows' distinct cells and
    their values, from `status_values`) say a kind that undoes a sale (`kinds`: rows of `status_values`) with an amount
    above 0 (`amounts`, as parsed): they count as purchases, not as returns (a negative amount); the note counts them
    and names the `returns_when` and the `exclude` of export `setting` that read them otherwise. None when every such
    row is negative already."""
    positive = kept & (amounts.to_numpy(dtype=float, na_value=np.nan) > 0) & (codes >= 0)
    per_cell = pd.Series(np.bincount(codes[positive], minlength=len(cell_values)))
    counts = per_cell.groupby(cell_values.to_numpy()).sum()
    kinds = kinds.assign(rows=kinds["folded"].map(counts).fillna(0).astype(int))
    kinds = kinds[kinds["rows"] > 0].sort_values("rows", ascending=False, kind="stable")
    if kinds.empty:
        return None
    rows = int(kinds["rows"].sum())
    one = rows == 1
    values = (f"{{{yaml_word(column)}: "
              f"[{', '.join(yaml_word(written) for spellings in kinds['spellings'] for written in spellings)}]}}")
    return (f"{column} is not mapped, but {rows:,} of its {int(kept.sum()):,} rows say{'s' * one} "
            f"{_values_said(kinds)} with an amount above 0: {'it counts' if one else 'they count'} as "
            f"{'a purchase' if one else 'purchases'} like the others; if {'it gives' if one else 'they give'} money "
            f"back, read {'it' if one else 'them'} as {'a return' if one else 'returns'} with {setting}.returns_when: "
            f"{values}, or if {'it is' if one else 'they are'} no purchase at all, leave {'it' if one else 'them'} "
            f"out with {setting}.exclude: {values}")


def _values_said(matched: pd.DataFrame) -> str:
    """"'refunded' (1) or 'voided' (1)": the values of `matched` (rows of `status_values`) as written with their rows,
    at most STATUS_SHOWN of them."""
    shown = [f"{written!r} ({count:,})" for written, count in zip(matched["written"], matched["rows"])]
    more = len(shown) - STATUS_SHOWN
    return (", ".join(shown[:STATUS_SHOWN]) + f" or {more:,} other such value{'s' * (more != 1)}" if more > 0 else
            " or ".join([", ".join(shown[:-1]), shown[-1]] if len(shown) > 1 else shown))


def _rows_holding(codes: np.ndarray, cell_values: pd.Series, kept: np.ndarray, folded: pd.Series) -> np.ndarray:
    """The rows `kept` of a column (`codes`, `cell_values`: its rows' distinct cells and their values, from
    `status_values`) whose value, case and surrounding blanks aside, is one of `folded`."""
    hits = np.append(cell_values.isin(list(folded)).to_numpy(dtype=bool), False)
    return kept & hits[codes]  # a missing cell's code -1 takes the False appended


def orders_clause(rows: np.ndarray, kept: np.ndarray, orders: pd.Series | None) -> tuple[str, int]:
    """(', on 2 orders of 5 lines', 2) when `orders` (each row's order id, parsed; null for none) puts the `rows` (a
    mask) on orders with more lines `kept` than those rows (an order whose status its first line only gives); a row
    without an order id is an order of its own. ('', 0) otherwise."""
    if orders is None:
        return "", 0
    codes, distinct = distinct_cells(orders)
    present = codes >= 0
    on_orders = np.zeros(len(distinct) + 1, dtype=bool)  # per order, then False for a row without one (code -1)
    on_orders[codes[rows & present]] = True
    lines = int((kept & (on_orders[codes] | rows)).sum())
    if lines <= int(rows.sum()):
        return "", 0
    count = int(on_orders.sum()) + int((rows & ~present).sum())
    return f", on {count:,} order{'s' * (count != 1)} of {lines:,} lines", count


def _counted_as_purchases(count: int, *, orders: bool) -> str:
    """'they count as purchases like the others; if those are not purchases, leave them out with' for `count` rows,
    or for `count` orders ('those orders count ...')."""
    if orders:
        return ("that order counts as a purchase like the others; if it is not a purchase, leave it out with"
                if count == 1 else
                "those orders count as purchases like the others; if they are not purchases, leave them out with")
    return ("it counts as a purchase like the others; if that is not a purchase, leave it out with" if count == 1 else
            "they count as purchases like the others; if those are not purchases, leave them out with")


def unmapped_refunds_note(values: pd.Series, kept: np.ndarray, *, column: str, setting: str,
                          read: ReadOptions) -> str | None:
    """A note when an unmapped column named like a refund (`column`: 'Refunded Amount', 'refund_total'; `values` as
    read) holds numbers (read with `read`), not 0 on some of the rows `kept`, and the export (`setting`) sets no
    `refunds`: that money is not taken off the customer's spend. None otherwise (a column of words: a refund reason)."""
    if "refund" not in column.casefold():
        return None
    numbers = each_distinct_once(values, lambda cells: numbers_as_read(cells, read)).to_numpy(dtype=float,
                                                                                              na_value=np.nan)
    given = ~blank_cells(values)
    if not given.any() or np.isnan(numbers[given]).any():
        return None
    refunded = kept & given & (numbers != 0)
    rows = int(refunded.sum())
    if not rows:
        return None
    size = "above 0" if (numbers[refunded] > 0).all() else "not 0"
    return (f"{column} is not mapped, but is {size} on {rows:,} of {int(kept.sum()):,} rows: that money is not taken "
            f"off spend; give it with {setting}.refunds: {{column: {yaml_word(column)}}}")


def unmapped_time_note(values: pd.Series, kept: np.ndarray, *, column: str, setting: str, source: SourceConfig,
                       orders: pd.Series | None = None) -> str | None:
    """A note when an unmapped column named like a cancellation, refund or return (`names_a_non_purchase`: Shopify's
    'Cancelled at', 'refunded_at'; `values` as read) gives a time (read with `source`'s date_format and timezone) on
    some of the rows `kept`, fewer than FILLED_MAX_SHARE of them, and is blank on the others: those orders count as
    purchases; the note says how many rows (with `orders`, each row's parsed order id: the orders and their lines,
    when more) and the `exclude_when_filled` of export `setting` that leaves them out. None otherwise."""
    if not names_a_non_purchase(column, refunds=source.refunds is not None):
        return None
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = value_text(values)
    filled = kept & ~blank_cells(values)
    rows = int(filled.sum())
    if not rows or rows >= FILLED_MAX_SHARE * kept.sum():
        return None
    if is_text(values):
        times = each_distinct_once(values[filled], lambda cells: parse_timestamps(
            cells, date_format=source.read.date_format, timezone=source.timezone))
        if times.isna().any():
            return None
    elif not pd.api.types.is_datetime64_any_dtype(values.dtype):
        return None
    on, orders_count = orders_clause(filled, kept, orders)
    return (f"{column} is not mapped, but {rows:,} of its {int(kept.sum()):,} rows give{'s' * (rows == 1)} a "
            f"time{on}: {_counted_as_purchases(orders_count or rows, orders=bool(on))} "
            f"{setting}.exclude_when_filled: [{yaml_word(column)}]")


def unmapped_column_notes(frame: pd.DataFrame, source: SourceConfig, kept: np.ndarray, *, setting: str,
                          amounts: pd.Series | None = None, orders: pd.Series | None = None) -> list[str]:
    """The notes on the columns of one transactions export (`frame`, as read, with the mapping `source`; `kept`: its
    rows not left out by `exclude`) that its mapping leaves unread (`unmapped_columns`) but that say an order is no
    purchase (`unmapped_status_note`, `unmapped_time_note`) or was refunded (`unmapped_refunds_note`, when `refunds`
    is not set). `amounts`, `orders`: the export's amount and order_id as parsed, one per row of `frame`."""
    notes = []
    for column in unmapped_columns(frame.columns, source, name="transactions"):
        note = unmapped_status_note(frame[column], kept, column=column, setting=setting,
                                    refunds=source.refunds is not None, amounts=amounts, orders=orders)
        if note is None and source.refunds is None:
            note = unmapped_refunds_note(frame[column], kept, column=column, setting=setting, read=source.read)
        if note is None:
            note = unmapped_time_note(frame[column], kept, column=column, setting=setting, source=source,
                                      orders=orders)
        notes.extend([note] if note else [])
    return notes


ATTRIBUTE_EXAMPLES = 3  # values shown of the customer named in the note


def differing_attributes_note(typed: pd.DataFrame, kept: np.ndarray, files: np.ndarray) -> str | None:
    """A note naming the customers that rows of one file give different values of an attribute (region,
    acquisition_channel, signup_at, the attribute_<slug> columns), before `later_attribute_rows` keeps one row of
    each: the first row's value is then one of several, and a sentence such as "lives in region West" names it alone
    (an orders file read as the customers source gives each order's shipping region). None when no customer's rows
    differ. `kept`: the rows not quarantined otherwise; `files`: each row's file number (values exported again in a
    later file may differ)."""
    attributes = [c for c in contract("customers").optional if c in typed.columns] + attribute_columns(typed.columns)
    frame = pl.from_pandas(typed.loc[kept, ["customer_id", *attributes]].reset_index(drop=True)).with_columns(
        pl.Series("file", files[kept]))
    counts = (frame.filter(pl.col("customer_id").is_not_null()).group_by("file", "customer_id", maintain_order=True)
              .agg(pl.col(a).drop_nulls().n_unique() for a in attributes))
    differing = {a: int((counts[a] > 1).sum()) for a in attributes if (counts[a] > 1).any()}
    if not differing:
        return None
    customers = int(counts.select(pl.any_horizontal(pl.col(a) > 1 for a in differing).sum()).item())
    attribute = max(differing, key=differing.get)
    example = counts.filter(pl.col(attribute) > 1)["customer_id"][0]
    values = (frame.filter(pl.col("customer_id") == example)[attribute].drop_nulls().unique(maintain_order=True)
              .cast(pl.String).head(ATTRIBUTE_EXAMPLES).to_list())
    per_attribute = ", ".join(f"{a}: {n:,}" for a, n in differing.items())
    return (f"{customers:,} customer{'s are' if customers != 1 else ' is'} on several rows of one file that give "
            f"different attribute values ({per_attribute}; e.g. {example!r}: {', '.join(values)}): the first row is "
            "kept, so the features and reasons read one of the values as the customer's; an attribute that differs "
            "by order (a shipping region) is no static attribute of the customer: leave it out of the customers "
            "mapping")


NPS_SHOWN = 3  # fractional NPS scores shown in the note


def fractional_nps_note(score: pd.Series, kind: pd.Series, *, label: str) -> str | None:
    """The note on NPS scores (`score` where `kind` is nps, as the export wrote them) that are not whole numbers: an
    NPS answer is one of 0, 1, ..., 10 by its definition (CSAT and review scores may be averages of stars, 4.5), so
    7.5 is an average, a percentage or another scale mapped onto score. How many, a few of them, and what the features
    make of them; None when every one is whole. The rows are kept: the score is on the scale, only its meaning is in
    doubt."""
    nps = (kind == "nps").fillna(False).to_numpy(dtype=bool) & score.notna().to_numpy(dtype=bool)
    values = score.to_numpy(dtype=np.float64, na_value=np.nan)
    fractional = nps & (values != np.round(values))
    count = int(fractional.sum())
    if not count:
        return None
    shown = ", ".join(f"{value:g}" for value in pd.unique(values[fractional])[:NPS_SHOWN])
    return (f"{label}: {count:,} of the {int(nps.sum()):,} nps scores are not whole numbers (e.g. {shown}): an NPS "
            "answer is a whole number from 0 to 10, so these look like averages, percentages or another scale "
            "mapped onto score; they are kept as given, and the NPS features read them on 0-10 (promoters 9-10, "
            "passives 7-8, detractors 0-6: 8.5 counts as a passive). Map each answer's own score, or set "
            "score_scales if the export uses another scale")


def unread_attributes_note(source: str, extra_columns: Sequence[str], *, shown: int = 8) -> list[str]:
    """A note (as a one-item list; empty otherwise) naming the customers export's columns that are neither a column
    of the contract nor listed in sources.customers.attributes (`extra_columns`): a customer's gender or plan there
    is kept aside in the extra file and never reaches the model, which a user mapping attributes may not expect; the
    note names the setting that keeps them. Other sources' extra columns (an order's shipping address) stay quiet."""
    if source != "customers" or not extra_columns:
        return []
    names = ", ".join(extra_columns[:shown]) + (f" and {len(extra_columns) - shown:,} more" if len(extra_columns) > shown
                                                else "")
    attributes = ", ".join(contract("customers").optional)
    return [f"{len(extra_columns):,} column{'s' * (len(extra_columns) != 1)} of the customers export "
            f"{'are' if len(extra_columns) != 1 else 'is'} not read by the model (it reads {attributes} and the columns "
            f"of sources.customers.attributes): {names}; kept "
            "aside in validated/extra/customers.parquet, unused (list those that describe a customer, such as a segment "
            "or a plan, in sources.customers.attributes; or map one onto a contract attribute with "
            "sources.customers.rename only if it means that attribute)"]


def resolved_without_close(typed: pd.DataFrame, kept: np.ndarray) -> np.ndarray:
    """Kept rows of a parsed support_tickets frame whose resolved is true and whose closed_at is empty."""
    said = (typed["resolved"] == True).fillna(False).to_numpy(dtype=bool)  # noqa: E712 (nullable boolean)
    return kept & said & typed["closed_at"].isna().to_numpy()


UTC_OFFSET_SAMPLE = 20_000  # text times read for their UTC offset: enough for a share, cheap at 10M rows
# a time of day, then a UTC offset ending the value: '10:00:00 -0400', 'T10:00:00-04:00' (not a date's '-2024')
UTC_OFFSET = r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*([+-])(\d{2}):?(\d{2})$"


def utc_offset_note(frame: pd.DataFrame, labels: Mapping[str, str], *, business_zone: str) -> str | None:
    """A note when the export's ordered_at (file column `labels["ordered_at"]` of the raw text `frame`) writes at least
    half of its times with a UTC offset other than zero (Shopify: '2024-05-01 10:00:00 -0400') while the later stages
    count the days of `business_zone` "UTC": the instants are right, but a snapshot's midnight and a purchase day are
    UTC's, not the shop's. Reads an even sample of at most UTC_OFFSET_SAMPLE values. None otherwise."""
    column = labels.get("ordered_at")
    if business_zone != "UTC" or column not in frame.columns:
        return None
    values = frame[column].iloc[::max(1, len(frame) // UTC_OFFSET_SAMPLE)].dropna()
    if not len(values) or not (pd.api.types.is_object_dtype(values.dtype) or pd.api.types.is_string_dtype(values.dtype)):
        return None
    text = values.astype("str").str.strip()
    found = text.str.extract(UTC_OFFSET).dropna().astype(object)
    sign = np.where(found[0].to_numpy() == "-", -1, 1)
    minutes = pd.Series(sign * (found[1].to_numpy(dtype=int) * 60 + found[2].to_numpy(dtype=int)), index=found.index)
    minutes = minutes[(minutes != 0) & (minutes.abs() <= 14 * 60)]
    if len(minutes) < 0.5 * len(text):
        return None
    top = int(minutes.value_counts().index[0])
    offset = f"{'+' if top > 0 else '-'}{abs(top) // 60:02d}:{abs(top) % 60:02d}"
    clock = f"{top % 1440 // 60:02d}:{top % 60:02d}{' the evening before' if top < 0 else ''}"
    example = text.loc[minutes.index[minutes == top][0]]
    return (f"{column} writes its times with a UTC offset ({offset} on {(minutes == top).sum() / len(text):.0%} of "
            f"them, e.g. {example!r}): they are read as the instants they name, but the later stages count UTC days "
            f"(features.timezone, by default the transactions source's timezone, is UTC), so a snapshot's midnight "
            f"is {clock} at {offset} and one evening's orders can fall on two days. Set features.timezone to the "
            "shop's time zone (an IANA name such as America/New_York) and re-run")


def unset_zone_note(
    zoneless: Mapping[str, tuple[str, pd.Timestamp]], *, setting: str, business_zone: str
) -> str | None:
    """A note when times without a zone (`zoneless`: per column label, a value as written and the UTC instant it was
    read as) were read as UTC because the export's `timezone` (`setting`.timezone) is unset, while the later stages
    count the days of `business_zone`: if the export writes local times, as shop systems do, every such time is off
    by the zone's offset, and a date without a time of day falls on the day before. None without any."""
    if not zoneless:
        return None
    written, instant = next(iter(zoneless.values()))
    there = instant.tz_convert(business_zone)
    day = (", the day before" if there.date() < instant.date() else
           ", the day after" if there.date() > instant.date() else "")
    columns = ", ".join(zoneless)
    return (f"{columns} write{'s' if len(zoneless) == 1 else ''} times without a zone (e.g. {written!r}) and "
            f"{setting}.timezone is not set, so they are read as UTC, while the days counted are {business_zone}'s "
            f"(features.timezone): that one falls on {there:%Y-%m-%d} at {there:%H:%M} there{day}. If the export "
            f"writes local times, set {setting}.timezone: {business_zone}; if UTC, set {setting}.timezone: UTC to say "
            "so")


def resolved_without_close_note(
    typed: pd.DataFrame, origin: pd.DataFrame, kept: np.ndarray, *, resolved: str
) -> str | None:
    """A note when kept tickets (`kept`: rows of `typed`, a parsed support_tickets frame with its `status_known_at`)
    are resolved but have no closed_at (a help desk's Status mapped onto resolved, its resolution time left
    unmapped): they count as open until the export's newest time (status_known_at) and as resolved after it, with
    no resolution time. Counts them per file of `origin`; None when there are none. `resolved`: the label of the
    resolved column."""
    rows = resolved_without_close(typed, kept)
    if not rows.any():
        return None
    files = origin["source_file"].astype("str").to_numpy()[rows]
    per_file = pd.Series(files).str.rsplit("/", n=1).str[-1].value_counts(sort=True)
    customers = typed["customer_id"].to_numpy()[rows]
    count = int(pd.Series(customers).nunique())
    where = ", ".join(f"{file}: {n:,}" for file, n in per_file.items())
    newest = typed["status_known_at"][rows].max()
    return (f"{int(rows.sum()):,} of {int(kept.sum()):,} tickets are resolved by {resolved} but have no closed_at "
            f"({where}): each counts as open until the export's newest time ({newest:%Y-%m-%d %H:%M} UTC, the "
            "latest time of any kept ticket) and as resolved from then on, so snapshots after the export (the "
            "scoring day's) see it resolved, but earlier ones see it open (open_tickets, unresolved_share and the "
            "actions that read them), and its resolution time is unknown (resolution_hours_mean leaves it out); "
            f"{count:,} customer{'s' * (count != 1)}. Map the export's resolution time onto closed_at with its rename "
            "(e.g. {Resolved time: closed_at} for Freshdesk, {Solved at: closed_at} for Zendesk); an export without "
            "one cannot tell when they were resolved")


CLOSED_BEFORE_REPLY_SHARE = 0.05  # of the kept tickets with both times: a reply after closing now and then is real


def closed_before_reply_note(typed: pd.DataFrame, kept: np.ndarray, *, labels: Mapping[str, str]) -> str | None:
    """A note when at least CLOSED_BEFORE_REPLY_SHARE of the kept tickets (`kept`: rows of `typed`, a parsed
    support_tickets frame) that have both a closed_at and a first_response_at (and at least 10 of them) are closed
    before their first response: a help desk seldom replies after closing, so one of the two columns may not hold what
    it is mapped as (Kaggle's synthetic Customer Support Ticket Dataset: 49% of its closed tickets). The rows are kept,
    and their durations read as they are. `labels`: the file columns mapped onto the contract's. None otherwise."""
    closed, replied = typed["closed_at"], typed["first_response_at"]
    both = kept & closed.notna().to_numpy() & replied.notna().to_numpy()
    before = both & (closed < replied).fillna(False).to_numpy(dtype=bool)
    count, total = int(before.sum()), int(both.sum())
    if total < 10 or count < CLOSED_BEFORE_REPLY_SHARE * total:
        return None
    first = int(np.flatnonzero(before)[0])
    closing, reply = labels.get("closed_at", "closed_at"), labels.get("first_response_at", "first_response_at")
    gap = _duration((replied - closed)[before].median())
    return (f"{count:,} of the {total:,} tickets with both times ({count / total:.0%}) are closed before their first "
            f"response ({closing} before {reply}, by {gap} in the median; e.g. ticket "
            f"{typed['ticket_id'].iloc[first]!r}: {reply} {replied.iloc[first]:%Y-%m-%d %H:%M}, "
            f"{closing} {closed.iloc[first]:%Y-%m-%d %H:%M} UTC). A help "
            "desk seldom replies after closing a ticket, so one of the two columns may not hold what it is mapped as; "
            "the tickets are kept, and first_response_hours_mean and resolution_hours_mean read both times as they "
            "are. Check the mapping of closed_at and first_response_at, or leave out the one the export gets wrong")


LONG_FIRST_WAIT = pd.Timedelta(days=30)  # a median wait for a first reply beyond this is no help desk's


def late_first_response_note(typed: pd.DataFrame, kept: np.ndarray, *, labels: Mapping[str, str]) -> str | None:
    """A note when the kept tickets (`kept`: rows of `typed`, a parsed support_tickets frame) with a first_response_at
    (at least 10 of them) get it more than LONG_FIRST_WAIT after their opened_at in the median: opened_at is then
    probably not when they were opened (Kaggle's Customer Support Ticket Dataset gives no opening time; mapped from its
    Date of Purchase, every ticket waited 1.4 to 3.4 years for a first reply and was open since the purchase). The rows
    are kept. `labels`: the file columns mapped onto the contract's. None otherwise."""
    opened, replied = typed["opened_at"], typed["first_response_at"]
    both = kept & opened.notna().to_numpy() & replied.notna().to_numpy()
    if both.sum() < 10:
        return None
    waits = (replied - opened)[both]
    median = waits.median()
    if median <= LONG_FIRST_WAIT:
        return None
    first = waits.index[int(np.argmax((waits > LONG_FIRST_WAIT).to_numpy()))]
    opening, reply = labels.get("opened_at", "opened_at"), labels.get("first_response_at", "first_response_at")
    return (f"the first response comes {_duration(median)} after the opening in the median ({int(both.sum()):,} "
            f"tickets with both times; e.g. ticket {typed['ticket_id'].loc[first]!r}: {opening} "
            f"{opened.loc[first]:%Y-%m-%d %H:%M}, {reply} {replied.loc[first]:%Y-%m-%d %H:%M} UTC). A help desk "
            f"answers within hours or days, so {opening} may not be when the tickets were opened (a purchase date?); "
            "each ticket counts as open from it on (open_tickets, unresolved_share, tickets_<w>d count it then) and "
            "first_response_hours_mean reads these waits. Map the tickets' own creation time onto opened_at")


def _duration(delta: pd.Timedelta) -> str:
    """'35 minutes', '5 hours', '3 days': a positive duration, rounded."""
    minutes = delta.total_seconds() / 60
    if minutes < 120:
        return f"{minutes:.0f} minute{'s' * (round(minutes) != 1)}"
    return f"{minutes / 60:.0f} hours" if minutes < 48 * 60 else f"{minutes / 1440:,.0f} days"


MIN_ID_MATCH = 0.5  # a source whose customer ids match transactions' less than this gets a note
MIN_IDS_TO_JUDGE = 20
MIN_ONE_ORDER_CUSTOMERS = 50  # with this many customers and nearly none with a second order, ids name orders
ONE_ORDER_SHARE = 0.995  # ... that is, with at most 1 in 200 ids holding a second order
ONE_ORDER_SAMPLE = 200_000  # lines looked at first for a customer with a second order
ORDER_TOTAL_SHARE = 0.9  # orders whose lines differ in product or quantity yet all give one amount: an order's total
ORDER_TOTAL_MIN_ORDERS = 50  # ... on each line, when this share of at least this many such orders does
FREE_ORDER_SHARE = 0.05  # orders whose every line is worth 0 (free trials, samples, replacements) above this share ...
FREE_ORDER_MIN = 50  # ... and at least this many get a note: each counts as a purchase
GAP_DAYS = 28  # a span of this many days with fewer than GAP_SHARE of the orders of the spans before and after it
GAP_SHARE = 0.25  # ... (each with at least GAP_MIN_ORDERS) looks like a missing export file: labels there are wrong
# Orders, not lines: a wholesaler's order of 40 lines is one purchase, and counting its lines made a month of 5 orders
# against 12 look like a gap (the lines of one order are not independent draws).
GAP_MIN_ORDERS = 30
SHOWN_DIPS = 3  # the other quiet spans named by the days around them
TAIL_DAYS = 7  # the shortest quiet end of the data that is named (a partial last day or two is no matter) ...
TAIL_MAX_DAYS = 2 * GAP_DAYS  # ... and the longest (a longer quiet end is a shop's decline, e.g. a cohort's)
TAIL_BASELINE_DAYS = 365  # a quiet end is quiet against the GAP_DAYS before it and against this many days before it
GAP_BUSY_DAYS = 0.25  # ... and purchases on at least this share of their days (billing once a month is no gap)
OUTSIZED_SHARE = 0.02  # one customer id with this share of the orders ...
OUTSIZED_RATIO = 10  # ... and this many times the orders of any other: a placeholder (guests under '0')


def _without_leading_zeros(digits: pl.Expr) -> pl.Expr:
    """Digit text without its leading zeros ('00123' -> '123'; all zeros, or none: '0')."""
    unpadded = digits.str.strip_chars_start("0")
    return pl.when(unpadded == "").then(pl.lit("0")).otherwise(unpadded)


# A number with at most a short prefix or suffix of letters ('C-00123', 'CUST123', '123-AB'): the digits name it.
NUMBERED_ID_PATTERN = r"^[A-Za-z]{0,4}[\W_]*[0-9][0-9\W_]*[A-Za-z]{0,4}$"


def _loose_ids(ids: pa_arrow.Array) -> pa_arrow.Array:
    """Ids as a diagnosis compares them (never joined on): the digits without leading zeros when an id is a number
    with at most a short prefix or suffix ('C-00123' -> '123'), else the lower-case letters and digits ('Ab_c' ->
    'abc', 'Ann.Lee2@X.com' -> 'annlee2xcom': e-mail addresses that merely hold the same digits are not alike)."""
    text = pl.col("id")
    digits = _without_leading_zeros(text.str.replace_all(r"[^0-9]", ""))
    letters = text.str.to_lowercase().str.replace_all(r"[^a-z0-9]", "")
    loose = pl.when(text.str.contains(NUMBERED_ID_PATTERN)).then(digits).otherwise(letters)
    return pl.DataFrame({"id": pl.Series(ids)}).select(loose.alias("id"))["id"].to_arrow()


def _same_but_for_case(ids: pa_arrow.Array, others: pa_arrow.Array) -> tuple[str, str] | None:
    """The first id of `ids` that an id of `others` writes in another case, and that one; None when there is none."""
    frames = [pl.DataFrame({"id": pl.Series(values)}).with_columns(pl.col("id").str.to_lowercase().alias("key"))
              for values in (ids, others)]
    pairs = frames[0].join(frames[1], on="key", how="inner", suffix="_other", maintain_order="left").filter(
        pl.col("id") != pl.col("id_other")).head(1)
    return None if pairs.is_empty() else (pairs["id"][0], pairs["id_other"][0])


def distinct_ids(frame: pd.DataFrame) -> pa_arrow.Array:
    """The distinct customer ids of a validated frame, in order of first appearance (text)."""
    ids = pa_arrow.array(frame["customer_id"], type=pa_arrow.large_string())
    return pa_compute.unique(pa_compute.drop_null(ids))


def _share_in(values: pa_arrow.Array, others: pa_arrow.Array) -> float:
    """Share of `values` found among `others` (0 when there are no values)."""
    found = pa_compute.is_in(values, value_set=others.cast(values.type))
    return float(pa_compute.mean(pa_compute.cast(found, pa_arrow.float64())).as_py() or 0.0)


def id_match_notes(distinct: Mapping[str, pa_arrow.Array], *, id_case: str = "keep") -> dict[str, str]:
    """A note per source whose customer ids (`distinct`: each source's `distinct_ids`) do not match the transactions'
    ones (ids split silently between sources): feedback, tickets and loyalty events when less than MIN_ID_MATCH of
    their distinct ids are
    transaction customers; the customers source when less than that of the transaction customers are in it
    (it may list customers who never bought). The note says when the ids match once case is folded (with
    `id_case` keep: then it names ingest.id_case: lower and shows one id written both ways), or once written alike
    (`_loose_ids`), and shows an example of each side."""
    buyers = distinct["transactions"]
    notes = {}
    for name, ids in distinct.items():
        if name == "transactions" or len(ids) == 0:
            continue
        measured, against = (buyers, ids) if name == "customers" else (ids, buyers)
        if len(measured) < MIN_IDS_TO_JUDGE or len(against) == 0:
            continue
        share = _share_in(measured, against)
        if share >= MIN_ID_MATCH:
            continue
        what = (f"only {share:.0%} of the transaction customers are in {name}" if name == "customers" else
                f"only {share:.0%} of {name}'s {len(ids):,} customer ids are transaction customers")
        example = f"(e.g. {name} {ids[0].as_py()!r}, transactions {buyers[0].as_py()!r})"
        folded_share = 0.0 if id_case != "keep" else _share_in(pa_compute.utf8_lower(measured),
                                                                 pa_compute.utf8_lower(against))
        pair = _same_but_for_case(ids, buyers) if folded_share >= max(MIN_ID_MATCH, share + 0.3) else None
        if pair is not None:
            notes[name] = (f"{what} (e.g. {name} {pair[0]!r}, transactions {pair[1]!r}); {folded_share:.0%} would be "
                           "if letter case did not count: set ingest.id_case: lower (every source's ids are then read "
                           "in lower case), or those features stay empty")
            continue
        loose_share = _share_in(_loose_ids(measured), _loose_ids(against))
        if loose_share >= max(MIN_ID_MATCH, share + 0.3):
            notes[name] = (f"{what} {example}; {loose_share:.0%} would be if only their digits counted (no prefix, "
                           "punctuation or leading zeros): the two exports write the same ids differently, and those "
                           "features stay empty until they match (fix the export; ingest.id_case folds case)")
        else:
            notes[name] = (f"{what} {example}: check that both sources use the same customer ids; features from "
                           f"{name} are empty for the others")
    return notes


def split_id_note(ids: pa_arrow.Array, *, id_case: str) -> str | None:
    """A note when some distinct customer ids of a source (`distinct_ids`) differ only in case (with ingest.id_case
    keep), in the leading zeros of an all-digit id, or in blanks and punctuation ('AB12'/'ab12', '00123'/'123', 'La
    Rochelle Gifts'/'La  Rochelle Gifts', 'Mini Gifts Ltd.'/'Mini Gifts Ltd': an export keyed by names): one customer
    may be counted as two; None otherwise. Nothing is merged: the note says how many such groups there are, with an
    example."""
    if len(ids) < 2:
        return None

    def key(text: pl.Expr) -> pl.Expr:
        return (pl.when(text.str.contains(r"^[0-9]+$"))
                .then(_without_leading_zeros(text))
                .otherwise(text.str.to_lowercase() if id_case == "keep" else text))

    loose = pl.col("id").str.replace_all(r"[^\p{L}\p{N}]", "")  # letters and digits only
    groups = (pl.DataFrame({"id": pl.Series(ids)}).lazy()
              .with_columns(key(pl.col("id")).alias("strict"), key(loose).alias("key"))
              .filter((pl.col("key") != "") & pl.col("key").is_duplicated())
              .sort("key", "id")
              .collect())
    if groups.is_empty():
        return None
    count = groups["key"].n_unique()
    spelled = groups["strict"].n_unique() > count  # a group whose ids differ in more than case and leading zeros
    kinds = [*(["case"] if id_case == "keep" else []), "leading zeros", *(["blanks", "punctuation"] if spelled else [])]
    how = " or ".join([", ".join(kinds[:-1]), kinds[-1]]) if len(kinds) > 1 else kinds[0]
    first = groups["id"].head(2).to_list()
    fix = "set ingest.id_case: lower if case does not matter; " if id_case == "keep" else ""
    spelling = ("; no setting merges ids that differ in blanks or punctuation: correct them in the export where they "
                "name one customer") if spelled else ""
    return (f"{count:,} customer id{'s are' if count != 1 else ' is'} written more than one way (differing only in "
            f"{how}, e.g. {first[0]!r} and {first[1]!r}), each way counted as another customer; {fix}check the "
            f"export for dropped leading zeros (a spreadsheet drops them){spelling}")


def _dips(total: np.ndarray, busy: np.ndarray, span: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start day, orders during, orders in the quieter side's span) of every `span`-day span holding fewer than
    GAP_SHARE of the orders of the `span` days before it and of the `span` days after it, each of those with at least
    GAP_MIN_ORDERS orders on at least GAP_BUSY_DAYS of its days. `total`, `busy`: cumulative sums of the daily orders
    and of the days with any (a leading 0)."""
    start = np.arange(span, len(total) - 2 * span)

    def side(first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return total[first + span] - total[first], busy[first + span] - busy[first]

    (before, before_days), (after, after_days) = side(start - span), side(start + span)
    during = total[start + span] - total[start]
    around = np.minimum(before, after)
    dips = ((around >= GAP_MIN_ORDERS) & (np.minimum(before_days, after_days) >= GAP_BUSY_DAYS * span)
            & (during < GAP_SHARE * around))
    return start[dips], during[dips], around[dips]


def order_gap_note(
    result: SourceResult, *, timezone: str = "UTC", per_day: tuple[int, np.ndarray] | None = None
) -> str | None:
    """A note when the orders of the validated transactions (`result`) nearly stop for a while between two
    busy spans: some span of GAP_DAYS days (or 2, 4, 8... times that, so that a long hole is seen too) holds fewer
    than GAP_SHARE of the orders of both the span before and the span after it, each busy (`_dips`). That is what a
    missing export file looks like (or a closure): every snapshot whose label window covers it sees its customers as
    not buying. The note names the quiet days around the deepest such dip (days with fewer than GAP_SHARE of the
    daily orders around it) and how many other dips there are; None otherwise. A shop that grows from nothing, a
    seasonal peak and a holiday week stay quiet: only a dip below both neighbours counts. Days are those of
    `timezone`, the business zone (`per_day`: `orders_per_day` of them, when already counted)."""
    first, lines = per_day or orders_per_day(result, timezone)
    if not len(lines):
        return None
    total, busy = np.r_[0, np.cumsum(lines)], np.r_[0, np.cumsum(lines > 0)]
    spans = [GAP_DAYS * 2**k for k in range(12) if 3 * GAP_DAYS * 2**k <= len(lines)]
    found = [(span, *_dips(total, busy, span)) for span in spans]
    found = [(span, start, during, around) for span, start, during, around in found if len(start)]
    if not found:
        return None
    covered = np.zeros(len(lines) + 1, dtype=np.int64)  # the days inside some dip, to count separate dips
    for span, start, _, _ in found:
        np.add.at(covered, start, 1)
        np.add.at(covered, start + span, -1)
    inside = np.cumsum(covered[:-1]) > 0
    # each separate dip: the days [first, last] covered by the spans found in it
    dip_firsts = np.flatnonzero(inside & ~np.r_[False, inside[:-1]])
    dip_lasts = np.flatnonzero(inside & ~np.r_[inside[1:], False])
    # The deepest dip of each length, and of those the deepest; among equally deep ones, the busiest around.
    deepest = [(span, start, during, around, int(np.lexsort((-around / span, during / around))[0]))
               for span, start, during, around in found]
    span, start, during, around, worst = min(
        deepest, key=lambda dip: (dip[2][dip[4]] / dip[3][dip[4]], -dip[3][dip[4]] / dip[0]))
    rate = around[worst] / span  # orders a day around the deepest dip
    quiet = lines < GAP_SHARE * rate
    within = start[worst] + np.flatnonzero(quiet[start[worst]:start[worst] + span])
    busy_before, busy_after = np.flatnonzero(~quiet[:within[0]]), np.flatnonzero(~quiet[within[-1]:])
    low = busy_before[-1] + 1 if len(busy_before) else 0  # the quiet days, widened over those on each side
    high = within[-1] + busy_after[0] if len(busy_after) else len(lines)
    around_them = "them"
    if low >= span and high + span <= len(lines):  # the spans just outside the quiet days, when the data hold them
        rate = min(total[low] - total[low - span], total[high + span] - total[high]) / span
    else:
        around_them = f"the quietest {span} of them"
    day = np.datetime64("1970-01-01") + np.timedelta64(first, "D")
    begin, end = day + np.timedelta64(int(low), "D"), day + np.timedelta64(int(high) - 1, "D")
    apart = (dip_lasts < low) | (dip_firsts >= high)  # the dips besides the one named
    shown = [f"{day + np.timedelta64(int(a), 'D')} to {day + np.timedelta64(int(b), 'D')}"
             for a, b in zip(dip_firsts[apart][:SHOWN_DIPS], dip_lasts[apart][:SHOWN_DIPS], strict=True)]
    count = int(apart.sum())
    others = (f" (and {count} more such span{'s' * (count > 1)}, within {', '.join(shown)}"
              f"{', ...' if count > SHOWN_DIPS else ''})" if count else "")
    quiet = int(lines[low:high].sum())
    return (f"purchases nearly stop from {begin} to {end}{others}: {quiet:,} order{'s' * (quiet != 1)} in "
            f"those {high - low} days ({_whose_days(timezone)}), against an average of at least {int(rate):,} a day in "
            f"the {span} days before and after {around_them}. A missing export file, or a closure? Every snapshot "
            "whose label window covers those days counts its customers as not buying then; add the missing orders, or "
            "leave those snapshots out (features.snapshots)")


def _whose_days(timezone: str) -> str:
    return "UTC" if timezone == "UTC" else f"days of {timezone}"


def differs_from_row_above(columns: Sequence[str]) -> pl.Expr:
    """True on a row whose value in any of `columns` differs from the row above's (missing counts as a value; the
    first row: unless all its values are missing): where a run of equal rows starts."""
    return pl.any_horizontal(pl.col(column).ne_missing(pl.col(column).shift(1)) for column in columns)


def orders_per_day(result: SourceResult, timezone: str = "UTC") -> tuple[int, np.ndarray]:
    """(the first day of `timezone` (the business zone), as days since 1970-01-01; the orders with a purchase line
    (`purchase_lines`) of the validated transactions `result` (ordered_at, order_id, amount) on each day from it to the
    last: an order counts once on each day it has a purchase line); an empty array without purchases."""
    purchase = purchase_lines(result.validated).to_numpy()
    if not purchase.any():
        return 0, np.zeros(0, dtype=np.int64)
    # the wall clock of the business zone: its days are the ones the later stages count
    at = in_business_time_pandas(result.validated[["ordered_at"]], timezone)["ordered_at"]
    days = at.to_numpy(dtype="datetime64[us]").astype(np.int64)[purchase] // 86_400_000_000
    orders = pl.from_pandas(result.validated["order_id"]).filter(pl.Series(purchase))
    pairs = pl.DataFrame({"day": days, "order_id": orders})
    # an order's lines lie together in most exports: dropping a pair equal to the one above leaves few to hash
    pairs = pairs.filter(differs_from_row_above(pairs.columns))
    days = pairs.unique()["day"].to_numpy()
    first = int(days.min())
    return first, np.bincount(days - first)


def thin_end_note(
    result: SourceResult, *, timezone: str = "UTC", per_day: tuple[int, np.ndarray] | None = None
) -> str | None:
    """A note when the orders of the validated transactions (`result`) nearly stop over the data's last days:
    the last L days (TAIL_DAYS <= L <= TAIL_MAX_DAYS) hold fewer than GAP_SHARE of the orders a day of the GAP_DAYS
    days before them (at least GAP_MIN_ORDERS, on at least GAP_BUSY_DAYS of those days) and of the TAIL_BASELINE_DAYS
    before them (so that the end of a seasonal peak is no quiet end); of such L, the one whose days
    are quietest against the days before them, narrowed to the last days with fewer than GAP_SHARE of its orders a day
    (at least TAIL_DAYS of them, after at least GAP_DAYS of data). Late rows past the export's real end (a test
    order, a pre-order, a time zone slip) or an export taken while orders were still being written look like that:
    the data's end is its latest order, so the label windows ending in those days count their customers as not
    buying. None otherwise. Days are those of `timezone`, the business zone (ingest.latest counts them too;
    `per_day`: `orders_per_day` of them, when already counted)."""
    first, lines = per_day or orders_per_day(result, timezone)
    days = len(lines)
    if days < GAP_DAYS + TAIL_DAYS:
        return None
    total, busy = np.r_[0, np.cumsum(lines)], np.r_[0, np.cumsum(lines > 0)]
    length = np.arange(TAIL_DAYS, min(TAIL_MAX_DAYS, days - GAP_DAYS) + 1)
    start = days - length
    during = total[days] - total[start]
    before = total[start] - total[start - GAP_DAYS]
    year = np.maximum(start - TAIL_BASELINE_DAYS, 0)  # and quiet against the year before: a peak's end is no gap
    thin = ((before >= GAP_MIN_ORDERS) & (busy[start] - busy[start - GAP_DAYS] >= GAP_BUSY_DAYS * GAP_DAYS)
            & (during * GAP_DAYS < GAP_SHARE * before * length)
            & (during * (start - year) < GAP_SHARE * (total[start] - total[year]) * length))
    if not thin.any():
        return None
    quietest = np.flatnonzero(thin)[np.argmin((during * GAP_DAYS / (before * length))[thin])]
    loud = np.flatnonzero(lines >= GAP_SHARE * before[quietest] / GAP_DAYS)  # the last such day ends the quiet ones
    begin = int(loud[-1]) + 1 if len(loud) else 0
    if days - begin < TAIL_DAYS or begin < GAP_DAYS:
        return None
    quiet, rate = int(total[days] - total[begin]), (total[begin] - total[begin - GAP_DAYS]) / GAP_DAYS
    day = np.datetime64("1970-01-01") + np.timedelta64(first, "D")
    start, end = day + np.timedelta64(begin, "D"), day + np.timedelta64(days - 1, "D")
    last_busy = start - np.timedelta64(1, "D")
    return (f"purchases nearly stop over the data's last {days - begin} days, {start} to {end}: {quiet:,} "
            f"order{'s' * (quiet != 1)} ({_whose_days(timezone)}), against an average of {rate:,.0f} a day in the "
            f"{GAP_DAYS} days before. Late rows past the export's real end (a test order, a pre-order, a time zone "
            "slip), orders not yet written when it was exported, or a closure? The data's end is its latest order "
            f"({end}), so every snapshot whose label window ends in those days counts its customers as not buying "
            f"then; end the data on the last busy day (ingest.latest: {last_busy}), or leave those snapshots out "
            "(features.snapshots)")


def orders_per_customer(lines: pd.DataFrame) -> pl.DataFrame:
    """Per customer of `lines` (customer_id, order_id): its distinct orders (`orders`), most first."""
    return (pl.from_pandas(lines[["customer_id", "order_id"]]).lazy().group_by("customer_id")
            .agg(pl.col("order_id").n_unique().alias("orders")).sort("orders", descending=True).collect())


def one_order_each_note(result: SourceResult) -> str | None:
    """A note when at least ONE_ORDER_SHARE of the customer ids of the validated transactions (`result`, at least
    MIN_ONE_ORDER_CUSTOMERS of them) have exactly one order: customer_id then looks like an id per order (an order
    export's own customer key), with which nobody buys again; None otherwise. A real shop of one-time buyers stays
    below that share (a few in a hundred come back)."""
    frame = result.validated
    if len(frame) < MIN_ONE_ORDER_CUSTOMERS:
        return None
    head = orders_per_customer(frame.head(ONE_ORDER_SAMPLE))  # among the first lines, repeat buyers settle it cheaply
    if (head["orders"] == 1).mean() < ONE_ORDER_SHARE:
        return None
    counts = orders_per_customer(frame) if len(frame) > ONE_ORDER_SAMPLE else head
    single = (counts["orders"] == 1).mean()
    if counts.height < MIN_ONE_ORDER_CUSTOMERS or single < ONE_ORDER_SHARE:
        return None
    share = "each" if single == 1 else f"{single:.1%}"
    return (f"{share} of the {counts.height:,} customer ids {'has' if single == 1 else 'have'} exactly one order: "
            "customer_id looks like an id per order (an order system's own customer key), so nobody buys again and "
            "churn cannot be learned; map the column that names the person, or take it from a customers table with "
            "sources.transactions.lookup")


def free_orders(lines: pd.DataFrame) -> tuple[int, int]:
    """(orders of `lines` (order_id, amount) whose every line has amount 0, all orders)."""
    orders = (pl.from_pandas(lines[["order_id", "amount"]]).lazy().group_by("order_id")
              .agg((pl.col("amount") == 0).all().alias("free")).collect())
    return int(orders["free"].sum()), orders.height


def free_order_note(result: SourceResult) -> str | None:
    """A note when at least FREE_ORDER_SHARE of the orders of the validated transactions (`result`; at least
    FREE_ORDER_MIN of them) are worth 0 on every line: free trials, samples or replacements, each of which counts as
    a purchase (recency, frequency, and a customer with one in the label window is not churned); None otherwise."""
    frame = result.validated
    head = frame.head(ONE_ORDER_SAMPLE)  # the first lines settle it cheaply for most exports
    free, total = free_orders(head)
    if free < FREE_ORDER_SHARE * total:
        return None
    if len(frame) > len(head):
        free, total = free_orders(frame)
    if free < max(FREE_ORDER_MIN, FREE_ORDER_SHARE * total):
        return None
    return (f"{free:,} of the {total:,} orders ({free / total:.0%}) are worth 0 on every line (free trials, samples, "
            "replacements?): each counts as a purchase, in recency and frequency, and a customer with one after a "
            "snapshot is not labelled churned. If they are not purchases for this business, leave them out with "
            "sources.transactions.exclude on the column that marks them (a status, a billing reason) or on the "
            "amount column as the export writes it (e.g. ['0', '0.00'])")


def order_total_note(result: SourceResult) -> str | None:
    """A note when at least ORDER_TOTAL_SHARE of the orders of the validated transactions (`result`) whose purchase
    lines differ in product_id or quantity (at least ORDER_TOTAL_MIN_ORDERS of them) give the same amount on every
    line: amount then looks like the order's total written on each of its lines, which counts the order once per
    line; None otherwise. Without product_id and quantity, lines cannot be told apart: None. The first
    ONE_ORDER_SAMPLE lines settle it when they hold enough such orders and few look like that."""
    frame = result.validated
    told_apart = [c for c in ("product_id", "quantity") if c in frame and frame[c].notna().any()]
    if not told_apart or frame["amount"].min() == frame["amount"].max():  # one amount on every line tells no total
        return None
    priced = all(c in frame and frame[c].notna().any() for c in ("quantity", "unit_price"))
    head = _orders_with_one_amount(frame.head(ONE_ORDER_SAMPLE), told_apart, priced=priced)
    if head.height >= ORDER_TOTAL_MIN_ORDERS and head["same"].mean() < ORDER_TOTAL_SHARE:
        return None
    orders = _orders_with_one_amount(frame, told_apart, priced=priced) if len(frame) > ONE_ORDER_SAMPLE else head
    if orders.height < ORDER_TOTAL_MIN_ORDERS or orders["same"].mean() < ORDER_TOTAL_SHARE:
        return None
    example = orders.filter(pl.col("same")).row(0, named=True)
    return (f"in {orders['same'].mean():.0%} of the {orders.height:,} orders whose lines differ in "
            f"{' or '.join(told_apart)}, every line gives the same amount (e.g. order {example['order_id']!r}: "
            f"{example['lines']} lines of {example['amount']:,.2f} each): amount looks like the order's total written "
            "on each of its lines, which counts the order once per line. Map the line's own amount, or leave amount "
            "unmapped to derive it from quantity × unit_price")


def constant_money_note(source: SourceConfig) -> str | None:
    """A note when an export of transactions (`source`) gives amount, or the unit_price it is derived from, by
    `constants` (an export with no money, such as a purchase log of items): every sum of money downstream is then a
    count of lines times that constant; None otherwise."""
    given = [(export_setting("transactions", number), column, export.constants[column])
             for number, export in enumerate(source.exports()) for column in ("amount", "unit_price")
             if column in export.constants]
    if not given:
        return None
    setting, column, value = given[0]
    return (f"{column} is the constant {value} on every line ({setting}.constants): the export gives no money, so "
            "spend, order value, customer_value, the actions' expected gains and what score.budget buys count lines "
            f"times {value}, not money; the reasons leave spend out (no 'spent only ...' or 'average order worth ...')")


DISCOUNT_SHARE_MIN_LINES = 20  # discounted lines, every discount below 1, ...
DISCOUNT_SHARE_LINE_VALUE = 10.0  # ... on lines worth at least this in the median: shares (0.15 = 15% off)?


def discount_share_note(result: SourceResult, source: SourceConfig) -> str | None:
    """A note when the validated transactions (`result`) hold discounts read as money (no export of `source` sets
    discount_is: share) while every discount of at least DISCOUNT_SHARE_MIN_LINES discounted lines lies between 0 and
    1 on lines worth DISCOUNT_SHARE_LINE_VALUE or more in the median: such discounts are shares of the line's price
    (Northwind's 0.15 on a line of 168.00 is 25.20 off). Beside a derived amount, read as money they leave nearly
    every discount in the spend; beside a given amount (Tableau Superstore's Sales after its Discount of 0.2), the
    validated discount is a fraction of the money. None otherwise."""
    if any(export.discount_is == "share" for export in source.exports()):
        return None
    derived = "amount" in result.report.get("derived", {})
    frame = result.validated
    discounted = frame[(frame["discount"] > 0).fillna(False).to_numpy(dtype=bool)]
    if len(discounted) < DISCOUNT_SHARE_MIN_LINES or discounted["discount"].max() >= 1:
        return None
    gross = (discounted["quantity"] * discounted["unit_price"] if derived else discounted["amount"]).abs()
    median = float(gross.median())
    if median < DISCOUNT_SHARE_LINE_VALUE:
        return None
    line = discounted.iloc[int(np.argmax(gross.to_numpy() >= median))]
    share = line["discount"]
    if not derived:
        value = abs(line["amount"])
        return (f"every discount lies between 0 and 1 ({len(discounted):,} discounted lines, e.g. {share:g} on a line "
                f"of order {line['order_id']!r} worth {value:,.2f}) while the discounted lines are worth {median:,.2f} "
                f"in the median: if discount is a share of the line's price ({share:g} = {share:.0%} off), the "
                f"validated discount holds {share:g} of money instead of {value * share / (1 - share):,.2f} (the "
                "amount being after it); set sources.transactions.discount_is: share (discount is read as money "
                "taken off the line)")
    value = abs(line["quantity"] * line["unit_price"])
    return (f"every discount lies between 0 and 1 ({len(discounted):,} discounted lines, e.g. {share:g} on "
            f"a line of order {line['order_id']!r} of {line['quantity']:g} × {_price_text(line['unit_price'])} = "
            f"{value:,.2f}) "
            f"while the discounted lines are worth {median:,.2f} in the median: if discount is a share of the line's "
            f"price ({share:g} = {share:.0%} off), each amount takes off {share:g} "
            f"instead of {share * value:,.2f} and spend keeps nearly every discount; set "
            "sources.transactions.discount_is: share (discount is read as money taken off the line)")


def _orders_with_one_amount(lines: pd.DataFrame, told_apart: list[str], *, priced: bool) -> pl.DataFrame:
    """Per order of the purchase `lines` (amount >= 0) whose lines differ in a `told_apart` column: order_id, lines,
    amount (its first line's), same (every line gives that amount, and, when `priced`, some line's amount is not its
    own quantity x unit_price: in a shop with one price every line gives the same amount of its own)."""
    prices = ["quantity", "unit_price"] if priced else []
    columns = list(dict.fromkeys(["order_id", "amount", *told_apart, *prices]))
    purchases = pl.from_pandas(lines[columns]).lazy().filter(pl.col("amount") >= 0)
    not_own = ((pl.col("amount") - pl.col("quantity") * pl.col("unit_price")).abs() > 0.005).fill_null(True).any()
    return (purchases.group_by("order_id", maintain_order=True)
            .agg(pl.len().alias("lines"), pl.col("amount").first(),
                 ((pl.col("amount").n_unique() == 1) & (not_own if priced else pl.lit(True))).alias("same"),
                 pl.max_horizontal(*(pl.col(c).drop_nulls().n_unique() for c in told_apart)).alias("kinds"))
            .filter(pl.col("kinds") > 1).drop("kinds").collect())


def outsized_id_note(result: SourceResult) -> str | None:
    """A note when one customer id of the validated transactions (`result`) has at least OUTSIZED_SHARE of the orders
    and OUTSIZED_RATIO times as many as any other customer: a placeholder for guest checkouts ('0', 'guest') merging
    many people into one (a wholesaler has many lines, not that many orders); None otherwise. Evenly spaced lines (at
    most ONE_ORDER_SAMPLE) point at a candidate; the figures are the whole data's."""
    frame = result.validated
    sample = orders_per_customer(frame.iloc[::max(1, len(frame) // ONE_ORDER_SAMPLE)])
    if sample.height < MIN_ONE_ORDER_CUSTOMERS or not _outsized(sample["orders"]):
        return None
    counts = orders_per_customer(frame)
    if not _outsized(counts["orders"]):
        return None
    suspect, top, runner_up = counts["customer_id"][0], counts["orders"][0], counts["orders"][1]
    share = top / frame["order_id"].nunique()
    return (f"customer id {suspect!r} has {top:,} orders ({share:.0%} of all), {top / runner_up:,.0f} times as many as "
            f"any other customer (at most {runner_up:,}): if it stands for guest checkouts or a shared account, list it "
            "in ingest.guest_ids to read its rows as anonymous (else they count as one customer)")


def _outsized(orders: pl.Series) -> bool:
    """Whether the first of `orders` (per customer, most first) is OUTSIZED_SHARE of their sum and OUTSIZED_RATIO
    times the second."""
    return orders.len() > 1 and orders[0] >= OUTSIZED_SHARE * orders.sum() and orders[0] >= OUTSIZED_RATIO * orders[1]


def negative_earn_note(result: SourceResult) -> str | None:
    """A note counting the validated loyalty `earn` rows with negative points (None when there are none): the
    features take them off the points balance (a refund's reversal, a manual deduction, as LoyaltyLion exports
    them), which the user should know when the export meant something else by them."""
    frame = result.validated
    if frame.empty or "points" not in frame.columns:
        return None
    negative = int(((frame["kind"] == "earn") & (frame["points"] < 0)).sum())
    if not negative:
        return None
    return (f"{negative:,} earn row{'s have' if negative != 1 else ' has'} negative points (refund reversals or "
            "manual deductions?): they are taken off the points balance, not counted as points earned; if the "
            "export means redemptions or expiries by them, map those words to redeem or expire with recode")


# A category with more distinct values than max(IDENTIFIER_VALUES, IDENTIFIER_SHARE x the customers holding one) is
# an identifier (an e-mail, a name, a free-text note), not a group of customers.
IDENTIFIER_VALUES = 50
IDENTIFIER_SHARE = 0.5


def identifier_attribute_notes(
    customers: pd.DataFrame, attributes: Sequence[CustomerAttribute], *, read: ReadOptions = ReadOptions()
) -> list[str]:
    """One note per category of `attributes` whose values in `customers` (the validated customers, one row per
    customer) are nearly one per customer: more distinct values than max(IDENTIFIER_VALUES, IDENTIFIER_SHARE x the
    customers holding one). Such a column names people instead of grouping them (an e-mail): the model learns nothing
    from it that holds for other customers, and a reason would quote it. When every value reads as a number (with
    `read`), it may be a quantity listed as a category: the note says how to list it as a number. Numbers are exempt:
    a quantity has many values by nature. [] when none is."""
    notes = []
    for attribute in attributes:
        if attribute.kind != "category" or attribute.feature not in customers.columns:
            continue
        values = customers[attribute.feature].dropna()
        distinct, holders = values.nunique(), len(values)
        if distinct <= max(IDENTIFIER_VALUES, IDENTIFIER_SHARE * holders):
            continue
        said = (f"customer attribute {attribute.column} ({attribute.feature}) has {distinct:,} distinct values among "
                f"the {holders:,} customers holding one")
        if numbers_as_read(values, read).notna().all():
            notes.append(f"{said}, all numbers: as a category each value is a group of its own, so the model learns "
                         "nothing from it that holds for other customers; if it is a quantity (an age, an income, a "
                         f"balance), list it as {{column: {attribute.column}, kind: number}}, else (a code, an id) "
                         "leave it out of sources.customers.attributes")
        else:
            notes.append(f"{said}: nearly one per customer, it names them (an e-mail, a name, a note) rather than "
                         "grouping them, so the model learns nothing from it that holds for other customers and a "
                         "reason would quote it; leave it out of sources.customers.attributes")
    return notes
