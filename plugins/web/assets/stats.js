// /stats: the host's usage counters (/usage) as tables per dataset, endpoint and day.
"use strict";
(() => {
  const root = document.getElementById("stats");
  const base = document.body.dataset.base;
  const pick = document.getElementById("days");
  const bytes = (n) => {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
  };
  function table(caption, heading, rows) {
    const total = rows.reduce((sum, [, c]) => Math.max(sum, c.bytes), 0) || 1;
    const t = document.createElement("table");
    t.innerHTML = `<caption></caption><thead><tr><th scope="col"></th><th scope="col">Requests</th>
      <th scope="col">Bytes sent</th><th scope="col"><span class="visually-hidden">Share</span></th></tr></thead><tbody></tbody>`;
    t.caption.textContent = caption;
    t.tHead.rows[0].cells[0].textContent = heading;
    for (const [name, count] of rows) {
      const row = t.tBodies[0].insertRow();
      const head = document.createElement("th");
      head.scope = "row";
      head.textContent = name;
      row.append(head);
      row.insertCell().textContent = count.requests.toLocaleString("en");
      row.insertCell().textContent = bytes(count.bytes);
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.style.width = `${(count.bytes / total) * 100}%`;
      row.insertCell().append(bar);
    }
    return t;
  }
  function add(into, key, count) {
    const sum = into.get(key) || { requests: 0, bytes: 0 };
    sum.requests += count.requests;
    sum.bytes += count.bytes;
    into.set(key, sum);
  }
  async function show() {
    const reply = await fetch(`${base}/usage?days=${pick.value}`);
    const status = document.getElementById("stats-status");
    if (!reply.ok) {
      status.textContent = (await reply.json()).error;
      return;
    }
    const { days } = await reply.json();
    const datasets = new Map(), endpoints = new Map(), perDay = new Map();
    for (const day of days) {
      for (const [dataset, byEndpoint] of Object.entries(day.datasets)) {
        for (const [endpoint, count] of Object.entries(byEndpoint)) {
          add(datasets, dataset, count);
          add(endpoints, endpoint, count);
          add(perDay, day.date, count);
        }
      }
    }
    const ranked = (map) => [...map].sort((a, b) => b[1].bytes - a[1].bytes || b[1].requests - a[1].requests);
    status.textContent = days.length ? `${days[0].date} to ${days[days.length - 1].date}` : "No requests counted yet.";
    root.replaceChildren(
      table("Per dataset", "Dataset", ranked(datasets).slice(0, 100)),
      table("Per endpoint", "Endpoint", ranked(endpoints)),
      table("Per day", "Day", [...perDay]),
    );
  }
  pick.addEventListener("change", show);
  show();
})();
