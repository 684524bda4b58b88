"""The preprocessing spec a training run writes into its checkpoints (read back by
``ecgfast.base.checkpoint.checkpoint_spec``; docs/checkpoints.md).

It lives with the writers, in ``train``: a spec names a registered encoder (``ecgfast.models``) and a
training recipe (``ecgfast.train.recipe``), both checked here before anything is written; the reader in
``base`` knows neither registry.
"""
from __future__ import annotations


def preprocessing_spec(sampling_rate: int, signal_length: int, normalizer: dict, leads=None,
                       units: str = "mV", encoder: str | None = None, recipe: str | None = None,
                       memory_format: str | None = None) -> dict:
    """What a model expects of its input: rate (Hz), length (samples), lead order, units, normaliser,
    and which encoder reads it (``encoder``, a registered name; default the seed's ``ecg1dcnn``).
    ``recipe`` (optional key, ``ecgfast.train.recipe``): the named recipe the model was trained with;
    a spec without it is the seed's (``ecgfast.base.checkpoint.recipe_of``).
    ``memory_format``: the layout it was trained in (optional key, informative: the weights are the same
    in both layouts and load under either; absent from older checkpoints).

    ``normalizer`` is ``Normalizer.state_dict()``: the model sees
    ``(x_mV - mean) / std`` (global, or per lead in ``leads`` order).
    """
    from ecgfast import LEADS
    from ecgfast.models.backbones import DEFAULT_ENCODER, check_encoder_name

    spec = {"sampling_rate": int(sampling_rate), "signal_length": int(signal_length),
            "leads": list(leads or LEADS), "units": units, "normalizer": dict(normalizer),
            "encoder": check_encoder_name(encoder or DEFAULT_ENCODER)}
    if recipe is not None:
        from ecgfast.train.recipe import check_recipe_name

        spec["recipe"] = check_recipe_name(recipe)
    if memory_format is not None:
        spec["memory_format"] = memory_format
    return spec
