"""Models compiled by OpenVINO stand in for their torch modules with the same outputs."""

import pytest
import torch

from mlpipeline.inference import compiled
from mlpipeline.inference.base import ModelUnavailable
from mlpipeline.inference.bib_ocr import BibReader, native_bf16
from mlpipeline.tests.test_ocr import runner_photo


class ConvNet(torch.nn.Module):
    """Convolution, batch norm and ReLU (what OpenVINO fuses), two outputs as CRAFT has."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(5)
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                                            torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3, padding=1))
        with torch.no_grad():  # batch statistics of a trained net, not the identity
            self.features[1].running_mean.uniform_(-0.5, 0.5)
            self.features[1].running_var.uniform_(0.5, 2.0)

    def forward(self, tensor):
        features = self.features(tensor)
        return features.permute(0, 2, 3, 1), features.mean(dim=(2, 3))


@pytest.fixture
def threads_restored():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_a_compiled_module_gives_the_torch_outputs_at_every_size(threads_restored):
    torch.set_num_threads(1)
    net = ConvNet().eval()
    fast = compiled.compile_module(net, (1, 3, -1, -1), bf16=False)
    assert fast is not None
    for height, width in ((32, 48), (96, 160), (40, 24)):
        tensor = torch.rand(1, 3, height, width)
        with torch.no_grad():
            expected = net(tensor)
        got = fast(tensor)
        assert isinstance(got, tuple) and len(got) == 2
        for mine, theirs in zip(got, expected):
            assert mine.shape == theirs.shape and mine.dtype == torch.float32
            assert torch.allclose(mine, theirs, atol=1e-4), (height, width)


def test_a_dynamic_batch_and_one_output(threads_restored):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU()).eval()
    fast = compiled.compile_module(net, (-1, 1, 16, -1), bf16=False)
    tensor = torch.rand(5, 1, 16, 40)
    with torch.no_grad():
        expected = net(tensor)
    got = fast(tensor)
    assert isinstance(got, torch.Tensor) and torch.allclose(got, expected, atol=1e-5)


def test_a_process_with_another_thread_count_compiles_for_its_own(threads_restored):
    torch.set_num_threads(1)
    fast = compiled.compile_module(ConvNet(), (1, 3, -1, -1), bf16=False)
    assert fast.threads == 1
    fast(torch.rand(1, 3, 32, 32))
    assert fast.threads == 1
    torch.set_num_threads(2)
    fast(torch.rand(1, 3, 32, 32))
    assert fast.threads == 2


@pytest.mark.skipif(not native_bf16(), reason="bfloat16 is emulated on this processor")
def test_bfloat16_stays_close_to_float32(threads_restored):
    net = ConvNet().eval()
    fast = compiled.compile_module(net, (1, 3, -1, -1), bf16=True)
    assert fast.precision == "bf16"
    tensor = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = net(tensor)[0]
    assert torch.allclose(fast(tensor)[0], expected, atol=0.05, rtol=0.05)


def test_the_bib_reader_reads_the_same_in_openvino_and_in_torch():
    photo = runner_photo("4721")
    openvino, plain = BibReader().ensure_loaded(), BibReader(openvino=False).ensure_loaded()
    assert openvino.detector_runtime.startswith("openvino ")
    assert plain.detector_runtime.startswith("torch ")
    assert isinstance(openvino._reader.recognizer.FeatureExtraction, compiled.Compiled)
    assert [r.text for r in openvino.predict(photo)] == [r.text for r in plain.predict(photo)] == ["4721"]


def test_without_openvino_the_reader_runs_torch(monkeypatch):
    monkeypatch.setattr(compiled, "available", lambda: False)
    assert compiled.compile_module(ConvNet(), (1, 3, -1, -1), bf16=False) is None
    reader = BibReader().ensure_loaded()
    assert reader.detector_runtime.startswith("torch ")
    assert [r.text for r in reader.predict(runner_photo("318"))] == ["318"]
    with pytest.raises(ModelUnavailable, match="OpenVINO is not installed"):
        BibReader(openvino=True).ensure_loaded()


def test_openvino_is_installed_without_its_telemetry():
    """requirements-nodeps.txt installs openvino alone: its telemetry package would make
    every model conversion send usage statistics (and try the network)."""
    import importlib.util

    assert compiled.available()
    assert importlib.util.find_spec("openvino_telemetry") is None


def test_mtcnn_finds_the_same_faces_in_openvino_and_in_torch():
    from PIL import Image

    from mlpipeline.inference.mtcnn import FaceDetector
    from mlpipeline.tests.test_faces import cartoon_face, marked_face

    photo = Image.new("RGB", (900, 500), (90, 120, 160))
    photo.paste(cartoon_face(), (60, 80))
    photo.paste(marked_face().resize((90, 90)), (400, 200))
    photo.paste(cartoon_face(240), (600, 120))
    fast = FaceDetector().ensure_loaded()
    plain = FaceDetector()
    plain.openvino = False
    plain.ensure_loaded()
    assert isinstance(fast._mtcnn.pnet, compiled.Compiled)
    assert not isinstance(plain._mtcnn.pnet, compiled.Compiled)
    found, expected = fast.predict(photo), plain.predict(photo)
    assert len(found) == len(expected) >= 2
    for mine, theirs in zip(found, expected):
        assert max(abs(a - b) for a, b in zip(mine.box, theirs.box)) < 0.5
        assert abs(mine.score - theirs.score) < 1e-3
