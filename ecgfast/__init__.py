"""ecgfast: fast self-supervised learning on 12-lead ECGs."""
__version__ = "0.1.0"

CLASSES = ("CD", "HYP", "MI", "NORM", "STTC")  # PTB-XL superdiagnostic classes, alphabetical
LEADS = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")
