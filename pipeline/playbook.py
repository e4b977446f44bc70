"""The retention playbook: actions with cost, expected uplift, channel, capacity and eligibility rules.

The playbook is YAML validated by pydantic. Eligibility is data, never code: structured rules
`{feature, operator, value}` combined with `all` / `any` (nested groups allowed). `load_playbook`
fails at start-up with a `ConfigError` that names the action and the rule
(e.g. "playbook action 'loyalty_offer' rule 2: unknown feature 'pointz'").
`eligibility_matrix` evaluates every rule as one vectorised column operation.

Missing values: a rule other than `is_null` / `not_null` is False where the feature is missing
(as in SQL), so `!=` and `not_in` never make a customer with an unknown value eligible.
"""

from __future__ import annotations

import difflib
import importlib.resources
import math
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from pipeline.errors import ConfigError, ScoreError

Operator = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not_in", "is_null", "not_null"]
Scalar = Union[bool, int, float, str]
ORDERED_OPERATORS = ("<", "<=", ">", ">=")
LIST_OPERATORS = ("in", "not_in")
NULL_OPERATORS = ("is_null", "not_null")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Strict):
    """One condition on one feature column."""

    feature: str = Field(min_length=1)
    operator: Operator
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _value_fits_operator(self) -> Rule:
        if self.operator in NULL_OPERATORS:
            if self.value is not None:
                raise ValueError(f"operator '{self.operator}' takes no value")
        elif self.operator in LIST_OPERATORS:
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"operator '{self.operator}' needs a non-empty list value")
        elif self.value is None or isinstance(self.value, list):
            raise ValueError(f"operator '{self.operator}' needs a single value")
        elif self.operator in ORDERED_OPERATORS and not _is_number(self.value):
            raise ValueError(f"operator '{self.operator}' needs a number, got {self.value!r}")
        return self


def _condition_kind(value: Any) -> str:
    if isinstance(value, dict) and ({"all", "any"} & set(value)):
        return "group"
    if isinstance(value, BaseModel):
        return "group" if isinstance(value, RuleGroup) else "rule"
    return "rule"


Condition = Annotated[
    Union[Annotated[Rule, Tag("rule")], Annotated["RuleGroup", Tag("group")]],
    Discriminator(_condition_kind),
]


class RuleGroup(_Strict):
    """`all` (every condition holds) or `any` (at least one holds); an empty `all` holds for everyone."""

    all: list[Condition] | None = None
    any: list[Condition] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> RuleGroup:
        if (self.all is None) == (self.any is None):
            raise ValueError("a rule group needs exactly one of 'all' or 'any'")
        if self.any is not None and not self.any:
            raise ValueError("'any' needs at least one condition")
        return self

    @property
    def combinator(self) -> str:
        return "all" if self.all is not None else "any"

    @property
    def conditions(self) -> list[Rule | RuleGroup]:
        return list(self.all if self.all is not None else self.any or [])


class MeasuredUplift(_Strict):
    """Where a measured uplift came from (written by `churn measure --update-playbook`, pipeline.pooling)."""

    uplift: float | None = None
    low: float | None = None
    high: float | None = None
    confidence: float = Field(0.95, gt=0.0, lt=1.0)
    campaigns: list[str] = Field(default_factory=list)
    n_treatment: int = Field(0, ge=0)
    n_control: int = Field(0, ge=0)
    planned_uplift: float | None = None
    weight: float | None = Field(None, ge=0.0, le=1.0)  # the measurement's share in `uplift` (the plan's: 1 - weight)
    measured_on: str | None = None
    method: str | None = None
    # Campaigns share customers: the intervals were widened by this factor (pipeline.pooling.repeat_factors).
    repeat_factor: float | None = Field(None, ge=1.0)


class Action(_Strict):
    """A retention action. `uplift` is the share of churn it prevents (0..1), `cost` is per customer."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    channel: str = Field(min_length=1)
    cost: float = Field(ge=0.0)
    uplift: float = Field(ge=0.0, le=1.0)
    # How far the planned uplift may be off (a standard deviation): a measured uplift is weighed against the plan by
    # precision (pipeline.pooling.adopted_uplift); by default the planned uplift itself (its order of magnitude).
    uplift_sd: float | None = Field(None, gt=0.0, le=1.0)
    capacity: int | None = Field(None, ge=0)
    eligibility: RuleGroup = RuleGroup(all=[])
    source: str | None = None  # where the cost and uplift assumptions come from
    # Not for customers the BTYD model sees as almost surely gone: btyd_p_alive below this floor makes the
    # action ineligible (an unknown p_alive, or no BTYD features, leaves the action to its rules).
    min_p_alive: float | None = Field(None, ge=0.0, le=1.0)
    measured: MeasuredUplift | None = None  # set when `uplift` carries measured campaigns, not an assumption alone

    @field_validator("cost", "uplift", "uplift_sd")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class Playbook(_Strict):
    """The validated playbook: a non-empty list of uniquely named actions."""

    actions: list[Action] = Field(min_length=1)
    notes: str | None = None
    version: int = Field(1, ge=1)  # raised by `churn measure --update-playbook`
    based_on: str | None = None  # the playbook file this version was derived from

    @field_validator("actions")
    @classmethod
    def _unique_names(cls, actions: list[Action]) -> list[Action]:
        names = [action.name for action in actions]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"action names must be unique; repeated: {duplicates}")
        return actions

    @property
    def names(self) -> list[str]:
        return [action.name for action in self.actions]

    def capacities(self) -> dict[str, int]:
        """Per-action capacity, for the actions that have one."""
        return {a.name: a.capacity for a in self.actions if a.capacity is not None}

    def features_used(self) -> list[str]:
        """Every feature named by any rule, sorted."""
        return sorted({rule.feature for action in self.actions for _, rule in iter_rules(action.eligibility)})


RuleGroup.model_rebuild()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def iter_rules(group: RuleGroup, prefix: str = "") -> Iterator[tuple[str, Rule]]:
    """Yield (label, rule) depth first; labels number conditions from 1 ("2", "3.1" for nested groups)."""
    for position, condition in enumerate(group.conditions, start=1):
        label = f"{prefix}{position}"
        if isinstance(condition, RuleGroup):
            yield from iter_rules(condition, prefix=f"{label}.")
        else:
            yield label, condition


def _rule_label(raw: Mapping[str, Any], loc: tuple[Any, ...]) -> str:
    """'playbook action 'x' rule 2.1' from a pydantic error location inside `raw`."""
    if len(loc) < 2 or loc[0] != "actions" or not isinstance(loc[1], int):
        return "playbook"
    actions = raw.get("actions") or []
    entry = actions[loc[1]] if loc[1] < len(actions) else {}
    name = entry.get("name") if isinstance(entry, dict) else None
    label = f"playbook action '{name}'" if name else f"playbook action {loc[1] + 1}"
    numbers = [str(part + 1) for part in loc[2:] if isinstance(part, int)]
    return f"{label} rule {'.'.join(numbers)}" if numbers else label


def _format_error(exc: ValidationError, raw: Mapping[str, Any], origin: str) -> str:
    lines = [f"invalid playbook {origin}:"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        last = loc[-1] if loc else None
        field = last if isinstance(last, str) and last not in ("rule", "group", "all", "any") else ""
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        lines.append(f"  {_rule_label(raw, loc)}: {field + ': ' if field else ''}{message}")
    return "\n".join(lines)


def playbook_from_dict(
    raw: Any, *, known_features: Collection[str] | Mapping[str, str], origin: str = "<dict>"
) -> Playbook:
    """Validate `raw` into a Playbook and check each rule against `known_features`.

    `known_features` is a collection of feature names, or a mapping name -> kind ("numeric" /
    "categorical") to also check that numeric rules compare numbers and ordered operators are not
    used on categorical features.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid playbook {origin}: the top level must be a mapping with 'actions'")
    try:
        playbook = Playbook.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, raw, origin)) from None
    problems = [
        f"playbook action '{action.name}' rule {label}: {problem}"
        for action in playbook.actions
        for label, rule in iter_rules(action.eligibility)
        if (problem := _rule_problem(rule, known_features))
    ]
    if problems:
        raise ConfigError(f"invalid playbook {origin}:\n  " + "\n  ".join(problems))
    return playbook


def _rule_problem(rule: Rule, known: Collection[str] | Mapping[str, str]) -> str | None:
    if rule.feature not in known:
        close = difflib.get_close_matches(rule.feature, list(known), n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'?" if close else f"known features: {', '.join(sorted(known))}"
        return f"unknown feature '{rule.feature}' ({hint})"
    if not isinstance(known, Mapping) or rule.operator in NULL_OPERATORS:
        return None
    kind = known[rule.feature]
    values = rule.value if isinstance(rule.value, list) else [rule.value]
    if kind == "categorical" and rule.operator in ORDERED_OPERATORS:
        return f"operator '{rule.operator}' cannot order the categorical feature '{rule.feature}'"
    if kind == "categorical" and not all(isinstance(v, str) for v in values):
        return f"categorical feature '{rule.feature}' is compared with text values, got {rule.value!r}"
    if kind == "numeric" and not all(_is_number(v) or isinstance(v, bool) for v in values):
        return f"numeric feature '{rule.feature}' is compared with numbers, got {rule.value!r}"
    return None


def feature_kinds(specs: Iterable[Any]) -> dict[str, str]:
    """Feature name -> 'categorical' or 'numeric' of feature specs (`.name`, `.kind`), for checking playbook rules."""
    return {spec.name: ("categorical" if spec.kind == "categorical" else "numeric") for spec in specs}


STARTER_PLAYBOOK = "starter_playbook.yaml"  # package data of `pipeline`; configs/playbook.yaml is the same file


def starter_playbook_text() -> str:
    """The starter playbook's YAML: the actions with example costs and uplifts, to be replaced by measured ones."""
    return importlib.resources.files("pipeline").joinpath(STARTER_PLAYBOOK).read_text(encoding="utf-8")


def load_playbook(path: Path | str, *, known_features: Collection[str] | Mapping[str, str]) -> Playbook:
    """Read and validate the playbook YAML at `path` (ConfigError naming the action and rule)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"playbook not found: {path} (set score.playbook in the config)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"playbook {path} is not valid YAML: {exc}") from None
    return playbook_from_dict(raw, known_features=known_features, origin=str(path))


def playbook_or_starter(
    path: Path | str, *, starter: bool, known_features: Collection[str] | Mapping[str, str]
) -> Playbook:
    """The playbook at `path`, or the starter playbook when `starter` and no file is there (nothing is written)."""
    if starter and not Path(path).exists():
        return playbook_from_dict(yaml.safe_load(starter_playbook_text()), known_features=known_features,
                                  origin=STARTER_PLAYBOOK)
    return load_playbook(path, known_features=known_features)


def check_playbook_features(features: pd.DataFrame, playbook: Playbook) -> None:
    """Raise ScoreError when a rule names a feature that the feature table lacks."""
    missing = [name for name in playbook.features_used() if name not in features.columns]
    if missing:
        raise ScoreError(
            f"the playbook uses features the feature table does not have: {missing}; "
            "check the playbook against the feature registry"
        )


def _rule_mask(features: pd.DataFrame, rule: Rule) -> np.ndarray:
    column = features[rule.feature]
    present = column.notna().to_numpy()
    if rule.operator == "is_null":
        return ~present
    if rule.operator == "not_null":
        return present
    if rule.operator in LIST_OPERATORS:
        inside = column.isin(rule.value).to_numpy(dtype=bool)
        return present & (inside if rule.operator == "in" else ~inside)
    compare = {
        "==": column.eq,
        "!=": column.ne,
        "<": column.lt,
        "<=": column.le,
        ">": column.gt,
        ">=": column.ge,
    }[rule.operator]
    return present & compare(rule.value).fillna(False).to_numpy(dtype=bool)


def _group_mask(features: pd.DataFrame, group: RuleGroup) -> np.ndarray:
    masks = [
        _group_mask(features, c) if isinstance(c, RuleGroup) else _rule_mask(features, c) for c in group.conditions
    ]
    if not masks:
        return np.ones(len(features), dtype=bool)
    stacked = np.vstack(masks)
    return stacked.all(axis=0) if group.combinator == "all" else stacked.any(axis=0)


P_ALIVE_FEATURE = "btyd_p_alive"


def _alive_enough(features: pd.DataFrame, floor: float | None) -> np.ndarray:
    """False where the BTYD P(alive) is known and below `floor`."""
    if floor is None or P_ALIVE_FEATURE not in features.columns:
        return np.ones(len(features), dtype=bool)
    return ~(pd.to_numeric(features[P_ALIVE_FEATURE], errors="coerce") < floor).to_numpy(dtype=bool)


def eligibility_matrix(features: pd.DataFrame, playbook: Playbook) -> pd.DataFrame:
    """Boolean frame: one row per row of `features` (same index), one column per action.

    An action is eligible where its rules hold and, with `min_p_alive`, btyd_p_alive is not below it.
    """
    check_playbook_features(features, playbook)
    return pd.DataFrame(
        {
            action.name: _group_mask(features, action.eligibility) & _alive_enough(features, action.min_p_alive)
            for action in playbook.actions
        },
        index=features.index,
    )
