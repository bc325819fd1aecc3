#!/usr/bin/python3
"""Check that the PyTorch implementation (tools/demo_model.py) and Pocket agree on a GGUF model.

For a few id sequences (random ids of several lengths and a chat prompt) Pocket generates greedy
tokens (`pocket run --prompt-ids ... --json --top-logprobs K --ignore-eos`); PyTorch, with the
weights read back from the same GGUF, scores prompt + generated ids in one teacher-forced pass.
Compared: the top-K log-probabilities at every generated step (prefill step and decode steps) and
the greedy token. Exit status 0 when the max abs difference is below --tol, 1 otherwise,
77 when torch is not installed (the ctest wrapper turns that into a skip).

    /usr/bin/python3 tools/check_demo_logits.py [--model models/pocket-demo.gguf] [--pocket BIN]
"""
import argparse
import json
import os
import random
import subprocess
import sys

try:
    import torch
except ImportError:
    print("torch not installed (apt-get install python3-torch)")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from demo_model import Model, config_from_gguf, load_gguf_into  # noqa: E402
from demo_paths import ROOT, default_pocket  # noqa: E402


def pocket_steps(pocket, model, ids, n, k):
    r = subprocess.run([pocket, "run", "-m", model, "--prompt-ids", ",".join(map(str, ids)),
                        "-n", str(n), "--json", "--top-logprobs", str(k), "--ignore-eos"],
                       capture_output=True, check=True)
    steps = [json.loads(l) for l in r.stdout.decode().splitlines() if l.strip()]
    return [s for s in steps if "id" in s]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "pocket-demo.gguf"))
    ap.add_argument("--pocket", default=default_pocket())
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--top", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)

    cfg = config_from_gguf(args.model)
    m = Model(cfg)
    load_gguf_into(m, args.model)
    m.eval()
    rng = random.Random(5)
    n_reg = min(cfg.n_vocab, 2000)
    seqs = {f"random_len{n}": [rng.randrange(n_reg) for _ in range(n)] for n in (1, 7, 40, 150)}
    tok = subprocess.run([args.pocket, "tokenize", "-m", args.model, "--special", "--text",
                          "<|im_start|>user\nWhat is 347 + 58?<|im_end|>\n<|im_start|>assistant\n"
                          "<think>\n\n</think>\n\n"], capture_output=True, check=True)
    seqs["chat_prompt"] = json.loads(tok.stdout)
    worst, n_cmp, argmax_bad = 0.0, 0, 0
    for name, ids in seqs.items():
        steps = pocket_steps(args.pocket, args.model, ids, args.steps, args.top)
        full = ids + [s["id"] for s in steps[:-1]]
        with torch.no_grad():
            lp = torch.log_softmax(m(torch.tensor([full]))[0].double(), -1)
        w = 0.0
        for k, s in enumerate(steps):
            row = lp[len(ids) - 1 + k]
            if int(row.argmax()) != s["id"]:
                top2 = row.topk(2).values
                if float(top2[0] - top2[1]) > args.tol:
                    argmax_bad += 1
            for alt in s["top_logprobs"]:
                d = abs(float(row[alt["id"]]) - alt["logprob"])
                w = max(w, d)
                n_cmp += 1
        worst = max(worst, w)
        print(f"{name:14s} prompt {len(ids):4d} tokens, {len(steps)} steps: max |dlogprob| = {w:.2e}")
    print(f"overall: {n_cmp} log-probabilities compared, max abs diff {worst:.2e} (tol {args.tol}), "
          f"greedy mismatches {argmax_bad}")
    ok = worst < args.tol and argmax_bad == 0
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
