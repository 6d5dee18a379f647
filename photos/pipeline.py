"""The per-photo processing state machine: ordered, recorded, resumable steps.

A photo goes ``uploaded`` → one state per step → ``ready`` (or ``failed``).
Each step is recorded in :class:`~photos.models.PhotoStep`, so running a photo
again — a redelivered task after a worker crash, ``manage.py process_event``
after an outage — skips what is done and carries on with the rest.

Only ``derivatives`` is built in. Other apps add steps from their
``AppConfig.ready()``, without touching this module::

    from photos.models import Photo
    from photos.pipeline import register_step

    register_step("ocr", Photo.State.OCR, read_bibs)

Steps run in the order of their states in ``Photo.State`` (derivatives, faces,
ocr, clip), whatever order the apps load in. A step's ``run(photo)``
receives the locked photo, saves what it makes, and raises
:class:`PermanentStepError` for input it can never process; ``OSError`` and
database connection errors are treated as transient and retried by the task.
A step whose model is missing or broken raises
:class:`~mlpipeline.inference.base.ModelUnavailable`: it is recorded ``unavailable``, the
photo goes on without it (bib search works without CLIP), and the step runs
again once its ``available()`` check says the model is back (see
:func:`photos_needing_work`).
"""

import enum
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from mlpipeline.inference.base import ModelUnavailable
from photos import derivatives
from photos.models import Photo, PhotoStep

logger = logging.getLogger(__name__)

# Storage hiccups and a lost database connection pass; the task retries them.
TRANSIENT_ERRORS = (OSError, OperationalError, InterfaceError)

# Attempts are recorded before a step runs, so a photo that kills its worker
# (out of memory on a huge file, say) is seen again on redelivery. After this
# many it is marked failed instead of taking workers down forever.
MAX_ATTEMPTS = 5

# States that a step can lead to; the others begin or end the pipeline.
_STEP_STATES = [state for state in Photo.State.values
                if state not in (Photo.State.UPLOADED, Photo.State.READY, Photo.State.FAILED)]


class PermanentStepError(Exception):
    """The photo can never go through this step as it is; ``reason`` is shown to staff."""

    def __init__(self, reason):
        super().__init__(str(reason))
        self.reason = str(reason)


class StepOutcome(enum.StrEnum):
    DONE = "done"
    SKIPPED = "skipped"  # already done: nothing was run
    FAILED = "failed"
    MISSING = "missing"  # the photo was deleted meanwhile
    UNAVAILABLE = "unavailable"  # the step's model cannot run here; the photo went on


@dataclass(frozen=True)
class Step:
    name: str
    state: str  # the Photo.State a photo is in once this step is done
    run: Callable[[Photo], None]
    # Whether the step's model can run now; None for steps that need no model.
    available: Callable[[], bool] | None = None


STEPS: list[Step] = []


def register_step(name: str, state: str, run: Callable[[Photo], None],
                  available: Callable[[], bool] | None = None) -> Step:
    """Add (or replace) a step; it runs in the order of ``state`` within ``Photo.State``."""
    if state not in _STEP_STATES:
        raise ValueError(f"A step must lead to one of {_STEP_STATES}, not {state!r}.")
    if len(name) > PhotoStep._meta.get_field("step").max_length:
        raise ValueError(f"Step name {name!r} is too long for PhotoStep.step.")
    step = Step(name=name, state=str(state), run=run, available=available)
    # Replacing by name keeps registration idempotent (ready() may run twice in tests).
    STEPS[:] = sorted([existing for existing in STEPS if existing.name != name] + [step],
                      key=lambda item: _STEP_STATES.index(item.state))
    return step


def get_step(name: str) -> Step:
    for step in STEPS:
        if step.name == name:
            return step
    raise ValueError(f"No processing step named {name!r}; known: {[s.name for s in STEPS]}.")


def _state_after(done: set[str]) -> str:
    """The state of a photo whose steps in ``done`` are finished: the last of an unbroken run."""
    state = Photo.State.UPLOADED
    for step in STEPS:
        if step.name not in done:
            return state
        state = step.state
    return Photo.State.READY


def _done_steps(photo: Photo) -> set[str]:
    """Steps the photo is past: done, or skipped for want of their model."""
    return set(PhotoStep.objects.filter(photo=photo, status__in=PASSED)
               .values_list("step", flat=True))


PASSED = (PhotoStep.Status.DONE, PhotoStep.Status.UNAVAILABLE)


def _fail(photo_id: int, step_name: str, reason: str, error: str) -> None:
    with transaction.atomic():
        photo = Photo.objects.select_for_update().filter(pk=photo_id).first()
        if photo is None:
            return
        PhotoStep.objects.update_or_create(
            photo=photo, step=step_name,
            defaults={"status": PhotoStep.Status.FAILED, "error": error,
                      "finished_at": timezone.now()},
        )
        photo.state = Photo.State.FAILED
        photo.failure_reason = str(reason)
        photo.save(update_fields=["state", "failure_reason", "updated_at"])
    logger.warning("photo %s failed at %s: %s", photo_id, step_name, reason)


def _mark_unavailable(photo_id: int, step_name: str, reason: str) -> None:
    with transaction.atomic():
        photo = Photo.objects.select_for_update().filter(pk=photo_id).first()
        if photo is None:
            return
        # Attempts start again from zero: a missing model says nothing about the photo.
        PhotoStep.objects.filter(photo=photo, step=step_name).update(
            status=PhotoStep.Status.UNAVAILABLE, error=reason, attempts=0,
            finished_at=timezone.now())
        if photo.state != Photo.State.FAILED:
            photo.state = _state_after(_done_steps(photo))
            photo.save(update_fields=["state", "updated_at"])
    logger.warning("photo %s: step %s skipped, model unavailable: %s", photo_id, step_name, reason)


def _claim(photo_id: int, step: Step) -> StepOutcome | None:
    """Record the start of an attempt; an outcome when there is nothing to run."""
    with transaction.atomic():
        photo = Photo.objects.select_for_update().filter(pk=photo_id).first()
        if photo is None:
            return StepOutcome.MISSING
        record, _created = PhotoStep.objects.select_for_update().get_or_create(
            photo=photo, step=step.name, defaults={"status": PhotoStep.Status.RUNNING})
        if record.status == PhotoStep.Status.DONE:
            return StepOutcome.SKIPPED
        if record.status == PhotoStep.Status.FAILED or photo.state == Photo.State.FAILED:
            # A failed photo waits for reset_failed(): running it again would fail the same way.
            return StepOutcome.FAILED
        if record.attempts >= MAX_ATTEMPTS:
            reason = _("Processing stopped %(attempts)d times during step “%(step)s” without "
                       "finishing; the file may be too large for the workers.") % {
                "attempts": record.attempts, "step": step.name}
            _fail(photo_id, step.name, reason, "attempt limit reached")
            return StepOutcome.FAILED
        record.status = PhotoStep.Status.RUNNING
        record.attempts += 1
        record.started_at = timezone.now()
        record.finished_at = None
        record.error = ""
        record.save()
    return None


def run_step(photo_id: int, step_name: str) -> StepOutcome:
    """Run one step of one photo unless it is already done.

    Two transactions on purpose. The first records the attempt and commits, so
    the attempt counts even if this process is killed during the work. The
    second holds the photo's row lock while the step works and records it done
    in the same commit as the step's own writes: a duplicate delivery of the
    same photo waits, then finds the step done and skips it.
    """
    step = get_step(step_name)
    outcome = _claim(photo_id, step)
    if outcome is not None:
        return outcome
    started = time.monotonic()
    try:
        with transaction.atomic():
            photo = (Photo.objects.select_for_update(of=("self",)).select_related("event")
                     .filter(pk=photo_id).first())
            if photo is None:
                return StepOutcome.MISSING
            record = PhotoStep.objects.select_for_update().get(photo=photo, step=step.name)
            if record.status == PhotoStep.Status.DONE:
                return StepOutcome.SKIPPED
            step.run(photo)
            record.status = PhotoStep.Status.DONE
            record.finished_at = timezone.now()
            record.save(update_fields=["status", "finished_at"])
            photo.state = _state_after(_done_steps(photo))
            photo.failure_reason = ""
            photo.save(update_fields=["state", "failure_reason", "updated_at"])
    except TRANSIENT_ERRORS:
        # Left RUNNING: the task retries, and the next attempt starts from scratch.
        raise
    except ModelUnavailable as exc:
        _mark_unavailable(photo_id, step.name, str(exc))
        return StepOutcome.UNAVAILABLE
    except PermanentStepError as exc:
        _fail(photo_id, step.name, exc.reason, f"{type(exc.__cause__ or exc).__name__}: {exc}")
        return StepOutcome.FAILED
    except Exception as exc:
        # A bug or an input nobody foresaw. Retrying would do the same thing, so
        # the photo is marked failed, visibly, and can be retried after a fix.
        logger.exception("photo %s: step %s crashed", photo_id, step.name)
        reason = _("Unexpected error during step “%(step)s”: %(error)s") % {
            "step": step.name, "error": exc}
        _fail(photo_id, step.name, reason, traceback.format_exc())
        return StepOutcome.FAILED
    logger.info("photo %s: step %s done in %.3f s", photo_id, step.name,
                time.monotonic() - started)
    return StepOutcome.DONE


def process_photo(photo_id: int) -> str | None:
    """Run every step the photo has not done yet, in order; its state afterwards.

    This is also how work resumes after a crash: done steps are skipped, an
    interrupted one runs again. Returns None if the photo no longer exists.
    """
    for step in list(STEPS):
        outcome = run_step(photo_id, step.name)
        if outcome == StepOutcome.MISSING:
            return None
        if outcome == StepOutcome.FAILED:
            return Photo.State.FAILED
    with transaction.atomic():
        photo = Photo.objects.select_for_update().filter(pk=photo_id).first()
        if photo is None:
            return None
        # Every step was already done (a repeated run): make sure the state says so.
        if photo.state != Photo.State.FAILED:
            state = _state_after(_done_steps(photo))
            if photo.state != state:
                photo.state = state
                photo.save(update_fields=["state", "updated_at"])
        return photo.state


def photos_needing_work(photos) -> list[int]:
    """Ids of ``photos`` with a step still to run: not finished, or ready but missing a step.

    A ready photo misses a step when the step was added after it was processed
    (a new model) or was skipped while its model was unavailable and the model
    is now back. Such photos are put back in the state of their last passed step,
    so progress counts tell the truth while they are processed again.
    """
    ids = set(photos.exclude(state__in=(Photo.State.READY, Photo.State.FAILED))
              .values_list("pk", flat=True))
    runnable = [step.name for step in STEPS if step.available is None or step.available()]
    ready = photos.filter(state=Photo.State.READY)
    behind = (ready.exclude(pk__in=PhotoStep.objects.filter(
        step__in=runnable, status=PhotoStep.Status.DONE).values("photo")
        .annotate(done=Count("pk")).filter(done=len(runnable)).values("photo"))
        .values_list("pk", flat=True))
    for pk in behind:
        with transaction.atomic():
            photo = Photo.objects.select_for_update().filter(pk=pk, state=Photo.State.READY).first()
            if photo is None:
                continue
            passed = set(PhotoStep.objects.filter(photo=photo, status=PhotoStep.Status.DONE)
                         .values_list("step", flat=True))
            photo.state = _state_after(passed)
            photo.save(update_fields=["state", "updated_at"])
        ids.add(pk)
    return sorted(ids)


def redo(photos, step_name: str) -> int:
    """Forget ``step_name`` and every step after it on the ready ``photos``; how many.

    For a model upgrade: a new face model version needs every face found and
    embedded again, and the bib step after it links the bibs to those new faces.
    ``photos_needing_work`` then puts the photos back and they are processed again.
    Photos still in progress are left alone (their steps are being written), and
    so are failed ones (``--only-failed`` is their way back).
    """
    names = [step.name for step in STEPS]
    if step_name not in names:
        raise ValueError(f"No processing step named {step_name!r}; known: {names}.")
    later = names[names.index(step_name):]
    with transaction.atomic():
        ready = list(photos.filter(state=Photo.State.READY).select_for_update()
                     .values_list("pk", flat=True))
        PhotoStep.objects.filter(photo__in=ready, step__in=later).delete()
    return len(ready)


def give_up(photo_id: int, error: BaseException | str) -> None:
    """Mark the photo failed after its task used up its retries on a transient error."""
    with transaction.atomic():
        photo = Photo.objects.select_for_update().filter(pk=photo_id).first()
        if photo is None or photo.state in (Photo.State.READY, Photo.State.FAILED):
            return
        done = _done_steps(photo)
        pending = next((step.name for step in STEPS if step.name not in done), None)
    if pending is None:
        return
    reason = _("Processing kept failing on a temporary error (%(error)s). Retry it once "
               "storage and database are back.") % {"error": error}
    _fail(photo_id, pending, reason, repr(error))


def reset_failed(photo_id: int) -> bool:
    """Let a failed photo be processed again; False if it was not failed.

    Failed step records are deleted (attempts start again from zero); the
    photo goes back to the state of its last done step.
    """
    with transaction.atomic():
        photo = Photo.objects.select_for_update().filter(pk=photo_id).first()
        if photo is None or photo.state != Photo.State.FAILED:
            return False
        PhotoStep.objects.filter(photo=photo, status=PhotoStep.Status.FAILED).delete()
        photo.state = _state_after(_done_steps(photo))
        photo.failure_reason = ""
        photo.save(update_fields=["state", "failure_reason", "updated_at"])
    return True


# --- Built-in steps ---------------------------------------------------------------------


def _make_derivatives(photo: Photo) -> None:
    try:
        # Looked up at call time so tests (and a profiler) can wrap it.
        derivatives.make_derivatives(photo)
    except derivatives.InvalidImage as exc:
        raise PermanentStepError(exc.reason) from exc


register_step("derivatives", Photo.State.DERIVATIVES, _make_derivatives)
