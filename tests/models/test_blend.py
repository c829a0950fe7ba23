"""The fraud score's blend: the detector's ranking before outcomes, the
classifier's weight once it knows more, and snapshots from before the blend."""

from __future__ import annotations

import pickle

from river import linear_model, optim, preprocessing
from sklearn.metrics import roc_auc_score

from models.fraud import FraudDetector, purchase_features
from models.profile import UserProfile
from shop.cards import CardShop
from stream.learner import FRAUD, Learner, ModelRow
from stream.events import Label

HOUR = 3600.0


def card_features(count: int, seed: int = 5) -> list[tuple[str, float, dict[str, float], bool]]:
    shop = CardShop(seed, fraud_share=0.01)
    out = []
    for e in shop.events(count):
        x = purchase_features(UserProfile(e.user_id), e.item_id, e.ts, e.price or 0.0,
                              order_id=e.order_id, attrs=e.attrs)
        out.append((e.event_id, e.ts, x, e.event_id in shop.fraud_events))
    return out


def test_before_any_outcome_the_score_ranks_as_the_detector() -> None:
    detector = FraudDetector(n_trees=10)
    rows = card_features(1500)
    assert detector.explain_one(rows[0][2]) == {"score": 0.5, "anomaly": 0.0}  # knows nothing yet
    for _, _, x, _ in rows[:1000]:
        detector.learn_one(x)
    parts = [detector.explain_one(x) for _, _, x, _ in rows[1000:]]
    by_score = sorted(range(len(parts)), key=lambda i: (parts[i]["score"], i))
    by_anomaly = sorted(range(len(parts)), key=lambda i: (parts[i]["anomaly"], i))
    assert by_score == by_anomaly
    assert all("probability" not in p for p in parts)
    # On the blend's scale: a typical purchase is unlikely fraud.
    assert sorted(p["score"] for p in parts)[len(parts) // 2] < 0.2


def test_the_classifier_takes_over_once_outcomes_say_it_knows_more() -> None:
    """Card purchases, outcomes 6 hours late: the blend learns to lean on the
    classifier, and ranks later purchases better than the detector alone."""
    detector = FraudDetector(n_trees=10)
    rows = card_features(12_000)
    pending: list[tuple[float, dict[str, float], float, bool]] = []
    judged = []
    for start in range(0, len(rows), 500):  # batches, as a worker scores them
        batch = rows[start:start + 500]
        parts = [detector.explain_one(x) for _, _, x, _ in batch]
        for (_, ts, x, fraud), p in zip(batch, parts):
            detector.learn_one(x, p["anomaly"])
            pending.append((ts + 6 * HOUR, x, p["anomaly"], fraud))
            if start >= 6000:
                judged.append((fraud, p["score"], p["anomaly"]))
        now = batch[-1][1]
        while pending and pending[0][0] <= now:
            _, x, anomaly, fraud = pending.pop(0)
            detector.learn_label(x, anomaly, fraud)
    weights = detector.blend.weights()
    assert weights["fitted"] and weights["classifier"] > 0.3, weights
    ys = [j[0] for j in judged]
    blended = roc_auc_score(ys, [j[1] for j in judged])
    alone = roc_auc_score(ys, [j[2] for j in judged])
    assert blended > alone + 0.01 and blended > 0.95, (blended, alone)


def old_detector(trained: int = 600) -> FraudDetector:
    """A detector as pickled before the blend: its classifier read the anomaly
    score and stepped by SGD, and it had no blend, statistics or count."""
    detector = FraudDetector(n_trees=5)
    detector.classifier = preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.SGD(0.1), intercept_lr=0.1)
    for i, (_, _, x, fraud) in enumerate(card_features(trained)):
        detector.learn_one(x)
        if i >= 300:
            detector.classifier.learn_one({**x, "anomaly": 0.5}, fraud or i % 50 == 0)
    detector.positives, detector.negatives = 12, 288
    for name in ("learnt", "anomaly_stats", "blend", "max_fraud_weight"):
        del detector.__dict__[name]
    return detector


def test_snapshots_pickled_before_the_blend_still_load_and_score() -> None:
    raw = pickle.dumps(old_detector())
    loaded = pickle.loads(raw)
    x = card_features(1, seed=9)[0][2]
    parts = loaded.explain_one(x)
    assert 0.0 <= parts["score"] <= 1.0 and "probability" in parts
    loaded.learn_one(x)
    loaded.learn_label(x, parts["anomaly"], True)
    assert loaded.positives == 13 and not loaded.blend.weights()["fitted"]


def test_a_learner_restarted_on_old_state_goes_on_learning() -> None:
    learner = Learner()
    learner.fraud = old_detector()
    restored = pickle.loads(pickle.dumps(learner))
    rows = card_features(50, seed=3)
    restored.learn([ModelRow(FRAUD, f"u{i}", eid, ts, x, 0.5, None, 0.6)
                    for i, (eid, ts, x, _) in enumerate(rows)])
    assert restored.learn_labels([Label(fraud, ts + 6 * HOUR, event_id=eid)
                                  for eid, ts, _, fraud in rows]) == 50
    models = restored.snapshot()
    assert models.fraud.explain_one(rows[0][2])["score"] >= 0.0
