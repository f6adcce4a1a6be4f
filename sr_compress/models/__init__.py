"""Model zoo. Importing this package registers every family."""

from . import asrn, edsr, fsrcnn, imdn, msrresnet, plain, rfdn, rlfn, srvgg, vdsr  # noqa: F401  (registration side effects)
from .base import SCALES, DepthOutputs, SRModel, count_params
from .plain import plain_layers
from .registry import build_model, list_models, model_class, register_model, tiny_hparams

__all__ = ["SCALES", "DepthOutputs", "SRModel", "build_model", "count_params", "list_models", "model_class",
           "plain_layers", "register_model", "tiny_hparams"]
