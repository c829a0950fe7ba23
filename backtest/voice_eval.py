"""Prequential sentiment and intent over recorded texts, with the offline reference.

Reviews and messages go, merged by time, through the worker's own
``Processor.handle`` (in-memory state): every text is scored before it is
learnt, and the time per text is that of the whole live path but Redis
(satisfaction, alerts, service records included). Sentiment: ROC AUC and
accuracy (at 0.5) over the rated reviews after the first
``SENTIMENT_WARMUP`` (ratings 4-5 positive, 1-2 negative); intent: accuracy
and macro-F1 of the likeliest intent over the labelled messages after the
first ``INTENT_WARMUP``, and how many would be ``unknown``. The reference in the same run is offline TF-IDF +
logistic regression (scikit-learn), scored by 5-fold cross-validation on the
same texts: character 1-2-grams for reviews, word 1-2-grams for messages.
For Chinese reviews the peer that needs no labels, snownlp's pretrained
sentiment, scores the same reviews the prequential figures are taken on.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from models.text import UNKNOWN, is_cjk, rating_label
from stream.config import Settings
from stream.outputs import Message
from stream.processor import Processor
from stream.state import MemoryState
from stream.text_events import CustomerMessage, Review, TextEvent
from stream.voice import ScoredText, TextModels

SENTIMENT_WARMUP = 5000
INTENT_WARMUP = 2000
WINDOW = 2000  # texts per point of the timeline (a tenth of a shorter stream)
FOLDS = 5
PEER_SAMPLE = 10_000  # reviews snownlp scores at most (it reads ~100 a second)
BATCH = 100  # texts per Processor batch (a review is rarer than a click)


def _window(n: int) -> int:
    return min(WINDOW, max(10, n // 10))


@dataclass
class VoiceRun:
    metrics: dict = field(default_factory=dict)
    sentiment_timeline: list[dict] = field(default_factory=list)
    intent_timeline: list[dict] = field(default_factory=list)


def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else None


def replay_texts(reviews: Sequence[Review], messages: Sequence[CustomerMessage],
                 settings: Settings | None = None, batch_size: int = BATCH, progress: bool = False,
                 ) -> tuple[list[tuple[TextEvent, ScoredText]], tuple[float, float], TextModels]:
    """Reviews and messages merged by time, in batches through the worker's
    Processor (in-memory state): each text's scores given before it was
    learnt, the seconds spent in ``Processor.handle`` (wall, and this
    process's CPU: what a text costs, whatever else the machine runs), and
    the text models."""
    settings = settings or Settings()
    processor = Processor(MemoryState(settings), settings, collect_scores=True,
                          publish_recommendations=False)
    topics = settings.topics
    texts: list[TextEvent] = sorted([*reviews, *messages], key=lambda t: t.ts)
    scored: list[tuple[TextEvent, ScoredText]] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(texts), desc="texts", unit=" texts", mininterval=1.0)

    async def run() -> tuple[float, float]:
        spent = cpu = 0.0
        for start in range(0, len(texts), batch_size):
            part = texts[start:start + batch_size]
            batch = [Message(None, topics.reviews if isinstance(t, Review) else topics.messages, 0,
                             start + i) for i, t in enumerate(part)]
            began, began_cpu = time.perf_counter(), time.process_time()
            result = await processor.handle(batch, events=part)  # type: ignore[arg-type]
            spent += time.perf_counter() - began
            cpu += time.process_time() - began_cpu
            scored.extend(result.text_scores)
            if bar is not None:
                bar.update(len(part))
        return spent, cpu

    try:
        spent, cpu = asyncio.run(run())
    finally:
        if bar is not None:
            bar.close()
    return scored, (spent, cpu), processor.voice.models


def sentiment_metrics(scored: Sequence[tuple[TextEvent, ScoredText]],
                      warmup: int = SENTIMENT_WARMUP) -> tuple[dict, list[dict]]:
    ys: list[int] = []
    scores: list[float] = []
    reviews = 0
    for text, s in scored:
        if not isinstance(text, Review):
            continue
        reviews += 1
        label = rating_label(text.rating)
        if label is not None:
            ys.append(int(label))
            scores.append(s.raw_positive)
    y, s = np.array(ys), np.array(scores)
    timeline = []
    window = _window(len(y))
    for end in range(window, len(y) + 1, window):
        part = slice(end - window, end)
        timeline.append({"texts": end, "roc_auc": _auc(y[part], s[part]),
                         "accuracy": float(((s[part] > 0.5) == y[part]).mean())})
    after = slice(warmup, None)
    metrics = {
        "reviews": reviews, "rated": len(y), "after": warmup, "scored": max(0, len(y) - warmup),
        "roc_auc": _auc(y[after], s[after]) if len(y) > warmup else None,
        "accuracy": float(((s[after] > 0.5) == y[after]).mean()) if len(y) > warmup else None,
        "positive_share": float(y.mean()) if len(y) else None,
    }
    return metrics, timeline


def intent_metrics(scored: Sequence[tuple[TextEvent, ScoredText]], models: TextModels,
                   warmup: int = INTENT_WARMUP) -> tuple[dict, list[dict]]:
    from sklearn.metrics import f1_score

    truth: list[str] = []
    guess: list[str] = []
    known: list[bool] = []
    messages = 0
    for text, s in scored:
        if not isinstance(text, CustomerMessage):
            continue
        messages += 1
        if text.intent is not None:
            truth.append(text.intent)
            guess.append(s.intent or "")
            known.append(models.known_intent(s) != UNKNOWN)
    right = np.array([a == b for a, b in zip(truth, guess)])
    window = _window(len(right))
    timeline = [{"texts": end, "accuracy": float(right[end - window:end].mean())}
                for end in range(window, len(right) + 1, max(1, window // 4))]
    t, g, told = truth[warmup:], guess[warmup:], np.array(known[warmup:], dtype=bool)
    metrics = {
        "messages": messages, "labelled": len(truth), "after": warmup, "scored": len(t),
        "intents": len(set(truth)),
        "accuracy": float(right[warmup:].mean()) if t else None,
        "macro_f1": float(f1_score(t, g, average="macro")) if t else None,
        "threshold": models.intent.threshold,
        "unknown_share": float(1 - told.mean()) if t else None,
        "accuracy_when_known": float(right[warmup:][told].mean()) if t and told.any() else None,
    }
    return metrics, timeline


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


def pretrained_sentiment(scored: Sequence[tuple[TextEvent, ScoredText]], warmup: int = SENTIMENT_WARMUP,
                         seed: int = 1, sample: int = PEER_SAMPLE, progress: bool = False) -> dict:
    """snownlp's pretrained sentiment on the rated reviews after the warm-up
    (those ``sentiment_metrics`` judges ours on), when most are Chinese: its
    model knows only Chinese. It reads about a hundred reviews a second, so
    past ``sample`` reviews it scores a sample drawn with the seed, and ours
    is measured again on that sample beside it. Without snownlp installed,
    says so."""
    rated = [(t.text, int(label), s.raw_positive) for t, s in scored  # type: ignore[union-attr]
             if isinstance(t, Review) and (label := rating_label(t.rating)) is not None][warmup:]
    if len(rated) > sample:
        pick = np.random.default_rng(seed).choice(len(rated), sample, replace=False)
        rated = [rated[i] for i in sorted(pick)]
    peer: dict = {"model": "snownlp pretrained (Chinese)", "texts": len(rated)}
    if not rated:
        return {**peer, "skipped": f"no rated review after the first {warmup:,}"}
    if sum(any(is_cjk(c) for c in text) for text, _, _ in rated) < len(rated) / 2:
        return {**peer, "skipped": "most reviews are not Chinese"}
    try:
        from snownlp import SnowNLP
    except ImportError:
        return {**peer, "skipped": "snownlp is not installed (pip install snownlp)"}
    texts = [text for text, _, _ in rated]
    if progress:
        from tqdm import tqdm

        texts = tqdm(texts, desc="snownlp", unit=" reviews", mininterval=1.0)
    began = time.perf_counter()
    theirs = np.array([SnowNLP(text).sentiments for text in texts])
    seconds = time.perf_counter() - began
    y, ours = np.array([label for _, label, _ in rated]), np.array([o for _, _, o in rated])
    return {**peer, "roc_auc": _auc(y, theirs), "accuracy": float(((theirs > 0.5) == y).mean()),
            "ours_roc_auc": _auc(y, ours), "ours_accuracy": float(((ours > 0.5) == y).mean()),
            "seconds": seconds}


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
             progress: bool = False, reference: bool = True, settings: Settings | None = None,
             batch_size: int = BATCH) -> VoiceRun:
    scored, (spent, cpu), models = replay_texts(reviews, messages, settings, batch_size, progress)
    run = VoiceRun()
    if reviews:
        m, run.sentiment_timeline = sentiment_metrics(scored)
        if reference:
            if progress:
                print("voice: offline reference for sentiment (5 folds)...", file=sys.stderr, flush=True)
            m["offline_reference"] = offline_sentiment(reviews, seed)
            m["pretrained_peer"] = pretrained_sentiment(scored, seed=seed, progress=progress)
        run.metrics["sentiment"] = m
    if messages:
        m, run.intent_timeline = intent_metrics(scored, models)
        if reference:
            if progress:
                print("voice: offline reference for intent (5 folds)...", file=sys.stderr, flush=True)
            m["offline_reference"] = offline_intent(messages, seed)
        run.metrics["intent"] = m
    texts = len(scored)
    run.metrics["text_cost"] = {"texts": texts, "batch_size": batch_size,
                                "us_per_text": cpu / texts * 1e6 if texts else None,
                                "wall_us_per_text": spent / texts * 1e6 if texts else None,
                                "measured": "Processor.handle, in-memory state; us_per_text is CPU time, "
                                            "wall_us_per_text includes waiting for a shared CPU"}
    return run
