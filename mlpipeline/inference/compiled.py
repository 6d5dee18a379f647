"""A torch model compiled by OpenVINO for this processor, standing in for the module.

PyTorch runs a convolutional net one operator at a time: after each convolution, the
batch norm and the ReLU each read and write the whole activation again, which on
CRAFT's 0.8-megapixel canvases is a third of its time. OpenVINO fuses them into the
convolution and picks kernels for the processor (AMX, AVX-512, AVX2). Measured on one
thread: CRAFT on a 1248 × 640 canvas, 0.65 s in bfloat16 against 1.42 s under torch's
bfloat16 autocast, and 3.6 s in float32 against 4.6 s; the recogniser's convolutions on
24 lines of 64 × 320 px, 0.31 s in float32 against 0.66 s, with the same outputs.

Only the package ``openvino`` is installed, without ``openvino-telemetry``
(requirements-nodeps.txt): with it, OpenVINO's model conversion would send usage
statistics unasked; without it, conversion uses its own stand-in that sends nothing.
Without ``openvino`` at all, :func:`compile_module` gives None and the caller keeps its
torch module.
"""

import logging
import warnings

import torch

logger = logging.getLogger(__name__)


def available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def compile_module(module: torch.nn.Module, shape: tuple[int, ...], *, bf16: bool) -> torch.nn.Module | None:
    """``module``, which takes one float32 tensor of ``shape`` (-1: any size along that
    axis), converted to OpenVINO, as a module that gives back the same outputs as torch
    tensors; None when OpenVINO is not installed.

    ``bf16``: compute in bfloat16 (where the processor multiplies it in hardware), else in
    float32. The conversion runs the module once, on a small input of that shape.
    """
    if not available():
        return None
    import openvino

    example = torch.zeros([32 if size == -1 else size for size in shape])
    with warnings.catch_warnings():  # the conversion traces with torch.jit, which torch deprecates
        warnings.simplefilter("ignore", FutureWarning)
        model = openvino.convert_model(module.eval(), example_input=example,
                                       input=[openvino.PartialShape(list(shape))])
    return Compiled(model, "bf16" if bf16 else "f32")


class Compiled(torch.nn.Module):
    """An OpenVINO model, compiled for the thread count of the process running it.

    The worker loads its models, so compiles them, in its main process on one thread
    before it forks its children (mlpipeline.worker): they share the compiled weights
    and, running one thread each, never compile again. A process running another count
    (a solo pool, a bench with ``--threads 2``) compiles once for its own.
    """

    def __init__(self, model, precision: str):
        super().__init__()
        self.model, self.precision = model, precision
        self._compile(torch.get_num_threads())

    def _compile(self, threads: int) -> None:
        import openvino

        self._compiled = openvino.Core().compile_model(self.model, "CPU", {
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": self.precision,
            "NUM_STREAMS": 1,
        })
        self.threads = threads

    def forward(self, tensor: torch.Tensor):
        threads = torch.get_num_threads()
        if threads != self.threads:
            logger.info("OpenVINO model recompiled for %d threads", threads)
            self._compile(threads)
        outputs = self._compiled(tensor.detach().cpu().numpy())
        parts = tuple(torch.from_numpy(outputs[index]) for index in range(len(outputs)))
        return parts if len(parts) > 1 else parts[0]
