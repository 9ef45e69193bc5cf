"""A push in its own process, for the concurrency and crash tests.

``python -m tests.remote.pusher ARGS_JSON`` with ``{"root", "url", "options",
"refs", "ready", "go", "stop_at", "stopped"}``: realize nothing, just push
``refs`` of the store at ``root`` to the remote. With ``ready``/``go`` it
creates the file ``ready`` and waits for the file ``go`` first (so that two
pushers start together). With ``stop_at`` = ``["claims", N]`` or
``["archives", N]`` it creates the file ``stopped`` right after its N-th
claim or archive reached the remote and then waits to be killed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

from pylightnix import mkSS
from pylightnix.remote import Remote, open_remote, push

_lock = threading.Lock()


def _stop_after(kind: str, n: int, stopped: str) -> None:
    """Make the N-th claim write (or archive upload) of this process its last act."""
    count = [0]
    original = Remote.write if kind == "claims" else Remote.upload

    def wrapped(self: Remote, rel: str | Any, *args: Any, **kwargs: Any) -> None:
        original(self, rel, *args, **kwargs)  # type: ignore[arg-type]
        name = str(args[0] if kind == "archives" else rel)
        if kind == "claims" and not (name.startswith("drv/") and name.endswith(".json")):
            return
        if kind == "claims" and name.endswith("/config.json"):
            return
        with _lock:
            count[0] += 1
            if count[0] == n:
                with open(stopped, "w"):
                    pass
                time.sleep(3600)  # the test kills this process now

    setattr(Remote, "write" if kind == "claims" else "upload", wrapped)


def main(args: dict[str, Any]) -> None:
    if args.get("stop_at"):
        kind, n = args["stop_at"]
        _stop_after(kind, n, args["stopped"])
    if args.get("ready"):
        with open(args["ready"], "w"):
            pass
        deadline = time.monotonic() + 60
        while not os.path.exists(args["go"]):
            if time.monotonic() > deadline:
                sys.exit("no go file within 60 s")
            time.sleep(0.005)
    res = push(args["refs"], open_remote(args["url"], **args["options"]), S=mkSS(args["root"]))
    print(json.dumps(res.as_json()))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
