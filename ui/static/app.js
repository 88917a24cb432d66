// vipsmart web UI: long-polls api/snapshot for each new version of the
// local DC's view and draws it; asks again as soon as it has drawn one, so
// it is live and never behind. Read-only: it never changes anything.
"use strict";

const $ = (id) => document.getElementById(id);
const SVGNS = "http://www.w3.org/2000/svg";

// h builds an element: h("td", {class: "x", "data-a": 1}, child, "text", ...).
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") el.textContent = v; else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const k of kids.flat()) {
    if (k === undefined || k === null || k === false) continue;
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return el;
}
function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    el.setAttribute(k, String(v));
  }
  for (const k of kids.flat()) {
    if (k === undefined || k === null) continue;
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return el;
}
function badge(text, cls, title) { return h("span", { class: "badge " + cls, title }, text); }
function fill(tbody, rows, cols, empty) {
  tbody.replaceChildren(...(rows.length ? rows : [h("tr", { class: "empty" }, h("td", { colspan: cols }, empty))]));
}

// ---- time ----
let clockSkew = 0; // server time - local time, ms
function ago(iso) {
  if (!iso) return "-";
  const ms = Date.now() + clockSkew - Date.parse(iso);
  if (ms < 0) return "just now";
  if (ms < 1000) return Math.round(ms) + "ms ago";
  if (ms < 60000) return (ms / 1000).toFixed(1) + "s ago";
  if (ms < 3600000) return Math.floor(ms / 60000) + "m ago";
  if (ms < 86400000) return Math.floor(ms / 3600000) + "h ago";
  return Math.floor(ms / 86400000) + "d ago";
}
function clock(iso) {
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

// ---- state ----
let snap = null;
let receivedAt = 0;
let events = []; // the latest 500 events, oldest first (the server sends only new ones)
let deadlineLocal = 0; // local ms at which the temporary status reverts
const kindsOn = new Set(); // event kinds shown; empty = all
const sessionKey = "vipsmart-ui-token";

// ---- rendering ----
function render(sn) {
  if (sn.events && sn.events.length) {
    const last = events.length ? events[events.length - 1].seq : 0;
    if (sn.events[0].seq <= last) events = []; // the daemon's log started over
    events = events.concat(sn.events).slice(-500);
  }
  sn.events = events;
  snap = sn;
  receivedAt = Date.now();
  if (sn.time) clockSkew = Date.parse(sn.time) - receivedAt;
  document.title = (sn.status ? sn.status.name + " · " : "") + "vipsmart";
  const banner = $("banner");
  if (sn.error) {
    banner.textContent = (sn.server ? "vipsmart daemon at " + sn.server : "the daemon") + ": " + sn.error;
    banner.classList.remove("hidden");
  } else {
    banner.classList.add("hidden");
  }
  renderHeader(sn);
  renderFederation(sn);
  renderGIPs(sn);
  renderDCs(sn);
  renderVIPs(sn);
  renderAnnounced(sn);
  renderEvents(sn);
}

function renderHeader(sn) {
  const st = sn.status;
  if (!st) return;
  $("self-name").textContent = st.name;
  $("self-addr").textContent = st.address + ":" + st.port;
  const f = st.federation;
  $("fed-info").textContent = f ? `federation ${f.id} · epoch ${f.epoch} · ${f.members.length} members` : `standalone · epoch ${st.epoch}`;
  const temporary = ["invited", "candidate-review", "leaving"].includes(st.status);
  deadlineLocal = 0;
  if (temporary && st.time_left) deadlineLocal = receivedAt + goDurationMs(st.time_left);
  tickCountdown();
}

function tickCountdown() {
  const st = snap && snap.status;
  if (!st) return;
  const pill = $("status-pill");
  const temporary = ["invited", "candidate-review", "leaving"].includes(st.status);
  pill.className = "pill " + (temporary ? "temporary" : st.status);
  pill.dataset.status = st.status;
  if (temporary) {
    const left = Math.max(0, deadlineLocal - Date.now());
    pill.textContent = `${st.status} · ${(left / 1000).toFixed(1)}s left` + (st.op_id ? ` · op ${st.op_id}` : "");
  } else {
    pill.textContent = st.status;
  }
}

// goDurationMs parses a Go duration string ("1m2.5s", "250ms").
function goDurationMs(d) {
  if (typeof d === "number") return d / 1e6;
  const units = { ns: 1e-6, "µs": 1e-3, us: 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 };
  let ms = 0;
  for (const m of String(d).matchAll(/([0-9.]+)(ns|µs|us|ms|s|m|h)/g)) ms += parseFloat(m[1]) * units[m[2]];
  return ms;
}

function renderFederation(sn) {
  const svg = $("fed-svg");
  const st = sn.status;
  const dcs = sn.dcs && sn.dcs.length ? sn.dcs : (st ? [{ name: st.name, address: st.address, port: st.port, self: true, reachable: true, status: st.status, last_epoch: st.epoch }] : []);
  $("fed-caption").textContent = st ? `as ${st.name} sees it` : "";
  const W = 420, H = 280, cx = W / 2, cy = H / 2 + 4;
  const n = dcs.length;
  const rx = n <= 1 ? 0 : 140, ry = n <= 1 ? 0 : 92;
  // The local DC at the top; the others around the ellipse.
  const selfIdx = Math.max(0, dcs.findIndex((d) => d.self));
  const order = dcs.slice(selfIdx).concat(dcs.slice(0, selfIdx));
  const pos = new Map();
  order.forEach((d, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(n, 1);
    pos.set(d.name, [cx + rx * Math.cos(a), cy + ry * Math.sin(a)]);
  });
  const activeAt = new Map();
  for (const g of sn.gips || []) for (const dc of g.active || []) {
    if (!activeAt.has(dc)) activeAt.set(dc, []);
    activeAt.get(dc).push(g.name);
  }
  const kids = [];
  const self = order[0];
  if (self) {
    const [x0, y0] = pos.get(self.name);
    for (const d of order.slice(1)) {
      const [x1, y1] = pos.get(d.name);
      kids.push(s("line", { class: "link " + (d.reachable ? "ok" : "bad"), x1: x0, y1: y0, x2: x1, y2: y1, "data-link": d.name }));
    }
  }
  if (n === 0) kids.push(s("text", { class: "center", x: cx, y: cy, "text-anchor": "middle" }, "no data yet"));
  if (n === 1) kids.push(s("text", { class: "center", x: cx, y: cy + 60, "text-anchor": "middle" }, "standalone: add a DC with vipsmart dc add NAME,IP,PORT"));
  for (const d of order) {
    const [x, y] = pos.get(d.name);
    const temporary = ["invited", "candidate-review", "leaving"].includes(d.status);
    const cls = ["node", d.self ? "self" : "", d.reachable ? "" : "unreachable", temporary ? "temporary" : ""].join(" ");
    const gipsHere = activeAt.get(d.name) || [];
    const w = 132, hgt = gipsHere.length ? 72 : 58;
    const state = d.self ? s("text", { class: "state-ok", x: 0, y: 22, "text-anchor": "middle" }, "this DC")
      : d.reachable ? s("text", { class: "state-ok", x: 0, y: 22, "text-anchor": "middle" }, "reachable · " + ago(d.last_seen))
        : s("text", { class: "state-bad", x: 0, y: 22, "text-anchor": "middle" }, "UNREACHABLE");
    const g = s("g", { class: cls, transform: `translate(${x},${y})`, "data-dc": d.name, "data-reachable": String(!!d.reachable), "data-status": d.status || "" },
      s("title", {}, `${d.name} ${d.address}:${d.port}\nstatus ${d.status || "-"}, epoch ${d.last_epoch}` + (d.vips_down && d.vips_down.length ? `\nVIPs down: ${d.vips_down.join(", ")}` : "")),
      s("rect", { x: -w / 2, y: -29, width: w, height: hgt, rx: 9 }),
      s("text", { class: "name", x: 0, y: -9, "text-anchor": "middle" }, d.name),
      s("text", { class: "sub", x: 0, y: 7, "text-anchor": "middle" }, `${d.status || "?"} · epoch ${d.last_epoch ?? "-"}`),
      state);
    if (gipsHere.length) {
      const label = gipsHere.length <= 2 ? gipsHere.join(", ") : `${gipsHere.slice(0, 2).join(", ")} +${gipsHere.length - 2}`;
      g.append(s("text", { class: "giptext", x: 0, y: 37, "text-anchor": "middle", "data-gips": gipsHere.join(",") }, "● " + label));
    }
    kids.push(g);
  }
  svg.replaceChildren(...kids);
}

function renderGIPs(sn) {
  const q = $("gip-filter").value.trim().toLowerCase();
  const all = sn.gips || [];
  const rows = [];
  for (const g of all) {
    const hay = [g.name, g.address, g.mode, ...(g.placements || []).map((p) => p.dc)].join(" ").toLowerCase();
    if (q && !hay.includes(q)) continue;
    const prio = new Map((g.placements || []).map((p) => [p.dc, p]));
    const pls = (g.states || []).map((st) => {
      const p = prio.get(st.dc) || {};
      return h("div", {},
        h("span", { class: "pl " + st.state, title: st.why, "data-placement": st.dc, "data-state": st.state },
          st.dc, h("span", { class: "prio" }, ":" + p.priority + (p.vip ? ":" + p.vip : ""))),
        h("span", { class: "why" }, st.why));
    });
    const active = g.active && g.active.length ? g.active.map((a) => badge(a, "ok")) : [badge("none", "bad", "no healthy placement: announced nowhere")];
    rows.push(h("tr", { "data-gip": g.name, "data-active": (g.active || []).join(",") },
      h("td", {}, h("b", {}, g.name)),
      h("td", { class: "mono" }, g.address),
      h("td", {}, g.mode + (g.mode === "failover" && !g.preempt ? " (no preempt)" : "")),
      h("td", {}, pls.length ? pls : h("span", { class: "muted" }, "no placement")),
      h("td", {}, active)));
  }
  $("gips-count").textContent = all.length ? `${all.length}` : "";
  fill($("gips").tBodies[0], rows, 5, all.length ? "no GIP matches the filter" : "no GIP yet: vipsmart gip add NAME ADDRESS --placement DC:PRIORITY");
  const tr = sn.truncated && sn.truncated.gips;
  $("gips-note").textContent = tr ? `showing the first ${all.length} of ${tr} GIPs: use vipsmart gip list for all` : "";
}

function renderDCs(sn) {
  const rows = (sn.dcs || []).map((d) => h("tr", { "data-dc": d.name },
    h("td", {}, h("b", {}, d.name), d.self ? h("span", { class: "muted" }, " (self)") : ""),
    h("td", { class: "mono" }, `${d.address}:${d.port}`),
    h("td", {}, d.reachable ? badge("yes", "ok") : badge("no", "bad")),
    h("td", {}, d.status ? badge(d.status, d.status === "member" ? "ok" : (d.status === "standalone" ? "neutral" : "warn")) : "-"),
    h("td", {}, d.last_epoch),
    h("td", {}, d.self ? "now" : ago(d.last_seen)),
    h("td", {}, (d.vips_down || []).join(", ") || "-"),
    h("td", {}, (d.holding || []).join(", ") || "-")));
  $("dcs-count").textContent = rows.length ? String(rows.length) : "";
  fill($("dcs").tBodies[0], rows, 8, "standalone: no federation");
}

function renderVIPs(sn) {
  const rows = (sn.vips || []).map((v) => h("tr", { "data-vip": v.name, "data-state": v.state },
    h("td", {}, h("b", {}, v.name)),
    h("td", { class: "mono" }, v.address),
    h("td", {}, v.interface || "-"),
    h("td", { class: "mono" }, v.check ? v.check.url : "-"),
    h("td", {}, badge(v.state, v.state === "up" ? "ok" : v.state === "down" ? "bad" : "warn", v.last_error), v.last_error ? h("span", { class: "why" }, v.last_error) : "")));
  $("vips-count").textContent = rows.length ? String(rows.length) : "";
  fill($("vips").tBodies[0], rows, 5, "no VIP: vipsmart vip add NAME ADDRESS");
}

function renderAnnounced(sn) {
  const ann = (sn.status && sn.status.announced) || [];
  const rows = ann.map((a) => h("tr", { "data-announced": a.address },
    h("td", { class: "mono" }, a.address),
    h("td", {}, badge(a.kind, a.kind === "gip-standby" ? "stby" : "ok")),
    h("td", {}, a.name),
    h("td", {}, a.via),
    h("td", {}, ago(a.since))));
  $("ann-count").textContent = rows.length ? String(rows.length) : "";
  fill($("announced").tBodies[0], rows, 5, "nothing announced here");
  renderBGP(sn);
}

// renderBGP shows the BGP sessions the status carries (any list field of
// the status whose name mentions bgp), generically: one row per session,
// one column per field.
function renderBGP(sn) {
  const box = $("bgp");
  const st = sn.status || {};
  let list = null;
  for (const [k, v] of Object.entries(st)) {
    if (!/bgp/i.test(k)) continue;
    if (Array.isArray(v)) list = v;
    else if (v && typeof v === "object") for (const vv of Object.values(v)) if (Array.isArray(vv)) list = vv;
  }
  if (!list) {
    const viaBGP = (st.announced || []).some((a) => a.via === "bgp");
    box.replaceChildren(h("p", { class: "muted small" }, viaBGP ? "this daemon's status does not report BGP sessions" : "no BGP announcer on this DC"));
    return;
  }
  if (!list.length) { box.replaceChildren(h("p", { class: "muted small" }, "no BGP peer configured")); return; }
  const cols = [...new Set(list.flatMap((r) => Object.keys(r)))].filter((c) => typeof list[0][c] !== "object" || list[0][c] === null);
  const body = list.map((r) => h("tr", { "data-bgp-peer": r.address || r.peer || "" }, cols.map((c) => {
    const v = r[c];
    if (/state/i.test(c) && typeof v === "string") return h("td", {}, badge(v, /established|up/i.test(v) ? "ok" : "bad"));
    return h("td", {}, v === undefined || v === null || v === "" ? "-" : String(v));
  })));
  box.replaceChildren(h("div", { class: "scroll" }, h("table", { class: "tbl" },
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", {}, c.replace(/_/g, " "))))), h("tbody", {}, body))));
}

function renderEvents(sn) {
  if ($("event-pause").checked) return;
  const evs = sn.events || [];
  const kinds = [...new Set(evs.map((e) => e.kind))].sort();
  const chips = $("event-kinds");
  if (chips.dataset.kinds !== kinds.join(",")) {
    chips.dataset.kinds = kinds.join(",");
    chips.replaceChildren(...kinds.map((k) => {
      const c = h("span", { class: "chip" + (kindsOn.has(k) ? " on" : ""), "data-kind": k, role: "button", tabindex: 0 }, k);
      c.addEventListener("click", () => { kindsOn.has(k) ? kindsOn.delete(k) : kindsOn.add(k); c.classList.toggle("on"); renderEvents(snap); });
      return c;
    }));
  }
  const q = $("event-filter").value.trim().toLowerCase();
  const shown = [];
  for (let i = evs.length - 1; i >= 0 && shown.length < 500; i--) {
    const e = evs[i];
    if (kindsOn.size && !kindsOn.has(e.kind)) continue;
    if (q && !(e.message + " " + (e.op_id || "") + " " + e.dc).toLowerCase().includes(q)) continue;
    shown.push(h("tr", { "data-seq": e.seq, "data-kind": e.kind },
      h("td", { class: "mono" }, e.seq),
      h("td", { class: "mono", title: e.time }, clock(e.time)),
      h("td", {}, e.dc),
      h("td", {}, badge(e.kind, kindClass(e))),
      h("td", {}, e.message, e.op_id ? h("span", { class: "why" }, "operation " + e.op_id) : "")));
  }
  $("events-count").textContent = evs.length ? `${shown.length} of the latest ${evs.length}` : "";
  fill($("events").tBodies[0], shown, 5, evs.length ? "no event matches the filter" : "no event yet");
}

function kindClass(e) {
  const m = e.message;
  if (e.kind === "gip") return /inactive here/.test(m) ? "warn" : "ok";
  if (/failed|unreachable| is down|refused|expired|aborted|rolled back/i.test(m)) return "bad";
  if (e.kind === "config") return "warn";
  if (e.kind === "status") return "stby";
  return "neutral";
}

// ---- liveness ----
function setLive(cls, text) {
  $("live").className = "live " + cls;
  $("live-text").textContent = text;
}
setInterval(() => {
  tickCountdown();
  if (!receivedAt) return;
  const age = Date.now() - receivedAt;
  // A long poll answers at least every 10s, even when nothing changed.
  if (age > 15000) setLive("stale", "no answer for " + Math.round(age / 1000) + "s");
}, 100);
// Relative times ("1.2s ago") move on between snapshots.
setInterval(() => { if (snap) { renderFederation(snap); renderDCs(snap); } }, 1000);

// ---- transport: long poll ----
async function loop() {
  let version = 0;
  for (;;) {
    try {
      const headers = {};
      const tok = sessionStorage.getItem(sessionKey);
      if (tok) headers.Authorization = "Bearer " + tok;
      const after = events.length ? events[events.length - 1].seq : 0;
      const url = `api/snapshot?after=${after}` + (version ? `&wait=${version}` : "");
      const r = await fetch(url, { headers, cache: "no-store" });
      if (r.status === 401 || r.status === 403) {
        const t = window.prompt("This API needs a token with the read role (vipsmart token create NAME --role read):");
        if (t) sessionStorage.setItem(sessionKey, t.trim());
        setLive("off", "needs a token");
        await sleep(1000);
        continue;
      }
      if (!r.ok) throw new Error("HTTP " + r.status);
      const sn = await r.json();
      version = sn.version;
      setLive(sn.error ? "stale" : "on", sn.error ? "daemon unreachable" : "live");
      render(sn);
    } catch (e) {
      setLive("off", "disconnected: retrying");
      version = 0;
      await sleep(1000);
    }
  }
}
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

for (const id of ["gip-filter", "event-filter"]) $(id).addEventListener("input", () => snap && render(snap));
$("event-pause").addEventListener("change", () => snap && renderEvents(snap));
loop();
