"""The fused loss ops with autograd, and plain-torch fallbacks with the same tiling.

``ecgfast::nt_xent`` returns (loss, H, lse); H (the normalised embeddings) and
the per-row logsumexp are what the backward needs to recompute each tile, so
memory stays O(N D). Autograd is registered here (as in pytorch/extension-cpp).
"""
from __future__ import annotations

import torch

from ecgfast._extension import EXTENSION_AVAILABLE

TILE = 256


def _check_nt_xent(z1, z2, temperature):
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ValueError(f"nt_xent: z1 and z2 must be (N, D) of one shape, got {tuple(z1.shape)} and "
                         f"{tuple(z2.shape)}")
    if not temperature > 0:
        raise ValueError(f"nt_xent: temperature must be positive, got {temperature}")


if EXTENSION_AVAILABLE:

    @torch.library.register_fake("ecgfast::nt_xent")
    def _(z1, z2, temperature):
        dtype = torch.float64 if z1.dtype == torch.float64 else torch.float32
        m = 2 * z1.shape[0]
        return (z1.new_empty((), dtype=dtype), z1.new_empty((m, z1.shape[1]), dtype=dtype),
                z1.new_empty((m,), dtype=dtype))

    @torch.library.register_fake("ecgfast::nt_xent_backward")
    def _(grad, z1, z2, h, lse, temperature):
        return torch.empty_like(z1), torch.empty_like(z2)

    def _nt_xent_setup(ctx, inputs, output):
        z1, z2, temperature = inputs
        _, h, lse = output
        ctx.save_for_backward(z1, z2, h, lse)
        ctx.temperature = temperature

    def _nt_xent_backward(ctx, grad_loss, grad_h, grad_lse):
        z1, z2, h, lse = ctx.saved_tensors
        dz1, dz2 = torch.ops.ecgfast.nt_xent_backward(grad_loss, z1, z2, h, lse, ctx.temperature)
        return dz1, dz2, None

    torch.library.register_autograd("ecgfast::nt_xent", _nt_xent_backward, setup_context=_nt_xent_setup)

    @torch.library.register_fake("ecgfast::byol_loss")
    def _(p, z):
        return p.new_empty(())

    @torch.library.register_fake("ecgfast::byol_loss_backward")
    def _(grad, p, z):
        return torch.empty_like(p), torch.empty_like(z)

    def _byol_setup(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    def _byol_backward(ctx, grad):
        p, z = ctx.saved_tensors
        return torch.ops.ecgfast.byol_loss_backward(grad, p, z)

    torch.library.register_autograd("ecgfast::byol_loss", _byol_backward, setup_context=_byol_setup)


class _NTXentTiled(torch.autograd.Function):
    """The same tiled algorithm in plain torch, for builds without the extension."""

    @staticmethod
    def forward(ctx, z1, z2, temperature):
        dtype = torch.float64 if z1.dtype == torch.float64 else torch.float32
        z = torch.cat([z1, z2]).to(dtype)
        h = z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)
        m, n = h.shape[0], z1.shape[0]
        lse = torch.empty(m, dtype=dtype, device=h.device)
        for r0 in range(0, m, TILE):
            s = h[r0:r0 + TILE] @ h.t() / temperature
            s.diagonal(r0).fill_(float("-inf"))
            lse[r0:r0 + TILE] = torch.logsumexp(s, dim=1)
        pos = (h * torch.cat([h[n:], h[:n]])).sum(1) / temperature
        ctx.save_for_backward(z, h, lse)
        ctx.temperature, ctx.n, ctx.dtype = temperature, n, z1.dtype
        return (lse - pos).mean()

    @staticmethod
    def backward(ctx, grad):
        z, h, lse = ctx.saved_tensors
        m, n, tau = h.shape[0], ctx.n, ctx.temperature
        pos_index = torch.cat([torch.arange(n, m), torch.arange(0, n)]).to(h.device)
        dh = torch.empty_like(h)
        for r0 in range(0, m, TILE):
            s = h[r0:r0 + TILE] @ h.t() / tau
            s.diagonal(r0).fill_(float("-inf"))
            w = torch.exp(s - lse[r0:r0 + TILE, None]) + torch.exp(s - lse[None, :])
            w.scatter_add_(1, pos_index[r0:r0 + TILE, None], torch.full((len(w), 1), -2.0, dtype=w.dtype,
                                                                        device=w.device))
            dh[r0:r0 + TILE] = w @ h
        dh *= grad.to(h.dtype) / (m * tau)
        dz = (dh - h * (h * dh).sum(1, keepdim=True)) / z.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return dz[:n].to(ctx.dtype), dz[n:].to(ctx.dtype), None


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    _check_nt_xent(z1, z2, temperature)
    if EXTENSION_AVAILABLE:
        return torch.ops.ecgfast.nt_xent(z1, z2, float(temperature))[0]
    return _NTXentTiled.apply(z1, z2, float(temperature))


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    if p.dim() != 2 or p.shape != z.shape:
        raise ValueError(f"byol_loss: p and z must be (N, D) of one shape, got {tuple(p.shape)} and "
                         f"{tuple(z.shape)}")
    if EXTENSION_AVAILABLE:
        dtype = torch.float64 if p.dtype == torch.float64 else torch.float32  # bf16/fp16 computed in float32
        return torch.ops.ecgfast.byol_loss(p.to(dtype), z.to(dtype))
    from ecgfast.losses.reference import byol_loss_reference

    return byol_loss_reference(p.float() if p.dtype != torch.float64 else p, z.to(p.dtype if p.dtype ==
                                                                                    torch.float64 else torch.float32))
