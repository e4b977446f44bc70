"""The suite's own settings: property tests repeat their examples, so CI fails only on a change."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import HYPOTHESIS_PROFILE_ENV


@pytest.mark.skipif(HYPOTHESIS_PROFILE_ENV in os.environ, reason="another Hypothesis profile was chosen")
def test_property_tests_draw_the_same_examples_on_every_run_by_default():
    drawn = []

    @settings(max_examples=5, deadline=None)  # a test's own settings keep the profile's derandomize
    @given(st.integers())
    def property_test(value):
        drawn.append(value)

    property_test()
    first, drawn[:] = list(drawn), []
    property_test()
    assert drawn == first
    assert settings.default.derandomize and settings.default.database is None
