// softswitch console: fetches /console/api/* (same origin, so the browser sends the Basic credentials it was
// given for the page) and draws the tables.  No framework, no build step.
"use strict";

const API = "/console/api";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function time(iso) {
  return iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", "") : "";
}

function ago(iso) {
  if (!iso) return "";
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return seconds + " s";
}

async function getJSON(path, alsoOk) {
  // location.origin, not a relative URL: a page opened as http://user:pass@host/ may not fetch relative URLs
  const response = await fetch(location.origin + API + path, {credentials: "same-origin", cache: "no-store"});
  if (!response.ok && response.status !== alsoOk) throw new Error(path + ": HTTP " + response.status);
  return response.json();
}

function stamp() {
  const node = document.getElementById("updated");
  if (node) node.textContent = "updated " + new Date().toLocaleTimeString();
}

function fill(tbody, rows, empty, columns) {
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", {class: "none", colspan: columns}, empty))]));
}

function callLink(call) {
  return el("a", {href: "/console/calls/" + call.sid}, call.sid);
}

function badge(node, text) {
  node.textContent = text;
  node.className = "badge " + text;
}

// -- the index page --------------------------------------------------------------------------------------------
async function drawHealth() {
  const health = await getJSON("/health", 503);  // 503: degraded or draining, still drawn
  badge(document.getElementById("health-status"), health.status);
  document.getElementById("capacity").textContent =
    `${health.live_calls} live calls; ${health.in_use} of ${health.capacity} call legs in use`;
  const rows = health.workers.map((w) => el("tr", {"data-worker": w.worker},
    el("td", {}, w.worker), el("td", {class: w.up ? "ok" : "degraded"}, w.up ? w.state : "down"),
    el("td", {}, w.pid), el("td", {}, w.sip), el("td", {}, w.engine), el("td", {}, `${w.in_use} / ${w.capacity}`),
    el("td", {}, w.restarts),
    el("td", {}, w.rtp ? `${w.rtp.rx_packets ?? "?"} / ${w.rtp.tx_packets ?? "?"}` : "")));
  fill(document.querySelector("#workers tbody"), rows, "no workers", 8);
  const edge = document.getElementById("edge");
  if (health.edge) {
    const e = health.edge;
    edge.textContent = `edge (Kamailio) ${e.up ? "up" : "DOWN"} on ${e.sip}, pid ${e.pid}, ` +
      `${e.workers_with_free_legs} of ${e.workers} workers with free legs, ${e.restarts} restarts` +
      (e.draining ? ", draining" : "");
    edge.className = e.up ? "" : "error";
  } else {
    edge.textContent = "no edge: the SIP port is worker 0's";
  }
}

async function drawCalls() {
  const params = new URLSearchParams(location.search);
  const form = document.getElementById("filters");
  for (const name of ["status", "direction", "to", "from"]) form.elements[name].value = params.get(name) || "";
  const data = await getJSON("/calls?" + params.toString());
  const live = data.live.map((c) => el("tr", {"data-sid": c.sid, "data-status": c.status},
    el("td", {class: "sid"}, callLink(c)), el("td", {}, c.direction), el("td", {}, c.from), el("td", {}, c.to),
    el("td", {class: c.status}, c.status), el("td", {}, ago(c.start_time || c.date_created)),
    el("td", {}, c.worker)));
  fill(document.querySelector("#live-calls tbody"), live, "no live calls", 7);
  document.getElementById("live-count").textContent = String(data.live.length);
  const recent = data.recent.map((c) => el("tr", {"data-sid": c.sid, "data-status": c.status},
    el("td", {class: "sid"}, callLink(c)), el("td", {}, c.direction), el("td", {}, c.from), el("td", {}, c.to),
    el("td", {class: c.status}, c.status), el("td", {}, time(c.date_created)),
    el("td", {}, c.duration === null ? "" : c.duration + " s"), el("td", {}, c.sip_response_code)));
  fill(document.querySelector("#recent-calls tbody"), recent, "no calls", 8);
}

// -- the call page ---------------------------------------------------------------------------------------------
const SUMMARY = [["direction", "direction"], ["from", "from"], ["to", "to"], ["created", "date_created"],
  ["started", "start_time"], ["answered", "answer_time"], ["ended", "end_time"], ["duration (s)", "duration"],
  ["SIP code", "sip_response_code"], ["SIP Call-ID", "sip_call_id"], ["end reason", "end_reason"],
  ["error", "error"], ["worker", "worker"], ["TwiML URL", "url"]];

function drawSummary(call) {
  badge(document.getElementById("call-status"), call.status);
  const items = [];
  for (const [label, key] of SUMMARY) {
    const value = call[key];
    if (value === null || value === undefined || value === "") continue;
    items.push(el("dt", {}, label), el("dd", {"data-field": key}, key.endsWith("time") || key === "date_created"
      ? time(value) : value));
  }
  document.getElementById("summary").replaceChildren(...items);
}

function drawLegs(data) {
  const legs = document.getElementById("legs");
  const parts = [];
  if (data.call.parent_call_sid) {
    parts.push("parent: ", callLink({sid: data.call.parent_call_sid}), " ");
  }
  if (data.children.length) {
    parts.push("legs it dialed: ");
    data.children.forEach((c, i) => parts.push(i ? ", " : "", callLink(c), ` (${c.status})`));
  }
  legs.replaceChildren(...parts);
}

function drawRecordings(recordings) {
  const box = document.getElementById("recordings");
  const shown = new Map([...box.querySelectorAll(".recording")].map((n) => [n.dataset.sid, n]));
  if (!recordings.length) {
    box.replaceChildren(el("p", {class: "none"}, "none"));
    return;
  }
  const nodes = recordings.map((r) => {
    const old = shown.get(r.sid);
    // keep a playing <audio> as it is; redraw only when the recording changed
    if (old && old.dataset.status === r.status) return old;
    return el("div", {class: "recording", "data-sid": r.sid, "data-status": r.status},
      el("span", {class: "sid"}, r.sid), ` ${r.status}`, r.duration === null ? "" : `, ${r.duration} s`,
      `, ${r.channels} channel${r.channels === 1 ? "" : "s"}, ${r.source}`,
      r.media ? el("audio", {controls: "", preload: "metadata", src: r.media}) : null,
      r.media ? el("a", {href: r.media, download: r.sid + ".wav"}, " download") : null);
  });
  box.replaceChildren(...nodes);
}

function drawTimeline(data) {
  const lanes = data.lanes;
  const head = document.querySelector("#timeline thead tr");
  head.replaceChildren(el("th", {}, "ms"), el("th", {}, "time (UTC)"),
    ...lanes.map((lane) => el("th", {class: "lane lane-" + lane}, lane)));
  const rows = data.timeline.map((e) => el("tr", {"data-lane": e.lane, "data-kind": e.kind},
    el("td", {}, e.ms), el("td", {}, time(e.at).slice(11) + (e.at.match(/\.(\d{3})/) || ["", ""])[0]),
    ...lanes.map((lane) => lane === e.lane
      ? el("td", {class: "lane hit lane-" + lane},
        // the code in front, unless the text says it already ("180 Ringing")
        e.code === null || e.text.includes(String(e.code)) ? null : el("span", {class: "code"}, e.code + " "),
        e.text)
      : el("td", {class: "lane lane-" + lane}))));
  fill(document.querySelector("#timeline tbody"), rows, "no events", lanes.length + 2);
}

async function drawCall() {
  const sid = location.pathname.split("/").filter(Boolean).pop();
  document.getElementById("call-sid").textContent = sid;
  document.title = sid + " - softswitch console";
  const data = await getJSON("/calls/" + sid);
  drawSummary(data.call);
  drawLegs(data);
  drawRecordings(data.recordings);
  drawTimeline(data);
  document.body.dataset.callStatus = data.call.status;
  return data;
}

const TERMINAL = new Set(["completed", "busy", "no-answer", "failed", "canceled"]);

function every(ms, draw) {
  const run = async () => {
    let again = true;
    try {
      again = (await draw()) !== false;
      stamp();
    } catch (err) {
      const node = document.getElementById("updated");
      if (node) node.textContent = String(err.message || err);
    }
    if (again) setTimeout(run, ms);
  };
  run();
}

if (document.body.dataset.page === "index") {
  every(2000, drawHealth);
  every(1000, drawCalls);
} else if (document.body.dataset.page === "call") {
  // while the call or one of its recordings is still going, keep the page fresh; then stop
  every(1000, async () => {
    const data = await drawCall();
    const busy = !TERMINAL.has(data.call.status) || data.recordings.some((r) => !r.media && r.status !== "absent"
      && r.status !== "failed");
    return busy;
  });
}
