"""The design-folder contract: what a generated folder holds, how it is sealed and checked.

A design folder is written whole by `hwgen.rtl.emit.generate` and never edited after: its
``manifest.json`` records the sha256 of every other file (``files``) and of itself
(``manifest_sha256``, over the manifest without that key). Every consumer (simulation,
synthesis, board builds, the host) loads the folder through `load_manifest`, which refuses a
folder whose files do not match, so an edited or truncated file can never end in a pass.

Build products (simulator builds, synthesis and board outputs) live beside the folder, in
``<folder>.build/``, never inside it: regenerating a design cannot lose a running build's
output, and a build cannot add files to the sealed folder.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

MANIFEST = "manifest.json"
DIGEST_KEY = "manifest_sha256"
FILES_KEY = "files"
BUILD_SUFFIX = ".build"
#: Verilog attribute of a memory written at run time (the MAC array's weights with
#: weights="load"): its Verilog has no initial contents, and the UP5K's synthesis puts it
#: in SPRAM (`hwgen.synth.targets`).
LOADED_ATTR = "hwgen_loaded"
#: Verilog attribute of a wide, shallow memory ("ram" or "rom": `hwgen.rtl.rom.shallow_attrs`):
#: where block RAM runs out, the ECP5's synthesis puts these in LUT RAM or logic.
SHALLOW_ATTR = "hwgen_shallow"
#: Verilog attribute of a register that is one of several identical copies (each drives
#: a part of a wide fan-out): synthesis keeps the registers it names apart
#: (`hwgen.synth.flow.KEEP_COPIES`) instead of merging them into one.
COPY_ATTR = "hwgen_copy"
# (key path, expected type) every consumer relies on.
_REQUIRED = [(("name",), str), (("interface", "top"), str), (("interface", "verilog"), list),
             (("interface", "in_width"), int), (("interface", "out_width"), int),
             (("sizes", "input_size"), int), (("sizes", "output_size"), int),
             (("head_mode",), str)]


class DesignFolderError(ValueError):
    """A design folder is missing, incomplete, edited, or breaks the manifest contract."""


def file_sha256(path) -> str:
    """Return the sha256 hex digest of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_text(manifest: dict) -> str:
    """Return the one text form of `manifest` (sorted keys, two-space indent, final newline)."""
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def _manifest_digest(manifest: dict) -> str:
    body = {k: v for k, v in manifest.items() if k != DIGEST_KEY}
    return hashlib.sha256(manifest_text(body).encode()).hexdigest()


def seal(folder, manifest: dict) -> dict:
    """Record the digests of every file in `folder` into `manifest` and write it there.

    Parameters
    ----------
    folder : path
        The folder, holding every file of the design except the manifest.
    manifest : dict
        The manifest; its ``files`` and ``manifest_sha256`` are (re)computed.

    Returns
    -------
    dict
        The sealed manifest, as written to ``<folder>/manifest.json``.
    """
    folder = Path(folder)
    names = sorted(p.name for p in folder.iterdir() if p.name != MANIFEST)
    for name in names:
        if not (folder / name).is_file():
            raise DesignFolderError(f"{folder / name}: a design folder holds only files")
    sealed = {k: v for k, v in manifest.items() if k not in (FILES_KEY, DIGEST_KEY)}
    sealed[FILES_KEY] = {name: file_sha256(folder / name) for name in names}
    sealed[DIGEST_KEY] = _manifest_digest(sealed)
    (folder / MANIFEST).write_text(manifest_text(sealed))
    return sealed


def _check_keys(path: Path, manifest: dict) -> None:
    for keys, kind in _REQUIRED:
        node = manifest
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                raise DesignFolderError(f"{path} has no {'.'.join(keys)}")
            node = node[key]
        if not isinstance(node, kind) or isinstance(node, bool):
            raise DesignFolderError(f"{path}: {'.'.join(keys)} must be a {kind.__name__}, "
                                    f"not {node!r}")
    for key in ("in_width", "out_width"):
        if manifest["interface"][key] < 1:
            raise DesignFolderError(f"{path}: interface.{key} must be a positive integer")


def load_manifest(folder) -> dict:
    """Load the manifest of the design folder `folder` after checking every file against it.

    Raises
    ------
    DesignFolderError
        No folder or manifest; a manifest that is not valid JSON, was edited, or lacks a
        key; a file missing, added, or whose content differs from what was generated.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise DesignFolderError(f"{folder} is not a design folder: no such folder")
    if not path.is_file():
        raise DesignFolderError(f"{folder} is not a design folder: no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DesignFolderError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise DesignFolderError(f"{path} is not a JSON object")
    files = manifest.get(FILES_KEY)
    if not isinstance(files, dict) or DIGEST_KEY not in manifest:
        raise DesignFolderError(f"{path} records no file digests: the folder was not "
                                "generated by this hwgen version; generate it again")
    if manifest[DIGEST_KEY] != _manifest_digest(manifest):
        raise DesignFolderError(f"{path} was edited after generation (its digest does not "
                                "match); generate the design again")
    present = {p.name for p in folder.iterdir() if p.name != MANIFEST}
    extra = sorted(present - set(files))
    if extra:
        raise DesignFolderError(f"{folder}: {', '.join(extra)} not part of the generated "
                                "design; remove it (build products go to "
                                f"{build_root(folder).name}/)")
    for name, digest in sorted(files.items()):
        f = folder / name
        if not f.is_file():
            raise DesignFolderError(f"{folder}: {name} named by the manifest is missing")
        if file_sha256(f) != digest:
            raise DesignFolderError(f"{f} differs from the generated file (edited or "
                                    "truncated); generate the design again")
    _check_keys(path, manifest)
    for name in manifest["interface"]["verilog"]:
        if name not in files:
            raise DesignFolderError(f"{path}: Verilog file {name!r} is not a file of the design")
    return manifest


def step_cycles(cycles: dict):
    """Cycles from one step to the next as the design runs them, from a manifest's
    ``cycles``: ``model_per_step`` (the head's cycles included where it runs on every step),
    else the contract's ``per_step``; None if it gives neither."""
    return cycles.get("model_per_step", cycles.get("per_step"))


def build_root(folder) -> Path:
    """Return ``<folder>.build``, beside the design folder: where its build products go."""
    folder = Path(folder)
    return folder.parent / (folder.name + BUILD_SUFFIX)


def build_dir(folder, kind: str, name: str) -> Path:
    """Return the default build folder of one tool run, e.g. ``(d, "synth", "ecp5-85f")``."""
    return build_root(folder) / kind / name
