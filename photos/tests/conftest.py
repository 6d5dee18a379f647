import pytest
from django.core.files.storage import storages

from photos import pipeline


@pytest.fixture
def private_storage():
    """This test's private storage (the root conftest points Photo.original at it)."""
    return storages["private"]


@pytest.fixture(autouse=True)
def steps():
    """The step registry with the built-in step only, restored after the test.

    The photos tests are about ingestion and the pipeline's own mechanics; the
    bib, face and CLIP steps have their own tests in mlpipeline, with the models.
    """
    saved = list(pipeline.STEPS)
    pipeline.STEPS[:] = [pipeline.get_step("derivatives")]
    yield pipeline.STEPS
    pipeline.STEPS[:] = saved
