import shutil

import pytest
from django.core.management import CommandError, call_command
from django.utils import translation

from mlpipeline.inference.clip import ClipEmbedder
from mlpipeline.inference.facenet import FacenetFaceEmbedder

FACENET_VGGFACE2_FILE = FacenetFaceEmbedder.weights_file
CLIP_VIT_B32_FILE = ClipEmbedder.weights_file


@pytest.fixture(autouse=True)
def in_english():
    with translation.override("en"):
        yield


@pytest.fixture
def models_dir(settings, tmp_path):
    settings.MODELS_DIR = tmp_path / "models"
    return settings.MODELS_DIR


def test_it_copies_and_verifies_the_facenet_weights_from_a_folder(
        models_dir, tmp_path, facenet_weights, capsys):
    source = tmp_path / "usb"
    source.mkdir()
    shutil.copyfile(facenet_weights, source / FACENET_VGGFACE2_FILE)

    call_command("fetch_models", "--from", str(source), "--only", FACENET_VGGFACE2_FILE)
    call_command("fetch_models", "--from", str(source), "--only", FACENET_VGGFACE2_FILE)

    assert (models_dir / FACENET_VGGFACE2_FILE).read_bytes() == facenet_weights.read_bytes()
    out = capsys.readouterr().out
    assert "installed" in out and "sha256" in out and "is already in" in out


def test_it_refuses_a_corrupt_file_and_keeps_nothing_of_it(models_dir, tmp_path, capsys):
    source = tmp_path / "usb"
    source.mkdir()
    (source / CLIP_VIT_B32_FILE).write_bytes(b"PK\x03\x04 half a download")

    with pytest.raises(CommandError, match=f"Not installed: {CLIP_VIT_B32_FILE}"):
        call_command("fetch_models", "--from", str(source), "--only", CLIP_VIT_B32_FILE)

    assert "could not be loaded" in capsys.readouterr().err
    assert list(models_dir.iterdir()) == []  # no partial file, no temporary left behind


def test_it_names_the_file_missing_from_the_folder(models_dir, tmp_path, capsys):
    with pytest.raises(CommandError, match="Not installed"):
        call_command("fetch_models", "--from", str(tmp_path / "empty"))

    err = capsys.readouterr().err
    assert FACENET_VGGFACE2_FILE in err and CLIP_VIT_B32_FILE in err and "no file" in err


@pytest.mark.django_db
@pytest.mark.parametrize("command", ["rebuild_indexes", "check_indexes"])
def test_it_says_which_event_does_not_exist(command):
    with pytest.raises(CommandError, match="No event with slug or id “no-such-race”"):
        call_command(command, "no-such-race")
