"""The MAC array's multipliers pinned in lane order on the ECP5-85F's DSP rows.

Above one region of lanes (`hwgen.rtl.fanout.REGION_LANES`) each region's control comes from
its own copies, but a copy helps only if its lanes sit together. Left to itself nextpnr's
placer spread the 128-lane design's multipliers over the die, the lanes of a region far
apart, and one netlist routed at 59.1, 80.4 or 72.9 MHz by seed. Pinned in lane order
(nextpnr's ``BEL`` attribute, after synthesis), a region takes a run of neighbouring DSP
sites and the lanes' logic gathers around them: 86.9 and 85.7 MHz on seeds 1 and 2
(docs/hardware.md).

The LFE5U-85F has three rows of 52 MULT18X18D sites (`DSP_ROWS`, `DSP_COLUMNS`). The
multipliers take the fewest rows that hold them, the middle row first, as a run centred in
each row; the second row runs the other way, so that consecutive lanes stay neighbours
where one row turns into the next. Only the lanes' multipliers are pinned (the element-wise
units' are the placer's), and only designs of more than one region.
"""
from __future__ import annotations

import json
from pathlib import Path
import re

from ..rtl.fanout import REGION_LANES

#: The device whose DSP sites `DSP_ROWS` and `DSP_COLUMNS` name.
DEVICE = "ecp5-85f"
#: Rows (nextpnr's Y) of the LFE5U-85F's DSP sites, the middle one first.
DSP_ROWS = (34, 58, 10)
#: Columns (nextpnr's X) of a row's MULT18X18D sites, left to right; a DSP block's four
#: multipliers are its bels MULT18_0, MULT18_1, MULT18_4 and MULT18_5 (`site`).
DSP_COLUMNS = (4, 5, 8, 9, 13, 14, 17, 18, 22, 23, 26, 27, 31, 32, 35, 36, 40, 41, 44, 45,
               49, 50, 53, 54, 58, 59, 62, 63, 69, 70, 73, 74, 78, 79, 82, 83, 87, 88, 91,
               92, 96, 97, 100, 101, 105, 106, 109, 110, 114, 115, 118, 119)
_BELS = ("MULT18_0", "MULT18_1", "MULT18_4", "MULT18_5")
MULTIPLIER = "MULT18X18D"
#: A lane's multiplier (`hwgen.rtl.mac_array`): ``mac.prod<lane>_mul...`` for one lane,
#: ``mac.pair<j>_mul...`` for lanes 2j and 2j + 1.
_LANE_CELL = re.compile(r"^mac\.(prod|pair)(\d+)_mul\.")


def site(row: int, index: int) -> str:
    """nextpnr's name of the `index`-th multiplier site (from the left) of DSP row `row`."""
    return f"X{DSP_COLUMNS[index]}/Y{row}/{_BELS[index % 4]}"


def lane_multipliers(cells: dict) -> list[tuple[int, int, str]]:
    """(first lane, lanes, cell name) of the MAC array's multipliers among `cells`, in lane
    order."""
    found = []
    for name, cell in cells.items():
        hit = _LANE_CELL.match(name) if cell.get("type") == MULTIPLIER else None
        if hit:
            lanes = 2 if hit.group(1) == "pair" else 1
            found.append((int(hit.group(2)) * lanes, lanes, name))
    return sorted(found)


def sites_in_lane_order(count: int) -> list[str]:
    """Sites for `count` multipliers in lane order (module docstring)."""
    per_row = len(DSP_COLUMNS)
    rows = -(-count // per_row)
    if rows > len(DSP_ROWS):
        raise ValueError(f"{count} multipliers do not fit the {len(DSP_ROWS) * per_row} "
                         f"DSP sites of the LFE5U-85F")
    used = sorted(DSP_ROWS[:rows])
    run = -(-count // rows)
    first = (per_row - run) // 2
    out = []
    for k in range(count):
        r, i = divmod(k, run)
        out.append(site(used[r], first + (i if r % 2 == 0 else run - 1 - i)))
    return out


def place_lanes(netlist: dict, target_name: str) -> dict | None:
    """Pin the MAC array's multipliers of a Yosys JSON `netlist` (changed in place) on
    `target_name`'s DSP sites; None where nothing is pinned (another device, one region of
    lanes or fewer), else what was pinned: the multipliers, the lanes and the rows."""
    if target_name != DEVICE:
        return None
    for module in netlist.get("modules", {}).values():
        cells = module.get("cells", {})
        lanes = lane_multipliers(cells)
        if not lanes:
            continue
        span = lanes[-1][0] + lanes[-1][1]
        if span <= REGION_LANES:
            return None
        sites = sites_in_lane_order(len(lanes))
        for (_, _, name), bel in zip(lanes, sites):
            cells[name].setdefault("attributes", {})["BEL"] = bel
        rows = sorted({int(b.split("/")[1][1:]) for b in sites})
        return {"multipliers": len(lanes), "lanes": span, "rows": rows,
                "first": sites[0], "last": sites[-1]}
    return None


def place_in_file(path, target_name: str) -> dict | None:
    """`place_lanes` on the netlist file `path`, rewritten only where something is pinned."""
    path = Path(path)
    netlist = json.loads(path.read_text())
    done = place_lanes(netlist, target_name)
    if done is not None:
        path.write_text(json.dumps(netlist) + "\n")
    return done
