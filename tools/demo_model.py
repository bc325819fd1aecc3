"""PyTorch implementation of the Qwen3.5 dense hybrid architecture (shared/spec/qwen35.md section 2)
for the built-in demo model, plus GGUF export/import.

Weight layout conventions (chosen so that export is a pure copy except the documented transforms):
  * GDN value heads are kept in the GGUF *tiled* order natively: value head h uses key head
    h mod n_k (spec 2.5 step 7). The PyTorch model therefore needs no reorder at export.
  * Zero-centred RMSNorm weights are stored as w (init 0) and exported as w + 1; ssm_norm is plain.
  * A_log is exported as ssm_a = -exp(A_log).
"""
import math
from dataclasses import dataclass, asdict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import demo_gguf as G


@dataclass
class Config:
    n_vocab: int = 3026
    hidden: int = 256
    n_layer: int = 8
    n_ff: int = 512
    n_head: int = 4
    n_head_kv: int = 2
    head_dim: int = 64
    n_rot: int = 16
    rope_sections: tuple = (3, 3, 2, 0)
    rope_base: float = 1e7
    ssm_n_k: int = 2          # GDN key heads (ssm.group_count)
    ssm_n_v: int = 4          # GDN value heads (ssm.time_step_rank)
    ssm_d: int = 64           # d_k = d_v (ssm.state_size)
    conv_kernel: int = 4
    eps: float = 1e-6
    full_attn_interval: int = 4
    context_length: int = 4096

    def is_attn(self, i):
        return (i + 1) % self.full_attn_interval == 0


def rms(x, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


class ZCNorm(nn.Module):
    """Zero-centred RMSNorm: x/rms * (1 + w)."""

    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n))
        self.eps = eps

    def forward(self, x):
        return rms(x.float(), self.eps) * (1.0 + self.weight)


def rope_neox(x, pos, n_rot, base):
    # x: [B, T, nh, D]; NEOX pairs (i, i + n_rot/2) over the first n_rot dims.
    half = n_rot // 2
    inv = base ** (-torch.arange(0, half, dtype=torch.float64) * 2.0 / n_rot)
    ang = (pos.double()[:, None] * inv[None, :]).float()  # [T, half]
    cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]
    x1, x2, rest = x[..., :half], x[..., half:n_rot], x[..., n_rot:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos, rest], dim=-1)


class Attention(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        D = c.head_dim
        self.q_proj = nn.Linear(c.hidden, 2 * c.n_head * D, bias=False)
        self.k_proj = nn.Linear(c.hidden, c.n_head_kv * D, bias=False)
        self.v_proj = nn.Linear(c.hidden, c.n_head_kv * D, bias=False)
        self.o_proj = nn.Linear(c.n_head * D, c.hidden, bias=False)
        self.q_norm = ZCNorm(D, c.eps)
        self.k_norm = ZCNorm(D, c.eps)

    def forward(self, h):
        c = self.c
        B, T, _ = h.shape
        D = c.head_dim
        P = self.q_proj(h).view(B, T, c.n_head, 2, D)
        q, gate = P[:, :, :, 0], P[:, :, :, 1]
        k = self.k_proj(h).view(B, T, c.n_head_kv, D)
        v = self.v_proj(h).view(B, T, c.n_head_kv, D)
        q, k = self.q_norm(q), self.k_norm(k)
        pos = torch.arange(T)
        q, k = rope_neox(q, pos, c.n_rot, c.rope_base), rope_neox(k, pos, c.n_rot, c.rope_base)
        rep = c.n_head // c.n_head_kv
        k = k.repeat_interleave(rep, dim=2)  # head j uses kv head j // rep
        v = v.repeat_interleave(rep, dim=2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, nh, T, D]
        s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(D))
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        s = s.masked_fill(~causal, float("-inf")).softmax(-1)
        a = (s @ v).transpose(1, 2) * torch.sigmoid(gate)
        return self.o_proj(a.reshape(B, T, c.n_head * D))


def delta_rule_sequential(q, k, v, g, beta):
    """q,k: [B,H,T,dk] (q already scaled), v: [B,H,T,dv], g,beta: [B,H,T]. Returns o [B,H,T,dv]."""
    B, H, T, dk = k.shape
    S = q.new_zeros(B, H, dk, v.shape[-1])
    outs = []
    for t in range(T):
        S = S * g[:, :, t].exp()[..., None, None]
        m = torch.einsum("bhij,bhi->bhj", S, k[:, :, t])
        d = beta[:, :, t, None] * (v[:, :, t] - m)
        S = S + k[:, :, t, :, None] * d[:, :, None, :]
        outs.append(torch.einsum("bhij,bhi->bhj", S, q[:, :, t]))
    return torch.stack(outs, dim=2)


def unit_lower_inverse(L):
    """(I + L)^-1 for strictly lower-triangular L [..., C, C] (C a power of two), by blocks:
    [[A, 0], [B, D]]^-1 = [[A^-1, 0], [-D^-1 B A^-1, D^-1]], from 1 x 1 diagonal blocks up.

    This is forward substitution reorganised into batched float32 matmuls: stable, unlike the
    power series (I - L)(I + L^2)(I + L^4)... whose terms grow like binomial coefficients and
    cancel (it needed float64, where Debian's torch runs bmm one small matrix at a time: a quarter
    of a training step). torch.linalg.solve_triangular solves the C x C blocks one by one too."""
    C = L.shape[-1]
    assert C & (C - 1) == 0, "chunk size must be a power of two"
    lead = L.shape[:-2]
    X = torch.ones(*lead, C, 1, 1, dtype=L.dtype)  # inverses of the 1 x 1 diagonal blocks
    s = 1
    while s < C:
        nb = C // (2 * s)  # diagonal blocks of size 2s
        Lb = L.reshape(*lead, nb, 2 * s, nb, 2 * s).diagonal(dim1=-4, dim2=-2)  # [..., 2s, 2s, nb]
        B = Lb[..., s:, :s, :].movedim(-1, -3)  # [..., nb, s, s]: block below the diagonal
        Xe, Xo = X[..., 0::2, :, :], X[..., 1::2, :, :]
        off = -(Xo @ (B @ Xe))
        X = torch.cat([torch.cat([Xe, torch.zeros_like(Xe)], -1), torch.cat([off, Xo], -1)], -2)
        s *= 2
    return X.reshape(*lead, C, C)


def delta_rule_chunked(q, k, v, g, beta, C=32):
    """Chunked gated delta rule (spec section 3). Same shapes as delta_rule_sequential."""
    B, H, T, dk = k.shape
    dv = v.shape[-1]
    pad = (-T) % C
    if pad:
        q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
        g, beta = F.pad(g, (0, pad)), F.pad(beta, (0, pad))
    N = (T + pad) // C
    q, k, v = (x.reshape(B, H, N, C, -1) for x in (q, k, v))
    g, beta = g.reshape(B, H, N, C), beta.reshape(B, H, N, C)
    gam = g.cumsum(-1)
    diff = gam[..., :, None] - gam[..., None, :]
    tril = torch.ones(C, C, dtype=torch.bool).tril()
    Gam = diff.masked_fill(~tril, float("-inf")).exp()
    strict = torch.ones(C, C, dtype=torch.bool).tril(-1)
    L = (beta[..., :, None] * (k @ k.transpose(-1, -2)) * Gam).masked_fill(~strict, 0.0)
    A_inv = unit_lower_inverse(L)
    U = A_inv @ (beta[..., None] * v)
    W = A_inv @ ((beta * gam.exp())[..., None] * k)
    P = (q @ k.transpose(-1, -2)) * Gam
    # Per-chunk views taken with one unbind each: indexing [:, :, n] inside the loop costs a
    # full-size zero gradient per chunk in the backward pass (quadratic in the chunk count).
    decay_in = gam.exp()  # decay from the chunk start to each position
    gl = gam[..., -1]  # log decay over the whole chunk
    decay_out = (gl[..., None] - gam).exp()  # decay from each position to the chunk end
    kT = (decay_out[..., None] * k).transpose(-1, -2)
    S = q.new_zeros(B, H, dk, dv)
    outs = []
    for qn, Un, Wn, Pn, din, kTn, gln in zip(*(x.unbind(2) for x in (q, U, W, P, decay_in, kT, gl))):
        Vp = Un - Wn @ S
        outs.append(din[..., None] * (qn @ S) + Pn @ Vp)
        S = gln.exp()[..., None, None] * S + kTn @ Vp
    o = torch.stack(outs, dim=2).reshape(B, H, N * C, dv)
    return o[:, :, :T]


def causal_conv(x, w):
    """Depthwise causal convolution over time: x [B, T, C], w [C, 1, K] (nn.Conv1d's layout);
    y[t] = sum_j w[:, j] * x[t - K + 1 + j]. Written as K shifted products because the depthwise
    nn.Conv1d backward (mkldnn) took 8% of a training step (tools/test_demo_model.py compares the
    two)."""
    K = w.shape[-1]
    T = x.shape[1]
    xp = F.pad(x, (0, 0, K - 1, 0))
    y = xp[:, 0:T] * w[:, 0, 0]
    for j in range(1, K):
        y = y + xp[:, j:j + T] * w[:, 0, j]
    return y


class GatedDeltaNet(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.key_dim = c.ssm_n_k * c.ssm_d
        self.value_dim = c.ssm_n_v * c.ssm_d
        self.conv_dim = 2 * self.key_dim + self.value_dim
        self.in_proj_qkv = nn.Linear(c.hidden, self.conv_dim, bias=False)
        self.in_proj_z = nn.Linear(c.hidden, self.value_dim, bias=False)
        self.in_proj_b = nn.Linear(c.hidden, c.ssm_n_v, bias=False)
        self.in_proj_a = nn.Linear(c.hidden, c.ssm_n_v, bias=False)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, c.conv_kernel, groups=self.conv_dim,
                                bias=False, padding=c.conv_kernel - 1)
        # Decay per token is exp(-A * softplus(a + dt_bias)). As in Mamba2 / Gated DeltaNet,
        # dt starts log-uniform in [1e-3, 1e-1] (dt_bias = softplus^-1(dt)), so the state keeps
        # most of its memory over tens of tokens. (dt_bias = 1, i.e. dt = 1.3, forgot everything
        # within a token or two: the delta-net layers could not carry the question to the answer.)
        dt = torch.exp(torch.empty(c.ssm_n_v).uniform_(math.log(1e-3), math.log(1e-1)))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.empty(c.ssm_n_v).uniform_(1, 16)))
        self.norm_weight = nn.Parameter(torch.ones(c.ssm_d))
        self.out_proj = nn.Linear(self.value_dim, c.hidden, bias=False)

    def forward(self, h, sequential=False):
        c = self.c
        B, T, _ = h.shape
        x = self.in_proj_qkv(h)
        z = self.in_proj_z(h)
        b = self.in_proj_b(h)
        a = self.in_proj_a(h)
        u = F.silu(causal_conv(x, self.conv1d.weight))
        kd = self.key_dim
        q = u[..., :kd].reshape(B, T, c.ssm_n_k, c.ssm_d)
        k = u[..., kd:2 * kd].reshape(B, T, c.ssm_n_k, c.ssm_d)
        v = u[..., 2 * kd:].reshape(B, T, c.ssm_n_v, c.ssm_d)
        q = q * torch.rsqrt(q.pow(2).sum(-1, keepdim=True) + 1e-6) / math.sqrt(c.ssm_d)
        k = k * torch.rsqrt(k.pow(2).sum(-1, keepdim=True) + 1e-6)
        R = c.ssm_n_v // c.ssm_n_k
        q, k = q.repeat(1, 1, R, 1), k.repeat(1, 1, R, 1)  # tiled: value head h uses key head h % n_k
        beta = torch.sigmoid(b)
        g = -self.A_log.exp() * F.softplus(a + self.dt_bias)
        tr = lambda t: t.transpose(1, 2)
        fn = delta_rule_sequential if sequential else delta_rule_chunked
        o = tr(fn(tr(q), tr(k), tr(v), tr(g), tr(beta)))  # [B,T,n_v,d]
        y = rms(o, c.eps) * self.norm_weight * F.silu(z.view(B, T, c.ssm_n_v, c.ssm_d))
        return self.out_proj(y.reshape(B, T, self.value_dim))


class Block(nn.Module):
    def __init__(self, c: Config, i):
        super().__init__()
        self.input_layernorm = ZCNorm(c.hidden, c.eps)
        self.post_attention_layernorm = ZCNorm(c.hidden, c.eps)
        self.is_attn = c.is_attn(i)
        self.mixer = Attention(c) if self.is_attn else GatedDeltaNet(c)
        self.gate_proj = nn.Linear(c.hidden, c.n_ff, bias=False)
        self.up_proj = nn.Linear(c.hidden, c.n_ff, bias=False)
        self.down_proj = nn.Linear(c.n_ff, c.hidden, bias=False)

    def forward(self, x, sequential=False):
        h = self.input_layernorm(x)
        h = self.mixer(h) if self.is_attn else self.mixer(h, sequential)
        x = x + h
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Model(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.embed = nn.Embedding(c.n_vocab, c.hidden)
        self.layers = nn.ModuleList([Block(c, i) for i in range(c.n_layer)])
        self.norm = ZCNorm(c.hidden, c.eps)
        for n, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)
        for l in self.layers:  # scale residual-branch outputs
            nn.init.normal_(l.down_proj.weight, std=0.02 / math.sqrt(2 * c.n_layer))
            o = l.mixer.o_proj if l.is_attn else l.mixer.out_proj
            nn.init.normal_(o.weight, std=0.02 / math.sqrt(2 * c.n_layer))

    def hidden_states(self, ids, sequential=False):
        x = self.embed(ids)
        for l in self.layers:
            x = l(x, sequential)
        return self.norm(x)

    def logits(self, h):
        return h @ self.embed.weight.t()  # tied LM head

    def forward(self, ids, sequential=False):
        return self.logits(self.hidden_states(ids, sequential))


# ----------------------------------------------------------------------------------------------
# GGUF export / import

def tensor_map(m: Model):
    """[(gguf_name, tensor_getter_numpy, setter)] in a canonical order."""
    c = m.c
    out = [("token_embd.weight", m.embed.weight, "copy"), ("output_norm.weight", m.norm.weight, "+1")]
    for i, l in enumerate(m.layers):
        p = f"blk.{i}."
        out += [(p + "attn_norm.weight", l.input_layernorm.weight, "+1"),
                (p + "post_attention_norm.weight", l.post_attention_layernorm.weight, "+1")]
        mx = l.mixer
        if l.is_attn:
            out += [(p + "attn_q.weight", mx.q_proj.weight, "copy"),
                    (p + "attn_k.weight", mx.k_proj.weight, "copy"),
                    (p + "attn_v.weight", mx.v_proj.weight, "copy"),
                    (p + "attn_output.weight", mx.o_proj.weight, "copy"),
                    (p + "attn_q_norm.weight", mx.q_norm.weight, "+1"),
                    (p + "attn_k_norm.weight", mx.k_norm.weight, "+1")]
        else:
            out += [(p + "attn_qkv.weight", mx.in_proj_qkv.weight, "copy"),
                    (p + "attn_gate.weight", mx.in_proj_z.weight, "copy"),
                    (p + "ssm_conv1d.weight", mx.conv1d.weight, "squeeze"),
                    (p + "ssm_dt.bias", mx.dt_bias, "copy"),
                    (p + "ssm_a", mx.A_log, "-exp"),
                    (p + "ssm_beta.weight", mx.in_proj_b.weight, "copy"),
                    (p + "ssm_alpha.weight", mx.in_proj_a.weight, "copy"),
                    (p + "ssm_norm.weight", mx.norm_weight, "copy"),
                    (p + "ssm_out.weight", mx.out_proj.weight, "copy")]
        out += [(p + "ffn_gate.weight", l.gate_proj.weight, "copy"),
                (p + "ffn_up.weight", l.up_proj.weight, "copy"),
                (p + "ffn_down.weight", l.down_proj.weight, "copy")]
    return out


def _to_gguf(t, how):
    a = t.detach().float().cpu().numpy()
    if how == "+1":
        return a + 1.0
    if how == "-exp":
        return -np.exp(a)
    if how == "squeeze":
        return a[:, 0, :]
    return a


def _from_gguf(a, how, like):
    if how == "+1":
        a = a - 1.0
    elif how == "-exp":
        a = np.log(-a)
    elif how == "squeeze":
        a = a[:, None, :]
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).reshape(like.shape)


def export_gguf(m: Model, path, vocab_meta, chat_template, dtype="f16", name="pocket-demo"):
    c = m.c
    A = "qwen35."
    meta = [("general.architecture", G.T_STR, "qwen35"),
            ("general.type", G.T_STR, "model"),
            ("general.name", G.T_STR, name),
            ("general.file_type", G.T_U32, 1 if dtype == "f16" else 0),
            (A + "block_count", G.T_U32, c.n_layer),
            (A + "context_length", G.T_U32, c.context_length),
            (A + "embedding_length", G.T_U32, c.hidden),
            (A + "feed_forward_length", G.T_U32, c.n_ff),
            (A + "attention.head_count", G.T_U32, c.n_head),
            (A + "attention.head_count_kv", G.T_U32, c.n_head_kv),
            (A + "rope.dimension_sections", G.T_ARR, (G.T_I32, list(c.rope_sections))),
            (A + "rope.freq_base", G.T_F32, c.rope_base),
            (A + "attention.layer_norm_rms_epsilon", G.T_F32, c.eps),
            (A + "attention.key_length", G.T_U32, c.head_dim),
            (A + "attention.value_length", G.T_U32, c.head_dim),
            (A + "ssm.conv_kernel", G.T_U32, c.conv_kernel),
            (A + "ssm.state_size", G.T_U32, c.ssm_d),
            (A + "ssm.group_count", G.T_U32, c.ssm_n_k),
            (A + "ssm.time_step_rank", G.T_U32, c.ssm_n_v),
            (A + "ssm.inner_size", G.T_U32, c.ssm_n_v * c.ssm_d),
            (A + "full_attention_interval", G.T_U32, c.full_attn_interval),
            (A + "rope.dimension_count", G.T_U32, c.n_rot)]
    meta += vocab_meta
    meta.append(("tokenizer.chat_template", G.T_STR, chat_template))
    tensors = []
    for name_, t, how in tensor_map(m):
        a = _to_gguf(t, how)
        # 1-D tensors and the conv kernel stay F32 (as quantizers keep them)
        typ = G.GGML_F16 if (dtype == "f16" and a.ndim == 2 and not name_.endswith("ssm_conv1d.weight")) \
            else G.GGML_F32
        tensors.append((name_, a, typ))
    G.write_gguf(path, meta, tensors)


def load_gguf_into(m: Model, path):
    _, tensors = G.read_gguf(path, want_tensors=True)
    with torch.no_grad():
        for name_, t, how in tensor_map(m):
            t.copy_(_from_gguf(tensors[name_], how, t))


def config_from_gguf(path):
    meta, _ = G.read_gguf(path)
    g = lambda k: meta["qwen35." + k][1]
    return Config(n_vocab=len(meta["tokenizer.ggml.tokens"][1][1]), hidden=g("embedding_length"),
                  n_layer=g("block_count"), n_ff=g("feed_forward_length"),
                  n_head=g("attention.head_count"), n_head_kv=g("attention.head_count_kv"),
                  head_dim=g("attention.key_length"), n_rot=g("rope.dimension_count"),
                  rope_sections=tuple(g("rope.dimension_sections")[1]), rope_base=g("rope.freq_base"),
                  ssm_n_k=g("ssm.group_count"), ssm_n_v=g("ssm.time_step_rank"),
                  ssm_d=g("ssm.state_size"), conv_kernel=g("ssm.conv_kernel"),
                  eps=g("attention.layer_norm_rms_epsilon"),
                  full_attn_interval=g("full_attention_interval"), context_length=g("context_length"))
