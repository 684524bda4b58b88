"""Test signals shared by the test folders (importable from any of them: tests/ is on sys.path)."""
import torch


def ecg_like(batch=8, leads=12, length=1000, fs=100, seed=0):
    """Smooth multi-tone signals in mV, different per sample and lead."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / fs
    f = 1 + 9 * torch.rand(batch, leads, 3, generator=g)
    a = 0.2 + torch.rand(batch, leads, 3, generator=g)
    ph = 6.28 * torch.rand(batch, leads, 3, generator=g)
    return (a[..., None] * torch.sin(6.283185307 * f[..., None] * t + ph[..., None])).sum(2).float()
