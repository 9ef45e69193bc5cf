"""Write stores in the original Pylightnix's ``store-v0`` format, from its description.

Written from the format as ``/work/shared/LEGACY-API.md`` section 1 describes it (not
from the original's code): configs hashed as ``json.dumps(config, indent=4)`` in
insertion order, realizations hashed over the bytes of their files (not names) in
``os.walk`` order with sorted names, ``context.json`` written first and hashed,
``_``-prefixed metadata files not hashed, folders made read-only.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

TIME_02 = "__buildtime__.txt"
TIME_03 = "__buildstart__.txt"


def old_dhash(config: dict[str, Any]) -> str:
    """The original's derivation hash: sha256 of ``json.dumps(config, indent=4)``."""
    return hashlib.sha256(json.dumps(config, indent=4).encode("utf-8")).hexdigest()


def old_rhash(folder: str) -> str:
    """The original's realization hash: the bytes of every file not starting with ``_``."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(folder, topdown=True):
        dirs.sort()
        for f in sorted(files):
            if not f.startswith("_"):
                with open(os.path.join(root, f), "rb") as fh:
                    h.update(fh.read())
    return h.hexdigest()


class OldStore:
    """An original ``<root>/store-v0`` being written (0.2.x or 0.3.x flavour)."""

    def __init__(self, root: str, version: str) -> None:
        self.root = root
        self.store = os.path.join(root, "store-v0")
        self.version = version
        os.makedirs(self.store, exist_ok=True)
        os.makedirs(os.path.join(root, "tmp"), exist_ok=True)

    def mkdrv(self, config: dict[str, Any]) -> str:
        """Write a derivation; return its old DRef."""
        name = config.get("name", "unnamed")
        dh = old_dhash(config)[:32]
        d = os.path.join(self.store, f"{dh}-{name}")
        os.makedirs(d, exist_ok=True)
        cfg = os.path.join(d, "config.json")
        if not os.path.exists(cfg):
            with open(cfg, "w") as f:
                f.write(json.dumps(config, indent=4))
            os.chmod(cfg, 0o444)
        return f"dref:{dh}-{name}"

    def mkrealization(
        self,
        dref: str,
        context: dict[str, Any],
        files: dict[str, str],
        *,
        start: str = "200509-00:20:19:089121+0000",
        stop: str = "200509-00:21:19:000000+0000",
        extra: dict[str, str] | None = None,
    ) -> str:
        """Write a realization; return its old RRef."""
        dh, name = dref[len("dref:") :].split("-", 1)
        tmp = os.path.join(
            self.root, "tmp", f"build{len(os.listdir(os.path.join(self.root, 'tmp')))}"
        )
        os.makedirs(tmp)
        for rel, text in {**files, **(extra or {})}.items():
            p = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(text)
        with open(os.path.join(tmp, "context.json"), "w") as f:
            f.write(json.dumps(context, indent=4))
        if self.version == "0.2":
            with open(os.path.join(tmp, "tag.txt"), "w") as f:
                f.write("out")
            with open(os.path.join(tmp, "group.txt"), "w") as f:
                f.write(hashlib.sha256(tmp.encode()).hexdigest()[:32])
        rh = old_rhash(tmp)[:32]
        with open(os.path.join(tmp, TIME_02 if self.version == "0.2" else TIME_03), "w") as f:
            f.write(start)
        with open(os.path.join(tmp, "__buildstop__.txt"), "w") as f:
            f.write(stop)
        dst = os.path.join(self.store, f"{dh}-{name}", rh)
        os.replace(tmp, dst)
        for root, dirs, _ in os.walk(dst, topdown=False):
            for x in dirs:
                os.chmod(os.path.join(root, x), 0o500)
        os.chmod(dst, 0o500)
        return f"rref:{rh}-{dh}-{name}"


def snapshot(top: str) -> dict[str, tuple[int, bytes | str | None]]:
    """Every path under ``top`` with its mode and contents (link target for links)."""
    out: dict[str, tuple[int, bytes | str | None]] = {}
    for root, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            if os.path.islink(p):
                out[p] = (st.st_mode, os.readlink(p))
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    out[p] = (st.st_mode, f.read())
            else:
                out[p] = (st.st_mode, None)
    return out
