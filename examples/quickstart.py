"""A small program with a bit of everything a profile should show.

    python -m hyprof run examples/quickstart.py

It parses JSON records, scores them with a few methods, walks a recursive
structure, and waits on a short sleep, so that the report shows calls,
recursion, builtins, and the difference between wall time and CPU time.
"""

import json
import time


class Scorer:
    def __init__(self, weights):
        self.weights = weights

    def score(self, record):
        return sum(self.term(record, key) for key in self.weights)

    def term(self, record, key):
        return self.weights[key] * len(str(record.get(key, "")))


def make_records(n):
    return json.dumps([{"id": i, "name": f"item-{i}", "tags": ["a", "b"][: i % 3]}
                       for i in range(n)])


def depth(tree):
    if not isinstance(tree, list) or not tree:
        return 0
    return 1 + max(depth(child) for child in tree)


def nested(n):
    return [nested(n - 1), nested(n - 2)] if n > 1 else []


def wait_for_io():
    time.sleep(0.05)


def main():
    records = json.loads(make_records(20000))
    scorer = Scorer({"id": 1, "name": 2, "tags": 3})
    total = sum(scorer.score(r) for r in records)
    tree_depth = depth(nested(18))
    wait_for_io()
    print(f"scored {len(records)} records: total {total}, tree depth {tree_depth}")


if __name__ == "__main__":
    main()
