"""A small byte-level transformer whose feed-forward layers are
Mixture-of-Experts layers with expert parallelism.

Non-expert parameters (embeddings, attention, router, norms) are ordinary
float32 torch parameters, replicated on every rank (data parallel). Each
MoE layer has `slots` expert slots on this rank; a slot holds one replica
of one logical expert (which one: the moeplace runtime's placement) as ONE
flat float64 parameter [P], so that its weights and its Adam moments are
three contiguous buffers the runtime migrates together.

Experts compute in float64 and hand float32 back: a token's output is then
the same float32 whichever replica, rank or batch computed it (a float32
matmul's rows depend on the batch shape; float64's differ by ~1e-16, far
below a float32 rounding step), and the float64 sum of an expert's
gradients across its replicas keeps runs with different placements
together to ~1e-12 (dispatch.py, grads.py)."""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dispatch import dispatch


class ExpertShape:
    """Layout of an expert's flat parameter: W1 [d][h], b1 [h], W2 [h][d], b2 [d]."""

    def __init__(self, d, h):
        self.d, self.h = d, h
        self.size = 2 * d * h + h + d

    def forward(self, p, x):
        """x float64 [n][d] -> float64 [n][d] through the expert held in p [P]."""
        d, h = self.d, self.h
        w1 = p[:d * h].view(d, h)
        b1 = p[d * h:d * h + h]
        w2 = p[d * h + h:2 * d * h + h].view(h, d)
        b2 = p[2 * d * h + h:]
        return F.gelu(x @ w1 + b1) @ w2 + b2

    def init(self, seed, layer, expert):
        """The initial weights of a logical expert, float64 [P]: a function of
        (seed, layer, expert) only, so every replica starts identical."""
        g = torch.Generator().manual_seed(int(np.random.SeedSequence(
            [seed, layer, expert]).generate_state(1)[0]))
        d, h = self.d, self.h
        w1 = torch.randn(d * h, generator=g, dtype=torch.float64) / math.sqrt(d)
        w2 = torch.randn(h * d, generator=g, dtype=torch.float64) / math.sqrt(h)
        return torch.cat([w1, torch.zeros(h, dtype=torch.float64), w2,
                          torch.zeros(d, dtype=torch.float64)])


class MoE(nn.Module):
    """Top-1 (Switch) MoE layer, dropless: every token reaches its expert,
    however many choose it (a capacity-padded layer would drop them, and
    gain nothing from rebalancing). routing: this layer's row of
    Runtime.routing(); comm and split (Runtime.dispatch of this layer): set
    by the trainer. expert_counts: the tokens this rank's router sent to
    each expert in the last forward (for Runtime.record_experts);
    slot_tokens: the tokens each local slot computed."""

    def __init__(self, layer, d, h, experts, slots):
        super().__init__()
        self.layer, self.experts = layer, experts
        self.shape = ExpertShape(d, h)
        self.gate = nn.Linear(d, experts, bias=False)
        nn.init.normal_(self.gate.weight, std=1 / math.sqrt(d))   # logits ~ N(0, 1) per token
        self.slots = nn.ParameterList(
            [nn.Parameter(torch.zeros(self.shape.size, dtype=torch.float64)) for _ in range(slots)])
        self.comm = self.routing = self.split = self.aux_loss = None
        self.expert_counts = np.zeros(experts, dtype=np.int64)  # last step's, this rank's tokens

    def forward(self, x):                                           # [B][T][d]
        B, T, d = x.shape
        tok = x.reshape(B * T, d)                                   # [N][d]
        prob = F.softmax(self.gate(tok), dim=-1)        # [N][E]
        gp, expert = prob.max(dim=-1)                               # [N] each
        e = expert.numpy()
        self.expert_counts = np.bincount(e, minlength=self.experts)
        # Switch-style load-balancing loss (coefficient in the trainer):
        # experts * sum_e (fraction of tokens to e) * (mean router probability of e)
        frac = torch.from_numpy(self.expert_counts / e.size).float()
        self.aux_loss = self.experts * (frac * prob.mean(dim=0)).sum()
        send = self.split(self.expert_counts)                      # [ranks][slots]
        y, self.slot_tokens = dispatch(self.comm, tok, e, self.routing, send,
                                       lambda s, xs: self.shape.forward(self.slots[s], xs))
        return (gp.unsqueeze(1) * y).reshape(B, T, d)


class Block(nn.Module):
    def __init__(self, layer, d, heads, h, experts, slots):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.moe = MoE(layer, d, h, experts, slots)

    def attention(self, x):                                         # [B][T][d]
        B, T, d = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, d // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))            # [B][H][T][dh]
        att = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.heads)
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        att = F.softmax(att.masked_fill(mask, float("-inf")), dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(B, T, d))

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.moe(self.ln2(x))


class MoETransformer(nn.Module):
    """Byte-level language model: embeddings, `layers` blocks, tied output."""

    def __init__(self, layers, d, heads, h, experts, slots, seq_len):
        super().__init__()
        self.embed = nn.Embedding(256, d)
        self.pos = nn.Parameter(torch.zeros(seq_len, d))
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList([Block(l, d, heads, h, experts, slots)
                                     for l in range(layers)])
        self.ln = nn.LayerNorm(d)

    def moe_layers(self):
        return [b.moe for b in self.blocks]

    def expert_parameters(self):
        return {id(p) for m in self.moe_layers() for p in m.slots}

    def forward(self, x):                                           # [B][T] bytes
        hdn = self.embed(x) + self.pos[:x.shape[1]]
        for b in self.blocks:
            hdn = b(hdn)
        return self.ln(hdn) @ self.embed.weight.t()                 # [B][T][256]
