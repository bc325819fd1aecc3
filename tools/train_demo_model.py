#!/usr/bin/python3
"""Train the Pocket built-in demo model (a tiny Qwen3.5 `qwen35` hybrid) and export it to GGUF.

Run with Debian's python (python3-torch, python3-jinja2):

    nice -n 5 /usr/bin/python3 tools/train_demo_model.py --work /tmp/pocket-demo \
        --pocket build-demo/pocket --minutes 60 --out models/pocket-demo.gguf

Stages (each cached in --work):
  1. vocab: the first --n-regular regular tokens of the Qwen3 vocabulary
     (shared/golden/vocab-qwen3-qwen35.gguf; the 256 byte symbols come first), the merges whose
     parts and result are all kept (original priority order), with data version 4 also the task
     words as single Qwen3 tokens (and the tokens their merges are built from), then the 26 Qwen3
     added tokens renumbered after them; pre = "qwen35"; written as a vocab-only GGUF (vocab.gguf).
  2. data: synthetic chats (tools/demo_data.py) rendered with the real Qwen3.5 chat template
     (Jinja2 configured like transformers; checked byte-equal against `pocket template` on samples),
     tokenized by `pocket tokenize --special --jsonl` on vocab.gguf, so the training ids are exactly
     what Pocket feeds. Prompt and completion are tokenized separately (as at inference).
  3. train: AdamW, loss on completion (assistant) tokens only, length-bucketed batches,
     torch.set_num_threads(args.threads), seeded; checkpoint (ckpt.pt) every --ckpt-every steps,
     resumable. The learning-rate schedule is a function of the optimizer step only (warm-up,
     constant, cosine decay over the last --decay-frac of --steps), so pausing the process
     (SIGSTOP during benchmarks) or a slower machine changes nothing but the wall-clock time.
     --init-gguf starts from the weights of an earlier exported model instead of random ones.
  4. export: GGUF (arch qwen35, F16 matrices, F32 norms/conv/ssm_a/dt) with the tokenizer and the
     real chat template; eos = <|im_end|>.
"""
import argparse
import json
import math
import os

# Idle OpenMP threads sleep instead of spinning: on the shared, loaded 2-core machine spinning
# workers made --threads 2 several times slower than --threads 1.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import random
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_data as D  # noqa: E402
import demo_gguf as G  # noqa: E402
from demo_model import Config, Model, export_gguf  # noqa: E402

from demo_paths import ROOT, shared_file as find_shared_file  # noqa: E402


# ---------------------------------------------------------------------------------------------
# 1. vocabulary

def build_vocab_meta(n_regular, extra=()):
    """The demo vocabulary: the first n_regular regular Qwen3 tokens, then the `extra` tokens
    together with the tokens their Qwen3 merges are built from (so BPE produces them exactly as
    the full tokenizer does), then the special tokens. Returns (meta, tokens, special ids,
    pieces), where pieces maps each added token to the ids of the first n_regular tokens it is
    made of (to initialise its embedding from a model without it)."""
    meta, _ = G.read_gguf(find_shared_file("golden/vocab-qwen3-qwen35.gguf"))
    toks = meta["tokenizer.ggml.tokens"][1][1]
    types = meta["tokenizer.ggml.token_type"][1][1]
    merges = meta["tokenizer.ggml.merges"][1][1]
    regular = toks[:n_regular]
    assert all(t == 1 for t in types[:n_regular])
    keep = set(regular)
    made_of = {}
    for m in merges:
        a, b = m.split(" ", 1)
        made_of.setdefault(a + b, (a, b))
    added, pieces = [], {}

    def leaves(t):
        if t in keep and t not in pieces:
            return [regular.index(t)]
        if t in pieces:
            return pieces[t]
        assert t in made_of, f"extra token {t!r} is not a Qwen3 merge result"
        a, b = made_of[t]
        pa, pb = leaves(a), leaves(b)
        for part in (a, b):
            if part not in keep:
                keep.add(part)
                added.append(part)
        pieces[t] = pa + pb
        return pieces[t]
    whole = set(toks)
    for t in extra:  # a word that is no single Qwen3 token (e.g. "milk" without its space) stays split
        if t not in keep and t in whole:
            leaves(t)
            keep.add(t)
            added.append(t)
    kept_merges = []
    for m in merges:
        a, b = m.split(" ", 1)
        if a in keep and b in keep and (a + b) in keep:
            kept_merges.append(m)
    specials = [(i, toks[i], types[i]) for i in range(len(toks)) if types[i] in (3, 4)]
    n_plain = n_regular + len(added)
    new_toks = list(regular) + added + [s[1] for s in specials]
    new_types = [1] * n_plain + [s[2] for s in specials]
    sid = {t: n_plain + j for j, (_, t, _) in enumerate(specials)}
    vm = [("tokenizer.ggml.model", G.T_STR, "gpt2"),
          ("tokenizer.ggml.pre", G.T_STR, "qwen35"),
          ("tokenizer.ggml.tokens", G.T_ARR, (G.T_STR, new_toks)),
          ("tokenizer.ggml.token_type", G.T_ARR, (G.T_I32, new_types)),
          ("tokenizer.ggml.merges", G.T_ARR, (G.T_STR, kept_merges)),
          ("tokenizer.ggml.eos_token_id", G.T_U32, sid["<|im_end|>"]),
          ("tokenizer.ggml.padding_token_id", G.T_U32, sid["<|endoftext|>"]),
          ("tokenizer.ggml.bos_token_id", G.T_U32, sid["<|endoftext|>"]),
          ("tokenizer.ggml.add_bos_token", G.T_BOOL, False)]
    return vm, new_toks, sid, {n_regular + i: pieces[t] for i, t in enumerate(added)}


def write_vocab_gguf(path, vm, template):
    meta = [("general.architecture", G.T_STR, "qwen35"), ("general.type", G.T_STR, "vocab"),
            ("general.name", G.T_STR, "pocket-demo-vocab")] + vm + \
           [("tokenizer.chat_template", G.T_STR, template)]
    G.write_gguf(path, meta, [])


# ---------------------------------------------------------------------------------------------
# 2. data

class Tok:
    def __init__(self, pocket, vocab):
        self.pocket, self.vocab = pocket, vocab

    def encode_many(self, texts):
        inp = "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in texts)
        r = subprocess.run([self.pocket, "tokenize", "-m", self.vocab, "--special", "--jsonl"],
                           input=inp.encode(), capture_output=True, check=True)
        out = [json.loads(l) for l in r.stdout.decode().splitlines() if l.strip()]
        assert len(out) == len(texts)
        return out


def single_char_checker(tok):
    """Returns ok(s): True when every letter of s (and ' '+s) is its own token."""
    letters = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"]
    pairs = [a + b for a in letters for b in letters]
    ids = tok.encode_many(pairs)
    merged = {p for p, i in zip(pairs, ids) if len(i) != 2}
    sp = tok.encode_many([" " + p for p in pairs])
    merged |= {p for p, i in zip(pairs, sp) if len(i) != 2}

    def ok(s):
        return all(s[i:i + 2] not in merged for i in range(len(s) - 1))
    return ok, merged


def make_dataset(tmpl, tok, ok, n, seed, mix=None):
    rng = random.Random(seed)
    exs = [D.make_example(rng, D.sample_kind(rng, mix), ok) for _ in range(n)]
    prompts, comps = [], []
    for e in exs:
        p, c = D.render_example(tmpl, e)
        prompts.append(p)
        comps.append(c)
    # tokenize unique prompts only (tool preambles repeat)
    pi = tok.encode_many(prompts)
    ci = tok.encode_many(comps)
    return [dict(kind=e["kind"], think=e["think"], p=p, c=c) for e, p, c in zip(exs, pi, ci)]


def check_template(tmpl, pocket, vocab, work, n=12, seed=7):
    """Byte-compare Jinja2 renderings against `pocket template` on sample conversations."""
    rng = random.Random(seed)
    kinds = ["add", "tool_call", "tool_answer", "json", "reverse", "gt"]
    bad = 0
    for i in range(n):
        e = D.make_example(rng, kinds[i % len(kinds)], lambda s: True)
        mp = os.path.join(work, "tcheck_msgs.json")
        json.dump(e["messages"], open(mp, "w"))
        cmd = [pocket, "template", "-m", vocab, "--messages", mp, "--add-generation-prompt"]
        if e["tools"]:
            tp = os.path.join(work, "tcheck_tools.json")
            json.dump(e["tools"], open(tp, "w"))
            cmd += ["--tools", tp]
        if not e["think"]:
            cmd += ["--kwargs", '{"enable_thinking":false}']
        r = subprocess.run(cmd, capture_output=True)
        mine = D.render(tmpl, e["messages"], e["tools"], e["think"], True)
        if r.returncode != 0:
            print("pocket template failed:", r.stderr.decode()[:300])
            return None
        if r.stdout.decode() != mine:
            bad += 1
            print("TEMPLATE MISMATCH", repr(r.stdout.decode()[-200:]), repr(mine[-200:]))
    print(f"template check: {n - bad}/{n} byte-identical with pocket template")
    return bad == 0


# ---------------------------------------------------------------------------------------------
# 3. training

def batches(data, rng, max_tokens, max_bs=64):
    """Length-bucketed batches of indices (sorted by length in random pools)."""
    idx = list(range(len(data)))
    rng.shuffle(idx)
    pool = 4096
    out = []
    for s in range(0, len(idx), pool):
        chunk = sorted(idx[s:s + pool], key=lambda i: len(data[i]["p"]) + len(data[i]["c"]))
        b = []
        for i in chunk:
            L = len(data[i]["p"]) + len(data[i]["c"])
            if b and (len(b) + 1) * max(L, cur) > max_tokens or len(b) >= max_bs:
                out.append(b)
                b = []
            if not b:
                cur = 0
            b.append(i)
            cur = max(cur, L)
        if b:
            out.append(b)
    rng.shuffle(out)
    return out


def collate(data, b, pad_id):
    L = max(len(data[i]["p"]) + len(data[i]["c"]) for i in b)
    ids = torch.full((len(b), L), pad_id, dtype=torch.long)
    tgt = torch.full((len(b), L), -100, dtype=torch.long)
    for r, i in enumerate(b):
        seq = data[i]["p"] + data[i]["c"]
        ids[r, :len(seq)] = torch.tensor(seq)
        np_ = len(data[i]["p"])
        # position t predicts token t+1; loss on completion tokens
        tgt[r, np_ - 1:len(seq) - 1] = torch.tensor(data[i]["c"])
    return ids, tgt


def loss_fn(model, ids, tgt):
    h = model.hidden_states(ids)
    m = tgt != -100
    logits = model.logits(h[m])
    return F.cross_entropy(logits, tgt[m]), int(m.sum())


def make_optimizer(model, lr):
    """AdamW, weight decay on the matrices only."""
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    nodecay = [p for n, p in model.named_parameters() if p.dim() != 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                              {"params": nodecay, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.98), eps=1e-8)


def train_step(model, opt, ids, tgt):
    """One optimizer step on a collated batch; returns (loss, completion tokens)."""
    loss, n = loss_fn(model, ids, tgt)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss, n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/pocket-demo")
    ap.add_argument("--pocket", default=os.path.join(ROOT, "build-demo", "pocket"))
    ap.add_argument("--n-regular", type=int, default=3000)
    ap.add_argument("--n-train", type=int, default=80000)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--steps", type=int, default=1200, help="optimizer steps (defines the schedule)")
    ap.add_argument("--max-steps", type=int, default=0,
                    help="stop (checkpoint + export) after this many steps without changing the schedule")
    ap.add_argument("--minutes", type=float, default=0.0,
                    help="safety stop after this much process CPU time / threads (0: none); "
                         "does not affect the schedule")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--decay-frac", type=float, default=0.3)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch-tokens", type=int, default=1536)
    ap.add_argument("--init-gguf", default=None,
                    help="initial weights from this exported model (same config) instead of random")
    ap.add_argument("--grow-from", default=None,
                    help="start from this checkpoint of a shallower model (same widths): its layers "
                         "become layers 0..n-1, the new layers start as identity functions "
                         "(zero output projections), training continues with that run's data order")
    ap.add_argument("--start-from", default=None,
                    help="start from this checkpoint of a model of the same shape: its weights, a "
                         "fresh optimizer and schedule (step 0), and this run's data from its start "
                         "(to continue a model on new data, e.g. another --data-version)")
    ap.add_argument("--data-version", type=int, default=D.DATA_VERSION, choices=list(D.VERSIONS),
                    help="generator version of tools/demo_data.py (2 reproduces the earlier phases)")
    ap.add_argument("--ckpt-every", type=int, default=50)
    ap.add_argument("--export-every", type=int, default=0, help="also export GGUF every N steps")
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "pocket-demo.gguf"))
    ap.add_argument("--dtype", default="f16", choices=["f16", "f32"])
    ap.add_argument("--stage", default="all", choices=["vocab", "data", "all", "export"])
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads (1 was 3x faster than 2 on the shared, loaded 2-core box)")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--ff", type=int, default=512)
    ap.add_argument("--rope-base", type=float, default=1e7,
                    help="rope.freq_base (1e7 as in Qwen3.5; with 16 of 64 dims rotated only the "
                         "first two frequency pairs turn within a prompt)")
    args = ap.parse_args()

    D.set_version(args.data_version)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    template = open(find_shared_file("golden/qwen3.5-chat-template.jinja")).read()
    tmpl = D.template_env(template)

    extra = D.vocab_extra_tokens() if D.DATA_VERSION >= 4 else ()
    vm, toks, sid, pieces = build_vocab_meta(args.n_regular, extra)
    vocab_path = os.path.join(args.work, "vocab.gguf")
    write_vocab_gguf(vocab_path, vm, template)
    print(f"vocab: {len(toks)} tokens ({args.n_regular} regular, {len(pieces)} added), "
          f"{len(vm[4][2][1])} merges, specials {sid}")
    if args.stage == "vocab":
        return
    tok = Tok(args.pocket, vocab_path)

    data_path = os.path.join(args.work, f"data_v{D.DATA_VERSION}_{args.n_regular}{'w' if extra else ''}_{args.n_train}_{args.seed}.json")
    if os.path.exists(data_path):
        data = json.load(open(data_path))
    else:
        check_template(tmpl, args.pocket, vocab_path, args.work)
        ok, merged = single_char_checker(tok)
        print(f"letter pairs that merge (avoided in letter strings): {len(merged)}")
        t0 = time.time()
        data = make_dataset(tmpl, tok, ok, args.n_train, args.seed)
        json.dump(data, open(data_path, "w"))
        print(f"data: {len(data)} examples in {time.time() - t0:.0f}s")
    ntok = sum(len(d["p"]) + len(d["c"]) for d in data)
    nc = sum(len(d["c"]) for d in data)
    print(f"data: {len(data)} examples, {ntok} tokens, {nc} completion tokens; "
          f"max len {max(len(d['p']) + len(d['c']) for d in data)}")
    if args.stage == "data":
        return

    cfg = Config(n_vocab=len(toks), hidden=args.hidden, n_layer=args.layers, n_ff=args.ff,
                 rope_base=args.rope_base)
    model = Model(cfg)
    if args.init_gguf:
        from demo_model import load_gguf_into
        load_gguf_into(model, args.init_gguf)
        print(f"initial weights from {args.init_gguf}")
    nparam = sum(p.numel() for p in model.parameters())
    print(f"model: {nparam / 1e6:.2f} M parameters, config {cfg}")
    opt = make_optimizer(model, args.lr)
    ckpt_path = os.path.join(args.work, "ckpt.pt")
    step, elapsed, cpu_used, epoch = 0, 0.0, 0.0, 0
    if args.grow_from and not os.path.exists(ckpt_path):
        grow_checkpoint(model, opt, args.grow_from, ckpt_path)
    if args.start_from and not os.path.exists(ckpt_path):
        grow_checkpoint(model, opt, args.start_from, ckpt_path, new_data=True,
                        vocab_growth=(args.n_regular, pieces))
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
        check_rope_base(ck, cfg, ckpt_path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, elapsed, epoch = ck["step"], ck["elapsed"], ck["epoch"]
        cpu_used = ck.get("cpu", 0.0)
        print(f"resumed from step {step} ({elapsed / 60:.1f} min wall, {cpu_used / 60:.1f} min CPU)")

    def do_export(path):
        export_gguf(model, path, vm, template, dtype=args.dtype)
        print(f"exported {path} ({os.path.getsize(path) / 1e6:.1f} MB)", flush=True)

    if args.stage == "export":
        do_export(args.out)
        return

    pad_id = sid["<|endoftext|>"]
    t_start = time.time() - elapsed
    cpu_start = time.process_time() - cpu_used

    def cpu_minutes():  # process CPU time per thread: stands still while the process is stopped
        return (time.process_time() - cpu_start) / 60 / args.threads

    def lr_at(s):  # s = index of the step being taken (0-based)
        warm = min(1.0, (s + 1) / args.warmup)
        d0 = args.steps * (1 - args.decay_frac)
        frac = min(1.0, max(0.0, (s - d0) / max(1.0, args.steps - d0)))
        return args.lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))

    stop_at = min(args.steps, args.max_steps) if args.max_steps else args.steps
    done = step >= stop_at
    log_loss, log_n, t_log = 0.0, 0, time.time()
    while not done:
        rng = random.Random(args.seed * 1000 + epoch)
        bl = batches(data, rng, args.batch_tokens)
        for bi, b in enumerate(bl):
            if bi < ck_bi(step, epoch, bl, args):
                continue
            lr = lr_at(step)
            for gparam in opt.param_groups:
                gparam["lr"] = lr
            loss, n = train_step(model, opt, *collate(data, b, pad_id))
            step += 1
            log_loss += loss.item() * n
            log_n += n
            if step % 25 == 0:
                el = time.time() - t_start
                print(f"step {step} epoch {epoch} loss {log_loss / log_n:.4f} lr {lr:.2e} "
                      f"elapsed {el / 60:.1f} min, CPU {cpu_minutes():.1f} min/thread "
                      f"({(time.time() - t_log) / 25:.2f} s/step)", flush=True)
                log_loss, log_n, t_log = 0.0, 0, time.time()
            over_time = args.minutes and cpu_minutes() > args.minutes
            if step % args.ckpt_every == 0 or over_time or step >= stop_at:
                tmp = ckpt_path + ".tmp"  # a kill during the save must not destroy the checkpoint
                torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                            "elapsed": time.time() - t_start, "cpu": cpu_minutes() * 60 * args.threads,
                            "epoch": epoch, "batch_index": bi + 1, "config": cfg.__dict__}, tmp)
                os.replace(tmp, ckpt_path)
            if args.export_every and step % args.export_every == 0:
                do_export(args.out)
            if over_time or step >= stop_at:
                done = True
                break
        else:
            epoch += 1
            RESUME_BI.clear()
    do_export(args.out)
    print(f"training done: {step} steps, {(time.time() - t_start) / 60:.1f} min wall, "
          f"{cpu_minutes():.1f} min CPU per thread")


RESUME_BI = {}


def grow_checkpoint(model, opt, src_path, ckpt_path, new_data=False, vocab_growth=None):
    """Writes ckpt_path: `model` initialised from the shallower model in src_path.

    Layers 0..n-1 are copied (the attention pattern (i+1) % 4 == 0 is the same for them), the
    embedding and final norm too; every new layer's residual outputs (attention o_proj, GDN
    out_proj, FFN down_proj) are zeroed, so the grown model computes exactly the old function and
    the new layers learn from there. The data order continues where the old run stopped, or
    starts from the beginning with `new_data` (the run trains on another data set).

    vocab_growth = (n_regular, pieces): the old model's vocabulary is the first n_regular tokens
    plus the specials, this one inserts the tokens of `pieces` (id -> old ids it is made of)
    before the specials; each new token's embedding starts as the mean of its pieces'."""
    ck = torch.load(src_path)
    check_rope_base(ck, model.c, src_path)
    old = dict(ck["model"])
    emb = old["embed.weight"]
    n_new = model.embed.weight.shape[0]
    if emb.shape[0] != n_new and vocab_growth:
        n_regular, pieces = vocab_growth
        assert n_new - emb.shape[0] == len(pieces), f"{src_path}: vocabulary sizes do not fit"
        rows = [emb[:n_regular]] + [emb[ids].mean(0, keepdim=True) for _, ids in sorted(pieces.items())] + \
               [emb[n_regular:]]
        old["embed.weight"] = torch.cat(rows, 0)
        print(f"vocabulary grown from {emb.shape[0]} to {n_new} tokens")
    n_old = 1 + max(int(k.split(".")[1]) for k in old if k.startswith("layers."))
    assert n_old <= len(model.layers), f"{src_path} has {n_old} layers, more than --layers"
    state = model.state_dict()
    for k, v in old.items():
        assert k in state and state[k].shape == v.shape, f"--grow-from: {k} does not fit"
        state[k] = v.clone()
    for i in range(n_old, len(model.layers)):
        l = model.layers[i]
        o = "mixer.o_proj" if l.is_attn else "mixer.out_proj"
        for name in (o, "down_proj"):
            state[f"layers.{i}.{name}.weight"].zero_()
    model.load_state_dict(state)
    epoch, bi = (0, 0) if new_data else (ck["epoch"], ck.get("batch_index", 0))
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": 0, "elapsed": 0.0,
                "cpu": 0.0, "epoch": epoch, "batch_index": bi,
                "config": model.c.__dict__, "grown_from": {"path": src_path, "step": ck["step"],
                                                           "layers": n_old}}, ckpt_path)
    print(f"grown from {src_path} (step {ck['step']}, {n_old} layers) to {len(model.layers)} layers")


def check_rope_base(ck, cfg, path):
    """rope.freq_base is not a weight: a checkpoint continued with another --rope-base would
    silently become another function."""
    was = ck.get("config", {}).get("rope_base", 1e7)
    if was != cfg.rope_base:
        sys.exit(f"{path} was trained with --rope-base {was:g}, this run has {cfg.rope_base:g}")


def ck_bi(step, epoch, bl, args):
    """Batch index to resume from inside the current epoch (read once from the checkpoint)."""
    if "v" not in RESUME_BI:
        ckpt_path = os.path.join(args.work, "ckpt.pt")
        v = 0
        if os.path.exists(ckpt_path):
            ck = torch.load(ckpt_path)
            if ck["epoch"] == epoch:
                v = ck.get("batch_index", 0)
        RESUME_BI["v"] = v
    return RESUME_BI["v"]


if __name__ == "__main__":
    main()
