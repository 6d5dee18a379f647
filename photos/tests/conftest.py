import pytest

from photos import pipeline


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
