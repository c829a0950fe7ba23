"""User features, segments, purchase propensity and their metrics (pure, no services)."""

from __future__ import annotations

import itertools
import json
import math
import pickle
import random

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, log_loss, roc_auc_score

from models.calibration import ProbabilityMetrics, expected_calibration_error
from models.features import FEATURE_NAMES, UserFeatures
from models.propensity import LabelledRow, PendingLabels, PurchasePropensity
from models.segments import UserSegments

DAY = 86400.0
HOUR = 3600.0


def feed(f: UserFeatures, events: list[tuple]) -> UserFeatures:
    """events: (type, ts, new_session[, price, quantity, category])."""
    defaults = (None, 1, None)
    for kind, ts, new, *rest in events:
        price, quantity, category = (*rest, *defaults[len(rest):])
        f.learn_one(kind, ts, price=price, quantity=quantity, category=category, new_session=new)
    return f


# -- features -------------------------------------------------------------------


def test_features_counts_money_and_ratios():
    f = feed(UserFeatures(), [
        ("view", 0.0, True, 10.0, 1, "books"),
        ("view", 10.0, False, 30.0, 1, "toys"),
        ("click", 20.0, False, 30.0, 1, "toys"),
        ("cart", 30.0, False, 30.0, 1, "toys"),
        ("purchase", 40.0, False, 30.0, 2, "toys"),
        ("purchase", 41.0, False, 10.0, 1, "books"),
        ("view", DAY, True, 50.0, 1, "shoes"),
    ])
    v = f.values(2 * DAY)
    assert set(v) == set(FEATURE_NAMES)
    assert (v["views"], v["clicks"], v["carts"], v["purchases"], v["events"]) == (3, 1, 1, 2, 7)
    assert v["sessions"] == 2 and v["orders"] == 1  # two purchases in one session: one order
    assert v["revenue"] == 70.0 and v["mean_order_value"] == 70.0
    assert v["purchases_per_view"] == pytest.approx(2 / 3)
    assert v["carts_per_view"] == pytest.approx(1 / 3)
    assert v["purchases_per_cart"] == 2.0
    assert v["events_per_session"] == 3.5
    assert v["mean_price"] == pytest.approx(190 / 7)
    assert v["categories"] == 3
    assert v["recency_days"] == 1.0 and v["age_days"] == 2.0
    assert v["session_events"] == 1 and v["session_views"] == 1 and v["session_purchases"] == 0
    assert v["sessions_per_week"] == pytest.approx(3.5)  # one return in two days


def test_features_session_gaps_are_welford_in_hours():
    starts = [0.0, 10 * HOUR, 30 * HOUR, 33 * HOUR, 80 * HOUR]
    f = UserFeatures()
    for s in starts:
        feed(f, [("view", s, True), ("view", s + 600.0, False)])
    gaps = [(b - (a + 600.0)) / HOUR for a, b in itertools.pairwise(starts)]
    v = f.values(starts[-1] + 600.0)
    assert v["session_gap_mean_h"] == pytest.approx(np.mean(gaps))
    assert v["session_gap_std_h"] == pytest.approx(np.std(gaps, ddof=1))


def test_features_out_of_order_events_never_give_negative_gaps_or_recency():
    f = feed(UserFeatures(), [("view", 1000.0, True), ("view", 2000.0, False)])
    feed(f, [("view", 500.0, True)])  # late, and it opens a session
    v = f.values(1500.0)  # "now" before the latest event
    assert f.first_ts == 500.0 and f.last_ts == 2000.0
    assert v["sessions"] == 2 and f.gaps == 0
    assert v["recency_days"] == 0.0 and v["session_gap_mean_h"] == 0.0
    assert v["age_days"] == pytest.approx(1000.0 / DAY)
    feed(f, [("view", 2000.0 + 2 * HOUR, True)])
    assert f.gaps == 1 and f.values(1e9)["session_gap_mean_h"] == pytest.approx(2.0)
    assert all(math.isfinite(x) and x >= 0 for x in f.values(0.0).values())


def test_features_repeated_event_counts_twice_but_stays_consistent():
    # Duplicates are dropped upstream by event_id; here a repeat is a new event.
    once = feed(UserFeatures(), [("view", 100.0, True), ("cart", 200.0, False)])
    twice = feed(UserFeatures(), [("view", 100.0, True), ("view", 100.0, True), ("cart", 200.0, False)])
    a, b = once.values(300.0), twice.values(300.0)
    assert b["views"] == 2 * a["views"] and b["sessions"] == 2
    assert twice.gaps == 0  # the repeat is at the same time: no gap, never a negative one
    assert b["recency_days"] == a["recency_days"] and b["age_days"] == a["age_days"]


def test_features_are_bounded_deterministic_and_json_round_trip():
    rng = random.Random(3)
    events = []
    ts = 0.0
    for i in range(2000):
        ts += rng.expovariate(1 / 600.0)
        events.append((rng.choice(["view", "click", "cart", "purchase"]), ts, rng.random() < 0.05,
                       rng.uniform(1, 100), rng.randint(1, 3), f"cat{rng.randint(0, 99)}"))
    f = feed(UserFeatures(), events)
    assert len(f.recent) == f.last_n == 10
    assert len(f.category_keys) == f.max_categories
    assert f.values(ts)["recent_cart_share"] == f.recent.count("c") / 10
    doc = json.dumps(f.to_dict())
    assert len(doc) < 1000
    g = UserFeatures.from_dict(json.loads(doc))
    assert g == f and g.values(ts + DAY) == f.values(ts + DAY)
    assert feed(UserFeatures(), events) == f


def test_features_empty_user():
    v = UserFeatures().values(123.0)
    assert set(v) == set(FEATURE_NAMES) and all(x == 0.0 for x in v.values())


# -- segments --------------------------------------------------------------------

BLOBS = {
    "rare": {"sessions_per_week": 0.0, "events_per_session": 3.0, "purchases_per_view": 0.0,
             "carts_per_view": 0.05, "mean_price": 40.0, "mean_order_value": 0.0},
    "window": {"sessions_per_week": 8.0, "events_per_session": 20.0, "purchases_per_view": 0.0,
               "carts_per_view": 0.01, "mean_price": 50.0, "mean_order_value": 0.0},
    "big": {"sessions_per_week": 10.0, "events_per_session": 18.0, "purchases_per_view": 0.25,
            "carts_per_view": 0.3, "mean_price": 130.0, "mean_order_value": 450.0},
}


def blob_points(n: int, seed: int = 0) -> list[tuple[str, str, dict]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        name = rng.choice(sorted(BLOBS))
        x = {k: v * rng.uniform(0.85, 1.15) for k, v in BLOBS[name].items()}
        out.append((f"u{i}", name, x))
    return out


def trained_segments(n: int = 600, **kw) -> tuple[UserSegments, list]:
    seg = UserSegments(k=3, seed=0, init_size=50, refit_every=100, **kw)
    points = blob_points(n)
    for key, _, x in points:
        seg.learn_one(x, key=key)
    return seg, points


def test_segments_recover_clusters_and_describe_them():
    seg, points = trained_segments()
    labels = [seg.predict_one(x) for _, _, x in points]
    assert adjusted_rand_score([name for _, name, _ in points], labels) == 1.0
    profiles = seg.profiles()
    assert [p["segment"] for p in profiles] == [0, 1, 2]
    assert sum(p["size"] for p in profiles) == len(seg.sample) == sum(seg.sizes)
    names = {seg.predict_one(BLOBS[b]): b for b in BLOBS}
    by_blob = {names[p["segment"]]: p for p in profiles}
    assert by_blob["big"]["name"] == "frequent big spenders"
    assert by_blob["window"]["name"] == "window shoppers"
    assert by_blob["rare"]["name"] == "new or one-off visitors"
    assert by_blob["big"]["centroid"]["mean_order_value"] == pytest.approx(450, rel=0.1)
    assert "buys 25% of views" in by_blob["big"]["description"]


def test_segments_not_ready_before_init_size():
    seg = UserSegments(k=3, init_size=10)
    for key, _, x in blob_points(9):
        seg.learn_one(x, key=key)
    assert not seg.ready and seg.predict_one(BLOBS["big"]) is None
    assert seg.assign(BLOBS["big"], current=None) is None and seg.assign(BLOBS["big"], current=2) == 2
    assert seg.sizes == [] and seg.profiles() == []


def test_hysteresis_no_flapping_near_a_boundary_but_switching_on_real_movement():
    seg, _ = trained_segments()
    a, b = seg.predict_one(BLOBS["rare"]), seg.predict_one(BLOBS["window"])
    ca, cb = seg.inverse(seg.centroids[a]), seg.inverse(seg.centroids[b])
    za, zb = seg.centroids[a], seg.centroids[b]

    def between(t: float) -> dict:  # t=0 at centroid a, 1 at b (in segment space)
        return seg.inverse([p + t * (q - p) for p, q in zip(za, zb)])

    current = a
    switches = 0
    rng = random.Random(1)
    for _ in range(200):  # jitter around the midpoint, both sides of the boundary
        x = between(0.5 + rng.uniform(-0.035, 0.035))
        new = seg.assign(x, current)
        switches += new != current
        current = new
    assert switches == 0 and current == a
    assert seg.predict_one(between(0.53)) == b  # plain nearest would have flipped
    assert seg.assign(between(0.9), current=a) == b  # real movement switches
    assert seg.assign(cb, current=a) == b and seg.assign(ca, current=b) == a
    assert seg.assign(between(0.9), current=None) == b
    assert seg.assign(between(0.9), current=99) == b  # unknown segment: nearest


def test_segments_deterministic_and_pickle_round_trip():
    seg1, _ = trained_segments()
    seg2, _ = trained_segments()
    assert seg1.centroids == seg2.centroids
    clone = pickle.loads(pickle.dumps(seg1))
    probes = [x for _, _, x in blob_points(100, seed=9)]
    assert [clone.predict_one(x) for x in probes] == [seg1.predict_one(x) for x in probes]
    assert [clone.distances(x) for x in probes] == [seg1.distances(x) for x in probes]
    for key, _, x in blob_points(300, seed=5):  # and both keep learning alike
        clone.learn_one(x, key=key)
        seg1.learn_one(x, key=key)
    assert clone.centroids == seg1.centroids and clone.profiles() == seg1.profiles()


def test_segments_memory_is_a_bounded_order_free_sample_of_keys():
    points = blob_points(400)
    seg = UserSegments(k=3, init_size=20, memory=50)
    for key, _, x in points:
        seg.learn_one(x, key=key)
    rev = UserSegments(k=3, init_size=20, memory=50)
    for key, _, x in reversed(points):
        rev.learn_one(x, key=key)
    assert len(seg.sample) == 50 and set(seg.sample) == set(rev.sample)
    key = next(iter(seg.sample))
    seg.forget(key)
    assert key not in seg.sample and len(seg.sample) == 49


# Issue 21: seed 11 of the planted shop spent a segment on one stolen-card user
# (8 purchases per view) and left bargain hunters and window shoppers sharing one.
BARGAIN = {"sessions_per_week": 9.0, "events_per_session": 22.0, "purchases_per_view": 0.04,
           "carts_per_view": 0.07, "mean_price": 25.0, "mean_order_value": 11.0}
STOLEN_CARD = {"sessions_per_week": 0.0, "events_per_session": 9.0, "purchases_per_view": 8.0,
               "carts_per_view": 0.0, "mean_price": 140.0, "mean_order_value": 1100.0}


def shop_with_a_thief(seg: UserSegments, points: list) -> None:
    for i, (key, _, x) in enumerate(points):
        seg.learn_one(x, key=key)
        if i == 50:
            seg.learn_one(STOLEN_CARD, key="thief")


def four_blobs(n: int, seed: int = 0) -> list[tuple[str, str, dict]]:
    rng = random.Random(seed)
    blobs = {**BLOBS, "bargain": BARGAIN}
    return [(f"u{i}", name, {k: v * rng.uniform(0.85, 1.15) for k, v in blobs[name].items()})
            for i, name in ((i, rng.choice(sorted(blobs))) for i in range(n))]


def test_a_segment_taken_by_one_outlier_is_reseeded_by_splitting_the_widest():
    points = four_blobs(800)
    truth = [name for _, name, _ in points]
    old = UserSegments(k=4, seed=0, init_size=50, refit_every=100, min_share=0.0)  # as before issue 21
    shop_with_a_thief(old, points)
    assert min(old.sizes) == 1 and adjusted_rand_score(truth, [old.predict_one(x) for _, _, x in points]) < 0.8
    seg = UserSegments(k=4, seed=0, init_size=50, refit_every=100)
    shop_with_a_thief(seg, points)
    assert min(seg.sizes) >= seg.min_share * len(seg.sample)
    assert adjusted_rand_score(truth, [seg.predict_one(x) for _, _, x in points]) == 1.0
    assert {p["name"] for p in seg.profiles()} >= {"bargain hunters", "window shoppers"}


def test_a_degenerate_model_from_before_is_reseeded_online_at_its_next_refit():
    points = four_blobs(800)
    seg = UserSegments(k=4, seed=0, init_size=50, refit_every=100, min_share=0.0)
    shop_with_a_thief(seg, points)
    lone = seg.sizes.index(1)
    kept = {c: seg.predict_one(BLOBS[c]) for c in ("big", "rare")}
    state = dict(seg.__dict__)
    del state["min_share"]  # a snapshot pickled before the field existed
    restored = UserSegments.__new__(UserSegments)
    restored.__dict__.update(state)
    seg = pickle.loads(pickle.dumps(restored))
    assert seg.min_share == UserSegments.min_share > 0.0
    for key, _, x in four_blobs(100, seed=1):  # users seen before come back: the next refit
        seg.learn_one(x, key=key)
    assert min(seg.sizes) >= seg.min_share * len(seg.sample)
    assert {c: seg.predict_one(BLOBS[c]) for c in kept} == kept  # the other segments keep their numbers
    assert seg.predict_one(BARGAIN) != seg.predict_one(BLOBS["window"])
    assert lone in {seg.predict_one(BARGAIN), seg.predict_one(BLOBS["window"])}


def test_segment_names_are_distinct_when_two_segments_look_alike():
    seg = UserSegments(k=5, seed=0, init_size=50, refit_every=100)  # 5 segments over 3 blobs
    for key, _, x in blob_points(600):
        seg.learn_one(x, key=key)
    names = [p["name"] for p in seg.profiles()]
    assert len(set(names)) == 5, names
    for blob in ("big", "window"):
        base = seg.profiles()[seg.predict_one(BLOBS[blob])]["name"].split(",")[0]
        assert sum(n.startswith(base + ", ") for n in names) == 2, names


# -- propensity and labels ----------------------------------------------------------


def test_pending_positive_by_purchase_inside_window_negative_at_close():
    p = PendingLabels(window_s=DAY, sample=1.0)
    assert p.add("u1", "e1", 1000.0, {"a": 1.0}, p=0.7)
    assert p.add("u1", "e2", 5000.0, {"a": 2.0})
    assert p.add("u2", "e3", 1000.0, {"a": 3.0})
    assert p.on_purchase("u1", 4000.0) == []  # after e1, before e2: e1 positive, held
    assert p.converted == 1
    p.on_purchase("u2", 500.0)  # a purchase before the example does not count
    p.on_purchase("u1", 4000.0)  # nothing converts twice
    assert p.converted == 1
    assert p.resolve(1000.0 + DAY) == []  # closes strictly after ts + window
    done = p.resolve(1000.0 + DAY + 1)
    assert [(r.user_id, r.event_id, r.y, r.p) for r in done] == [
        ("u1", "e1", True, 0.7), ("u2", "e3", False, None),
    ]
    assert p.on_purchase("u1", 5000.0 + DAY + 1) == []  # just past e2's window
    assert [(r.event_id, r.y) for r in p.resolve(1e9)] == [("e2", False)]
    assert len(p) == 0 and p.pending == {}


def test_pending_without_hold_releases_positives_at_once():
    p = PendingLabels(window_s=100.0, sample=1.0, hold_positives=False)
    p.add("u", "e1", 0.0, {})
    p.add("u", "e2", 50.0, {})
    assert [(r.event_id, r.y) for r in p.on_purchase("u", 60.0)] == [("e1", True), ("e2", True)]
    assert len(p) == 0 and p.resolve(1e9) == [] and p.converted == 2


def test_pending_bounds_and_grace():
    p = PendingLabels(window_s=100.0, sample=1.0, max_per_user=3, max_total=5, min_gap_s=10.0, grace_s=30.0)
    kept = [p.add("u1", f"a{i}", float(i * 5), {}) for i in range(8)]  # every 5 s: every other kept
    assert kept == [True, False, True, False, True, False, False, False]
    assert p.skipped == 3 and p.dropped == 2  # spaced enough but past max_per_user: dropped
    assert [p.add(f"v{i}", f"b{i}", 0.0, {}) for i in range(3)] == [True, True, False]
    assert len(p) == 5 and p.dropped == 3
    assert p.resolve(125.0) == []  # window closed at 100, grace until 130
    assert [r.event_id for r in p.resolve(131.0)] == ["a0", "b0", "b1"]
    assert [r.event_id for r in p.resolve(151.0)] == ["a2", "a4"]


def test_pending_sampling_is_by_event_id_hash():
    a, b = PendingLabels(sample=0.25), PendingLabels(sample=0.25)
    ids = [f"e{i}" for i in range(4000)]
    kept_a = [a.add(f"u{i}", e, 0.0, {}) for i, e in enumerate(ids)]
    kept_b = [b.add(f"w{i}", e, 9.0, {}) for i, e in enumerate(ids)]
    assert kept_a == kept_b and 0.2 < sum(kept_a) / len(ids) < 0.3


@pytest.mark.parametrize("via", ["json", "pickle"])
def test_pending_round_trip_resolves_alike(via):
    rng = random.Random(7)
    p = PendingLabels(window_s=HOUR, sample=1.0)
    for i in range(300):
        p.add(f"u{rng.randint(0, 20)}", f"e{i}", i * 30.0, {"i": float(i)})
        if rng.random() < 0.1:
            p.on_purchase(f"u{rng.randint(0, 20)}", i * 30.0)
    if via == "json":
        q = PendingLabels.from_dict(json.loads(json.dumps(p.to_dict())))
    else:
        q = pickle.loads(pickle.dumps(p))
    for t in (5000.0, 9000.0, 1e9):
        assert q.on_purchase("u3", t - 100.0) == p.on_purchase("u3", t - 100.0)
        assert q.resolve(t) == p.resolve(t)
    row = LabelledRow("u", "e", 1.0, {"a": 1.0}, True, 0.3)
    assert LabelledRow.from_dict(json.loads(json.dumps(row.to_dict()))) == row


def synthetic_rows(n: int, seed: int = 0) -> list[tuple[dict, bool]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        carts = rng.randint(0, 3)
        x = {"session_carts": float(carts), "purchases_per_view": rng.random() * 0.3,
             "views": float(rng.randint(1, 50))}
        logit = -2.0 + 1.5 * carts + 4.0 * x["purchases_per_view"]
        rows.append((x, rng.random() < 1 / (1 + math.exp(-logit))))
    return rows


def test_propensity_learns_is_deterministic_and_survives_pickle():
    rows = synthetic_rows(6000)
    m1, m2 = PurchasePropensity(lr=0.01), PurchasePropensity(lr=0.01)
    for x, y in rows[:5000]:
        m1.learn_one(x, y)
        m2.learn_one(x, y)
    test = rows[5000:]
    ps = [m1.predict_one(x) for x, _ in test]
    assert ps == [m2.predict_one(x) for x, _ in test]
    assert roc_auc_score([y for _, y in test], ps) > 0.75
    assert all(0.0 < p < 1.0 for p in ps)
    clone = pickle.loads(pickle.dumps(m1))
    assert [clone.predict_one(x) for x, _ in test] == ps
    assert PurchasePropensity().predict_one({}) == 0.5


# -- calibration metrics -----------------------------------------------------------


def test_ece_and_tracker_agree_with_reference_metrics():
    rng = np.random.default_rng(0)
    ps = rng.random(3000)
    ys = rng.random(3000) < ps**1.5  # over-confident: a measurable ECE
    m = ProbabilityMetrics()
    for y, p in zip(ys, ps):
        m.update(bool(y), float(p))
    got = m.get()
    assert got["n"] == 3000 and got["positives"] == int(ys.sum())
    assert got["roc_auc"] == pytest.approx(roc_auc_score(ys, ps), abs=1e-3)
    assert got["log_loss"] == pytest.approx(log_loss(ys, ps), abs=1e-4)
    assert got["ece"] == pytest.approx(expected_calibration_error(ys.tolist(), ps.tolist()), abs=1e-4)
    assert got["ece"] > 0.05
    assert ProbabilityMetrics.from_dict(json.loads(json.dumps(m.to_dict()))).get() == got
    assert sum(b["n"] for b in m.reliability()) == 3000


def test_ece_of_calibrated_and_empty_inputs():
    ys = [True] * 3 + [False] * 7 + [True] * 8 + [False] * 2
    ps = [0.3] * 10 + [0.8] * 10
    assert expected_calibration_error(ys, ps) == pytest.approx(0.0)
    assert expected_calibration_error([True], [1.0]) == 0.0  # p = 1 lands in the last bin
    assert expected_calibration_error([], []) == 0.0
    empty = ProbabilityMetrics().get()
    assert empty["n"] == 0 and empty["roc_auc"] is None and empty["ece"] is None


def test_model_rows_of_a_large_batch_go_out_in_order_in_messages_under_the_limit() -> None:
    """A batch of thousands of events makes more rows than one producer request
    may carry (1 MB): they are split, none lost, none reordered."""
    from stream.learner import EXAMPLE, ROWS_MESSAGE_BYTES, ModelRow, encode_rows

    x = {name: random.random() for name in FEATURE_NAMES}
    rows = [ModelRow(EXAMPLE, f"u{i}", f"e{i}", 1.7e9 + i, x, 0.5) for i in range(5000)]
    messages = encode_rows(rows)
    assert len(messages) > 1
    assert all(len(m) <= ROWS_MESSAGE_BYTES for m in messages)
    decoded = [ModelRow.from_dict(d) for m in messages for d in json.loads(m)]
    assert decoded == rows
