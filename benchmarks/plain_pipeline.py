"""The plain end-to-end pipeline: a Dataset that reads each WFDB record and augments it per sample."""
from __future__ import annotations

import torch
import wfdb
from torch.utils.data import DataLoader, Dataset

from benchmarks.plain_augment import PerSampleAugment


class PlainWFDBDataset(Dataset):
    """``__getitem__`` reads one record with wfdb.rdsamp and returns its two augmented views."""

    def __init__(self, paths, sampling_rate: float = 100, seed: int = 0):
        self.paths = list(paths)
        self.augment = PerSampleAugment(sampling_rate, seed)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        signal, _ = wfdb.rdsamp(self.paths[i])
        x = torch.from_numpy(signal.T.astype("float32"))
        return self.augment(x), self.augment(x)


def plain_epoch(paths, step, batch_size: int = 256, workers: int = 2) -> int:
    """One SimCLR epoch the plain way; ``step`` is a PlainSimCLRStep. Returns the samples seen."""
    loader = DataLoader(PlainWFDBDataset(paths), batch_size=batch_size, shuffle=True, num_workers=workers,
                        drop_last=True, persistent_workers=False)
    seen = 0
    for v1, v2 in loader:
        norm = lambda v: (v - v.mean()) / v.std()  # noqa: E731
        step.step_on_views(norm(v1), norm(v2))
        seen += v1.shape[0]
    return seen
