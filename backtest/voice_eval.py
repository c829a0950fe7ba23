"""Prequential sentiment and intent over recorded texts, with the offline reference.

Every text is scored before it is learnt (:class:`stream.voice.TextModels`,
the worker's own). Sentiment: ROC AUC and accuracy (at 0.5) over the rated
reviews after the first ``SENTIMENT_WARMUP`` (ratings 4-5 positive, 1-2
negative); intent: accuracy and macro-F1 of the likeliest intent over the
labelled messages after the first ``INTENT_WARMUP``, and how many fall below
the ``unknown`` threshold. The reference in the same run is offline TF-IDF +
logistic regression (scikit-learn), scored by 5-fold cross-validation on the
same texts: character 1-2-grams for reviews, word 1-2-grams for messages.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from models.text import UNKNOWN, rating_label
from stream.text_events import CustomerMessage, Review
from stream.voice import TextModels

SENTIMENT_WARMUP = 5000
INTENT_WARMUP = 2000
WINDOW = 2000  # texts per point of the timeline (a tenth of a shorter stream)


def _window(n: int) -> int:
    return min(WINDOW, max(10, n // 10))
FOLDS = 5


@dataclass
class VoiceRun:
    metrics: dict = field(default_factory=dict)
    sentiment_timeline: list[dict] = field(default_factory=list)
    intent_timeline: list[dict] = field(default_factory=list)


def _progress(items: Sequence, label: str, show: bool):  # type: ignore[no-untyped-def]
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=label, unit=" texts", mininterval=1.0)


def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else None


def sentiment_run(reviews: Sequence[Review], models: TextModels, progress: bool = False,
                  warmup: int = SENTIMENT_WARMUP) -> tuple[dict, list[dict], float]:
    """(metrics, timeline, seconds spent in the models)."""
    ys: list[int] = []
    scores: list[float] = []
    spent = 0.0
    for review in _progress(reviews, "reviews", progress):
        started = time.perf_counter()
        scored = models.on_review(review)
        spent += time.perf_counter() - started
        label = rating_label(review.rating)
        if label is not None:
            ys.append(int(label))
            scores.append(scored.raw_positive)
    y, s = np.array(ys), np.array(scores)
    timeline = []
    window = _window(len(y))
    for end in range(window, len(y) + 1, window):
        part = slice(end - window, end)
        timeline.append({"texts": end, "roc_auc": _auc(y[part], s[part]),
                         "accuracy": float(((s[part] > 0.5) == y[part]).mean())})
    after = slice(warmup, None)
    metrics = {
        "reviews": len(reviews), "rated": len(y), "after": warmup, "scored": max(0, len(y) - warmup),
        "roc_auc": _auc(y[after], s[after]) if len(y) > warmup else None,
        "accuracy": float(((s[after] > 0.5) == y[after]).mean()) if len(y) > warmup else None,
        "positive_share": float(y.mean()) if len(y) else None,
    }
    return metrics, timeline, spent


def intent_run(messages: Sequence[CustomerMessage], models: TextModels, progress: bool = False,
               warmup: int = INTENT_WARMUP) -> tuple[dict, list[dict], float]:
    from sklearn.metrics import f1_score

    truth: list[str] = []
    guess: list[str] = []
    known: list[bool] = []
    spent = 0.0
    for message in _progress(messages, "messages", progress):
        started = time.perf_counter()
        scored = models.on_message(message)
        spent += time.perf_counter() - started
        if message.intent is not None:
            truth.append(message.intent)
            guess.append(scored.intent or "")
            known.append(models.known_intent(scored) != UNKNOWN)
    right = np.array([a == b for a, b in zip(truth, guess)])
    window = _window(len(right))
    timeline = [{"texts": end, "accuracy": float(right[end - window:end].mean())}
                for end in range(window, len(right) + 1, max(1, window // 4))]
    t, g, told = truth[warmup:], guess[warmup:], np.array(known[warmup:], dtype=bool)
    metrics = {
        "messages": len(messages), "labelled": len(truth), "after": warmup, "scored": len(t),
        "intents": len(set(truth)),
        "accuracy": float(right[warmup:].mean()) if t else None,
        "macro_f1": float(f1_score(t, g, average="macro")) if t else None,
        "threshold": models.intent.threshold,
        "unknown_share": float(1 - told.mean()) if t else None,
        "accuracy_when_known": float(right[warmup:][told].mean()) if t and told.any() else None,
    }
    return metrics, timeline, spent


def offline_sentiment(reviews: Sequence[Review], seed: int) -> dict:
    """TF-IDF character 1-2-grams + logistic regression, 5-fold."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    rated = [(r.text, rating_label(r.rating)) for r in reviews if rating_label(r.rating) is not None]
    texts, y = [t for t, _ in rated], np.array([int(v) for _, v in rated])  # type: ignore[arg-type]
    if len(set(y)) < 2 or len(y) < FOLDS * 2:
        return {}
    pipe = make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True),
                         LogisticRegression(solver="liblinear", C=4.0))
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    p = cross_val_predict(pipe, texts, y, cv=folds, method="predict_proba")[:, 1]
    return {"model": "TF-IDF char 1-2-grams + logistic regression, 5-fold", "texts": len(y),
            "roc_auc": _auc(y, p), "accuracy": float(((p > 0.5) == y).mean())}


def offline_intent(messages: Sequence[CustomerMessage], seed: int) -> dict:
    """TF-IDF word 1-2-grams + logistic regression, 5-fold."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    labelled = [(m.text, m.intent) for m in messages if m.intent is not None]
    texts, y = [t for t, _ in labelled], [i for _, i in labelled]
    counts = np.unique(y, return_counts=True)[1] if y else np.array([])
    if len(counts) < 2 or counts.min() < FOLDS:
        return {}
    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                         LogisticRegression(C=10.0, max_iter=2000))
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    p = cross_val_predict(pipe, texts, y, cv=folds)
    return {"model": "TF-IDF word 1-2-grams + logistic regression, 5-fold", "texts": len(y),
            "accuracy": float(np.mean(np.array(y) == p)),
            "macro_f1": float(f1_score(y, p, average="macro"))}


def evaluate(reviews: Sequence[Review], messages: Sequence[CustomerMessage], seed: int = 1,
             progress: bool = False, reference: bool = True,
             models: TextModels | None = None) -> VoiceRun:
    models = models or TextModels()
    run = VoiceRun()
    spent, texts = 0.0, 0
    if reviews:
        m, run.sentiment_timeline, seconds = sentiment_run(reviews, models, progress)
        if reference:
            m["offline_reference"] = offline_sentiment(reviews, seed)
        run.metrics["sentiment"] = m
        spent, texts = spent + seconds, texts + len(reviews)
    if messages:
        m, run.intent_timeline, seconds = intent_run(messages, models, progress)
        if reference:
            m["offline_reference"] = offline_intent(messages, seed)
        run.metrics["intent"] = m
        spent, texts = spent + seconds, texts + len(messages)
    run.metrics["text_cost"] = {"texts": texts, "us_per_text": spent / texts * 1e6 if texts else None}
    return run
