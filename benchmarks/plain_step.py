"""A SimCLR step as users usually write it: per-sample augmentation, the 2N x 2N loss, fp32."""
from __future__ import annotations

import torch

from benchmarks.plain_augment import PerSampleAugment


class PlainSimCLRStep:
    def __init__(self, sampling_rate: float = 100, seed: int = 0, device: str = "cpu"):
        from ecgfast.losses.reference import nt_xent_reference
        from ecgfast.models import SimCLRModel

        torch.manual_seed(seed)
        self.device = torch.device(device)
        self.model = SimCLRModel().to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.augment = PerSampleAugment(sampling_rate, seed)
        self.loss_fn = nt_xent_reference

    def views(self, x: torch.Tensor):
        x = x.cpu()  # the seed's augmentations are per-sample CPU code
        v1 = torch.stack([self.augment(s) for s in x])
        v2 = torch.stack([self.augment(s) for s in x])
        norm = lambda v: (v - v.mean()) / v.std()  # noqa: E731
        return norm(v1), norm(v2)

    def step_on_views(self, v1: torch.Tensor, v2: torch.Tensor) -> float:
        v1, v2 = v1.to(self.device), v2.to(self.device)
        loss = self.loss_fn(self.model(v1), self.model(v2), 0.07)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def __call__(self, x: torch.Tensor) -> float:
        return self.step_on_views(*self.views(x))
