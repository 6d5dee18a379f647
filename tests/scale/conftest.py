"""A real S3 server for the storage tests: moto's standalone server, started once per
session as its own process on a free loopback port (nothing leaves the machine), with
the project's STORAGES pointed at one of its buckets by the settings' own builder."""

import re
import subprocess
import sys
import threading
import time
import uuid

import boto3
import pytest

from photos import pipeline
from racephoto.storage import s3_storages
from tests.scale.stack import ACCESS_KEY, REGION, SECRET_KEY


@pytest.fixture(scope="session")
def s3_endpoint():
    """``http://127.0.0.1:PORT`` of a moto S3 server for this session."""
    # Port 0: the server binds a free port itself and prints it, so no race for a port.
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    endpoint, seen = None, []
    deadline = time.monotonic() + 60
    while endpoint is None and time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if match := re.search(r"Running on (http://127\.0\.0\.1:\d+)", line):
            endpoint = match.group(1)
    if endpoint is None:
        process.kill()
        pytest.fail("moto's S3 server did not start:\n" + "".join(seen))
    # Keep reading its request log, or the server blocks once the pipe is full.
    threading.Thread(target=process.stderr.read, daemon=True).start()
    yield endpoint
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def s3_client(s3_endpoint):
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION,
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)


@pytest.fixture
def bucket(s3_client):
    """A new empty bucket for this test."""
    name = f"race-photos-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_storage(settings, monkeypatch, s3_endpoint, bucket):
    """The site's storages on this test's bucket, exactly as STORAGE_BACKEND=s3 builds them."""
    settings.STORAGE_BACKEND = "s3"
    settings.STORAGES = s3_storages(
        bucket=bucket, endpoint_url=s3_endpoint, region=REGION, access_key=ACCESS_KEY,
        secret_key=SECRET_KEY, signed_url_max_age=600,
        public_cache_control=settings.MEDIA_CACHE_CONTROL)
    # As in the root conftest: private file fields resolved their storage when models loaded.
    from django.core.files.storage import storages

    from photos.models import Photo

    for field in ("original", "web"):
        monkeypatch.setattr(Photo._meta.get_field(field), "storage", storages["private"])
    return storages


@pytest.fixture
def derivatives_only():
    """The pipeline without its model steps: these tests are about where files go."""
    saved = list(pipeline.STEPS)
    pipeline.STEPS[:] = [pipeline.get_step("derivatives")]
    yield
    pipeline.STEPS[:] = saved
