"""The dashboard's one page: HTML, CSS and a little JavaScript, nothing fetched from elsewhere.

It opens ``/events`` (server-sent events) and redraws every service whenever the journal
changes; if the stream drops it reconnects by itself (the browser's EventSource does that).
"""

from __future__ import annotations

__all__ = ["PAGE"]

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>strangler dashboard</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       background: #f6f7f9; color: #1d2330; }
header { background: #1d2330; color: #fff; padding: 12px 24px; display: flex;
         justify-content: space-between; align-items: baseline; }
header h1 { font-size: 18px; margin: 0; }
#live { font-size: 13px; opacity: .85; }
#live.down { color: #ffb4b4; }
main { padding: 12px 24px 32px; display: grid; gap: 16px;
       grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); }
.svc { background: #fff; border: 1px solid #e2e5ea; border-radius: 8px; padding: 12px 16px; }
.svc h2 { margin: 0 0 6px; font-size: 17px; display: flex; gap: 10px; align-items: center; }
.phase { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #ddf4ff;
         color: #0550ae; }
.phase.decommissioned, .phase.stable, .phase.traffic_complete { background: #dafbe1;
         color: #116329; }
.row { display: flex; gap: 18px; flex-wrap: wrap; margin: 6px 0; }
.kv b { display: block; font-size: 12px; color: #57606a; font-weight: 500; }
.bar { position: relative; height: 14px; background: #eaeef2; border-radius: 7px;
       margin: 8px 0 14px; }
.bar > div { height: 100%; background: #2f81f7; border-radius: 7px; }
.bar .tick { position: absolute; top: -3px; width: 2px; height: 20px; background: #8c959f; }
table { border-collapse: collapse; width: 100%; font-size: 12px; margin: 4px 0 10px; }
th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid #eceef2;
         vertical-align: top; overflow-wrap: anywhere; }
th { background: #f6f8fa; font-weight: 600; }
.pass, .passed, .ok, .done { color: #1a7f37; font-weight: 600; }
.fail, .failed, .error { color: #cf222e; font-weight: 600; }
.waiting, .running, .warn { color: #9a6700; font-weight: 600; }
.unfinished { color: #cf222e; font-weight: 600; }
.note { color: #57606a; font-size: 12px; }
h3 { font-size: 13px; margin: 10px 0 2px; }
</style></head>
<body>
<header><h1>strangler dashboard <span class="note" id="spec"></span></h1>
<span id="live">connecting…</span></header>
<main id="services"></main>
<script>
"use strict";
const esc = (v) => (v === null || v === undefined || v === "") ? "-" :
  String(v).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;",
  '"': "&quot;", "'": "&#39;"})[c]);
const cls = (v) => esc(v).replace(/[^a-z_]/g, "");
const when = (iso) => iso ? esc(iso.replace("T", " ").slice(0, 19)) + " UTC" : "-";
function bytes(n) {
  if (n === null || n === undefined) return "-";
  const u = ["B", "kB", "MB", "GB", "TB"]; let i = 0; let v = n;
  while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i += 1; }
  return i === 0 ? v + " B" : v.toFixed(v < 10 ? 1 : 0) + " " + u[i];
}
function table(headers, rows) {
  return "<table><thead><tr>" + headers.map((h) => "<th>" + esc(h) + "</th>").join("") +
    "</tr></thead><tbody>" + rows.map((r) => "<tr>" + r.map((c) => c).join("") + "</tr>")
    .join("") + "</tbody></table>";
}
const td = (v, c) => "<td" + (c ? ' class="' + cls(c) + '"' : "") + ">" + esc(v) + "</td>";
function card(s) {
  const ticks = (s.traffic_steps || []).map((p) =>
    '<span class="tick" style="left:' + Math.min(100, p) + '%"></span>').join("");
  let out = '<section class="svc" data-service="' + esc(s.service) + '">';
  out += '<h2>' + esc(s.service) + ' <span class="phase ' + cls(s.phase) + '" data-phase>' +
    esc(s.phase) + '</span><span class="note">' + esc(s.strategy) + '</span></h2>';
  out += '<div class="row"><div class="kv"><b>traffic to the service</b><span data-weight>' +
    esc(s.weight) + ' %</span></div>';
  const v = s.last_verification;
  out += '<div class="kv"><b>last verification</b>' + (v ? '<span class="' + cls(v.status) +
    '">' + esc(v.status) + '</span> ' + when(v.at) : "never") + '</div>';
  const l = s.lag;
  out += '<div class="kv"><b>sync lag</b>' + (l ? esc(l.seconds) + " s · " + bytes(l.bytes) +
    ' <span class="note">(' + esc(l.direction) + (l.live ? ", live" : ", " + when(l.at)) +
    ")</span>" : "-") + (s.lag_error ? ' <span class="warn">' + esc(s.lag_error) +
    "</span>" : "") + '</div>';
  out += '<div class="kv"><b>updated</b>' + when(s.updated_at) + '</div></div>';
  out += '<div class="bar" title="weight"><div style="width:' + Math.min(100, s.weight) +
    '%"></div>' + ticks + '</div>';
  for (const r of s.running) {
    out += '<p class="' + cls(r.state) + '">' + esc(r.step) + ": " + esc(r.state) +
      (r.state === "running" ? " (pid " + esc(r.pid) + " on " + esc(r.host) + ", since " +
       when(r.since) + ")" : " since " + when(r.since) + " — inspect, then strangler resolve") +
      "</p>";
  }
  const r = s.run;
  if (r) {
    const w = r.waiting;
    out += '<h3>strangler run</h3><p><span class="' + cls(r.status) + '">' + esc(r.status) +
      "</span> at " + when(r.at) + (w ? ": " + esc(w.message) + (w.until ? " (until " +
      when(w.until) + ")" : "") + (w.command ? " — next: <code>" + esc(w.command) +
      "</code>" : "") : "") + (r.error ? ": " + esc(r.error) : "") + "</p>";
  }
  const g = s.gates;
  if (g) {
    out += "<h3>gates at " + esc(g.weight) + " % (" + when(g.at) + '): <span class="' +
      cls(g.verdict) + '">' + esc(g.verdict) + "</span> " + esc(g.reason) + "</h3>";
    out += table(["check", "verdict", "observed", "threshold", "detail"], g.checks.map((c) =>
      [td(c.check), td(c.status, c.status), td(c.observed), td(c.threshold), td(c.detail)]));
  }
  out += "<h3>history</h3>" + table(["#", "at (UTC)", "who", "step", "kind", "status"],
    s.history.slice().reverse().map((e) => [td(e.id), td(e.at.replace("T", " ").slice(0, 19)),
      td(e.operator), td(e.step), td(e.kind), td(e.status, e.status)]));
  return out + "</section>";
}
function draw(data) {
  document.getElementById("spec").textContent = data.spec;
  document.getElementById("services").innerHTML = data.services.map(card).join("");
  const live = document.getElementById("live");
  live.textContent = "live · updated " + new Date().toISOString().slice(11, 19) + " UTC";
  live.className = "";
}
const events = new EventSource("events");
events.onmessage = (m) => draw(JSON.parse(m.data));
events.onerror = () => {
  const live = document.getElementById("live");
  live.textContent = "disconnected, retrying…"; live.className = "down";
};
</script>
</body></html>
"""
