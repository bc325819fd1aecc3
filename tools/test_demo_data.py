"""Checks of tools/demo_data.py (run by ctest DemoModel.DataGenerator; no third-party modules).

* Every version-3 working spells its result: the digits it writes, read back, are the answer,
  for all subtractions a - b (0 <= b <= a < 1000), additions up to 999 + 999 and 10..99 x 2..9.
* Versions 2, 3 and 4 are unchanged: digests of their first 300 examples (seed 1234) equal the
  ones taken when the next version was added, so the earlier training phases stay reproducible.
* Version 4: a comparison's working states the digit fact that decides it, a one-letter count's
  working ends in the count, an insertion sort's last step is the sorted string, and without
  thinking those workings are the visible answer.
* Version 5: version 4's conversations in another mix (the same kind and random state give the
  same conversation; kinds drawn in MIX_V5's proportions).
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
V3_DIGEST = "a1ace71fc9ce9cd974989b6e39a48c2b1e6c4f63e47c073568b4471e6c4d8018"
V4_DIGEST = "a21ab1a4f7d30058bcf9c879434520aa630b7a7c393eab308058d0e768fcde1f"
# Versions 5 and 6 trained the fourth and fifth from-scratch runs (models/README.md, Status).
V5_DIGEST = "6d0c96be4891173cb5a405f75680b7685409d9fa8ff46bcdeb4d8095ad3b3c30"
V6_DIGEST = "13c4750723f65a58ef8c588875c6a982bf76c6dfd7fc62f2b08b93fbbf98d60f"


def digest(version, n=300, seed=1234):
    D.set_version(version)
    rng = random.Random(seed)
    exs = [D.make_example(rng, D.sample_kind(rng), lambda s: True) for _ in range(n)]
    return hashlib.sha256(json.dumps(exs, sort_keys=True).encode()).hexdigest()


def check_v4():
    D.set_version(4)
    rng = random.Random(11)
    for _ in range(400):
        for think in (False, True):
            kind = rng.choice(["larger", "gt", "count_char", "sort_letters"])
            e = D.make_example(rng, kind, lambda s: True, think=think)
            q, t = e["messages"][-1]["content"], e["target"]
            work = t["reasoning"] if think else t["content"]
            if kind in ("larger", "gt"):
                a, b = map(int, re.findall(r"\d+", q)[:2])
                m = re.search(r"digits are (\d) and (\d), and (\d) ([<>]) (\d)", work) or \
                    re.search(r"has (\d) digits and \d+ has (\d) digits, and (\d) ([<>]) (\d)", work)
                assert (m is not None) == (a != b), (q, work)
                if m:
                    x, y = int(m.group(3)), int(m.group(5))
                    assert (x < y) == (m.group(4) == "<") and (x < y) == (a < b), (q, work)
                if kind == "larger":
                    assert work.endswith(f"So {max(a, b)} is larger."), (q, work)
                elif not think:
                    assert work.endswith("Yes, %d is greater than %d." % (a, b) if a > b else
                                         "No, %d is %s %d." % (a, "less than" if a < b else "equal to", b)), work
            elif kind == "count_char":
                c, s = re.search(r"([A-Z])\b.*?\b([A-Z]{3,})\b", q).groups() if "appear" in q or "letter" in q \
                    else re.search(r"many ([A-Z])s are in ([A-Z]+)", q).groups()
                steps = re.findall(r"([A-Z]) vs ([A-Z]) (yes|no) (\d+)", work)
                assert [x for _, x, _, _ in steps] == list(s) and all(w == c for w, _, _, _ in steps), (q, work)
                assert int(steps[-1][3]) == s.count(c) and work.endswith(f"appears {s.count(c)} times."), (q, work)
            else:
                s = re.search(r"\b([A-Z]{3,})\b", q).group(1)
                last = re.findall(r"[A-Z]: ([A-Z ]+)", work)[-1].replace(" ", "")
                assert last == "".join(sorted(s)) and work.endswith(f"order: {' '.join(sorted(s))}."), (q, work)
            assert think or t["reasoning"] == ""


def check_mix_version(version, mix, changed_kinds=()):
    """`version` is version 4's generator with another mix: the same kind from the same random
    state gives the same conversation (except changed_kinds), and the kinds come in `mix`'s
    proportions."""
    for i, kind in enumerate(D.MIX_V4):
        for think in (False, True):
            exs = []
            for v in (4, version):
                D.set_version(v)
                exs.append(D.make_example(random.Random(2 * i + think), kind, lambda s: True,
                                          think=think))
            assert kind in changed_kinds or exs[0] == exs[1], (kind, exs)
    D.set_version(version)
    assert D.MIX is mix and set(mix) == set(D.MIX_V4)
    rng = random.Random(9)
    n = 20000
    counts = {k: 0 for k in mix}
    for _ in range(n):
        counts[D.sample_kind(rng)] += 1
    total = sum(mix.values())
    for k, w in mix.items():
        assert abs(counts[k] / n - w / total) < 0.01, (k, counts[k] / n, w / total)


def check_v5():
    check_mix_version(5, D.MIX_V5)


def check_v6():
    """Version 6: another mix, and more equal pairs in "is a greater than b?"."""
    check_mix_version(6, D.MIX_V6, changed_kinds=("gt",))
    equal = {}
    for v in (4, 6):
        D.set_version(v)
        rng = random.Random(11)
        qs = [D.gen_gt(rng, True)[0] for _ in range(4000)]
        equal[v] = sum(len(set(re.findall(r"\d+", q))) == 1 for q in qs) / len(qs)
    assert 0.07 < equal[4] < 0.12 and 0.14 < equal[6] < 0.19, equal  # ~9 % and ~16 %


def main():
    check_v4()
    check_v5()
    check_v6()
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
    got = digest(3)
    assert got == V3_DIGEST, f"version-3 data changed: digest {got}, expected {V3_DIGEST}"
    got = digest(4)
    assert got == V4_DIGEST, f"version-4 data changed: digest {got}, expected {V4_DIGEST}"
    for version, want in ((5, V5_DIGEST), (6, V6_DIGEST)):
        got = digest(version)
        assert got == want, f"version-{version} data changed: digest {got}, expected {want}"
    print("demo_data OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
