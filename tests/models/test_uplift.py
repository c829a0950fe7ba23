"""models/uplift.py: the four classic kinds of customer, ranked by uplift."""

from __future__ import annotations

import pickle
import random

from models.uplift import ResponseModel, UpliftModel

# P(buys) if treated, if held out.
KINDS = {
    "persuadable": (0.45, 0.10),
    "sure thing": (0.60, 0.60),
    "lost cause": (0.03, 0.03),
    "do not disturb": (0.15, 0.40),
}


def planted(n: int, seed: int) -> list[tuple[dict, str, bool, bool]]:
    """Customers whose kind shows only through noisy features, like a real shop's."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        kind = rng.choice(list(KINDS))
        x = {"channel": kind if rng.random() < 0.8 else rng.choice(list(KINDS)),
             "noise": rng.gauss(0.0, 1.0)}
        treated = rng.random() < 0.5
        p_treated, p_held = KINDS[kind]
        rows.append((x, kind, treated, rng.random() < (p_treated if treated else p_held)))
    return rows


def test_ranks_persuadables_first_and_do_not_disturb_last() -> None:
    model, response = UpliftModel(), ResponseModel()
    for x, _, treated, bought in planted(8000, seed=3):
        model.learn_one(x, treated, bought)
        response.learn_one(x, bought)
    by_kind = {k: model.predict_one({"channel": k, "noise": 0.0}) for k in KINDS}
    ranking = sorted(by_kind, key=by_kind.get, reverse=True)
    assert ranking[0] == "persuadable" and ranking[-1] == "do not disturb", by_kind
    # A response model would target the sure things first.
    resp = {k: response.predict_one({"channel": k, "noise": 0.0}) for k in KINDS}
    assert max(resp, key=resp.get) == "sure thing"
    # With 80 % of customers showing their kind, the planted uplift of 35 points shows as most of it.
    assert 0.15 < by_kind["persuadable"] < 0.35
    assert by_kind["do not disturb"] < -0.05


def test_knows_nothing_before_learning_and_ignores_unseen_features() -> None:
    model = UpliftModel()
    assert model.predict_one({"channel": "Web"}) == 0.0
    for i in range(200):
        model.learn_one({"channel": "Web"}, treated=i % 2 == 0, outcome=i % 4 == 0)
    assert model.predict_one({"channel": "Phone", "brand_new": 3.0}) == model.predict_one({})


def test_features_beyond_the_cap_are_ignored_and_the_model_pickles() -> None:
    model = UpliftModel(max_features=5)
    for i in range(50):
        model.learn_one({f"f{i}": 1.0}, treated=True, outcome=True)
    assert all(len(m.index) <= 2 * 5 + 2 for m in model.members)
    again = pickle.loads(pickle.dumps(model))
    assert again.predict_one({"f1": 1.0}) == model.predict_one({"f1": 1.0})
    assert again.learnt == 50 and again.treated_learnt == 50


def test_evidence_prefers_the_prior_that_fits() -> None:
    """Where customers react alike, the tight interaction prior wins; where they differ, a loose one."""
    rng = random.Random(5)
    alike, differ = UpliftModel(), UpliftModel()
    for _ in range(6000):
        kind = rng.choice(["a", "b"])
        treated = rng.random() < 0.5
        alike.learn_one({"kind": kind}, treated, rng.random() < (0.2 if treated else 0.15))
        p = (0.5 if treated else 0.1) if kind == "a" else 0.3
        differ.learn_one({"kind": kind}, treated, rng.random() < p)
    assert alike.weights()[0] > alike.weights()[-1]
    assert differ.weights()[-1] > differ.weights()[0]
