"""The web plugin's pages as a person uses them: Debian's Chromium driven by Playwright.

Each step writes a screenshot to tests/interop/output/web/ (UPDATE_README_SCREENSHOTS=1
also refreshes the README's pictures in docs/screenshots/). The searches the page makes are
compared with pystac-client's (and the STAC API's own answer for free text, which
pystac-client does not send); the snippet copied from a dataset page is run and its values
compared with netCDF4-python on the source file.
"""

import os
import re
import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pystac_client
import pytest
import requests
from conftest import REPO, Server
from playwright.sync_api import expect, sync_playwright

OUT = REPO / "tests/interop/output/web"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As root and on a closed network: no sandbox, no background connections (see the machine notes).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]
# The budget for a page and everything it loads, pictures aside.
PAGE_BUDGET = 200 * 1024

# (id, variable, standard name, long name, lat range, lon range, first date, calendar, attributes)
DATASETS = [
    ("tas_europe", "tas", "air_temperature", "Near-Surface Air Temperature", (35, 70), (-10, 40),
     "days since 2000-01-01", "standard", {"source_id": "ModelA", "experiment_id": "historical", "frequency": "mon"}),
    ("pr_tropics", "pr", "precipitation_flux", "Precipitation", (-20, 20), (0, 359), "days since 2050-01-01",
     "360_day", {"source_id": "ModelB", "experiment_id": "ssp585", "frequency": "day"}),
    ("tos_pacific", "tos", "sea_surface_temperature", "Sea Surface Temperature", (-30, 30), (150, 250),
     "days since 1990-01-01", "noleap", {"source_id": "ModelA", "experiment_id": "ssp585", "frequency": "mon"}),
]


def write(path, spec):
    name, var, standard, long_name, lats, lons, units, calendar, attrs = spec
    with netCDF4.Dataset(path, "w") as ds:
        ds.title = f"{long_name} test field"
        for key, value in attrs.items():
            setattr(ds, key, value)
        ds.variable_id = var
        for dim, size in [("time", 12), ("lat", 18), ("lon", 24)]:
            ds.createDimension(dim, size)
        time = ds.createVariable("time", "f8", ("time",))
        time.units, time.calendar, time.standard_name = units, calendar, "time"
        time[:] = np.arange(12) * 30.0
        lat = ds.createVariable("lat", "f8", ("lat",))
        lat.units, lat.standard_name = "degrees_north", "latitude"
        lat[:] = np.linspace(*lats, 18)
        lon = ds.createVariable("lon", "f8", ("lon",))
        lon.units, lon.standard_name = "degrees_east", "longitude"
        lon[:] = np.linspace(*lons, 24)
        values = ds.createVariable(var, "f4", ("time", "lat", "lon"), zlib=True, chunksizes=(1, 18, 24))
        values.units, values.standard_name, values.long_name = "K", standard, long_name
        values[:] = np.random.default_rng(len(name)).normal(280, 10, (12, 18, 24)).astype("f4")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("web")
    for spec in DATASETS:
        write(folder / f"{spec[0]}.nc", spec)
    config = folder / "cloudify.toml"
    config.write_text(f'[demo]\nenabled = false\n\n[plugin.web]\npage_size = 2\n\n[[folders]]\npath = "{folder}"\n')
    srv = Server("--config", str(config))
    yield srv, folder
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def shot(page, name):
    """A screenshot of the whole page, kept with the test output (and as the README's picture
    when asked)."""
    path = OUT / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    if os.environ.get("UPDATE_README_SCREENSHOTS") == "1" and name in ("01-catalogue", "05-dataset"):
        target = REPO / "docs/screenshots"
        target.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=target / f"{name[3:]}.png", full_page=True)
    return path


def listed(page):
    """The dataset ids the page lists."""
    return page.locator("#results article h2 a").all_text_contents()


def stac_ids(url, **search):
    client = pystac_client.Client.open(f"{url}/stac")
    return [item.id for item in client.search(max_items=None, **search).items()]


def test_find_look_copy_and_open(site, browser):
    """The issue's walk: load /, search for a variable, filter by a box and a time range,
    open a dataset page, see its preview, copy its snippet and run it."""
    srv, folder = site
    context = browser.new_context(viewport={"width": 1200, "height": 900},
                                  permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.goto(f"{srv.url}/")
    expect(page.locator("#search")).to_be_visible()
    # Without a search, the server's list: two of the three datasets, and a link to the rest.
    assert listed(page) == sorted(requests.get(f"{srv.url}/datasets", timeout=30).json())[:2]
    expect(page.locator("#pager a[rel=next]")).to_have_attribute("href", f"{srv.url}/?page=2")
    shot(page, "01-catalogue")

    # A standard name typed in the box: what the STAC API's free text finds.
    page.fill("#q", "sea_surface_temperature")
    page.press("#q", "Enter")
    expect(page.locator("#status")).to_contain_text("match")
    free_text = requests.get(f"{srv.url}/stac/search", params={"q": "sea_surface_temperature"}, timeout=30).json()
    assert listed(page) == [f["id"] for f in free_text["features"]] == ["tos_pacific"]
    assert "q=sea_surface_temperature" in page.url
    shot(page, "02-search-variable")

    # A box dragged on the map over Europe: the same datasets as pystac-client's bbox search.
    page.fill("#q", "")
    box = page.locator("#map").bounding_box()
    at = lambda lon, lat: (box["x"] + (lon + 180) / 360 * box["width"], box["y"] + (90 - lat) / 180 * box["height"])
    page.mouse.move(*at(0, 60))
    page.mouse.down()
    page.mouse.move(*at(10, 50), steps=5)
    page.mouse.move(*at(20, 45), steps=5)
    page.mouse.up()
    edges = [float(page.input_value(f"input[name={name}]")) for name in ("west", "south", "east", "north")]
    assert edges[0] == pytest.approx(0, abs=1.5) and edges[3] == pytest.approx(60, abs=1.5)
    assert edges[2] == pytest.approx(20, abs=1.5) and edges[1] == pytest.approx(45, abs=1.5)
    expect(page.locator("#map .box")).to_be_visible()
    page.click("#search button[type=submit]")
    expect(page.locator("#status")).to_contain_text("match")
    by_box = stac_ids(srv.url, bbox=edges)
    assert sorted(listed(page)) == sorted(by_box) and "tas_europe" in by_box and "tos_pacific" not in by_box
    shot(page, "03-filter-bbox")

    # And a time range: 2000 only (tas_europe), pystac-client agreeing.
    page.fill("input[name=from]", "2000-03-01")
    page.fill("input[name=until]", "2000-12-31")
    page.click("#search button[type=submit]")
    expect(page.locator("#status")).to_contain_text("match")
    by_both = stac_ids(srv.url, bbox=edges, datetime="2000-03-01T00:00:00Z/2000-12-31T23:59:59Z")
    assert listed(page) == by_both == ["tas_europe"]
    shot(page, "04-filter-time")

    # The dataset page, its preview drawn by the plot plugin.
    page.click("#results a:text-is('tas_europe')")
    expect(page).to_have_url(f"{srv.url}/datasets/tas_europe/")
    preview = page.locator("img.preview").first
    preview.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=preview.element_handle(), timeout=30000)
    assert preview.evaluate("img => img.naturalWidth") > 0
    coordinates = page.locator("section[aria-labelledby=coords]").inner_text()
    assert "2000-01-01 to 2000-11-26" in coordinates and "standard calendar" in coordinates
    shot(page, "05-dataset")

    # Copy the xarray snippet, read the clipboard, run it: the values are the file's.
    page.click("button[data-copy=code-zarr]")
    expect(page.locator("#copied")).to_contain_text("xarray · Zarr")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == page.locator("#code-zarr").text_content()
    assert f'"{srv.url}/datasets/tas_europe/zarr"' in copied
    namespace = {}
    exec(copied, namespace)  # noqa: S102 - the page's own snippet is what is tested
    with netCDF4.Dataset(folder / "tas_europe.nc") as source:
        np.testing.assert_array_equal(namespace["ds"]["tas"].values, source["tas"][:])
        assert namespace["ds"]["tas"].attrs["standard_name"] == source["tas"].standard_name
    shot(page, "06-copied")
    context.close()


def test_a_360_day_calendar_is_shown_in_its_dates(site, browser):
    srv, _ = site
    page = browser.new_page()
    page.goto(f"{srv.url}/datasets/pr_tropics/")
    coordinates = page.locator("section[aria-labelledby=coords]").inner_text()
    # 11 × 30 days after 2050-01-01 in a 360-day year: 2050-12-01.
    assert "2050-01-01 to 2050-12-01" in coordinates and "360_day calendar" in coordinates
    page.close()


def test_facets_and_paging_match_the_stac_api(site, browser):
    srv, _ = site
    page = browser.new_page()
    page.goto(f"{srv.url}/")
    page.select_option("select[data-facet=source_id]", "ModelA")
    page.select_option("select[data-facet=experiment_id]", "ssp585")
    page.click("#search button[type=submit]")
    expect(page.locator("#status")).to_contain_text("match")
    wanted = stac_ids(srv.url, query={"source_id": {"eq": "ModelA"}, "experiment_id": {"eq": "ssp585"}})
    assert listed(page) == wanted == ["tos_pacific"]
    # The state is in the URL: a reload searches again.
    page.reload()
    expect(page.locator("#status")).to_contain_text("match")
    assert listed(page) == wanted
    # Every dataset, two a page (page_size = 2): the STAC API's next links page through.
    page.click("#search button[type=reset]")
    expect(page.locator("#status")).to_have_text("3 datasets match, 1 to 2 shown")
    first = listed(page)
    page.click("#pager button:text-is('Next')")
    expect(page.locator("#status")).to_have_text("3 datasets match, 3 to 3 shown")
    assert first + listed(page) == stac_ids(srv.url)
    page.click("#pager button:text-is('Previous')")
    expect(page.locator("#status")).to_have_text("3 datasets match, 1 to 2 shown")
    assert listed(page) == first
    page.close()


def test_docs_render_every_loaded_plugins_operations(site, browser):
    srv, _ = site
    page = browser.new_page()
    page.goto(f"{srv.url}/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=30000)
    rendered = {(el.get_attribute("data-path") or el.inner_text()).replace("\u200b", "")
                for el in page.locator(".opblock-summary-path").element_handles()}
    plugins = requests.get(f"{srv.url}/plugins", timeout=30).json()
    assert set(plugins) >= {"web", "zarr", "kerchunk", "stac", "intake", "plot"}
    for name, plugin in plugins.items():
        for route in plugin["routes"]:
            assert route.split(" ", 1)[1].replace("{*", "{") in rendered, (name, route)
    shot(page, "07-docs")
    landing = requests.get(f"{srv.url}/stac", timeout=30).json()
    assert {"rel": "service-doc", "href": f"{srv.url}/docs", "type": "text/html"} in landing["links"]
    page.close()


def weight(browser, url, **context_options):
    """Bytes the page and what it loads took on the wire (pictures aside), and the page."""
    context = browser.new_context(**context_options)
    page = context.new_page()
    loaded = []
    page.on("requestfinished", lambda request: loaded.append(request))
    page.goto(url)
    page.wait_for_load_state("networkidle")
    total = sum(r.sizes()["responseBodySize"] + r.sizes()["responseHeadersSize"]
                for r in loaded if r.resource_type != "image")
    return total, page, context


@pytest.mark.parametrize("path", ["/", "/datasets/tas_europe/"])
def test_pages_are_light_dark_and_keyboard_reachable(site, browser, path):
    srv, _ = site
    total, page, context = weight(browser, f"{srv.url}{path}", color_scheme="dark")
    assert 0 < total < PAGE_BUDGET, total
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert sum(map(int, re.findall(r"\d+", background)[:3])) < 3 * 64, background
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    if path != "/":
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        # Tabbing reaches the copy buttons, which are buttons (Enter and Space press them).
        buttons = page.locator("button.copy")
        assert buttons.count() >= 3 and all(b.evaluate("b => b.tagName") == "BUTTON" for b in buttons.all())
    shot(page, f"08-dark{path.replace('/', '-').rstrip('-')}")
    context.close()


def test_without_javascript_the_list_and_pages_read(site, browser):
    srv, _ = site
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{srv.url}/")
    assert listed(page) == ["pr_tropics", "tas_europe"]
    page.click("a[rel=next]")
    assert listed(page) == ["tos_pacific"]
    assert not page.locator("#search").is_visible()
    # (Playwright turns scripts off after parsing starts, so Chromium keeps <noscript> as text.)
    assert "Searching runs in JavaScript" in page.locator("noscript").text_content()
    page.goto(f"{srv.url}/datasets/tos_pacific/")
    assert "sea_surface_temperature" in page.locator("main").inner_text()
    assert page.locator("#code-zarr").is_visible()
    context.close()


def test_public_url_is_in_every_link_and_snippet(tmp_path):
    write(tmp_path / "a.nc", DATASETS[0])
    public = "https://data.example.org/cloudify"
    config = tmp_path / "cloudify.toml"
    config.write_text(f'[demo]\nenabled = false\n\n[server]\npublic_url = "{public}"\n\n[[datasets]]\nid = "a"\npath = "{tmp_path}/a.nc"\n')
    srv = Server("--config", str(config))
    try:
        for path in ["/", "/datasets/a/", "/docs"]:
            html = requests.get(f"{srv.url}{path}", timeout=30).text
            links = re.findall(r'(?:href|src|data-spec|data-base)="([^"#]+)"', html)
            assert links and all(link.startswith(public) for link in links), (path, links)
        snippets = requests.get(f"{srv.url}/datasets/a/", timeout=30).text
        assert f"{public}/datasets/a/zarr" in snippets and "127.0.0.1" not in snippets
        # Without the slash, the page is one relative redirect away (it works behind the proxy).
        moved = requests.get(f"{srv.url}/datasets/a", allow_redirects=False, timeout=30)
        assert (moved.status_code, moved.headers["location"]) == (308, "a/")
        assert requests.get(f"{srv.url}/datasets/nope/", timeout=30).status_code == 404
        assert requests.get(f"{srv.url}/web/nope.js", timeout=30).status_code == 404
    finally:
        srv.stop()


def test_assets_are_cached_and_compressed(site):
    srv, _ = site
    reply = requests.get(f"{srv.url}/web/swagger-ui-bundle.js", headers={"Accept-Encoding": "gzip"}, timeout=30)
    assert reply.headers["content-encoding"] == "gzip" and "SwaggerUIBundle" in reply.text
    assert int(reply.raw.headers.get("content-length", len(reply.content))) < len(reply.content)
    again = requests.get(f"{srv.url}/web/swagger-ui-bundle.js", headers={"If-None-Match": reply.headers["etag"]},
                         timeout=30)
    assert again.status_code == 304
    plain = requests.get(f"{srv.url}/web/style.css", headers={"Accept-Encoding": "identity"}, timeout=30)
    assert "content-encoding" not in plain.headers and "prefers-color-scheme: dark" in plain.text


def test_usage_is_counted_kept_across_restarts_and_drawn(tmp_path, browser):
    write(tmp_path / "a.nc", DATASETS[0])
    config = tmp_path / "cloudify.toml"
    config.write_text(f'[demo]\nenabled = false\n\n[[datasets]]\nid = "a"\npath = "{tmp_path}/a.nc"\n')
    cache = str(tmp_path / "cache")
    srv = Server("--config", str(config), cache_dir=cache)
    try:
        chunks = [requests.get(f"{srv.url}/datasets/a/zarr/tas/{t}.0.0", timeout=30) for t in range(5)]
        assert all(c.status_code == 200 for c in chunks)
        assert requests.get(f"{srv.url}/datasets/nope/zarr/.zmetadata", timeout=30).status_code == 404
    finally:
        srv.stop()
    srv = Server("--config", str(config), cache_dir=cache)
    try:
        requests.get(f"{srv.url}/datasets/a/info", timeout=30)
        days = requests.get(f"{srv.url}/usage", timeout=30).json()["days"]
        counted = days[-1]["datasets"]
        # Counted before the restart (written at shutdown) and after it.
        assert counted["a"]["zarr"] == {"requests": 5, "bytes": sum(len(c.content) for c in chunks)}
        assert counted["a"]["info"]["requests"] == 1
        assert "nope" not in counted and counted["(errors)"]["zarr"]["requests"] == 1
        page = browser.new_page()
        page.goto(f"{srv.url}/stats")
        row = page.locator("table:has(caption:text-is('Per dataset')) tr:has(th:text-is('a'))")
        expect(row).to_be_visible()
        # The page's count includes its own requests of the info route above, not of itself.
        assert row.locator("td").first.inner_text() == str(5 + 1)
        shot(page, "09-stats")
        page.close()
    finally:
        srv.stop()


@pytest.mark.parametrize("key", ["kerchunk", "kerchunk-json", "intake", "stac"])
def test_every_python_snippet_opens_the_dataset(site, browser, key):
    """Each Python snippet of a dataset page, as the page shows it, run: the values are the
    source file's."""
    srv, folder = site
    page = browser.new_page()
    page.goto(f"{srv.url}/datasets/tos_pacific/")
    code = page.locator(f"#code-{key}").text_content()
    page.close()
    namespace = {}
    exec(code, namespace)  # noqa: S102 - the page's own snippet is what is tested
    with netCDF4.Dataset(folder / "tos_pacific.nc") as source:
        np.testing.assert_array_equal(namespace["ds"]["tos"].values, source["tos"][:])
