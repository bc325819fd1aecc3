#!/usr/bin/python3
"""Held-out evaluation of the Pocket demo model through `pocket run` (greedy).

A fresh test set (seed --seed, different from training; any question text that also occurs in the
training set is dropped) is rendered with the real chat template, tokenized by Pocket and run with
`pocket run --prompt-ids ... --json` (greedy), with thinking on and off. Scores:
  * arithmetic (add, sub, mul, larger, gt) and string tasks: exact match of the visible answer;
  * json: the answer parses as JSON and equals the expected object;
  * tool_call: the answer is one well-formed Qwen3.5 XML <tool_call> block whose function name and
    arguments are right (numbers compared as numbers);
  * tool_answer: exact match of the answer written from a tool result.

    /usr/bin/python3 tools/eval_demo_model.py --model models/pocket-demo.gguf --n 20 [--json-out r.json]
Exit status: 0, or 1 when a group falls below --min-acc, or all prompts below --min-exact (exact
answers) or --min-wellformed (well-formed answers).
"""
import argparse
import concurrent.futures as cf
import json
import os
import random
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_data as D  # noqa: E402
from demo_paths import ROOT, default_pocket, shared_file  # noqa: E402


ARITH = ["add", "sub", "mul", "larger", "gt"]
STRINGS = ["reverse", "sort_letters", "count_letters", "count_char", "count_words",
           "reverse_words", "sort_words"]
GROUPS = {"arithmetic": ARITH, "strings": STRINGS, "json": ["json"], "tool_call": ["tool_call"],
          "tool_answer": ["tool_answer"]}


def template_text():
    return open(shared_file("golden/qwen3.5-chat-template.jinja")).read()


def tokenize(pocket, model, texts):
    inp = "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in texts)
    r = subprocess.run([pocket, "tokenize", "-m", model, "--special", "--jsonl"],
                       input=inp.encode(), capture_output=True, check=True)
    return [json.loads(l) for l in r.stdout.decode().splitlines() if l.strip()]


def single_char_ok(pocket, model):
    L = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    pairs = [a + b for a in L for b in L]
    ids = tokenize(pocket, model, pairs + [" " + p for p in pairs])
    merged = {p for p, i in zip(pairs + pairs, ids) if len(i) != 2}
    return lambda s: all(s[i:i + 2] not in merged for i in range(len(s) - 1))


def question(ex):
    return json.dumps([m.get("content") for m in ex["messages"]])


def generate(pocket, model, ids, n_predict, eos):
    r = subprocess.run([pocket, "run", "-m", model, "--prompt-ids", ",".join(map(str, ids)),
                        "-n", str(n_predict), "--json", "--top-logprobs", "0"],
                       capture_output=True, check=True)
    out = []
    for l in r.stdout.decode().splitlines():
        s = json.loads(l)
        if "id" in s:
            if s["id"] in eos:
                return "".join(out), True
            out.append(s["text"])
    return "".join(out), False


TOOL_RE = re.compile(r"<tool_call>\n<function=([A-Za-z0-9_]+)>\n((?:<parameter=[A-Za-z0-9_]+>\n.*?\n"
                     r"</parameter>\n)*)</function>\n</tool_call>", re.S)
PARAM_RE = re.compile(r"<parameter=([A-Za-z0-9_]+)>\n(.*?)\n</parameter>\n", re.S)


def parse_tool_call(text):
    m = TOOL_RE.fullmatch(text.strip())
    if not m:
        return None
    args = {}
    for k, v in PARAM_RE.findall(m.group(2)):
        try:
            args[k] = json.loads(v) if re.fullmatch(r"-?\d+(\.\d+)?", v) else v
        except ValueError:
            args[k] = v
    return {"name": m.group(1), "arguments": args}


def score(ex, text, finished):
    if ex["think"]:
        if "</think>" not in text:
            return False, text
        text = text.split("</think>", 1)[1]
    ans = text.lstrip("\n")
    if not finished:
        return False, ans
    k = ex["kind"]
    if k == "json":
        try:
            return json.loads(ans) == json.loads(ex["answer"]), ans
        except ValueError:
            return False, ans
    if k == "tool_call":
        return parse_tool_call(ans) == ex["answer"], ans
    return ans == ex["answer"], ans


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "pocket-demo.gguf"))
    ap.add_argument("--pocket", default=default_pocket())
    ap.add_argument("--n", type=int, default=20, help="examples per task kind and thinking mode")
    ap.add_argument("--seed", type=int, default=20250)
    ap.add_argument("--format-version", type=int, default=D.DATA_VERSION, choices=list(D.VERSIONS),
                    help="answer format (data version) the model was trained on last (the "
                         "committed models/pocket-demo.gguf: 4)")
    ap.add_argument("--train-sets", default="2:1234:80000,3:4321:60000,4:777:60000",
                    help="the training data sets as version:seed:count, comma-separated: their "
                         "questions are left out of the test set")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--min-acc", type=float, default=None)
    ap.add_argument("--min-wellformed", type=float, default=None,
                    help="fail when fewer %% of answers are well-formed (ended with <|im_end|>, "
                         "think block closed, tool calls parse)")
    ap.add_argument("--min-exact", type=float, default=None,
                    help="fail when fewer %% of all prompts are answered exactly right")
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--show-errors", type=int, default=3)
    args = ap.parse_args()

    tmpl = D.template_env(template_text())
    ok = single_char_ok(args.pocket, args.model)
    # questions seen in training (same generator, same seed) are excluded from the test set
    seen = set()
    for spec in args.train_sets.split(","):
        version, seed, count = map(int, spec.split(":"))
        D.set_version(version)
        rng = random.Random(seed)
        for _ in range(count):
            seen.add(question(D.make_example(rng, D.sample_kind(rng), ok)))
    D.set_version(args.format_version)  # the same questions in every version, in its answer format
    rng = random.Random(args.seed)
    exs = []
    for think in (False, True):
        for kind in sum(GROUPS.values(), []):
            got = 0
            while got < args.n:
                e = D.make_example(rng, kind, ok, think=think)
                if question(e) in seen:
                    continue
                exs.append(e)
                got += 1
    prompts = [D.render(tmpl, e["messages"], e["tools"], e["think"], True) for e in exs]
    ids = tokenize(args.pocket, args.model, prompts)
    eos = set(tokenize(args.pocket, args.model, ["<|im_end|>", "<|endoftext|>"])[0]) | \
        set(tokenize(args.pocket, args.model, ["<|endoftext|>"])[0])

    def job(i):
        return generate(args.pocket, args.model, ids[i], 160, eos)  # working answers (v3/v4) reach ~90 tokens

    with cf.ThreadPoolExecutor(args.jobs) as pool:
        outs = list(pool.map(job, range(len(exs))))
    res = {}
    errors = {}
    records = []
    n_wf = 0
    for e, (text, fin) in zip(exs, outs):
        good, ans = score(e, text, fin)
        wf = fin and (not e["think"] or "</think>" in text)
        if e["kind"] == "tool_call":
            wf = wf and parse_tool_call(ans) is not None
        n_wf += wf
        g = next(g for g, ks in GROUPS.items() if e["kind"] in ks)
        # json / tool_call / tool_answer are groups of one kind: count them once
        for key in {(g, e["think"]), (e["kind"], e["think"])}:
            r = res.setdefault(key, [0, 0])
            r[0] += good
            r[1] += 1
        records.append({"kind": e["kind"], "think": e["think"], "question": e["messages"][-1]["content"],
                        "want": e["answer"], "got": text, "exact": bool(good), "well_formed": bool(wf)})
        if not good:
            errors.setdefault(e["kind"], []).append((e["messages"][-1]["content"], e["answer"], text))
    table = {}
    print(f"model {args.model}: {len(exs)} prompts")
    print(f"{'group':16s} {'no-think':>10s} {'think':>10s}")
    below = False
    for g in list(GROUPS) + [k for k in sum(GROUPS.values(), []) if k not in GROUPS]:
        a, b = res.get((g, False)), res.get((g, True))
        if a is None:
            continue
        pa, pb = 100.0 * a[0] / a[1], 100.0 * b[0] / b[1]
        table[g] = {"no_think": [a[0], a[1]], "think": [b[0], b[1]]}
        indent = "" if g in GROUPS else "  "
        print(f"{indent + g:16s} {pa:9.1f}% {pb:9.1f}%   ({a[0]}/{a[1]}, {b[0]}/{b[1]})")
        if g in GROUPS and args.min_acc is not None and min(pa, pb) < args.min_acc:
            below = True
    n_good = sum(v[0] for (g, _), v in res.items() if g in GROUPS)
    wf_pct = 100.0 * n_wf / len(exs)
    print(f"overall exact {100.0 * n_good / len(exs):.1f}%, well-formed answers {wf_pct:.1f}%")
    if args.min_wellformed is not None and wf_pct < args.min_wellformed:
        below = True
    if args.min_exact is not None and 100.0 * n_good / len(exs) < args.min_exact:
        below = True
    for k, errs in errors.items():
        for q, want, got in errs[:args.show_errors]:
            print(f"  [{k}] {q!r}: want {want!r}, got {got[-160:]!r}")
    if args.json_out:
        json.dump({"model": args.model, "n_per_kind_mode": args.n, "seed": args.seed,
                   "wellformed_pct": wf_pct, "exact_pct": 100.0 * n_good / len(exs), "results": table,
                   "examples": records}, open(args.json_out, "w"), indent=1)
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
