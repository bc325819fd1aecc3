#!/usr/bin/python3
"""Checks of the fast training-side ops of tools/demo_model.py against plain references (run by
ctest DemoModel.TrainingOpsMatchReference; exit 77 when torch is missing):

* unit_lower_inverse (block recursion, float32) against torch.linalg.inv in float64, on random
  strictly lower-triangular matrices and on the worst case for cancellation (all entries 1);
* delta_rule_chunked against delta_rule_sequential: outputs and the gradients of all five inputs,
  for awkward lengths (1, one short of a chunk, one over, several chunks and a partial one);
* causal_conv against the depthwise nn.Conv1d it replaces: outputs and gradients;
* a whole model's logits with the chunked and the sequential delta rule;
* train_demo_model.check_rope_base: a checkpoint continued with another --rope-base stops.
"""
import os
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("torch not installed (apt-get install python3-torch)")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from demo_model import (Config, Model, causal_conv, delta_rule_chunked,  # noqa: E402
                        delta_rule_sequential, unit_lower_inverse)

FAILS = []


def check(name, got, want, tol):
    err = float((got.double() - want.double()).abs().max() / (want.double().abs().max() + 1e-30))
    ok = err <= tol
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max rel error {err:.2e} (tol {tol:.0e})")
    if not ok:
        FAILS.append(name)


def inputs(B, H, T, dk, dv, seed):
    g = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(B, H, T, dk, generator=g), dim=-1) / dk ** 0.5
    k = F.normalize(torch.randn(B, H, T, dk, generator=g), dim=-1)
    v = torch.randn(B, H, T, dv, generator=g)
    gate = -torch.rand(B, H, T, generator=g) * 0.3  # log decays in (-0.3, 0]
    beta = torch.rand(B, H, T, generator=g)
    return [x.requires_grad_() for x in (q, k, v, gate, beta)]


def check_rope_guard():
    from train_demo_model import check_rope_base

    def stops(ck, rope_base):
        try:
            check_rope_base(ck, Config(rope_base=rope_base), "W/ckpt.pt")
        except SystemExit as e:
            return str(e.code)
        return None

    cases = [  # (checkpoint, this run's --rope-base, expected message or None)
        ({"config": {"rope_base": 1e4}}, 1e4, None),
        ({"config": {"rope_base": 1e4}}, 1e7,
         "W/ckpt.pt was trained with --rope-base 10000, this run has 1e+07"),
        ({}, 1e7, None),  # checkpoints from before the option: 1e7
        ({}, 1e4, "W/ckpt.pt was trained with --rope-base 1e+07, this run has 10000"),
    ]
    for ck, rb, want in cases:
        got = stops(ck, rb)
        ok = got == want
        print(f"{'ok  ' if ok else 'FAIL'} check_rope_base {ck} vs {rb:g}: {got!r}")
        if not ok:
            FAILS.append(f"check_rope_base {ck} {rb:g}")


def main():
    torch.manual_seed(3)
    for C in (2, 8, 32):
        L = torch.randn(5, 3, C, C).tril(-1) * 0.5
        want = torch.linalg.inv(torch.eye(C, dtype=torch.float64) + L.double())
        check(f"unit_lower_inverse C={C} random", unit_lower_inverse(L), want, 1e-5)
    C = 32
    ones = torch.ones(1, C, C).tril(-1)  # (I + L)^-1 is bidiagonal; the power series' terms ~ 1e8
    check("unit_lower_inverse C=32 all-ones", unit_lower_inverse(ones),
          torch.linalg.inv(torch.eye(C, dtype=torch.float64) + ones.double()), 1e-6)

    for T in (1, 31, 33, 70):
        xs = inputs(2, 3, T, 16, 8, seed=T)
        w = torch.randn(2, 3, T, 8)
        outs, grads = [], []
        for fn in (delta_rule_chunked, delta_rule_sequential):
            o = fn(*xs)
            grads.append(torch.autograd.grad((o * w).sum(), xs))
            outs.append(o)
        check(f"delta rule T={T} output", outs[0], outs[1], 2e-5)
        for name, a, b in zip(("dq", "dk", "dv", "dg", "dbeta"), grads[0], grads[1]):
            check(f"delta rule T={T} {name}", a, b, 5e-5)

    conv = torch.nn.Conv1d(12, 12, 4, groups=12, bias=False, padding=3)
    x = torch.randn(2, 9, 12, requires_grad=True)
    w = torch.randn(2, 9, 12)
    ref = conv(x.transpose(1, 2))[..., :9].transpose(1, 2)
    got = causal_conv(x, conv.weight)
    check("causal_conv output", got, ref, 1e-6)
    g_ref = torch.autograd.grad((ref * w).sum(), (x, conv.weight))
    g_got = torch.autograd.grad((got * w).sum(), (x, conv.weight))
    check("causal_conv dx", g_got[0], g_ref[0], 1e-6)
    check("causal_conv dw", g_got[1], g_ref[1], 1e-6)

    m = Model(Config(n_vocab=300, hidden=64, n_layer=4, n_ff=96))
    ids = torch.randint(0, 300, (2, 45))
    with torch.no_grad():
        check("model logits chunked vs sequential", m(ids), m(ids, sequential=True), 1e-5)

    check_rope_guard()

    print("FAILED: " + ", ".join(FAILS) if FAILS else "OK")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
