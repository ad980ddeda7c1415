"""Writes the web plugin's world map (plugins/web/assets/world.svg) from the plot plugin's
Natural Earth 1:110m land outlines: an equirectangular SVG whose user units are degrees
(x = longitude, y = -latitude), so the page's script maps a drag to a bbox without a table.

Usage: python3 scripts/world_svg.py > plugins/web/assets/world.svg
"""

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
rings = json.loads((REPO / "plugins/plot/assets/coastlines-110m.json").read_text())


def unwrapped(ring):
    """The ring's points with longitudes made continuous: a ring crossing the antimeridian
    runs past ±180 instead of jumping across the whole map."""
    points, shift, last = [], 0.0, None
    for i in range(0, len(ring) - 1, 2):
        lon, lat = ring[i], ring[i + 1]
        if last is not None and abs(lon + shift - last) > 180:
            shift += 360 if lon + shift < last else -360
        last = lon + shift
        points.append((last, -lat))
    return points


def path(points, offset=0.0):
    head, *rest = points
    return f"M{head[0] + offset:g} {head[1]:g}" + "".join(f"L{x + offset:g} {y:g}" for x, y in rest) + "Z"


def ring_path(ring):
    points = unwrapped(ring)
    lons = [x for x, _ in points]
    # What runs past an edge is drawn again from the other edge (the view clips the rest).
    offsets = [0.0] + ([-360.0] if max(lons) > 180 else []) + ([360.0] if min(lons) < -180 else [])
    return "".join(path(points, offset) for offset in offsets)


print(
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="-180 -90 360 180" role="img" aria-label="World map">'
    '<path fill="#8c959f" fill-rule="evenodd" d="' + "".join(ring_path(r) for r in rings) + '"/></svg>'
)
