"""streamcodec-tensorrt: the analysis and synthesis transforms of a streamcodec model compiled with TensorRT.

::

    model = streamcodec.load_model("evc-s", device="cuda")
    backend = streamcodec_tensorrt.accelerate(model)   # TensorRT (fp16 kernels allowed), or plain torch with
    print(backend.name, backend.reason)                # the reason logged when TensorRT cannot run here
    encoder = streamcodec.FrameEncoder(model, 1920, 1080, q=32)

Engines are built per input shape on first use and cached on disk (:class:`EngineCache`). The entropy-parameter
path is never compiled, so streams stay decodable by the plain torch decoder. Install with
``pip install 'streamcodec[tensorrt]' ./plugins/tensorrt``.
"""

from .attach import CompiledTransform, accelerate, restore
from .backends import TensorRTBackend, TorchBackend, export_static, select_backend, tensorrt_unavailable
from .cache import EngineCache, weights_digest

__all__ = [
    "CompiledTransform",
    "EngineCache",
    "TensorRTBackend",
    "TorchBackend",
    "accelerate",
    "export_static",
    "restore",
    "select_backend",
    "tensorrt_unavailable",
    "weights_digest",
]
