"""Commerce's background tasks (ids and plain values in, never objects)."""

from celery import shared_task


# A mail server down (smtplib's errors are OSErrors) is retried, later and later.
@shared_task(ignore_result=True, autoretry_for=(OSError,), retry_backoff=60, max_retries=5)
def send_links_again(email: str, event_id: int) -> None:
    """"Send my links again": mail the open orders of ``email`` at the event, if any."""
    from commerce.emails import send_links_again as send

    send(email, event_id)
