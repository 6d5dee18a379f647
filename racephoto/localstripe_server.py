"""localstripe (a fake Stripe for development and tests) on loopback only.

``python -m racephoto.localstripe_server --port N [--state FILE]``. localstripe's own
``start()`` listens on every interface and keeps its data in /tmp/localstripe.pickle,
shared by every checkout on the machine; this runs its app on 127.0.0.1 with its data
in ``--state`` (or in memory only, for tests).
"""

import argparse
import pickle
from pathlib import Path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", default="", help="file keeping the fake Stripe's data")
    args = parser.parse_args()

    from aiohttp import web
    from localstripe import resources
    from localstripe.server import app

    store = resources.store
    state = Path(args.state) if args.state else None
    if state is not None and state.exists():
        with open(state, "rb") as handle:
            store.update(pickle.load(handle))

    def dump_to_disk():
        if state is not None:
            with open(state, "wb") as handle:
                pickle.dump(dict(store), handle, protocol=pickle.HIGHEST_PROTOCOL)

    store.dump_to_disk = dump_to_disk
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
