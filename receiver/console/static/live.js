// Live view: new transitions arrive as server-sent events and are added on top of the table.
// Rows are built with textContent only: provider-supplied values are never parsed as HTML.
"use strict";
(function () {
  const status = document.getElementById("live-status");
  const rows = document.getElementById("live-rows");
  const counts = document.getElementById("counts");
  if (!status || !rows || !window.EventSource) { return; }
  const terminal = new Set((counts && counts.dataset.terminal || "").split(" "));
  const seen = new Set(Array.from(rows.querySelectorAll("tr[data-id]"), (row) => row.dataset.id));
  const MAX_ROWS = 300;

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text === undefined || text === null ? "" : String(text);
    return td;
  }

  function bump(name) {
    const target = counts && counts.querySelector('[data-count="' + name + '"]');
    if (target) { target.textContent = String(Number(target.textContent) + 1); }
  }

  function add(entry) {
    if (seen.has(entry.id)) { return; }
    seen.add(entry.id);
    const empty = rows.querySelector("tr.empty");
    if (empty) { empty.remove(); }
    const tr = document.createElement("tr");
    tr.dataset.id = entry.id;
    tr.className = "fresh kind-" + entry.kind;
    tr.appendChild(cell(entry.time.slice(11)));
    const kind = cell(entry.kind);
    if (entry.replay) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = "replay";
      kind.append(" ", tag);
    }
    tr.appendChild(kind);
    tr.appendChild(cell(entry.source));
    tr.appendChild(cell(entry.provider));
    const call = document.createElement("td");
    const link = document.createElement("a");
    link.setAttribute("href", entry.url);
    link.textContent = entry.call_id;
    call.appendChild(link);
    tr.appendChild(call);
    const change = cell(entry.from_state + " → ");
    const state = document.createElement("span");
    state.className = "state state-" + entry.to_state;
    state.textContent = entry.to_state;
    change.appendChild(state);
    tr.appendChild(change);
    tr.appendChild(cell(entry.name));
    tr.appendChild(cell(entry.version));
    tr.appendChild(cell(entry.attempt));
    rows.insertBefore(tr, rows.firstChild);
    while (rows.children.length > MAX_ROWS) { rows.lastElementChild.remove(); }
    bump(entry.kind === "annotation" ? "annotations" : "transitions");
    if (entry.kind === "transition" && terminal.has(entry.to_state)) { bump(entry.to_state); }
  }

  const source = new EventSource(status.dataset.events);
  source.addEventListener("open", function () {
    status.textContent = "Live: new transitions appear at the top.";
    status.classList.add("connected");
  });
  source.addEventListener("entry", function (event) { add(JSON.parse(event.data)); });
  source.addEventListener("problem", function (event) {
    status.textContent = JSON.parse(event.data).message;
    status.classList.remove("connected");
  });
  source.addEventListener("error", function () {
    status.textContent = "Connection lost; reconnecting…";
    status.classList.remove("connected");
  });
}());
