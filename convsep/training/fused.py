"""The training step's heavy end in few memory passes: the model's last transposed
convolution, its ReLU, the soft masks, the grouping of sources and the (weighted) MSE,
forward and backward, as one autograd function.

Autograd would keep and revisit about thirty tensors of the output's size (sources x
channels x frames x bins per block); here the forward makes four passes over them besides the
matrix product and the backward four, in a layout that the matrix products write and read
contiguously: (channels, sources, blocks, frames, bins). The scalar factors of the gradient
are folded into small (channels, blocks x frames, bins) tensors before the one pass that
forms it.

Notation: z = h w1 + b (pre-activation), y = relu(z), P = y + eps, D = sum_s P_s,
m_s = P_s / D (the soft masks of ``convsep.dsp.masks``), M_g = sum_{s in g} m_s,
E_g = M_g X - T_g, loss = sum(w E^2) / count.  With G_g = 2 w E_g / count:
dloss/dz_s = [z_s > 0] (X / D) (G_{g(s)} - sum_g M_g G_g).
"""
from __future__ import annotations

import torch

from convsep.dsp.masks import EPS


class DecoderMaskMSE(torch.autograd.Function):
    """loss = sum(weights * (M_g X - T_g)^2) * scale / count over every element.

    hidden: (S, N, f1) — the last decoder layer's input, one row per (block, frame);
    w1: (S, f1, C, F); bias: (S, C) or None; mixture X: (C, N, F); targets T: (C, G, N, F);
    weights: None or broadcastable to (C, G, N, F); groups: None (G = S) or a tuple of
    tuples of source indices; bf16: the three matrix products take bfloat16 operands
    (float32 accumulation, AMX on recent x86 CPUs); everything else stays float32.
    Returns a scalar.
    """

    @staticmethod
    def forward(ctx, hidden, w1, bias, mixture, targets, weights, groups, scale, bf16):
        S, N, f1 = hidden.shape
        C, F = w1.shape[2], w1.shape[3]
        # relu(z) + eps == max(z + eps, eps): bias and eps are added in one pass.
        shift = (bias.to(w1.dtype) if bias is not None else w1.new_zeros(S, C)) + EPS
        y = w1.new_empty(C, S, N, F)
        operand = torch.bfloat16 if bf16 else w1.dtype
        h, w = hidden.to(operand), w1.to(operand)
        for c in range(C):
            if bf16:
                torch.add(torch.bmm(h, w[:, :, c]), shift[:, c, None, None], out=y[c])
            else:
                torch.baddbmm(shift[:, c, None, None].expand(S, N, F), h, w[:, :, c], out=y[c])
        P = y.clamp_min_(EPS)
        inv_d = _sum_over_sources(P).reciprocal_()                     # (C, N, F)
        ratio = mixture * inv_d                                         # X / D
        masks = P if groups is None else torch.stack([P[:, list(g)].sum(1) for g in groups], dim=1)
        neg_error = torch.addcmul(targets, masks, ratio[:, None], value=-1)   # -E = T - M X
        weighted = neg_error if weights is None else neg_error * weights
        count = neg_error.numel()
        loss = torch.dot(weighted.reshape(-1), neg_error.reshape(-1)) * (scale / count)
        ctx.groups = groups
        ctx.dtypes = hidden.dtype, w1.dtype
        ctx.g_factor = -2.0 * scale / count                             # G = g_factor * weighted
        ctx.save_for_backward(h, w, P, inv_d, ratio, weighted)
        ctx.has_bias = bias is not None
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        h, w, P, inv_d, ratio, weighted = ctx.saved_tensors
        groups = ctx.groups
        C, S = P.shape[:2]
        if groups is None:
            expanded = weighted
        else:
            owner = [0] * S
            for g, members in enumerate(groups):
                for s in members:
                    owner[s] = g
            expanded = weighted[:, owner]                               # (C, S, N, F)
        # dz_s = k (X / D) (G'_s - sum_s' P_s' G'_s' / D), with G = k' G', k = grad x g_factor:
        # one pass over the (C, S, N, F) tensors once the (C, N, F) factors are formed.
        rk = ratio * (grad_loss * ctx.g_factor)
        common = _sum_over_sources(P, expanded).mul_(inv_d).mul_(rk)    # (C, N, F)
        grad = torch.addcmul(common.neg_()[:, None], expanded, rk[:, None])
        grad = torch.ops.aten.threshold_backward(grad, P, EPS)          # the ReLU: 0 where P <= eps
        grad_bias = grad.sum((2, 3)).T.contiguous() if ctx.has_bias else None
        grad_z = grad.to(h.dtype)
        hidden_dtype, dtype = ctx.dtypes
        grad_hidden = torch.zeros(h.shape, dtype=dtype, device=h.device)
        grad_w1 = torch.empty((C, *w.shape[:2], w.shape[3]), dtype=dtype, device=h.device)
        for c in range(C):
            grad_hidden.add_(torch.bmm(grad_z[c], w[:, :, c].transpose(1, 2)))
            grad_w1[c].copy_(torch.bmm(h.transpose(1, 2), grad_z[c]))
        grad_w1 = grad_w1.permute(1, 2, 0, 3).contiguous()               # (S, f1, C, F)
        return (grad_hidden.to(hidden_dtype), grad_w1, grad_bias, None, None, None, None, None, None)


def _sum_over_sources(x: torch.Tensor, factor: torch.Tensor | None = None) -> torch.Tensor:
    """sum_s x[:, s] (x factor[:, s] if given): (C, S, N, F) -> (C, N, F), one source slice
    at a time, without a product tensor of x's size (2-3x faster than ``(x * f).sum(1)``)."""
    S = x.shape[1]
    if factor is None:
        total = torch.add(x[:, 0], x[:, 1]) if S > 1 else x[:, 0].clone()
        for s in range(2, S):
            total.add_(x[:, s])
        return total
    total = torch.mul(x[:, 0], factor[:, 0])
    for s in range(1, S):
        total.addcmul_(x[:, s], factor[:, s])
    return total


def decoder_mask_mse(hidden, w1, bias, mixture, targets, weights=None, groups=None, scale=1.0, bf16=False):
    """See ``DecoderMaskMSE``; groups given as a sequence of sequences of source indices."""
    groups = None if groups is None else tuple(tuple(int(s) for s in g) for g in groups)
    return DecoderMaskMSE.apply(hidden, w1, bias, mixture, targets, weights, groups, float(scale), bool(bf16))
