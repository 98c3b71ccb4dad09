// Live tail: follows /ui/live/stream (SSE) with the page's filters. Pause closes the stream;
// resume reopens it from the index after the last event shown, so nothing is missed.
"use strict";

const MAX_ROWS = 500;
let source = null;
let last = null; // log index of the newest event shown
let paused = false;

function status(text) { document.getElementById("live-status").textContent = text; }

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function add(rec) {
  const ev = rec.event;
  const body = document.querySelector("#live-table tbody");
  const row = body.insertRow(0);
  row.dataset.index = String(rec.index);
  cell(row, String(rec.index));
  const t = cell(row, "", "mono");
  const a = document.createElement("a");
  a.href = "/ui/events/" + encodeURIComponent(ev.id);
  a.textContent = ev.time;
  t.appendChild(a);
  cell(row, ev.actor.id);
  cell(row, ev.action);
  cell(row, ev.resource ? [ev.resource.type, ev.resource.id].filter(Boolean).join("/") : "", "hide-narrow");
  cell(row, ev.outcome || "", "o-" + (ev.outcome || "unknown"));
  while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
}

function open() {
  const params = new URLSearchParams(window.location.search);
  if (last !== null) params.set("from_index", String(last + 1));
  source = new EventSource("/ui/live/stream?" + params.toString());
  source.onopen = () => status("Live: new events appear at the top.");
  source.onmessage = (m) => {
    const rec = JSON.parse(m.data);
    last = rec.index;
    add(rec);
  };
  source.addEventListener("error", (e) => {
    if (e.data) { status("The server ended the stream: " + JSON.parse(e.data).error); source.close(); return; }
    if (source.readyState === EventSource.CLOSED) status("Disconnected.");
    else status("Reconnecting…");
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const button = document.getElementById("pause");
  button.addEventListener("click", () => {
    paused = !paused;
    button.setAttribute("aria-pressed", String(paused));
    button.textContent = paused ? "Resume" : "Pause";
    if (paused) {
      if (source) source.close();
      status("Paused: events committed meanwhile appear when you resume.");
    } else {
      open();
    }
  });
  open();
});
