#!/usr/bin/env python3
"""Writes the plot plugin's coastlines (plugins/plot/assets/coastlines-110m.json) from Natural
Earth's 1:110m land polygons (public domain) as the npm package world-atlas ships them
(TopoJSON, ISC licence):

    cd /tmp && npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz
    scripts/coastlines.py /tmp/package/land-110m.json > plugins/plot/assets/coastlines-110m.json

The output is a JSON list of polylines, each a flat list lon0, lat0, lon1, lat1, ... in
degrees with two decimals: the arcs of the land object, decoded (delta-coded, quantized).
"""
import json
import sys


def main(path):
    topology = json.load(open(path))
    (sx, sy), (tx, ty) = topology["transform"]["scale"], topology["transform"]["translate"]
    lines = []
    for arc in topology["arcs"]:
        x = y = 0
        line = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            line += [round(x * sx + tx, 2), round(y * sy + ty, 2)]
        if len(line) >= 4:
            lines.append(line)
    json.dump(lines, sys.stdout, separators=(",", ":"))


if __name__ == "__main__":
    main(sys.argv[1])
