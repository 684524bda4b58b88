"""ecgfast: fast self-supervised learning on 12-lead ECGs."""
__version__ = "0.1.0"

CLASSES = ("CD", "HYP", "MI", "NORM", "STTC")  # PTB-XL superdiagnostic classes, alphabetical
# The PTB-XL benchmark's label tasks (ecgfast.data.metadata has their rules); the seed's is superdiagnostic.
TASKS = ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm")
LEADS = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")

# Imported on first use, so `import ecgfast` stays light (no torch until a model is loaded).
_LAZY = {"load_encoder": "ecgfast.models.pretrained", "load_classifier": "ecgfast.models.pretrained"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
