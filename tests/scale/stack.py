"""What the scale tests' processes share: the S3 server's credentials (moto accepts any;
both sides must agree), the test database's URL for a subprocess, a free loopback port."""

import socket
from urllib.parse import quote

from django.db import connection

ACCESS_KEY, SECRET_KEY, REGION = "testing", "testing", "us-east-1"


def database_url() -> str:
    """DATABASE_URL of this test's database, for a server or worker started by the test."""
    db = connection.settings_dict
    credentials = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    if db["HOST"].startswith("/"):  # the embedded server: a Unix socket directory
        return f"postgres://{credentials}@/{db['NAME']}?host={quote(db['HOST'], safe='')}"
    return f"postgres://{credentials}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
