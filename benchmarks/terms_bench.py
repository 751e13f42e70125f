"""The offensive-term check against better-profanity's own matcher, on the same captions, same word list.

genaudit's matcher (:mod:`audit.dataset.terms`) looks words and n-grams up in a set; better-profanity's
``contains_profanity`` walks its word list per token. Both run here on N synthetic captions (COCO-like
length, 1 in 50 with a listed term, some spelt with digits), and the script prints captions per second,
the ratio, and how often the two disagree on whether a caption holds a term.

    python benchmarks/terms_bench.py [--n 5000]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

VOCABULARY = (
    "a photo of the man woman dog cat street park sitting standing next to with red blue car tree house "
    "beach city night people group small large old young holding looking at on in"
)
WORDS = VOCABULARY.split(" ")
PLANTED = ("bitch", "b1tch", "shit", "$hit", "wank", "doggy-style")


def captions(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        words = list(rng.choice(WORDS, size=int(rng.integers(8, 16))))
        if i % 50 == 0:
            words.insert(int(rng.integers(0, len(words))), PLANTED[(i // 50) % len(PLANTED)])
        out.append(" ".join(words))
    return out


def main() -> int:
    from better_profanity import Profanity

    from audit.dataset.terms import term_checker

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    texts = captions(args.n)
    ours = term_checker()
    theirs = Profanity()
    t0 = time.perf_counter()
    found_ours = [bool(ours.find(t)) for t in texts]
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    found_theirs = [theirs.contains_profanity(t) for t in texts]
    t_theirs = time.perf_counter() - t0
    disagree = sum(a != b for a, b in zip(found_ours, found_theirs, strict=True))
    sys.stdout.write(
        f"{args.n} captions: genaudit {args.n / t_ours:,.0f}/s ({1e6 * t_ours / args.n:.0f} us each), "
        f"better-profanity contains_profanity {args.n / t_theirs:,.0f}/s ({1e6 * t_theirs / args.n:.0f} us each); "
        f"ratio {t_theirs / t_ours:.0f}x; flagged {sum(found_ours)} vs {sum(found_theirs)}, disagree on {disagree}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
