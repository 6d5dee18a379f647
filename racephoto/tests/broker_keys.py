"""What a test that takes messages on the real broker leaves there, taken away: the
messages it holds (kombu's unacked hash and its index) and every key under its name."""

from racephoto.redis import get_redis


def forget(held_messages, name: str) -> None:
    redis = get_redis()
    for message in held_messages:
        redis.hdel("unacked", message.delivery_tag)
        redis.zrem("unacked_index", message.delivery_tag)
    for key in redis.scan_iter(match=f"{name}*"):
        redis.delete(key)
