"""Config validation: unknown keys and bad values name the key, --set overrides, relative paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import minimal_config
from pipeline.cli import app
from pipeline.config import after_order, config_from_dict, load_config
from pipeline.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]


def minimal() -> dict:
    return minimal_config(snapshots={"start": "2024-01-01", "end": "2024-06-01"})


def write_yaml(folder: Path, raw: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def with_value(dotted: str, value: object) -> dict:
    raw = minimal()
    node = raw
    keys = dotted.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return raw


@pytest.mark.parametrize("name", ["default.yaml", "cdnow.yaml"])
def test_repository_configs_are_valid(name):
    cfg = load_config(REPO_ROOT / "configs" / name)
    assert cfg.sources.transactions.path.is_absolute()


@pytest.mark.parametrize(
    ("dotted", "value", "message"),
    [
        ("bogus", 1, r"  bogus: unknown key"),
        ("sources.transactions.seperator", ";", r"  sources\.transactions\.seperator: unknown key"),
        ("sources.transactions.read.delimiter", ";", r"  sources\.transactions\.read\.delimiter: unknown key"),
        ("features.horizon_days", 0, r"  features\.horizon_days: Input should be greater than 0"),
        ("features.snapshot_workers", 0, r"  features\.snapshot_workers: Input should be greater than 0"),
        ("features.dask_stall_seconds", 0, r"  features\.dask_stall_seconds: Input should be greater than 0"),
        ("features.partition_rows", 1, r"  features\.partition_rows: Value error, 1 is too small a partition: at least "
                                       r"100,000 transaction rows \(each partition costs time on every snapshot"),
        ("features.partition_rows", 99_999, r"  features\.partition_rows: Value error, 99,999 is too small a partition"),
        ("ingest.max_bad_share", 1.5, r"  ingest\.max_bad_share: Input should be less than or equal to 1"),
        ("train.search_sample_rows", 1, r"  train\.search_sample_rows: Value error, 1 is too small a sample: 0 \(search on "
                                        r"all rows\) or at least 1,000"),
        ("ingest.future_tolerance_days", 1e8, r"  ingest\.future_tolerance_days: Input should be less than or equal to 36500"),
        ("ingest.latest", "9999-12-31", r"  ingest\.latest: Input should be less than or equal to 2261-12-31"),
        ("ingest.future_tolerance_days", "soon", r"  ingest\.future_tolerance_days: Input should be a valid number"),
        ("sources.transactions.timezone", "Mars/Olympus", r"  sources\.transactions\.timezone: Value error, unknown time zone 'Mars/Olympus'"),
        ("features.timezone", "EST5EDT/x", r"  features\.timezone: Value error, unknown time zone 'EST5EDT/x'"),
        ("sources.transactions.format", "xlsx", r"  sources\.transactions\.format: Input should be 'auto', 'csv', 'parquet', 'excel' or 'json'"),
        ("sources.transactions.read.header", False, r"  sources\.transactions\.read: Value error, header: false needs column_names"),
        ("sources.orders", {"path": "x.csv"}, r"  sources\.orders: unknown key"),
        ("sources.transactions.read.decimal", ";", r"  sources\.transactions\.read\.decimal: Input should be '\.' or ','"),
        ("sources.transactions.read.thousands", "_", r"  sources\.transactions\.read\.thousands: Input should be '\.', ','"),
        ("sources.feedback", {"path": "f.csv", "returns_when": {"Type": ["refund"]}},
         r"  sources: Value error, feedback\.returns_when: only transactions have returns; remove the setting"),
        ("sources.feedback", {"path": "f.csv", "discount_is": "share"},
         r"  sources: Value error, feedback\.discount_is: only transactions have discounts; remove the setting"),
        ("sources.transactions.discount_is", "percent", r"  sources\.transactions\.discount_is: Input should be 'money' or 'share'"),
        ("sources.transactions.read.currency", "12 €", r"  sources\.transactions\.read\.currency: Value error, '12 €' is not a "
                                                     r"currency sign or code"),
        ("features.snapshots.freq", "XYZ", r"  features\.snapshots\.freq: Value error, unknown frequency 'XYZ': use a "
                                           r"pandas offset alias such as MS"),
        ("features.snapshots.freq", "h", r"  features\.snapshots\.freq: Value error, 'h' steps less than a day forward: "
                                         r"snapshots are days; use D or longer"),
        ("sources.transactions.read.encoding", "utf8x", r"  sources\.transactions\.read\.encoding: Value error, unknown "
                                                       r"encoding 'utf8x' \(e\.g\. utf-8, cp1252, latin-1, utf-16\)"),
        ("sources.transactions.read.sep", "", r"  sources\.transactions\.read\.sep: String should have at least 1 character"),
        ("sources.transactions.read", {"decimal": ",", "thousands": ","},
         r"  sources\.transactions\.read: Value error, thousands and decimal are both ','"),
    ],
)
def test_bad_config_fails_naming_the_key(tmp_path, dotted, value, message):
    path = write_yaml(tmp_path, with_value(dotted, value))
    with pytest.raises(ConfigError, match=rf"invalid configuration in {path}:\n(.*\n)*{message}"):
        load_config(path)


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ({"high": 0.3, "medium": 0.4}, r"medium must be below high"),
        ({"high": 0.5, "medium": 0}, r"medium: 0 is not a churn probability \(between 0 and 1\); for a multiple of "
                                     r"the mean churn probability add relative_to: mean_probability"),
        ({"high": 3, "medium": 2}, r"high: 3 is not a churn probability \(between 0 and 1\); for a multiple of the "
                                   r"mean churn probability add relative_to: mean_probability"),
        ({"high": 3, "medium": 0.5, "relative_to": "mean_probability"},
         r"medium: 0\.5 is not a multiple above 1 of the mean churn probability \(relative_to: mean_probability; 1 is "
         r"the average customer\); for a churn probability drop relative_to"),
        ({"high": 1, "relative_to": "mean_probability"}, r"high: 1 is not a multiple above 1 of the mean"),
        ({"high": float("inf"), "relative_to": "mean_probability"}, r"high: inf is not a multiple above 1 of the mean"),
        ({"high": 2, "medium": 3, "relative_to": "mean_probability"}, r"medium must be below high"),
        ({"medium": 3, "relative_to": "mean_probability"}, r"medium must be below high"),  # high: 2 by default
    ],
)
def test_bad_risk_tiers_fail_naming_the_key(tiers, message):
    raw = with_value("score.risk_tiers", tiers)
    with pytest.raises(ConfigError, match=rf"in <dict>:\n  score\.risk_tiers: Value error, {message}"):
        config_from_dict(raw, base_dir=Path("."))


def test_risk_tiers_relative_to_the_mean_take_multiples_two_and_one_and_a_half_unless_given(tmp_path):
    relative = config_from_dict(with_value("score.risk_tiers", {"relative_to": "mean_probability"}), base_dir=Path("."))
    assert (relative.score.risk_tiers.high, relative.score.risk_tiers.medium) == (2.0, 1.5)
    given_raw = with_value("score.risk_tiers", {"relative_to": "mean_probability", "high": 4, "medium": 1.5})
    given = config_from_dict(given_raw, base_dir=Path("."))
    assert (given.score.risk_tiers.high, given.score.risk_tiers.medium) == (4.0, 1.5)
    fixed = config_from_dict(minimal(), base_dir=Path(".")).score.risk_tiers
    assert (fixed.high, fixed.medium, fixed.relative_to) == (0.5, 0.25, None)
    with pytest.raises(ConfigError, match=r"  score\.risk_tiers\.relative_to: Input should be 'mean_probability'"):
        config_from_dict(with_value("score.risk_tiers", {"relative_to": "mean"}), base_dir=Path("."))
    # the repository's config gives probabilities: switching to relative tiers by --set alone names what to change
    with pytest.raises(ConfigError, match=r"  score\.risk_tiers: Value error, high: 0\.5 is not a multiple above 1"):
        load_config(REPO_ROOT / "configs" / "default.yaml", ["score.risk_tiers.relative_to=mean_probability"])
    both = load_config(REPO_ROOT / "configs" / "default.yaml", [
        "score.risk_tiers.relative_to=mean_probability", "score.risk_tiers.high=2", "score.risk_tiers.medium=1.5"])
    assert both.score.risk_tiers == relative.score.risk_tiers


def test_missing_required_sections(tmp_path):
    path = write_yaml(tmp_path, {"features": minimal()["features"]})
    with pytest.raises(ConfigError, match=r"  sources: Field required"):
        load_config(path)


def test_missing_unreadable_or_non_mapping_file(tmp_path):
    with pytest.raises(ConfigError, match=r"config file not found: .*nope\.yaml"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("sources: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.yaml is not valid YAML"):
        load_config(broken)
    listed = write_yaml(tmp_path / "list", ["a", "b"])
    with pytest.raises(ConfigError, match="the top level must be a mapping"):
        load_config(listed)


def test_set_overrides_one_value_each(tmp_path):
    path = write_yaml(tmp_path, minimal())
    cfg = load_config(
        path,
        ["features.horizon_days=60", "ingest.max_bad_share=0.5", "sources.transactions.read.sep=;", "train.seed=7"],
    )
    assert cfg.features.horizon_days == 60
    assert cfg.ingest.max_bad_share == 0.5
    assert cfg.sources.transactions.read.sep == ";"
    assert cfg.train.seed == 7
    assert load_config(path).features.horizon_days == 90  # the file itself is unchanged


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("features.horizon_days", r"--set 'features\.horizon_days': expected key\.path=value"),
        ("features.horizon_days=-5", r"features\.horizon_days: Input should be greater than 0"),
        ("ingest.max_bad_shar=0.1", r"ingest\.max_bad_shar: unknown key"),
        ("sources.transactions.path.x=1", r"--set sources\.transactions\.path\.x: 'path' is not a section"),
    ],
)
def test_bad_set_overrides_name_the_key(tmp_path, override, message):
    path = write_yaml(tmp_path, minimal())
    with pytest.raises(ConfigError, match=message):
        load_config(path, [override])


def test_relative_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    raw = minimal()
    raw["sources"]["feedback"] = {"path": "exports/*.csv"}
    raw["sources"]["customers"] = {"path": str(tmp_path / "elsewhere" / "customers.parquet")}
    raw["mlflow"] = {"tracking_uri": "sqlite:///../mlruns.db"}
    path = write_yaml(tmp_path / "project" / "configs", raw)
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    cfg = load_config(path)
    folder = tmp_path / "project" / "configs"
    assert cfg.sources.transactions.path == folder / "raw" / "transactions.csv"
    assert cfg.sources.feedback.path == folder / "exports" / "*.csv"
    assert cfg.sources.customers.path == tmp_path / "elsewhere" / "customers.parquet"
    assert cfg.paths.data_dir == folder / "data"
    assert cfg.validated_dir == folder / "data" / "validated"
    assert cfg.tracking_uri() == f"sqlite:///{tmp_path / 'project' / 'mlruns.db'}"
    assert cfg.config_path == path


def test_sibling_configs_without_paths_share_no_output(tmp_path, monkeypatch):
    # Two shops mapped by bare configs in sibling folders: their data, models, registry and playbook stay apart
    # (a shared registry let one shop's champion score the other's customers).
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shops = {name: load_config(write_yaml(tmp_path / name, minimal())) for name in ("acme", "bravo")}
    for name, cfg in shops.items():
        folder = tmp_path / name
        assert (cfg.paths.data_dir, cfg.paths.models_dir) == (folder / "data", folder / "models")
        assert cfg.tracking_uri() == f"sqlite:///{folder / 'mlruns.db'}"
        assert cfg.mlflow.artifact_root == folder / "mlartifacts"
        assert cfg.score.playbook == folder / "playbook.yaml"


def test_a_config_naming_no_playbook_may_start_from_the_starter_one_a_named_one_must_exist(tmp_path):
    unnamed_path = write_yaml(tmp_path / "a", minimal())
    unnamed = load_config(unnamed_path)
    assert unnamed.score.playbook == tmp_path / "a" / "playbook.yaml" and unnamed.score.starter_playbook
    named_path = write_yaml(tmp_path / "b", {**minimal(), "score": {"playbook": "mine.yaml"}})
    named = load_config(named_path)
    assert named.score.playbook == tmp_path / "b" / "mine.yaml" and not named.score.starter_playbook
    # check-config validates the starter playbook without writing it; a named playbook that is missing fails
    ok = CliRunner().invoke(app, ["check-config", "-c", str(unnamed_path)], env={"COLUMNS": "300"})
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["score"]["starter_playbook"] is True
    assert not (tmp_path / "a" / "playbook.yaml").exists()
    missing = CliRunner().invoke(app, ["check-config", "-c", str(named_path)], env={"COLUMNS": "300"})
    assert missing.exit_code != 0 and "playbook not found" in missing.output

def test_cli_check_config_applies_set_and_reports_bad_keys(tmp_path):
    path = write_yaml(tmp_path, minimal())
    (tmp_path / "playbook.yaml").write_bytes((REPO_ROOT / "configs" / "playbook.yaml").read_bytes())
    ok = CliRunner().invoke(app, ["check-config", "-c", str(path), "--set", "features.horizon_days=30"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["features"]["horizon_days"] == 30
    bad = CliRunner().invoke(
        app, ["check-config", "-c", str(path), "--set", "features.horizon_dayz=30"], env={"COLUMNS": "300"}
    )
    assert bad.exit_code == 2
    assert "features.horizon_dayz: unknown key" in bad.output


def test_unknown_key_gets_a_did_you_mean(tmp_path):
    raw = minimal_config()
    raw["score"] = {"budjet": 100}
    with pytest.raises(ConfigError, match=r"score\.budjet: unknown key \(did you mean 'budget'\?\)"):
        load_config(write_yaml(tmp_path, raw))


def test_a_bad_set_names_the_set_not_the_file(tmp_path):
    path = write_yaml(tmp_path, minimal_config())
    with pytest.raises(ConfigError, match=r"^invalid --set value:\n  --set score\.budget=abc: score\.budget: ") as info:
        load_config(path, ["score.budget=abc"])
    assert str(path) not in str(info.value)
    with pytest.raises(ConfigError, match=r"--set score\.budjet=5: score\.budjet: unknown key \(did you mean 'budget'\?\)"):
        load_config(path, ["score.budjet=5"])


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ("train.seed=[1", r"expected ',' or '\]'"),
        ("train.seed=!!python/object/apply:os.system ['echo hi']", "could not determine a constructor"),
    ],
)
def test_invalid_set_values_are_one_line_errors_with_exit_2(tmp_path, item, problem):
    path = write_yaml(tmp_path, minimal_config())
    with pytest.raises(ConfigError, match=rf"^--set ['\"].*['\"]: the value is not valid YAML \(.*{problem}"):
        load_config(path, [item])
    result = CliRunner().invoke(app, ["score", "--config", str(path), "--set", item])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and result.output.count("\n") == 1
    assert "--set" in result.output


def test_help_shows_no_bool_type_and_the_real_scores_path():
    result = CliRunner().invoke(app, ["measure", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "<bool>" not in result.output and "bool" not in result.output
    assert "data/<project>/scores/at_risk_YYYY-MM-DD.parquet" in result.output


def test_every_yaml_config_in_the_readme_is_a_valid_config(tmp_path):
    """The README's mapping examples are configs a user copies: each validates (paths need not exist)."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", readme, flags=re.DOTALL)]
    configs = [block for block in blocks if isinstance(block, dict) and "sources" in block]
    assert len(configs) >= 3
    for raw in configs:
        config = config_from_dict(raw, base_dir=tmp_path)
        assert config.sources.transactions.path.is_absolute()


def test_ingest_latest_before_ingest_earliest_is_a_config_error_naming_them():
    with pytest.raises(ConfigError, match=r"ingest.*latest \(2024-01-01\) is before earliest \(2024-06-01\)"):
        config_from_dict(minimal_config(ingest={"earliest": "2024-06-01", "latest": "2024-01-01"}), base_dir=Path("."))


def test_an_exports_yes_and_no_in_the_config_stay_the_words_the_export_writes(tmp_path):
    """YAML 1.1 reads Yes, No, on and off as booleans: `when: {Returned: [Yes]}` (Tableau Superstore's Returns sheet
    writes Yes) became 'true' and matched no row, and `exclude: {Paid: [No]}` excluded nothing. Only true and false
    are booleans now; `on:` of a lookup still reads as `by`, and `btyd: yes` is still true."""
    path = tmp_path / "config.yaml"
    path.write_text("features:\n  snapshots: {start: 2024-01-01, end: 2024-06-01}\n  btyd: yes\n"
                    "sources:\n  transactions:\n    path: orders.csv\n    exclude: {Paid: [No, off]}\n"
                    "    lookup: [{path: returns.csv, on: Order ID, missing: keep}]\n"
                    "    refunds: {column: Sales, per: row, when: {Returned: [Yes, 1]}}\n"
                    "    returns_when: {Type: [On, true]}\n", encoding="utf-8")
    cfg = load_config(path)
    source = cfg.sources.transactions
    assert source.exclude == {"Paid": ["No", "off"]}
    assert source.refunds.when == {"Returned": ["Yes", "1"]}
    assert source.returns_when == {"Type": ["On", "true"]}
    assert source.lookup[0].by == "Order ID"
    assert cfg.features.btyd is True


def _with_customers(**customers) -> dict:
    raw = minimal()
    raw["sources"]["customers"] = {"path": "customers.csv", **customers}
    return raw


def test_customer_attributes_are_read_as_written_and_copied_into_the_features_section():
    """features.customer_attributes is filled from sources.customers.attributes (as features.timezone from the
    transactions source's), so that the feature list, built from the features section alone, knows them."""
    cfg = config_from_dict(_with_customers(attributes=["Segment", "Age band", 2024, "Género"]), base_dir=Path("."))
    assert cfg.sources.customers.attribute_names() == ["Segment", "Age band", "2024", "Género"]
    assert {attribute.kind for attribute in cfg.sources.customers.attributes} == {"category"}
    assert cfg.features.customer_attributes == ["Segment", "Age band", "2024", "Género"]
    assert cfg.features.number_attributes == []
    assert cfg.features.attribute_columns == ["attribute_segment", "attribute_age_band", "attribute_2024",
                                              "attribute_genero"]
    assert config_from_dict(minimal(), base_dir=Path(".")).features.customer_attributes == []
    # the resolved config validates again as it is (MLflow, reports)
    again = config_from_dict(cfg.model_dump(mode="json"), base_dir=Path("."))
    assert again.features.customer_attributes == cfg.features.customer_attributes


def test_an_attribute_given_with_kind_number_is_a_number_attribute_and_plain_names_stay_categories():
    attributes = ["Segment", {"column": "Age", "kind": "number"}, {"column": 2024},
                  {"column": "Seats", "kind": "category"}]
    cfg = config_from_dict(_with_customers(attributes=attributes), base_dir=Path("."))
    assert [(a.column, a.kind, a.feature) for a in cfg.sources.customers.attributes] == [
        ("Segment", "category", "attribute_segment"), ("Age", "number", "attribute_age"),
        ("2024", "category", "attribute_2024"), ("Seats", "category", "attribute_seats")]
    assert cfg.features.customer_attributes == ["Segment", "Age", "2024", "Seats"]
    assert cfg.features.number_attributes == ["Age"]
    assert cfg.features.number_attribute_columns == ["attribute_age"]
    again = config_from_dict(cfg.model_dump(mode="json"), base_dir=Path("."))
    assert again.features == cfg.features and again.sources.customers == cfg.sources.customers


@pytest.mark.parametrize(
    ("customers", "message"),
    [
        ({"attributes": ["Segment", "segment"]},
         r"  sources\.customers\.attributes: Value error, 'segment' and 'Segment' give one column \(attribute_segment\): "
         r"list each column once"),
        ({"attributes": ["Plan", "Plan"]},
         r"  sources\.customers\.attributes: Value error, 'Plan' is listed twice \(attribute_plan\): list each column once"),
        ({"attributes": ["  "]},
         r"  sources\.customers\.attributes: Value error, a blank name: name each column as the export writes it"),
        ({"attributes": ["--"]},
         r"  sources\.customers\.attributes: Value error, '--' has no letter or digit \(A-Z, 0-9\) to name its feature by"),
        ({"attributes": [f"A{i}" for i in range(21)]},
         r"  sources\.customers\.attributes: Value error, at most 20 attributes, not 21: keep the few that describe a "
         r"customer"),
        ({"attributes": ["region"]},
         r"  sources: Value error, customers\.attributes: 'region' is a column of the customers contract \(read as it "
         r"is\): list only columns the contract does not read"),
        ({"attributes": ["Plan"], "rename": {"Tariff": "Plan"}},
         r"  sources: Value error, customers\.attributes: 'Plan' is a target of sources\.customers\.rename; name the "
         r"column as the export writes it"),
        ({"attributes": ["Zone"], "rename": {"Zone": "region"}},
         r"  sources: Value error, customers\.attributes: 'Zone' is read as region \(sources\.customers\.rename\); "
         r"list only columns the contract does not read"),
        ({"attributes": ["Plan", {"column": "Age", "kind": "numeric"}]},
         r"  sources\.customers\.attributes\.1\.kind: Input should be 'category' or 'number'"),
        ({"attributes": [{"column": "Age", "kinds": "number"}]},
         r"  sources\.customers\.attributes\.0\.kinds: unknown key \(did you mean 'kind'\?\)"),
        ({"attributes": [{"kind": "number"}]},
         r"  sources\.customers\.attributes\.0\.column: Field required"),
        ({"attributes": [["Age", "number"]]},
         r"  sources\.customers\.attributes: Value error, \['Age', 'number'\] is neither a column name nor "
         r"\{column: <name>, kind: category or number\}"),
        ({"attributes": ["Age", {"column": "age", "kind": "number"}]},
         r"  sources\.customers\.attributes: Value error, 'age' and 'Age' give one column \(attribute_age\)"),
        ({"attributes": [{"column": "signup_at", "kind": "number"}]},
         r"  sources: Value error, customers\.attributes: 'signup_at' is a column of the customers contract"),
        ({"other_exports": [{"path": "more.csv", "attributes": ["Plan"]}]},
         r"  sources\.customers\.other_exports: Value error, an export listed in other_exports has no attributes of "
         r"its own: list them once, under the source's attributes"),
    ],
)
def test_bad_customer_attributes_fail_naming_the_key(customers, message):
    with pytest.raises(ConfigError, match=rf"invalid configuration in <dict>:\n(.*\n)*{message}"):
        config_from_dict(_with_customers(**customers), base_dir=Path("."))


def test_customer_attributes_belong_to_the_customers_source_and_are_listed_there():
    raw = minimal()
    raw["sources"]["transactions"]["attributes"] = ["Plan"]
    with pytest.raises(ConfigError, match=r"  sources: Value error, transactions\.attributes: only the customers source "
                                          r"has static attributes; remove the setting"):
        config_from_dict(raw, base_dir=Path("."))
    raw = _with_customers(attributes=["Plan"])
    raw["features"]["customer_attributes"] = ["Segment"]
    with pytest.raises(ConfigError, match=r"  \(top level\): Value error, features\.customer_attributes is filled from "
                                          r"sources\.customers\.attributes: list the columns there"):
        config_from_dict(raw, base_dir=Path("."))
    raw = _with_customers(attributes=["Plan", "Age"])  # Age a category there
    raw["features"].update(customer_attributes=["Plan", "Age"], number_attributes=["Age"])
    with pytest.raises(ConfigError, match=r"  \(top level\): Value error, features\.number_attributes is filled from "
                                          r"sources\.customers\.attributes: list the columns there"):
        config_from_dict(raw, base_dir=Path("."))
    raw["features"].update(customer_attributes=["Plan"], number_attributes=["Age"])
    with pytest.raises(ConfigError, match=r"  features: Value error, number_attributes: 'Age' is not one of "
                                          r"customer_attributes"):
        config_from_dict(raw, base_dir=Path("."))


def test_a_features_section_built_alone_checks_its_customer_attributes_too():
    from pipeline.config import FeaturesConfig

    with pytest.raises(ValueError, match=r"customer_attributes\n  Value error, 'segment' and 'Segment' give one column"):
        FeaturesConfig(customer_attributes=["Segment", "segment"])


REPLY_AFTER = {"column": "First reply time in minutes", "unit": "minutes", "from": "opened_at"}


def tickets_after(after: dict, **mapping) -> dict:
    raw = minimal()
    raw["sources"]["support_tickets"] = {"path": "x.csv", "rename": {"Created at": "opened_at"}, "after": after,
                                         **mapping}
    return raw


def test_a_time_given_as_a_duration_after_another_is_read_with_from_and_written_back_so():
    cfg = config_from_dict(tickets_after({"first_response_at": REPLY_AFTER}), base_dir=Path("/x"))
    after = cfg.sources.support_tickets.after["first_response_at"]
    assert (after.column, after.unit, after.start) == ("First reply time in minutes", "minutes", "opened_at")
    dumped = cfg.model_dump(mode="json")["sources"]["support_tickets"]["after"]
    assert dumped == {"first_response_at": REPLY_AFTER}  # `from`, as written: a dumped config loads again
    assert config_from_dict(cfg.model_dump(mode="json"), base_dir=Path("/x")).sources == cfg.sources
    delivered = minimal()
    delivered["sources"]["transactions"]["after"] = {"delivered_at": {"column": "Days", "unit": "days",
                                                                      "from": "ordered_at"}}
    assert config_from_dict(delivered, base_dir=Path("/x")).sources.transactions.after["delivered_at"].unit == "days"
    assert config_from_dict(minimal(), base_dir=Path("/x")).sources.transactions.after == {}


TICKET_TIMES = "its time columns: opened_at, closed_at, first_response_at"


def test_a_time_after_may_run_from_a_time_after_gives_too_and_is_computed_after_it():
    # Resolution time after the first reply, itself a time after the opening (the order written is not the order
    # computed)
    after = {"closed_at": {**REPLY_AFTER, "column": "Hours to resolve", "unit": "hours", "from": "first_response_at"},
             "first_response_at": REPLY_AFTER}
    cfg = config_from_dict(tickets_after(after), base_dir=Path("/x"))
    assert after_order(cfg.sources.support_tickets.after) == ["first_response_at", "closed_at"]
    assert after_order({}) == []


@pytest.mark.parametrize(
    ("after", "mapping", "message"),
    [
        ({"first_reply": REPLY_AFTER}, {},
         rf"sources: Value error, support_tickets\.after\.first_reply: 'first_reply' is not a time column of the "
         rf"support_tickets contract \({TICKET_TIMES}\); name the contract column the duration gives"),
        ({"opened_at": {**REPLY_AFTER, "from": "closed_at"}}, {},
         r"support_tickets\.after\.opened_at: opened_at is the row's own time, which the others are measured from; "
         r"map it with support_tickets\.rename"),
        ({"first_response_at": REPLY_AFTER}, {"rename": {"Created at": "opened_at", "Replied": "first_response_at"}},
         r"support_tickets\.after\.first_response_at: first_response_at is also given by support_tickets\.rename "
         r"\('Replied' renamed onto it\); give it one way, remove one of the two"),
        ({"closed_at": REPLY_AFTER}, {"combine": {"closed_at": ["Day", "Hour"]}},
         r"support_tickets\.after\.closed_at: closed_at is also given by support_tickets\.combine; give it one way"),
        ({"closed_at": REPLY_AFTER}, {"constants": {"closed_at": "2024-01-01"}},
         r"support_tickets\.after\.closed_at: closed_at is also given by support_tickets\.constants; give it one "
         r"way"),
        ({"first_response_at": {**REPLY_AFTER, "from": "Created at"}}, {},
         rf"support_tickets\.after\.first_response_at\.from: 'Created at' is not a time column of the support_tickets "
         rf"contract \({TICKET_TIMES}\); name the contract time the duration runs from"),
        ({"first_response_at": {**REPLY_AFTER, "from": "first_response_at"}}, {},
         r"support_tickets\.after\.first_response_at\.from: first_response_at cannot be measured from itself"),
        ({"first_response_at": {**REPLY_AFTER, "from": "closed_at"}, "closed_at": {**REPLY_AFTER,
                                                                            "from": "first_response_at"}}, {},
         r"support_tickets\.after\.first_response_at\.from: first_response_at is measured from closed_at, which is "
         r"measured from first_response_at: a circle, so none can be computed first; measure one of them from a time "
         r"the export gives \(e\.g\. opened_at\)$"),
        ({"first_response_at": REPLY_AFTER}, {"other_exports": [{"path": "y.csv", "after": {
            "closed_at": {**REPLY_AFTER, "from": "first_response_at"},
            "first_response_at": {**REPLY_AFTER, "from": "closed_at"}}}]},
         r"support_tickets\.other_exports\[0\]\.after\.closed_at\.from: closed_at is measured from first_response_at, "
         r"which is measured from closed_at: a circle"),
        ({"first_response_at": {**REPLY_AFTER, "unit": "weeks"}}, {},
         r"sources\.support_tickets\.after\.first_response_at\.unit: Input should be 'seconds', 'minutes', 'hours' or "
         r"'days'"),
        ({"first_response_at": {**REPLY_AFTER, "column": " "}}, {},
         r"sources\.support_tickets\.after\.first_response_at\.column: Value error, a blank name: name the file column "
         r"holding the duration"),
        ({"first_response_at": {"column": "Reply", "unit": "minutes"}}, {},
         r"sources\.support_tickets\.after\.first_response_at\.from: Field required"),
        ({"first_response_at": {**REPLY_AFTER, "form": "opened_at"}}, {},
         r"sources\.support_tickets\.after\.first_response_at\.form: unknown key \(did you mean 'from'\?\)"),
        ({"first_response_at": REPLY_AFTER}, {"other_exports": [{"path": "y.csv", "after": {"closed_at": {
            **REPLY_AFTER, "from": "opened"}}}]},  # an export under other_exports is named by its place
         r"support_tickets\.other_exports\[0\]\.after\.closed_at\.from: 'opened' is not a time column"),
    ],
)
def test_bad_times_after_fail_at_start_up_naming_the_key(tmp_path, after, mapping, message):
    path = write_yaml(tmp_path, tickets_after(after, **mapping))
    prefix = r"(sources: Value error, )?"  # a rule across the keys of a source names them in its message
    with pytest.raises(ConfigError, match=rf"invalid configuration in {path}:\n(.*\n)*  {prefix}{message}"):
        load_config(path)


@pytest.mark.parametrize(
    ("source", "mapping", "message"),
    [
        ("feedback", {"after": {"submitted_at": REPLY_AFTER}}, r"feedback\.after\.submitted_at: submitted_at is the "
                                                               r"row's own time"),
        ("customers", {"after": {"signup_at": {**REPLY_AFTER, "from": "opened_at"}}},
         r"customers\.after\.signup_at\.from: 'opened_at' is not a time column of the customers contract \(its time "
         r"columns: signup_at\)"),
        ("transactions", {"after": {"amount": {**REPLY_AFTER, "from": "ordered_at"}}},
         r"transactions\.after\.amount: 'amount' is not a time column of the transactions contract \(its time "
         r"columns: ordered_at, promised_delivery_at, delivered_at\)"),
    ],
)
def test_times_after_in_other_sources_name_their_own_time_columns(tmp_path, source, mapping, message):
    raw = minimal()
    raw["sources"][source] = {**raw["sources"].get(source, {"path": "x.csv"}), **mapping}
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw, base_dir=tmp_path)


def test_the_data_a_model_is_trained_from_names_the_file_read_inside_a_zip_archive(tmp_path):
    """Two files of one archive (a Kaggle download) are two exports: `churn score` must tell their models apart."""
    from pipeline.config import data_identity

    def identity(**transactions) -> dict:
        raw = minimal_config("download.zip")
        raw["sources"]["transactions"].update(transactions)
        return data_identity(config_from_dict(raw, base_dir=tmp_path))

    assert identity()["transactions"].endswith("download.zip")
    assert identity(member="orders.csv")["transactions"].endswith("download.zip [file orders.csv]")
    assert identity(member="orders.csv") != identity(member="order_items.csv")
