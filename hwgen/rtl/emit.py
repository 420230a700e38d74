"""Write a design folder: Verilog, weight init data, manifest.json, test vectors."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
import shutil
import tempfile
import warnings

import numpy as np
from amaranth.back import verilog

from .. import __version__, registered_product
from ..design_folder import LOADED_ATTR, MANIFEST, DesignFolderError, seal
from ..interface import model_input_payload, output_payload
from ..ir import data_layout, swap_layout
from ..qmodel import QModel
from ..ref import DeltaStats, run_int
from .cycles import cycle_model, embedding_per_step, ternary_cycle_model
from .plan import WEIGHT_BEAT, pack_lanes, word_beats
from .ternary_plan import entry_width, entry_words
from .top import Accelerator

MANIFEST_VERSION = 2  # 2: sealed (file digests), payload fields as [offset, width]
WEIGHT_IMAGE = "weights.bin"  # weights="load": the weight stream's bytes, in order


def _hex_words(words: np.ndarray, width: int) -> str:
    """One line per memory word, lane 0 in the low bits, as hex."""
    digits = (width * words.shape[1] + 3) // 4
    return "".join(f"{pack_lanes(row, width):0{digits}x}\n" for row in words)


# A memory's initial contents in the Verilog: Amaranth writes them for every memory (zeros
# when none are given), and Yosys maps no memory with contents to the UP5K's SPRAM.
_LOADED_INIT = re.compile(r"(\(\* " + LOADED_ATTR + r" = [^\n]*\*\)\n(?:  \(\*[^\n]*\*\)\n)*"
                          r"  reg [^\n]*;\n)  initial begin\n(?:    [^\n]*\n)*?  end\n")


def _without_loaded_init(text: str, memories: int) -> str:
    """The Verilog without the initial contents of the `memories` memories marked
    `LOADED_ATTR` (written at run time: no contents to hold)."""
    text, found = _LOADED_INIT.subn(r"\1", text)
    if found != memories:
        raise RuntimeError(f"found the initial contents of {found} run-time loaded memories "
                           f"in the Verilog, not {memories}: has Amaranth's output changed?")
    return text


def manifest_for(qm: QModel, acc: Accelerator, name: str, top: str) -> dict:
    plan = acc.plan
    layers = []
    for ql, lp in zip(qm.layers, plan.layers):
        layers.append({
            "cell": ql.cell, "input_size": ql.input_size, "hidden_size": ql.hidden_size,
            "formats": ql.formats(), "acc_frac": ql.acc_frac, "acc_width": ql.acc_width,
            "shift_x": ql.shift_x, "shift_h": ql.shift_h,
            "pwl": {k: {"segments": p.segments, "slope_form": p.slope_form,
                        "max_error": p.max_error, "mean_error": p.mean_error}
                    for k, p in (("sigmoid", ql.sigmoid), ("tanh", ql.tanh),
                                 ("tanh_c", ql.tanh_c)) if p is not None},
            "groups_per_gate": lp.groups_per_gate, "w_base": lp.w_base,
        })
    mem = qm.memory_bits()
    in_payload = model_input_payload(qm)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "hwgen_version": __version__,
        "name": name,
        "interface": {
            "top": top, "verilog": [f"{top}.v"], "clock": "clk", "reset": "rst",
            "in_width": in_payload.width(in_payload.value_field),
            "out_width": qm.head.out_fmt.width, "in_payload": in_payload.to_json(),
            "out_payload": output_payload(qm.head.out_fmt.width).to_json(),
        },
        "sizes": {"input_size": qm.input_size, "output_size": qm.output_size,
                  "layers": len(qm.layers),
                  "hidden_sizes": [ql.hidden_size for ql in qm.layers]},
        "cell": qm.cell,
        "head_mode": qm.head_mode,
        "lanes": plan.lanes,
        "units": plan.units,
        "overlap": plan.overlap,
        "formats": {"input": qm.input_fmt.to_json(), "layers": layers,
                    "head": qm.head.formats(), "head_acc_width": qm.head.acc_width},
        "memories": {
            "weights": {"depth": len(plan.weight_words), "lane_width": plan.weight_width,
                        "word_width": plan.weight_width * plan.lanes, "file": "weights.hex"},
            "biases": {"depth": len(plan.bias_words), "lane_width": plan.acc_width,
                       "word_width": plan.acc_width * plan.lanes, "file": "biases.hex"},
            "accumulators": {"depth": plan.acc_depth, "lane_width": plan.acc_width},
            "vectors": {"depth": plan.vector_depth, "width": plan.value_width},
        },
        "memory_bits": mem,
        "cycles": cycle_model(plan, qm.input_size, qm.head_mode),
        "quant": qm.meta.get("quant", {}),
        "delta": None if plan.delta is None else {"thresholds": [list(t) for t in plan.delta]},
    }
    tp = acc.ternary_plan
    if tp is not None:  # the multiplier-free datapath (hwgen.rtl.ternary_array)
        out = manifest
        out["cycles"] = ternary_cycle_model(plan, tp, qm.input_size, qm.head_mode)
        del out["memories"]["weights"]
        out["memories"].update({
            "entries": {"depth": len(tp.entries), "word_width": entry_width(tp),
                        "file": "entries.hex"},
            "pointers": {"depth": len(tp.pointers), "file": "pointers.hex"},
            "terms": {"depth": len(tp.terms), "scale_bits": tp.scale_bits,
                      "scale_step": tp.scale_step},
            "level_sums": {"depth": tp.s_depth, "lane_width": tp.s_width}})
        out["ternary"] = {**qm.meta.get("ternary", {}), "levels": tp.levels,
                          "head": "non-adjacent form (8-bit weights as signed digits)",
                          "storage": "compressed columns: per lane its nonzero "
                                     "(level, row group) digits",
                          "stored_words": sum(sum(tp.column_counts(k))
                                              for k in range(len(plan.layers))),
                          "stored_words_head": sum(tp.column_counts(len(plan.layers))),
                          "dense_words": sum(lp.matrix_cycles for lp in plan.layers)
                          * tp.levels,
                          "multipliers": 0}
        out["ternary"]["balanced_lanes"] = acc.balanced_lanes
        out["ternary"]["early_passes"] = plan.early_passes
    if acc.weights_storage == "load":  # only then: other manifests stay as they are
        loaded, depth, width = acc.loaded_memory()
        manifest["memories"][loaded]["storage"] = "load"
        manifest["interface"]["weights"] = {
            "port": "weights", "beat_width": WEIGHT_BEAT, "word_beats": word_beats(width),
            "beats": depth * word_beats(width), "file": WEIGHT_IMAGE}
    if qm.embedding_design:  # only then: the manifests of other designs stay as they are
        manifest["interface"]["vocab_size"] = qm.vocab_size
        if plan.token_rom is not None:
            manifest["memories"]["token_rom"] = {"depth": len(plan.token_rom),
                                                 "width": qm.input_fmt.width}
        manifest["embedding"] = dict(qm.embedding_memory(),
                                     cycles_per_step=embedding_per_step(plan))
    return manifest


def generate(qm: QModel, out_dir, name: str | None = None, lanes: int = 4,
             inputs: np.ndarray | None = None, delta=None, layout: str | None = None,
             units: int | None = None, scale_step: int | None = None,
             weights: str = "rom", balance_lanes: bool | None = None,
             early_passes: bool = True) -> Path:
    """Generate the design folder `out_dir` for `qm`; returns its path.

    The folder is written to a temporary sibling first, sealed (every file's digest in the
    manifest, see `hwgen.design_folder`) and moved into place whole: a failure leaves
    nothing half-written, and an earlier design of that name stays whole until the new one
    has replaced it. A folder there that is not a design is never replaced. `inputs`
    (N, T, I) integers, if given, are stored with the reference outputs in vectors.npz for
    the testbenches. `delta`: per-layer
    (theta_x, theta_h) thresholds for a delta network, or None for a dense design. `units`:
    element-wise units (`hwgen.rtl.plan.default_units` when None). `scale_step`: a ternary
    model's combiner scale bits a cycle (`hwgen.rtl.ternary_plan.DEFAULT_SCALE_STEP`);
    `balance_lanes`: its hidden units reordered for its lanes (`hwgen.rtl.lane_balance`;
    None: a ternary model's are, False: not).
    `weights`: "rom" (the weight words are the weight memory's contents) or "load" (a
    memory with none, written through the top's `weights` stream before the first input:
    the folder's weights.bin holds the stream's bytes, `Accelerator.load_image`; a ternary
    model's entry words).
    """
    out_dir = Path(out_dir)
    name = name or out_dir.name
    top = "hwgen_" + re.sub(r"[^0-9A-Za-z_]", "_", name)  # a legal Verilog identifier
    acc = Accelerator(qm, lanes, delta=delta, units=units, scale_step=scale_step,
                      weights=weights, product_instances=True, balance_lanes=balance_lanes,
                      early_passes=early_passes)
    text = verilog.convert(acc, name=top, emit_src=False)
    # the wide MAC array's multipliers: the module they instantiate, beside the top
    products = registered_product.MODULE in text
    if weights == "load":
        text = _without_loaded_init(text, 1)
    manifest = manifest_for(qm, acc, name, top)
    if products:
        manifest["interface"]["verilog"].append(registered_product.FILE)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _check_replaceable(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())   # as any folder the user makes, not mkdtemp's 0700
        (tmp / f"{top}.v").write_text(text)
        if products:
            (tmp / registered_product.FILE).write_text(registered_product.verilog())
        if acc.ternary_plan is None:
            (tmp / "weights.hex").write_text(_hex_words(acc.plan.weight_words,
                                                        acc.plan.weight_width))
        else:
            tp = acc.ternary_plan
            words = np.array(entry_words(tp), dtype=object).reshape(-1, 1)
            (tmp / "entries.hex").write_text(_hex_words(words, entry_width(tp)))
            (tmp / "pointers.hex").write_text("".join(f"{s:x} {c:x} {k:x}\n"
                                                      for s, c, k in tp.pointers))
        if weights == "load":
            (tmp / WEIGHT_IMAGE).write_bytes(acc.load_image())
        (tmp / "biases.hex").write_text(_hex_words(acc.plan.bias_words, acc.plan.acc_width))
        if inputs is not None:
            xq = swap_layout(np.asarray(inputs, dtype=np.int64), data_layout(qm.meta, layout))
            stats = DeltaStats()
            outputs = run_int(qm, xq, delta=acc.plan.delta, stats=stats, layout="NTI")
            np.savez(tmp / "vectors.npz", inputs=xq, outputs=outputs)
            manifest["vectors"] = {"file": "vectors.npz", "sequences": int(xq.shape[0]),
                                   "steps": int(xq.shape[1])}
            if acc.plan.delta is not None:
                manifest["delta"]["vectors"] = stats.summary()
        seal(tmp, manifest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _swap_into_place(tmp, out_dir)
    return out_dir


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _check_replaceable(out_dir: Path) -> None:
    """Refuse to replace anything but an earlier design folder."""
    if out_dir.exists() and not (out_dir.is_dir() and (out_dir / MANIFEST).is_file()):
        raise DesignFolderError(f"{out_dir} exists and is not a design folder; "
                                "choose another name or folder")


def _swap_into_place(new: Path, out_dir: Path) -> None:
    """Move the finished folder `new` to `out_dir`; at every instant one design is whole.

    An earlier design is renamed aside first, then the new one takes its place, and only
    then is the old one removed (if that fails, it stays aside and a warning says where).
    """
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
        os.replace(out_dir, old)          # onto the empty folder just made: atomic
    try:
        os.replace(new, out_dir)
    except BaseException:
        if old is not None:
            os.replace(old, out_dir)
        shutil.rmtree(new, ignore_errors=True)
        raise
    if old is not None:
        try:
            shutil.rmtree(old)
        except OSError as exc:
            warnings.warn(f"the previous design was kept at {old}: it could not be removed "
                          f"({exc})", stacklevel=3)


def folder_digest(path) -> dict:
    """sha256 of every generated file (for the determinism check)."""
    path = Path(path)
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.iterdir()) if p.is_file()}
