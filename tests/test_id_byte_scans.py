"""The byte scans that spare the id checks a string kernel per row agree with Arrow's string kernels on any text."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given
from hypothesis import strategies as st

from pipeline.sources import may_need_trimming, parse_ids, rows_holding_bytes

CHARACTERS = ["a", "7", "+", "#", ".", " ", "\t", "\u00a0", "\u200b", "é", "\x00"]
TEXTS = st.lists(st.one_of(st.none(), st.text(alphabet=st.sampled_from(CHARACTERS), max_size=4)), max_size=12)


def _layouts(values: list[str | None], start: int) -> list[pa.Array | pa.ChunkedArray]:
    """`values` from `start` on as a slice (an array with an offset; 64- and 32-bit offsets) and in two chunks."""
    whole = pa.array(values, type=pa.large_string())
    middle = max(len(whole) // 2, start)
    return [whole.slice(start), whole.cast(pa.string()).slice(start),
            pa.chunked_array([whole.slice(start, middle - start), whole.slice(middle)])]


@given(TEXTS, st.integers(0, 3))
def test_rows_holding_a_byte_are_the_rows_arrow_finds_holding_it(values, start):
    for text in _layouts(values, start):
        for character in ("+", "#", "."):
            holding = pc.fill_null(pc.match_substring(text, character), False).to_numpy(zero_copy_only=False)
            found = rows_holding_bytes(text, lambda data, byte=ord(character): data == byte)
            assert found.tolist() == np.flatnonzero(holding).tolist()


@given(TEXTS, st.integers(0, 3))
def test_text_said_to_need_no_trimming_is_left_as_arrow_trims_it(values, start):
    for text in _layouts(values, start):
        if not may_need_trimming(text):
            assert pc.utf8_trim_whitespace(text).equals(text)


def test_ids_are_trimmed_of_any_whitespace_at_either_end_but_kept_inside():
    ids = pd.Series(["a", " b", "c\u00a0", "d\t", "\u3000e", "f g", "", None, "17850.0"], dtype="str")
    assert parse_ids(ids).tolist()[:6] == ["a", "b", "c", "d", "e", "f g"]
    assert parse_ids(ids).isna().tolist()[6:8] == [True, True] and parse_ids(ids)[8] == "17850"
    assert parse_ids(ids.iloc[5:]).tolist()[0] == "f g"  # a slice: the text starts at an offset
