#!/usr/bin/env python3
"""Which text features measure better: ours (CJK characters, Latin words, their
pairs, subword 3-grams) against jieba's words (pairs too) and against words
without subwords, prequentially on the two labelled sets (the models of
``models/text.py``, every text scored before it is learnt, no Processor).

    python scripts/text_features.py --seed 1

jieba is not a dependency: without it (``pip install jieba``) its rows are skipped.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.cli import Parser  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="text_features.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--reviews", type=Path, default=DATA / "reviews-zh" / "online_shopping_10_cats.csv.gz")
    p.add_argument("--messages", type=Path,
                   default=DATA / "support-intents" / "bitext_customer_support.csv.gz")
    args = p.parse_args(argv)

    from backtest.sources import SourceError
    from backtest.voice_eval import intent_metrics, sentiment_metrics
    from backtest.voice_sources import read_messages, read_reviews
    from models.text import Intent, Sentiment, TextFeatures
    from stream.voice import TextModels

    @dataclass(frozen=True)
    class JiebaWords(TextFeatures):
        def terms(self, text: str) -> list[str]:
            import jieba

            words = [w for w in jieba.lcut(text.lower()) if not w.isspace()]
            return words + [f"{a} {b}" for a, b in zip(words, words[1:])]

    try:
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        kinds = {"ours": TextFeatures(), "no subwords": TextFeatures(subword=10**6), "jieba words": JiebaWords()}
    except ImportError:
        print("text_features.py: jieba is not installed; its rows are skipped", file=sys.stderr)
        kinds = {"ours": TextFeatures(), "no subwords": TextFeatures(subword=10**6)}
    try:
        reviews, messages = read_reviews(args.reviews, args.seed), read_messages(args.messages, args.seed)
    except SourceError as exc:
        print(f"text_features.py: {exc}", file=sys.stderr)
        return 1
    print(f"seed {args.seed}: {len(reviews):,} reviews (AUC after 5,000), "
          f"{len(messages):,} messages (accuracy after 2,000)")
    for name, features in kinds.items():
        models = TextModels(Sentiment(features), Intent(features))
        began = time.perf_counter()
        scored = [(r, models.on_review(r)) for r in reviews]
        per_review = (time.perf_counter() - began) / len(reviews) * 1e6
        began = time.perf_counter()
        scored += [(m, models.on_message(m)) for m in messages]
        per_message = (time.perf_counter() - began) / len(messages) * 1e6
        s, _ = sentiment_metrics(scored)
        i, _ = intent_metrics(scored, models)
        print(f"{name:12s} sentiment ROC AUC {s['roc_auc']:.4f} ({per_review:.0f} µs a review)  "
              f"intent accuracy {i['accuracy']:.4f}, macro-F1 {i['macro_f1']:.4f} "
              f"({per_message:.0f} µs a message)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
