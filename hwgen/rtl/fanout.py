"""Control registers copied per group of lanes, so that no one net reaches every lane.

At 64 lanes a register that steers every lane (the activate engine's capture and shift
enables, the MAC array's base pick and alignment shift) drives thousands of flip-flops or
LUTs spread over the device, and its one net was the longest path (17-19 ns of routing on
the ECP5-85F). A copy per `LANES_PER_COPY` lanes, each set exactly as the original, keeps
every net local; `COPY_ATTR` keeps synthesis from merging the copies back into one
(`hwgen.synth.flow.KEEP_COPIES`). A design of at most `LANES_PER_COPY` lanes keeps its one
register, unmarked and named as before. A value that crosses components as its copies (the
accumulator read address: a copy for each slice of the memory) has the shape `copied`.
"""
from __future__ import annotations

from amaranth.hdl import Shape, Signal
from amaranth.lib import data

from ..design_folder import COPY_ATTR

#: Lanes that one copy of a lane-steering register drives.
LANES_PER_COPY = 8
#: Lanes of one region of a two-level tree of copies (`spread`): a region's copy drives only
#: its region's copies, so no one net need cross the whole array.
REGION_LANES = 32
assert REGION_LANES % LANES_PER_COPY == 0   # a region takes whole lane groups


def copy_groups(lanes: int, per: int = LANES_PER_COPY) -> int:
    """Copies of a register that steers `lanes` lanes, one per `per` of them."""
    return -(-lanes // per)


def group_of(lane: int, per: int = LANES_PER_COPY) -> int:
    """The copy that steers `lane`."""
    return lane // per


def copies(shape, lanes: int, name: str, per: int = LANES_PER_COPY) -> list[Signal]:
    """`copy_groups(lanes, per)` registers of `shape`: ``name`` alone for one group, else
    ``name_c0``, ``name_c1``, ... marked `COPY_ATTR`."""
    shape = Shape.cast(shape)
    n = copy_groups(lanes, per)
    if n == 1:
        return [Signal(shape, name=name)]
    return [Signal(shape, name=f"{name}_c{g}", attrs={COPY_ATTR: 1}) for g in range(n)]


def spread(m, leaves: list[Signal], early, per: int = LANES_PER_COPY) -> None:
    """Set `leaves` (the copies of a register, one per `per` lanes: `copies`) as that register
    would be set from `early`, over two edges: a copy of `early` per `REGION_LANES` lanes
    (``<leaf name>_rN``), then each leaf from its region's copy. One register into its 64
    copies over the ECP5-85F at 128 lanes was a net of 14-18 ns. A region's copy is near its
    lanes only where they sit together: `hwgen.synth.floorplan` pins them so on the ECP5-85F."""
    name = leaves[0].name.rsplit("_c", 1)[0] if len(leaves) > 1 else leaves[0].name
    shape = Shape.cast(leaves[0].shape())
    regions = copies(shape, len(leaves) * per, f"{name}_r", per=REGION_LANES)
    m.d.sync += [r.eq(early) for r in regions]
    m.d.sync += [leaf.eq(regions[group_of(i * per, REGION_LANES)])
                 for i, leaf in enumerate(leaves)]


def copied(shape, lanes: int):
    """The shape of a value carried as its copies, one a lane group: `shape` itself for one
    group, else an array of `copy_groups(lanes)` of it."""
    shape, n = Shape.cast(shape), copy_groups(lanes)
    return shape if n == 1 else data.ArrayLayout(shape, n)
