"""Transparent huge pages for the processes that search an event's index.

A million faces' inverted file is 540 MiB read at random places by every query: with 4 KiB
pages most of those reads also miss the TLB. glibc's ``malloc.hugetlb=1`` tunable has malloc
ask the kernel for transparent huge pages (``madvise``, the mode Debian's kernels default to)
on what it maps, faiss's lists included: the query at 1,000,000 faces went from 0.93-1.15 to
0.81-0.91 ms (``bench/search.py ann``, which runs itself this way). glibc reads tunables only
at start-up, so they are set in the environment of the web server's processes (``manage.py
run``; the image's command starts gunicorn through ``python -m racephoto.hugepages``), not
from Python. The Celery worker is left as it is: it does not search these files, and its
memory is counted closely (docs/scaling.md).

Both add the tunable to the operator's environment rather than replacing it: their other
tunables are kept, and their own ``glibc.malloc.hugetlb`` (``=0`` to turn huge pages off)
wins over this default.
"""

import os
import sys
from collections.abc import Mapping

VARIABLE = "GLIBC_TUNABLES"
TUNABLE = "glibc.malloc.hugetlb=1"


def with_huge_pages(environment: Mapping[str, str]) -> dict[str, str]:
    """``environment`` with the tunable added to any the operator already set."""
    tunables = [item for item in environment.get(VARIABLE, "").split(":") if item]
    if not any(item.startswith("glibc.malloc.hugetlb=") for item in tunables):
        tunables.append(TUNABLE)  # an operator's own hugetlb choice wins
    return {**environment, VARIABLE: ":".join(tunables)}


def main(command: list[str]) -> None:
    """Replace this process by ``command``, with the tunable (``python -m racephoto.hugepages
    gunicorn ...``: the image's web server)."""
    if not command:
        raise SystemExit("usage: python -m racephoto.hugepages COMMAND [ARGUMENT...]")
    os.execvpe(command[0], command, with_huge_pages(os.environ))


if __name__ == "__main__":
    main(sys.argv[1:])
