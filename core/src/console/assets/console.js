// hookwire console: the live log. Rows from /console/live (server-sent events) are built
// with textContent only: every value is data, never markup.
"use strict";
(function () {
  const table = document.getElementById("log");
  const status = document.getElementById("live-status");
  if (!table || !window.EventSource) return;
  const body = table.tBodies[0];
  const MAX_ROWS = 500;
  const say = (text) => { if (status) status.textContent = text; };

  function cell(label, text) {
    const td = document.createElement("td");
    td.dataset.label = label;
    td.textContent = text == null ? "" : String(text);
    return td;
  }

  function row(r) {
    const tr = document.createElement("tr");
    tr.className = ["ok", "quiet", "bad"].includes(r.kind) ? r.kind : "quiet";
    tr.classList.add("live");
    const time = cell("Time", "");
    const t = document.createElement("time");
    t.textContent = r.time || "";
    time.appendChild(t);
    tr.appendChild(time);
    tr.appendChild(cell("Source", r.source));
    tr.appendChild(cell("Event", r.event || "—"));
    const delivery = cell("Delivery", "");
    if (Number.isSafeInteger(r.seq) && r.seq > 0) {
      const a = document.createElement("a");
      a.href = "/console/events/" + r.seq;
      a.textContent = r.delivery_id || ("event " + r.seq);
      delivery.appendChild(a);
    } else {
      delivery.textContent = r.delivery_id || "—";
    }
    tr.appendChild(delivery);
    tr.appendChild(cell("Outcome", r.detail ? r.outcome + " (" + r.detail + ")" : r.outcome));
    tr.appendChild(cell("Sessions", Array.isArray(r.sessions) ? r.sessions.join(", ") : ""));
    return tr;
  }

  const source = new EventSource(table.dataset.live);
  source.onopen = () => say("Live: new requests appear at the top.");
  source.onerror = () => say("Live updates interrupted; reconnecting…");
  source.addEventListener("lost", (e) => say("Live: " + Number(e.data) + " rows skipped (this page fell behind)."));
  source.onmessage = (e) => {
    let r;
    try { r = JSON.parse(e.data); } catch (_) { return; }
    const empty = document.getElementById("empty");
    if (empty) empty.remove();
    body.insertBefore(row(r), body.firstChild);
    while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
  };
})();
