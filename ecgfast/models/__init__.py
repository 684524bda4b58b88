"""Models of DESIGN.md: the encoders (backbones) and their SimCLR, BYOL and classifier wrappers."""
from ecgfast.models.backbones import DEFAULT_ENCODER, ENCODER_NAMES, ENCODERS, build_encoder
from ecgfast.models.encoder import ConvBlock, ECGEncoder1DCNN
from ecgfast.models.heads import BYOLModel, ECGClassifier, SimCLRModel

__all__ = ["BYOLModel", "ConvBlock", "DEFAULT_ENCODER", "ECGClassifier", "ECGEncoder1DCNN", "ENCODERS",
           "ENCODER_NAMES", "SimCLRModel", "build_encoder"]
