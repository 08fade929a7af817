"""The sensitive-word filter's throughput on Chinese review texts, in-process.

    .venv/bin/python -m bench.moderation [--runs 3] [--texts 5000]

10,000 Chinese words (2–4 characters) in the automaton; review texts of 50–300 characters,
one in five with a word hidden behind separators (spaces, punctuation, emoji, full-width
letters). Measured per run, on the same texts:

* **pipeline**: what `services.moderation` does for a text: normalise with the one translate
  table, match with the Aho-Corasick automaton (ahocorasick-rs, leftmost-longest), and map the
  hits back to original positions;
* **ceiling**: the two steps any such filter needs, timed alone: the normalising translate,
  and one automaton pass over the raw text.

Reported: MB/s (UTF-8 bytes of text) of each, and pipeline ÷ ceiling. The performance spec's
figures: ahocorasick-rs 60–90 MB/s on raw text, normalisation ~29 MB/s in pure Python, the
whole pipeline's ceiling therefore ~20 MB/s.
"""
import argparse
import random
import time

from bench.common import median
from services import moderation

COMMON = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
SEPARATORS = [" ", "-", "*", "😀", "\u200b", "，", "　"]


def corpus(texts: int, seed: int = 11):
    rnd = random.Random(seed)
    words = sorted({"".join(rnd.choice(COMMON) for _ in range(rnd.randint(2, 4)))
                    for _ in range(10_500)})[:10_000]
    bodies, hidden_spans = [], {}
    for n in range(texts):
        body = "".join(rnd.choice(COMMON + ["，", "。", " ", "！"])
                       for _ in range(rnd.randint(50, 300)))
        if n % 5 == 0:
            word = rnd.choice(words)
            hidden = rnd.choice(SEPARATORS).join(word)
            at = rnd.randint(0, len(body))
            body = body[:at] + hidden + body[at:]
            hidden_spans[n] = (at, at + len(hidden))
        bodies.append(body)
    return words, bodies, hidden_spans


def missed(machine, bodies, hidden_spans) -> list[int]:
    """The texts whose hidden word no hit covers."""
    lost = []
    for n, (start, end) in hidden_spans.items():
        body = bodies[n]
        where = moderation.positions(body)
        spans = [(where[s], where[e - 1] + 1)
                 for _, s, e in machine.find_matches_as_indexes(moderation.normalised(body))]
        if not any(s <= start and end <= e or (s < end and start < e) for s, e in spans):
            lost.append(n)
    return lost


def automaton(words):
    import ahocorasick_rs

    return ahocorasick_rs.AhoCorasick([moderation.normalised(w) for w in words],
                                      matchkind=ahocorasick_rs.MatchKind.LeftmostLongest)


def pipeline(machine, bodies) -> int:
    found = 0
    for body in bodies:
        matches = machine.find_matches_as_indexes(moderation.normalised(body))
        if matches:
            where = moderation.positions(body)
            found += len([(where[s], where[e - 1] + 1) for _, s, e in matches])
    return found


def ceiling(machine, bodies) -> None:
    table = moderation.tables()[0]
    for body in bodies:
        body.translate(table)
        machine.find_matches_as_indexes(body)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.moderation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--texts", type=int, default=5000)
    args, _ = parser.parse_known_args(argv)
    words, bodies, hidden_spans = corpus(args.texts)
    size_mb = sum(len(b.encode()) for b in bodies) / 1e6
    moderation.tables()
    machine = automaton(words)
    found = pipeline(machine, bodies)
    lost = missed(machine, bodies, hidden_spans)
    print(f"{len(words)} words, {len(bodies)} texts, {size_mb:.2f} MB; hits: {found}; hidden "
          f"words: {len(hidden_spans)}, missed: {len(lost)}")
    rates, ceilings = [], []
    print(f"{'run':>4} {'pipeline MB/s':>14} {'ceiling MB/s':>13} {'ratio':>6}")
    for run in range(1, args.runs + 1):
        start = time.perf_counter()
        pipeline(machine, bodies)
        piped = size_mb / (time.perf_counter() - start)
        start = time.perf_counter()
        ceiling(machine, bodies)
        top = size_mb / (time.perf_counter() - start)
        rates.append(piped)
        ceilings.append(top)
        print(f"{run:>4} {piped:>14.1f} {top:>13.1f} {piped / top:>6.2f}")
    print(f"median: pipeline {median(rates):.1f} MB/s, ceiling {median(ceilings):.1f} MB/s, "
          f"ratio {median(rates) / median(ceilings):.2f}")
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
