"""stylemix models: encoders, mixing layers, decoders and the registry. No I/O beyond weights files."""
from .adain import AdaINConfig, AdaINModel
from .decoder import Decoder, DecoderConfig
from .mixing import AdaIN, ConditionalInstanceNorm, StyleCode
from .registry import create_model, list_models, register_model
from .vgg import EncoderConfig, InputSpec, VGGEncoder

__all__ = ["AdaINConfig", "AdaINModel", "Decoder", "DecoderConfig", "AdaIN", "ConditionalInstanceNorm", "StyleCode",
           "create_model", "list_models", "register_model", "EncoderConfig", "InputSpec", "VGGEncoder"]
