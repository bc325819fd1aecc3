"""Checks of tools/demo_data.py (run by ctest DemoModel.DataGenerator; no third-party modules).

* Every version-3 working spells its result: the digits it writes, read back, are the answer,
  for all subtractions a - b (0 <= b <= a < 1000), additions up to 999 + 999 and 10..99 x 2..9.
* Version 2 is unchanged: a digest of its first 300 examples (seed 1234) equals the one taken
  when version 3 was added, so the earlier training phases stay reproducible.
"""
import hashlib
import json
import os
import random
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_data as D  # noqa: E402

V2_DIGEST = "022b2a0438b47e8b193307268286eac99ef0aedef189e439987b34555e72bdbb"


def digest(version, n=300, seed=1234):
    D.set_version(version)
    rng = random.Random(seed)
    exs = [D.make_example(rng, D.sample_kind(rng), lambda s: True) for _ in range(n)]
    return hashlib.sha256(json.dumps(exs, sort_keys=True).encode()).hexdigest()


def main():
    D.set_version(3)
    for a in range(1000):
        for b in range(a + 1):
            digits = [int(re.search(r"=(\d+)( borrow 1)?$", s).group(1)) for s in D._sub_work(a, b).split("; ")]
            assert int("".join(map(str, digits[::-1]))) == a - b, (a, b, D._sub_work(a, b))
    for a in range(0, 1000, 7):
        for b in range(1000):
            steps = D._add_work(a, b).split("; ")
            digits = [int(s.split("=")[1]) % 10 for s in steps if "=" in s]
            r = int("".join(map(str, digits[::-1]))) + (10 ** len(digits) if steps[-1] == "carry 1" else 0)
            assert r == a + b, (a, b, steps)
    for a in range(10, 100):
        for b in range(2, 10):
            steps = D._mul_work(a, b).split("; ")
            s1, s2 = int(steps[0].split("=")[1]), int(steps[-1].split("=")[1])
            assert s2 * 10 + s1 % 10 == a * b, (a, b, steps)
    rng = random.Random(5)
    for kind in ("add", "sub", "mul"):  # without thinking the visible answer is the working
        e = D.make_example(rng, kind, lambda s: True, think=False)
        a, b = map(int, re.findall(r"\d+", e["messages"][-1]["content"])[:2])
        if kind == "sub" and a < b:  # "Subtract 58 from 347." names b first
            a, b = b, a
        want = {"add": a + b, "sub": a - b, "mul": a * b}[kind]
        assert e["target"]["content"].endswith(f" = {want}.") and e["target"]["reasoning"] == "", e
    got = digest(2)
    if len(sys.argv) > 1 and sys.argv[1] == "--print-digest":
        print(got)
        return 0
    assert got == V2_DIGEST, f"version-2 data changed: digest {got}, expected {V2_DIGEST}"
    print("demo_data OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
