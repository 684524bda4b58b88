"""The seven ECG augmentations of DESIGN.md as one fused op (C++/OpenMP, CUDA, Numba) and a torch reference.

    from ecgfast.augment import AugmentPipeline
    pipe = AugmentPipeline(sampling_rate=100, seed=42, enabled="no-mixup")
    view1, view2 = pipe(x)          # x: (B, 12, T) float32 in mV
    crops = AugmentPipeline(100, crop_seconds=2.5, resized_crop_min=0.5)  # views: 2.5 s (resized) crops

Order: the crop (short crop, random-resized-crop) first when asked for, then the
seven in DESIGN.md's order on the crop (see ``AugmentPipeline``).
"""
from ecgfast.augment._ops import backend
from ecgfast.augment.params import (
                                    AUGMENTATIONS,
                                    CONFIGS,
                                    DEFAULT_RATES,
                                    VIEW_AUGMENTATIONS,
                                    AugmentParams,
                                    enabled_for_config,
)
from ecgfast.augment.pipeline import AugmentPipeline, TorchReferencePipeline

__all__ = ["AUGMENTATIONS", "CONFIGS", "DEFAULT_RATES", "VIEW_AUGMENTATIONS", "AugmentParams", "AugmentPipeline",
           "TorchReferencePipeline", "backend", "enabled_for_config"]
