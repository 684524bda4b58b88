"""Inputs and pipelines shared by the augmentation tests."""
import torch

from ecgfast.augment import AUGMENTATIONS, AugmentPipeline


def only(name, backend, fs=100, seed=0, rate=1.0, **kw):
    """A pipeline applying just ``name``, to every sample."""
    enabled = {a: a == name for a in AUGMENTATIONS}
    return AugmentPipeline(fs, seed=seed, enabled=enabled, rates={name: rate}, backend=backend, **kw)


def ecg_like(batch=8, leads=12, length=1000, fs=100, seed=0):
    """Smooth multi-tone signals in mV, different per sample and lead."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / fs
    f = 1 + 9 * torch.rand(batch, leads, 3, generator=g)
    a = 0.2 + torch.rand(batch, leads, 3, generator=g)
    ph = 6.28 * torch.rand(batch, leads, 3, generator=g)
    return (a[..., None] * torch.sin(6.283185307 * f[..., None] * t + ph[..., None])).sum(2).float()
