"""stylemix models: encoders, mixing layers, decoders and the registry. No I/O beyond weights files."""
from .adain import AdaINConfig, AdaINModel
from .contract import Capabilities, StatisticsModel, StyleModel
from .decoder import Decoder, DecoderConfig
from .mixing import StyleCode
from .registry import create_model, list_models, model_capabilities, register_model
from .vgg import EncoderConfig, InputSpec, VGGEncoder

__all__ = ["AdaINConfig", "AdaINModel", "Capabilities", "StatisticsModel", "StyleModel", "Decoder", "DecoderConfig",
           "StyleCode", "create_model", "list_models", "model_capabilities", "register_model", "EncoderConfig",
           "InputSpec", "VGGEncoder"]
