// The catalogue's search: the form's fields become a STAC API item search (/stac/search), so
// the page lists what pystac-client finds. The URL keeps the form's state (reload, share).
"use strict";
(() => {
  const form = document.getElementById("search");
  if (!form) return;
  const base = document.body.dataset.base;
  const pageSize = Number(form.dataset.pageSize) || 25;
  const results = document.getElementById("results");
  const status = document.getElementById("status");
  const pager = document.getElementById("pager");
  const map = document.getElementById("map");
  const box = map.querySelector(".box");
  const edges = ["west", "south", "east", "north"].map((name) => form.elements[name]);
  form.hidden = false;

  // --- the box on the map: the map's pixels are degrees (x = lon + 180, y = 90 - lat) ---
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  const round = (v) => Math.round(v * 10) / 10;
  function degrees(event) {
    const r = map.getBoundingClientRect();
    return [
      round(clamp(((event.clientX - r.left) / r.width) * 360 - 180, -180, 180)),
      round(clamp(90 - ((event.clientY - r.top) / r.height) * 180, -90, 90)),
    ];
  }
  function drawBox() {
    const [w, s, e, n] = edges.map((input) => Number.parseFloat(input.value));
    if ([w, s, e, n].some(Number.isNaN) || w >= e || s >= n) {
      box.hidden = true;
      return;
    }
    Object.assign(box.style, {
      left: `${((w + 180) / 360) * 100}%`, width: `${((e - w) / 360) * 100}%`,
      top: `${((90 - n) / 180) * 100}%`, height: `${((n - s) / 180) * 100}%`,
    });
    box.hidden = false;
  }
  let start = null;
  map.addEventListener("pointerdown", (event) => {
    start = degrees(event);
    map.setPointerCapture(event.pointerId);
  });
  map.addEventListener("pointermove", (event) => {
    if (!start) return;
    const [x, y] = degrees(event);
    const [w, e] = [Math.min(start[0], x), Math.max(start[0], x)];
    const [s, n] = [Math.min(start[1], y), Math.max(start[1], y)];
    [w, s, e, n].forEach((v, i) => { edges[i].value = v; });
    drawBox();
  });
  map.addEventListener("pointerup", () => { start = null; });
  edges.forEach((input) => input.addEventListener("input", drawBox));

  // --- the search ---
  function stacQuery(token) {
    const data = new FormData(form);
    const params = new URLSearchParams({ limit: String(pageSize) });
    const q = (data.get("q") || "").trim();
    if (q) params.set("q", q);
    const [w, s, e, n] = edges.map((input) => input.value.trim());
    if (w && s && e && n) params.set("bbox", [w, s, e, n].join(","));
    const from = data.get("from");
    const until = data.get("until");
    if (from || until) {
      params.set("datetime", `${from ? `${from}T00:00:00Z` : ".."}/${until ? `${until}T23:59:59Z` : ".."}`);
    }
    const query = {};
    for (const select of form.querySelectorAll("select[data-facet]")) {
      if (select.value) query[select.dataset.facet] = { eq: select.value };
    }
    if (Object.keys(query).length) params.set("query", JSON.stringify(query));
    if (token) params.set("token", token);
    return params;
  }

  function element(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    node.append(...children);
    return node;
  }

  const day = (stamp) => (stamp || "").slice(0, 10);
  function entry(item) {
    const p = item.properties || {};
    const article = element("article", {},
      element("h2", {}, element("a", { href: `${base}/datasets/${encodeURIComponent(item.id)}/` }, item.id)));
    if (p.title && p.title !== item.id) article.append(element("p", {}, p.title));
    if (Array.isArray(p.variables) && p.variables.length) {
      article.append(element("p", { class: "variables" }, `Variables: ${p.variables.join(", ")}`));
    }
    const when = p.start_datetime ? `${day(p.start_datetime)} to ${day(p.end_datetime)}` : day(p.datetime);
    const where = Array.isArray(item.bbox) ? `${item.bbox.map((v) => round(v)).join(", ")} (W, S, E, N)` : "";
    article.append(element("p", { class: "note" }, [when, where].filter(Boolean).join(" · ")));
    const chips = element("ul", { class: "chips" });
    for (const select of form.querySelectorAll("select[data-facet]")) {
      const value = p[select.dataset.facet];
      if (value !== undefined && value !== null) {
        chips.append(element("li", {}, element("span", {}, select.dataset.facet), ` ${value}`));
      }
    }
    if (chips.childElementCount) article.append(chips);
    return element("li", {}, article);
  }

  const earlier = [];
  async function run(token) {
    status.textContent = "Searching…";
    let body;
    try {
      const reply = await fetch(`${base}/stac/search?${stacQuery(token)}`, { headers: { Accept: "application/geo+json" } });
      body = await reply.json();
      if (!reply.ok) throw new Error(body.error || body.description || reply.statusText);
    } catch (error) {
      status.textContent = `Search failed: ${error.message}`;
      return;
    }
    results.replaceChildren(...body.features.map(entry));
    const matched = body.numberMatched ?? body.features.length;
    const first = token ? Number(token.split(":")[1]) + 1 : 1;
    status.textContent = matched === 0
      ? "No dataset matches."
      : `${matched} dataset${matched === 1 ? "" : "s"} match${matched === 1 ? "es" : ""}` +
        (matched > body.features.length ? `, ${first} to ${first + body.features.length - 1} shown` : "");
    pager.replaceChildren();
    if (earlier.length) {
      const back = element("button", { type: "button" }, "Previous");
      back.addEventListener("click", () => { earlier.pop(); run(earlier[earlier.length - 1]); });
      pager.append(back);
    }
    const next = (body.links || []).find((link) => link.rel === "next");
    if (next) {
      const nextToken = new URL(next.href).searchParams.get("token");
      const forward = element("button", { type: "button" }, "Next");
      forward.addEventListener("click", () => { earlier.push(nextToken); run(nextToken); });
      pager.append(forward);
    }
  }

  function search() {
    earlier.length = 0;
    const state = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) state.set(key, value);
    history.replaceState(null, "", state.size ? `?${state}` : location.pathname);
    run(null);
  }
  form.addEventListener("submit", (event) => { event.preventDefault(); search(); });
  form.addEventListener("reset", () => setTimeout(() => { drawBox(); search(); }));

  // A URL with the form's state (a reload, a shared link) searches at once.
  const state = new URLSearchParams(location.search);
  let restored = false;
  for (const [key, value] of state) {
    const field = form.elements[key];
    if (field && "value" in field) { field.value = value; restored = true; }
  }
  drawBox();
  if (restored) search();
})();
