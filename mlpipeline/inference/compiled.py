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

import numpy as np
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


def load_onnx(path, shape: tuple[int, ...], *, bf16: bool) -> "Program | None":
    """The ONNX model at ``path``, its input made ``shape`` (-1: any size along that
    axis), as a :class:`Program`; None when OpenVINO is not installed."""
    if not available():
        return None
    import openvino

    model = openvino.Core().read_model(str(path))
    model.reshape({model.inputs[0]: openvino.PartialShape(list(shape))})
    return Program(model, "bf16" if bf16 else "f32")


class Program:
    """An OpenVINO model, compiled for the thread count of the process running it.

    The worker loads its models, so compiles them, in its main process on one thread
    before it forks its children (mlpipeline.worker): they share the compiled weights
    and, running one thread each, never compile again. A process running another count
    (a solo pool, a bench with ``--threads 2``) compiles once for its own.
    """

    def __init__(self, model, precision: str):
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

    def __call__(self, array: np.ndarray) -> dict[str, np.ndarray]:
        """The outputs for one input, by name (and by position as "0", "1", ...)."""
        threads = torch.get_num_threads()
        if threads != self.threads:
            logger.info("OpenVINO model recompiled for %d threads", threads)
            self._compile(threads)
        # A request of its own, dropped on return: its buffers for this input's size go
        # with it, instead of staying with the process until a larger input comes.
        request = self._compiled.create_infer_request()
        outputs = request.infer(array)
        named = {}
        for index, port in enumerate(self._compiled.outputs):
            value = np.asarray(outputs[port])  # infer() gave a copy: the request's own goes
            named[str(index)] = value
            for name in port.get_names():
                named[name] = value
        return named


class Compiled(torch.nn.Module):
    """A :class:`Program` standing in for the torch module it was converted from."""

    def __init__(self, model, precision: str):
        super().__init__()
        self.program = Program(model, precision)
        # Code that reads a module's dtype from its parameters (facenet-pytorch's
        # detect_face does) finds float32, the inputs' and outputs' type.
        self.dtype_of_inputs = torch.nn.Parameter(torch.empty(0), requires_grad=False)

    @property
    def precision(self) -> str:
        return self.program.precision

    @property
    def threads(self) -> int:
        return self.program.threads

    def forward(self, tensor: torch.Tensor):
        outputs = self.program(tensor.detach().cpu().numpy())
        count = len(self.program.model.outputs)
        parts = tuple(torch.from_numpy(outputs[str(index)]) for index in range(count))
        return parts if len(parts) > 1 else parts[0]
