#!/usr/bin/python3
"""Speed of one demo-model training step (tools/train_demo_model.py), to compare recipes and
training-side changes in the same run instead of from training logs:

    /usr/bin/python3 bench/train_step.py [--layers 4,8] [--data FILE] [--steps 20] [--reps 3]

For each layer count it builds the demo model (hidden 256, ff 512, vocab 3128, as the training
script), warms up for 3 steps, then times --reps runs of --steps full steps each (the training
script's own make_optimizer and train_step: forward, loss, backward, gradient clipping, AdamW) and
prints seconds per step, wall and CPU per thread, as mean +- stddev over the repetitions.

Batches: with --data (a data_v*.json the training script wrote into its --work folder) the real
length-bucketed batches of --batch-tokens; without, random ids in batches of the same token count
(rows of --seq-len tokens, loss on the second half of each), which needs no generated data but
skips the length mix. Timings are only meaningful on an otherwise idle machine.
"""
import argparse
import json
import os
import random
import statistics
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
try:
    import torch
except ImportError:
    print("torch not installed (apt-get install python3-torch)")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import train_demo_model as TD  # noqa: E402
from demo_model import Config, Model  # noqa: E402


def random_batches(n, batch_tokens, seq_len, n_vocab, seed):
    g = torch.Generator().manual_seed(seed)
    rows = max(1, batch_tokens // seq_len)
    out = []
    for _ in range(n):
        ids = torch.randint(0, n_vocab, (rows, seq_len), generator=g)
        tgt = torch.full_like(ids, -100)
        tgt[:, seq_len // 2 - 1:-1] = ids[:, seq_len // 2:]
        out.append((ids, tgt))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", default="4,8", help="comma-separated layer counts")
    ap.add_argument("--data", default=None, help="a data_v*.json from a training --work folder")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per repetition")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch-tokens", type=int, default=1536)
    ap.add_argument("--seq-len", type=int, default=192, help="row length of the random batches")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n_vocab = 3128
    need = 3 + args.steps * args.reps

    if args.data:
        data = json.load(open(args.data))
        order = TD.batches(data, random.Random(args.seed), args.batch_tokens)
        if len(order) < need:
            sys.exit(f"{args.data}: {len(order)} batches, the run needs {need}")
        batches = [TD.collate(data, b, 0) for b in order[:need]]
        source = f"{args.data} ({args.batch_tokens} tokens per batch at most)"
    else:
        batches = random_batches(need, args.batch_tokens, args.seq_len, n_vocab, args.seed)
        source = f"random ids, {args.batch_tokens // args.seq_len} x {args.seq_len} per batch"
    print(f"batches: {source}; {args.steps} steps x {args.reps} repetitions, "
          f"{args.threads} threads; load average {os.getloadavg()[0]:.2f}")

    for layers in [int(x) for x in args.layers.split(",")]:
        torch.manual_seed(0)
        model = Model(Config(n_vocab=n_vocab, hidden=256, n_layer=layers, n_ff=512))
        opt = TD.make_optimizer(model, 1e-3)
        for ids, tgt in batches[:3]:
            TD.train_step(model, opt, ids, tgt)
        wall, cpu = [], []
        for r in range(args.reps):
            part = batches[3 + r * args.steps:3 + (r + 1) * args.steps]
            t0, c0 = time.perf_counter(), time.process_time()
            for ids, tgt in part:
                TD.train_step(model, opt, ids, tgt)
            wall.append((time.perf_counter() - t0) / args.steps)
            cpu.append((time.process_time() - c0) / args.steps / args.threads)

        def fmt(xs):
            sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
            return f"{statistics.mean(xs):.3f} +- {sd:.3f}"

        n_par = sum(p.numel() for p in model.parameters())
        print(f"{layers} layers ({n_par / 1e6:.2f} M parameters): "
              f"{fmt(wall)} s/step wall, {fmt(cpu)} s/step CPU per thread")


if __name__ == "__main__":
    main()
