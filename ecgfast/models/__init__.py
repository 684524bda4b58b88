"""Models of DESIGN.md: the reference encoder and its SimCLR, BYOL and classifier wrappers."""
from ecgfast.models.encoder import ConvBlock, ECGEncoder1DCNN
from ecgfast.models.heads import BYOLModel, ECGClassifier, SimCLRModel

__all__ = ["BYOLModel", "ConvBlock", "ECGClassifier", "ECGEncoder1DCNN", "SimCLRModel"]
