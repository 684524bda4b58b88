"""Inputs and pipelines shared by the augmentation tests."""
from ecgfast.augment import AUGMENTATIONS, AugmentPipeline


def only(name, backend, fs=100, seed=0, rate=1.0, **kw):
    """A pipeline applying just ``name``, to every sample."""
    enabled = {a: a == name for a in AUGMENTATIONS}
    return AugmentPipeline(fs, seed=seed, enabled=enabled, rates={name: rate}, backend=backend, **kw)
