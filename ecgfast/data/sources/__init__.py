"""Readers of the 12-lead ECG corpora ecgfast pretrains on (see ``ecgfast.data.sources.readers``).

``LAYOUTS`` is the one list of corpus layouts: the readers (``readers.SOURCES``), the synthetic
writers (``synthetic.write_layout``) and the commands' ``--layout`` choices all take it from here
(kept import-free so a command's parser can list it without loading pandas).
"""

LAYOUTS = ("ptbxl", "cinc2021", "mimic-iv-ecg", "code15", "numpy")

__all__ = ["LAYOUTS"]
