"""One business time zone for days (`features.timezone`): purchase days, snapshot and label windows, the data's
end and durations across a DST change, for a shop far from UTC."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import polars as pl
import pytest
from pandas.testing import assert_frame_equal

from pipeline.config import Config, FeaturesConfig
from pipeline.events import Events
from pipeline.features import build_features, event_tables
from pipeline.features.store import check_settings_match, feature_settings
from pipeline.errors import FeatureError
from pipeline.labels import churn_labels_from_tables, label_churn
from pipeline.run.features import event_span
from pipeline.run.score import default_as_of, later_sources_warning
from pipeline.snapshot import in_business_time, in_business_time_pandas, latest_event_date

LA = "America/Los_Angeles"
AS_OF = dt.date(2024, 6, 1)


def local(text: str, zone: str = LA) -> pd.Timestamp:
    """A wall-clock time of `zone` as the UTC instant ingest stores."""
    return pd.Timestamp(text, tz=zone).tz_convert("UTC")


def shop() -> Events:
    """a: two orders of one Los Angeles evening, on either side of UTC midnight. b: an order a month before the
    snapshot and one at 22:00 on the evening before it (05:00 UTC on the snapshot's day)."""
    rows = [
        ("o1", "a", local("2024-05-10 16:30"), 20.0),  # 23:30 UTC
        ("o2", "a", local("2024-05-10 19:00"), 15.0),  # 02:00 UTC on the 11th
        ("o3", "b", local("2024-05-01 12:00"), 30.0),
        ("o4", "b", local("2024-05-31 22:00"), 40.0),
    ]
    columns = ["order_id", "customer_id", "ordered_at", "amount"]
    return Events.from_frames(transactions=pd.DataFrame(rows, columns=columns))


def features_and_labels(events: Events, zone: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    cfg = FeaturesConfig(snapshots={"dates": [AS_OF]}, lookback_days=60, horizon_days=30, btyd=False, timezone=zone)
    features = build_features(events, as_of=AS_OF, cfg=cfg).set_index("customer_id")
    labels = churn_labels_from_tables(event_tables(events, timezone=zone), as_of=AS_OF, lookback_days=60,
                                      horizon_days=30).set_index("customer_id")
    return features, labels


def test_a_los_angeles_evening_is_one_purchase_day_and_its_late_order_is_before_the_next_snapshot():
    features, labels = features_and_labels(shop(), LA)
    assert features.loc["a", "purchase_days_all"] == 1
    assert features.loc["a", "frequency_all"] == 2
    assert features.loc["b", "frequency_all"] == 2  # the order at 22:00 the evening before is in the snapshot
    assert features.loc["b", "recency_days"] == pytest.approx(2 / 24)  # two hours before local midnight
    assert labels.loc["b", "churned"] == 1  # ... and not in its label window: no order in [t, t + 30 days)


def test_with_utc_days_the_same_shop_is_cut_at_utc_midnight():
    features, labels = features_and_labels(shop(), "UTC")
    assert features.loc["a", "purchase_days_all"] == 2
    assert features.loc["b", "frequency_all"] == 1
    assert labels.loc["b", "churned"] == 0  # the 22:00 order (05:00 UTC) falls in the label window
    assert_frame_equal(features, features_and_labels(shop(), "UTC")[0])
    default = build_features(shop(), as_of=AS_OF, cfg=FeaturesConfig(lookback_days=60, horizon_days=30, btyd=False))
    assert_frame_equal(default.set_index("customer_id"), features)  # a FeaturesConfig without a zone counts UTC days


@pytest.mark.parametrize("zone", ["UTC", LA, "Asia/Tokyo"])
def test_labels_of_the_purchases_agree_with_the_tables_and_the_feature_rows(zone):
    events = shop()
    features, labels = features_and_labels(events, zone)
    assert features.index.tolist() == labels.index.tolist()
    assert_frame_equal(label_churn(events.transactions, as_of=AS_OF, lookback_days=60, horizon_days=30, timezone=zone),
                       labels.reset_index())


def test_the_data_ends_and_scoring_day_are_days_of_the_business_zone():
    transactions = shop().transactions
    frames = {"transactions": pl.from_pandas(transactions)}
    assert latest_event_date(transactions) == dt.date(2024, 6, 1)  # 05:00 UTC
    assert latest_event_date(transactions, timezone=LA) == dt.date(2024, 5, 31)
    # Scored by default the day after the last local order: the order of the evening before is in.
    assert default_as_of(frames, timezone=LA) == AS_OF
    nps = pd.DataFrame({"customer_id": ["a"], "submitted_at": [local("2024-06-02 20:00")], "kind": "nps", "score": 9.0})
    frames["feedback"] = pl.from_pandas(Events.from_frames(feedback=nps).feedback)
    later = later_sources_warning(frames, data_ends=dt.date(2024, 5, 31), as_of=AS_OF, timezone=LA)
    assert "feedback to 2024-06-02 (2 days)" in later


def test_event_span_reads_the_days_of_the_business_zone(tmp_path):
    shop().transactions.to_parquet(tmp_path / "transactions.parquet")
    assert event_span(tmp_path) == (dt.date(2024, 5, 1), dt.date(2024, 6, 1))
    assert event_span(tmp_path, timezone=LA) == (dt.date(2024, 5, 1), dt.date(2024, 5, 31))


def test_business_time_is_the_wall_clock_typed_utc_and_utc_changes_nothing():
    transactions = shop().transactions
    converted = in_business_time_pandas(transactions, LA)
    assert converted["ordered_at"].dt.tz is not None and str(converted["ordered_at"].dt.tz) == "UTC"
    assert converted.loc[1, "ordered_at"] == pd.Timestamp("2024-05-10 19:00", tz="UTC")
    assert in_business_time_pandas(transactions, "UTC") is transactions
    frame = pl.from_pandas(transactions)
    assert in_business_time(frame, "UTC") is frame
    assert_frame_equal(in_business_time(frame, LA).to_pandas(), converted)


def test_durations_across_a_dst_change_are_the_true_hours():
    """Opened on the Saturday before the spring-forward night, answered and closed after it: 23 and 47 hours
    passed, where the wall clock shows 24 and 48. Lateness of deliveries likewise."""
    tickets = pd.DataFrame({
        "ticket_id": ["t1"], "customer_id": ["a"], "opened_at": [local("2024-03-09 12:00")],
        "first_response_at": [local("2024-03-10 12:00")], "closed_at": [local("2024-03-11 12:00")],
        "resolved": [True],
    })
    transactions = pd.DataFrame({
        "order_id": ["o1", "o2"], "customer_id": ["a", "b"], "amount": 10.0,
        "ordered_at": [local("2024-03-05 12:00")] * 2,
        "promised_delivery_at": [local("2024-03-09 12:00")] * 2,
        "delivered_at": [local("2024-03-11 12:00"), None],  # b: still undelivered at the snapshot
    })
    events = Events.from_frames(transactions=transactions, support_tickets=tickets)
    as_of = dt.date(2024, 3, 12)
    cfg = FeaturesConfig(snapshots={"dates": [as_of]}, btyd=False, timezone=LA)
    features = build_features(events, as_of=as_of, cfg=cfg).set_index("customer_id")
    assert features.loc["a", "first_response_hours_mean"] == pytest.approx(23.0, abs=1e-9)
    assert features.loc["a", "resolution_hours_mean"] == pytest.approx(47.0, abs=1e-9)
    assert features.loc["a", "lateness_days_mean"] == pytest.approx(47 / 24, abs=1e-9)
    # b: late from the promise (20:00 UTC on the 9th) to local midnight of the 12th (07:00 UTC): 59 hours.
    assert features.loc["b", "lateness_days_mean"] == pytest.approx(59 / 24, abs=1e-9)


def test_the_business_zone_defaults_to_the_transactions_timezone_and_is_recorded_with_the_features(tmp_path):
    def config(**features) -> Config:
        return Config(sources={"transactions": {"path": "t.csv", "timezone": LA}}, features=features)

    assert config().features.timezone == LA
    assert config(timezone="Europe/Berlin").features.timezone == "Europe/Berlin"
    assert config(timezone="UTC").features.zone == "UTC"
    assert Config(sources={"transactions": {"path": "t.csv"}}).features.timezone == "UTC"
    utc, la = config(timezone="UTC").features, config().features
    assert "timezone" not in feature_settings(utc, inputs={})  # UTC files keep the fingerprint they had
    assert feature_settings(la, inputs={})["timezone"] == LA
    recorded = {"settings": feature_settings(la, inputs={})}
    check_settings_match(recorded, la, features_dir=tmp_path)
    with pytest.raises(FeatureError, match="timezone America/Los_Angeles vs UTC"):
        check_settings_match(recorded, utc, features_dir=tmp_path)


def test_ingest_says_whose_days_are_counted_when_a_zone_is_not_utc():
    from pipeline.run.ingest import business_zone_note

    assert business_zone_note(Config(sources={"transactions": {"path": "t.csv"}})) is None
    assert business_zone_note(Config(sources={"transactions": {"path": "t.csv", "timezone": LA}})) == (
        "validated times are stored as UTC (transactions read in America/Los_Angeles); snapshots, purchase days and "
        "label windows count the days of America/Los_Angeles (features.timezone)")
    assert business_zone_note(Config(sources={"transactions": {"path": "t.csv"}}, features={"timezone": LA})) == (
        "validated times are stored as UTC; snapshots, purchase days and label windows count the days of "
        "America/Los_Angeles (features.timezone)")


@pytest.mark.parametrize(("listed", "zone", "churned"), [
    (LA, LA, [True, False]), ("UTC", "UTC", [False, False]),
    (None, LA, [False, False]),  # a list scored before its summary named the zone: its days were UTC's
    (LA, "UTC", [True, False]),  # the zone the list was scored in wins over a config changed since
])
def test_past_lists_measure_their_window_in_days_of_the_business_zone(tmp_path, listed, zone, churned):
    """A list of 2024-06-01: b's order at 22:00 the evening before (05:00 UTC on the 1st) is before its window in
    Los Angeles days, inside it in UTC days; a's order on the 15th is inside in both. The window is counted in the
    days of the zone the list's summary names, as `churn score` wrote it."""
    import json

    from conftest import minimal_config

    from pipeline.config import config_from_dict
    from pipeline.run.history import lists_with_outcomes

    cfg = config_from_dict(minimal_config(paths={"data_dir": "data"}, features={"horizon_days": 30, "timezone": zone}),
                           base_dir=tmp_path)
    rows = [("o1", "a", local("2024-06-15 12:00"), 10.0), ("o2", "b", local("2024-05-31 22:00"), 10.0),
            ("o3", "c", local("2024-07-05 12:00"), 10.0)]  # c: the data run past the window's end
    cfg.validated_dir.mkdir(parents=True)
    Events.from_frames(transactions=pd.DataFrame(rows, columns=["order_id", "customer_id", "ordered_at", "amount"])
                       ).transactions.to_parquet(cfg.validated_dir / "transactions.parquet")
    cfg.scores_dir.mkdir(parents=True)
    scores = pd.DataFrame({"customer_id": ["b", "a"], "group": "treatment", "action": "win_back", "action_cost": 1.0,
                           "expected_net_value": 1.0, "as_of": [AS_OF] * 2})
    scores.to_parquet(cfg.scores_dir / "at_risk_2024-06-01.parquet")
    if listed is not None:
        (cfg.scores_dir / "at_risk_2024-06-01.json").write_text(json.dumps({"timezone": listed}), encoding="utf-8")
    (measured,) = lists_with_outcomes(cfg)
    assert measured.scores["churned"].tolist() == churned


SAO_PAULO = "America/Sao_Paulo"


def _sao_paulo_shop(tmp_path, **ingest) -> Config:
    """20 orders at 22:30 in Sao Paulo (01:30 UTC the next day) on each of 100 days from 2024-01-01, and one more 14
    quiet days later (2024-04-24): a late row past the export's real end."""
    days = [*(day for day in range(100) for _ in range(20)), 114]
    rows = pd.DataFrame({
        "order_id": [f"o{i}" for i in range(len(days))],
        "customer_id": [f"c{i % 50}" for i in range(len(days))],
        "ordered_at": [(pd.Timestamp("2024-01-01 22:30") + pd.Timedelta(days=day)).strftime("%Y-%m-%d %H:%M:%S")
                       for day in days],
        "amount": 10.0,
    })
    path = tmp_path / "orders.csv"
    rows.to_csv(path, index=False)
    return Config(paths={"data_dir": str(tmp_path / "data")}, ingest=ingest,
                  sources={"transactions": {"path": str(path), "timezone": SAO_PAULO}})


def test_ingest_names_and_cuts_days_of_the_business_zone(tmp_path):
    """The quiet end of the data is named in days of the business zone, and ingest.latest / ingest.earliest end and
    start the data on days of that zone: following the note's advice keeps every order of the last busy day (22:30
    in Sao Paulo is 01:30 UTC the next day), and ingest.earliest: 2024-01-02 leaves the evening of 01-01 out."""
    from pipeline.run import ingest as ingest_runner

    entry = ingest_runner.run(_sao_paulo_shop(tmp_path), quiet=True)["sources"]["transactions"]
    [note] = [note for note in entry["notes"] if "nearly stop" in note]
    assert note.startswith("purchases nearly stop over the data's last 15 days, 2024-04-10 to 2024-04-24: 1 order "
                           f"(days of {SAO_PAULO}), against an average of 20 a day")
    assert "The data's end is its latest order (2024-04-24)" in note
    assert "end the data on the last busy day (ingest.latest: 2024-04-09)" in note
    cfg = _sao_paulo_shop(tmp_path, latest="2024-04-09")
    report = ingest_runner.run(cfg, quiet=True)
    entry = report["sources"]["transactions"]
    assert (entry["validated_rows"], entry["quarantined_rows"]) == (2_000, 1)
    assert report["latest_allowed"] == "2024-04-10T02:59:59.999999+00:00"  # the end of 04-09 in Sao Paulo
    quarantine = pd.read_parquet(cfg.quarantine_dir / "transactions.parquet")
    assert quarantine["reason"].tolist() == [
        "ordered_at: later than ingest.latest 2024-04-09 in America/Sao_Paulo (2024-04-10 02:59 UTC)"]
    cfg = _sao_paulo_shop(tmp_path, earliest="2024-01-02")
    entry = ingest_runner.run(cfg, quiet=True)["sources"]["transactions"]
    assert (entry["validated_rows"], entry["quarantined_rows"]) == (1_981, 20)
    quarantine = pd.read_parquet(cfg.quarantine_dir / "transactions.parquet")
    assert set(quarantine["reason"]) == {
        "ordered_at: earlier than ingest.earliest 2024-01-02 in America/Sao_Paulo (2024-01-02 03:00 UTC)"}
