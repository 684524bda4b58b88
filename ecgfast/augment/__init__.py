"""The seven ECG augmentations of DESIGN.md as one fused op (C++/OpenMP, CUDA, Numba) and a torch reference.

    from ecgfast.augment import AugmentPipeline
    pipe = AugmentPipeline(sampling_rate=100, seed=42, enabled="no-mixup")
    view1, view2 = pipe(x)          # x: (B, 12, T) float32 in mV
"""
from ecgfast.augment._ops import backend
from ecgfast.augment.params import AUGMENTATIONS, CONFIGS, DEFAULT_RATES, AugmentParams, enabled_for_config
from ecgfast.augment.pipeline import AugmentPipeline, TorchReferencePipeline

__all__ = ["AUGMENTATIONS", "CONFIGS", "DEFAULT_RATES", "AugmentParams", "AugmentPipeline",
           "TorchReferencePipeline", "backend", "enabled_for_config"]
