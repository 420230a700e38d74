"""The MAC lanes' multipliers pinned in lane order on the ECP5-85F's DSP rows: a region of
lanes on a run of neighbouring sites, the sites real (nextpnr places the cells on them)."""
import json
import random
import re
import subprocess

import pytest

from hwgen.rtl.fanout import REGION_LANES
from hwgen.synth.floorplan import (DSP_COLUMNS, DSP_ROWS, place_in_file, place_lanes,
                                   sites_in_lane_order)
from hwgen.synth.tools import tool_path


def _xy(bel):
    x, y = re.match(r"X(\d+)/Y(\d+)/", bel).groups()
    return int(x), int(y)


def _netlist(names):
    cells = {name: {"type": "MULT18X18D", "attributes": {}} for name in names}
    cells["elementwise0_0.p66_mul.dsp.mult"] = {"type": "MULT18X18D", "attributes": {}}
    cells["mac.pair_other"] = {"type": "TRELLIS_FF", "attributes": {}}
    return {"modules": {"top": {"cells": cells}}}


@pytest.mark.parametrize("count", [33, 64, 104, 105, 156])
def test_sites_are_distinct_and_a_region_is_a_run_of_neighbours(count):
    sites = sites_in_lane_order(count)
    assert len(set(sites)) == count
    rows = sorted({_xy(s)[1] for s in sites})
    assert len(rows) == -(-count // len(DSP_COLUMNS))   # the fewest rows that hold them
    assert DSP_ROWS[0] in rows                          # the middle row first
    # consecutive multipliers are neighbouring sites: the next column of a row, or the
    # same column of the next row where a row turns
    for a, b in zip(sites, sites[1:]):
        (xa, ya), (xb, yb) = _xy(a), _xy(b)
        ia, ib = DSP_COLUMNS.index(xa), DSP_COLUMNS.index(xb)
        assert (ya == yb and abs(ia - ib) == 1) or (ya != yb and xa == xb)


def test_more_multipliers_than_sites_is_an_error():
    with pytest.raises(ValueError, match="157 multipliers do not fit the 156 DSP sites"):
        sites_in_lane_order(157)


def test_lanes_are_pinned_in_lane_order_and_nothing_else():
    pairs = [f"mac.pair{j}_mul.dsp.mult" for j in range(64)]
    shuffled = pairs[:]
    random.Random(3).shuffle(shuffled)
    netlist = _netlist(shuffled)
    done = place_lanes(netlist, "ecp5-85f")
    cells = netlist["modules"]["top"]["cells"]
    assert done == {"multipliers": 64, "lanes": 128, "rows": [34, 58],
                    "first": "X26/Y34/MULT18_4", "last": "X26/Y58/MULT18_4"}
    assert [cells[name]["attributes"]["BEL"] for name in pairs] == sites_in_lane_order(64)
    assert "BEL" not in cells["elementwise0_0.p66_mul.dsp.mult"]["attributes"]
    assert "BEL" not in cells["mac.pair_other"]["attributes"]
    # a region's multipliers (16 lane pairs) share a row, on a run of 16 sites
    for region in range(128 // REGION_LANES):
        own = pairs[region * REGION_LANES // 2:(region + 1) * REGION_LANES // 2]
        xs = [_xy(cells[n]["attributes"]["BEL"]) for n in own]
        assert len({y for _, y in xs}) == 1
        idx = sorted(DSP_COLUMNS.index(x) for x, _ in xs)
        assert idx == list(range(idx[0], idx[0] + len(own)))


def test_single_lane_multipliers_are_ordered_by_lane():
    names = [f"mac.prod{k}_mul.dsp.mult" for k in (40, 2, 11, 0, 39)]
    netlist = _netlist(names)
    assert place_lanes(netlist, "ecp5-85f")["lanes"] == 41
    cells = netlist["modules"]["top"]["cells"]
    order = sorted(names, key=lambda n: int(re.search(r"prod(\d+)", n).group(1)))
    assert [cells[n]["attributes"]["BEL"] for n in order] == sites_in_lane_order(5)


@pytest.mark.parametrize("names,target", [
    ([f"mac.pair{j}_mul.dsp.mult" for j in range(16)], "ecp5-85f"),   # one region: 32 lanes
    ([f"mac.pair{j}_mul.dsp.mult" for j in range(64)], "ecp5-25f"),   # another device
    ([], "ecp5-85f")])
def test_nothing_is_pinned_within_one_region_or_on_another_device(names, target):
    netlist = _netlist(names)
    before = json.dumps(netlist)
    assert place_lanes(netlist, target) is None
    assert json.dumps(netlist) == before


_DESIGN = """
module lane(input clk, input [17:0] a, input [17:0] b, output [35:0] p);
  (* keep *) MULT18X18D mult (.A0(a[0]), .A1(a[1]), .A2(a[2]), .B0(b[0]), .B1(b[1]),
    .B2(b[2]), .SIGNEDA(1'b1), .SIGNEDB(1'b1), .SOURCEA(1'b0), .SOURCEB(1'b0),
    .CLK0(clk), .CE0(1'b1), .RST0(1'b0), .P0(p[0]), .P1(p[1]));
endmodule
module pair(input clk, input [17:0] a, input [17:0] b, output [35:0] p);
  lane dsp (.clk(clk), .a(a), .b(b), .p(p));
endmodule
module mac(input clk, input [17:0] a, input [17:0] b, output o);
  wire [35:0] p0, p1, p2;
  pair pair0_mul (.clk(clk), .a(a), .b(b), .p(p0));
  pair pair7_mul (.clk(clk), .a(b), .b(a), .p(p1));
  pair pair20_mul (.clk(clk), .a(a ^ b), .b(a), .p(p2));
  reg q;
  always @(posedge clk) q <= ^{p0[1:0], p1[1:0], p2[1:0]};
  assign o = q;
endmodule
module top(input clk, input [17:0] a, input [17:0] b, output o);
  mac mac (.clk(clk), .a(a), .b(b), .o(o));
endmodule
"""


def test_nextpnr_places_the_multipliers_on_the_pinned_sites(tmp_path):
    (tmp_path / "top.v").write_text(_DESIGN)
    subprocess.run([tool_path("YOSYS"), "-q", "-p", "synth_ecp5 -top top -json net.json",
                    "top.v"], cwd=tmp_path, check=True)
    done = place_in_file(tmp_path / "net.json", "ecp5-85f")
    assert done["multipliers"] == 3 and done["lanes"] == 42
    subprocess.run([tool_path("NEXTPNR_ECP5"), "--85k", "--package", "CABGA381", "--json",
                    "net.json", "--write", "placed.json", "--no-route",
                    "--lpf-allow-unconstrained", "-q"], cwd=tmp_path, check=True)
    placed = json.loads((tmp_path / "placed.json").read_text())
    cells = next(iter(m for m in placed["modules"].values() if m["cells"]))["cells"]
    got = {name: c["attributes"]["NEXTPNR_BEL"] for name, c in cells.items()
           if c["type"] == "MULT18X18D"}
    assert got == dict(zip(["mac.pair0_mul.dsp.mult", "mac.pair7_mul.dsp.mult",
                            "mac.pair20_mul.dsp.mult"], sites_in_lane_order(3)))
