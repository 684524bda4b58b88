"""SNOMED-CT codes of the PhysioNet/CinC Challenge 2021 mapped to PTB-XL superclasses.

The Challenge labels each record with SNOMED-CT codes (``# Dx:`` header lines).
Where a code states a diagnosis that PTB-XL files under one of its diagnostic
superclasses (``scp_statements.csv``, column ``diagnostic_class``) it maps to
that class; rhythm, axis, rate and artefact codes (atrial fibrillation, sinus
tachycardia, left axis deviation, pacing, ...) have no superclass and map to
nothing. Sinus rhythm (426783006) maps to NORM only when no other code of the
record maps to a class: PTB-XL's NORM means "normal ECG", and the Challenge
has no separate code for that.

A record none of whose codes maps has no label (``has_label`` false): it still
serves self-supervised pretraining.
"""
from __future__ import annotations

import numpy as np

from ecgfast import CLASSES

SINUS_RHYTHM = "426783006"

# code: (class, Challenge abbreviation, PTB-XL statement it corresponds to)
SNOMED_TO_SUPERCLASS: dict[str, tuple[str, str, str]] = {
    # conduction disturbances (CD)
    "270492004": ("CD", "IAVB", "1AVB"),
    "195042002": ("CD", "IIAVB", "2AVB"),
    "27885002": ("CD", "IIIAVB", "3AVB"),
    "164909002": ("CD", "LBBB", "CLBBB"),
    "733534002": ("CD", "CLBBB", "CLBBB"),
    "251120003": ("CD", "ILBBB", "ILBBB"),
    "59118001": ("CD", "RBBB", "CRBBB"),
    "713427006": ("CD", "CRBBB", "CRBBB"),
    "713426002": ("CD", "IRBBB", "IRBBB"),
    "445118002": ("CD", "LAnFB", "LAFB"),
    "445211001": ("CD", "LPFB", "LPFB"),
    "698252002": ("CD", "NSIVCB", "IVCD"),
    "74390002": ("CD", "WPW", "WPW"),
    "6374002": ("CD", "BBB", "IVCD"),
    # hypertrophy (HYP)
    "164873001": ("HYP", "LVH", "LVH"),
    "89792004": ("HYP", "RVH", "RVH"),
    "446358003": ("HYP", "RAH", "RAO/RAE"),
    "67741000119109": ("HYP", "LAE", "LAO/LAE"),
    # myocardial infarction (MI)
    "164865005": ("MI", "MI", "IMI/AMI"),
    "57054005": ("MI", "AMI", "AMI"),
    "54329005": ("MI", "AnMI", "AMI"),
    # ST/T change (STTC)
    "164861001": ("STTC", "MIs", "ISC_"),
    "413444003": ("STTC", "AMIs", "ISC_"),
    "426434006": ("STTC", "AnMIs", "ISCAN"),
    "425419005": ("STTC", "IIs", "ISCIN"),
    "425623009": ("STTC", "LIs", "ISCLA"),
    "428750005": ("STTC", "NSSTTA", "NST_"),
    "164930006": ("STTC", "STIAb", "NST_"),
    "429622005": ("STTC", "STD", "STD_"),
    "164931005": ("STTC", "STE", "STE_"),
    "55930002": ("STTC", "STC", "NST_"),
    "164934002": ("STTC", "TAb", "NDT"),
    "59931005": ("STTC", "TInv", "INVT"),
    "111975006": ("STTC", "LQT", "LNGQT"),
}

# A few codes per class for the synthetic writer (first = most common).
CODES_OF_CLASS = {"NORM": [SINUS_RHYTHM]}
for _code, (_cls, _, _) in SNOMED_TO_SUPERCLASS.items():
    CODES_OF_CLASS.setdefault(_cls, []).append(_code)
RHYTHM_ONLY = ["164889003", "427084000", "426177001", "39732003", "10370003"]  # AF, STach, SB, LAD, pacing


def superclass_labels(codes) -> np.ndarray:
    """uint8 (5,) multi-hot in ``CLASSES`` order for a record's SNOMED codes (strings or ints)."""
    y = np.zeros(len(CLASSES), dtype=np.uint8)
    codes = [str(c).strip() for c in codes if str(c).strip()]
    for c in codes:
        if c in SNOMED_TO_SUPERCLASS:
            y[CLASSES.index(SNOMED_TO_SUPERCLASS[c][0])] = 1
    if not y.any() and SINUS_RHYTHM in codes:
        y[CLASSES.index("NORM")] = 1
    return y
