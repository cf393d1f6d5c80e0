// dl4img serve: hover values, series toggles, log scale and live refresh.
// The pages work without it; it reads only the JSON API.
"use strict";

(function () {
  const body = document.body;

  async function getJSON(url) {
    const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error(url + ": " + r.status);
    return r.json();
  }

  function fmt(v) {
    if (v === null || v === undefined) return "NaN";
    if (v !== 0 && (Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3)) return v.toExponential(3);
    return String(Number(v.toPrecision(5)));
  }

  function duration(sec) {
    const d = Math.round(sec);
    const pad = (n) => String(n).padStart(2, "0");
    if (d < 60) return d + "s";
    if (d < 3600) return Math.floor(d / 60) + "m " + pad(d % 60) + "s";
    return Math.floor(d / 3600) + "h " + pad(Math.floor((d % 3600) / 60)) + "m";
  }

  function setState(el, state) {
    if (!el) return;
    el.textContent = state;
    el.className = el.className.replace(/\bst-\w+/, "st-" + state);
  }

  function setProgress(cell, p, withTask) {
    if (!cell) return;
    cell.textContent = "";
    if (!p || !p.total) {
      cell.textContent = withTask ? "" : "-";
      return;
    }
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = Math.round((100 * p.done) / p.total);
    const label = document.createElement("span");
    label.className = "plabel";
    label.textContent = (withTask ? p.task + " " : "") + p.label + " " + p.done + "/" + p.total;
    cell.append(bar, " ", label);
  }

  // ---- jobs list: refresh rows while jobs run ----
  function jobsPage() {
    if (body.dataset.refresh !== "1") return;
    const timer = setInterval(async () => {
      let list;
      try {
        list = await getJSON("/api/jobs" + location.search);
      } catch (e) {
        return; // server restarting: try again next time
      }
      const rows = document.querySelectorAll("tr[data-job]");
      if (rows.length !== list.jobs.length) {
        location.reload();
        return;
      }
      for (const j of list.jobs) {
        const row = document.querySelector('tr[data-job="' + j.id + '"]');
        if (!row) {
          location.reload();
          return;
        }
        setState(row.querySelector('[data-f="state"]'), j.state);
        row.querySelector('[data-f="duration"]').textContent = duration(j.duration_s);
        setProgress(row.querySelector('[data-f="progress"]'), j.progress, true);
        row.querySelector('[data-f="headline"]').textContent = j.headline ? j.headline.name + " " + fmt(j.headline.best) : "-";
      }
      if (!list.running) clearInterval(timer);
    }, 3000);
  }

  // ---- job page: live task states; curves reload when metrics grow ----
  function jobPage() {
    if (body.dataset.active !== "1") return;
    const id = body.dataset.job;
    let seen = null;
    const timer = setInterval(async () => {
      let d;
      try {
        d = await getJSON("/api/jobs/" + id);
      } catch (e) {
        return;
      }
      setState(document.getElementById("jobstate"), d.state);
      document.getElementById("jobdur").textContent = duration(d.duration_s);
      for (const t of d.tasks) {
        const row = document.querySelector('tr[data-task="' + t.id + '"]');
        if (row) {
          setState(row.querySelector('[data-f="state"]'), t.state);
          row.querySelector('[data-f="attempt"]').textContent = t.attempt + "/" + t.max_attempts;
          row.querySelector('[data-f="backend"]').textContent = t.backend || "-";
          setProgress(row.querySelector('[data-f="progress"]'), t.progress, false);
          row.querySelector('[data-f="started"]').textContent = t.started_at || "-";
          row.querySelector('[data-f="finished"]').textContent = t.finished_at || "-";
          row.querySelector('[data-f="duration"]').textContent = t.started_at ? duration(t.duration_s) : "-";
          row.querySelector('[data-f="error"]').textContent = t.error || "";
        }
        const node = document.querySelector('g.node[data-task="' + t.id + '"]');
        if (node) {
          node.setAttribute("class", "node st-" + t.state);
          node.querySelector(".nstate").textContent = t.state;
        }
      }
      // New points, artifacts or the end of the job: redraw the page (the
      // curves are drawn on the server).
      const sig = d.metrics.reduce((n, m) => n + m.count, 0) + "/" + d.artifacts.length + "/" + d.state;
      if (seen !== null && sig !== seen) location.reload();
      seen = sig;
      if (d.state !== "queued" && d.state !== "running") clearInterval(timer);
    }, 4000);
  }

  // ---- charts: toggles, log scale, hover values ----
  const cache = new Map(); // "job/metric" -> Promise of series list

  function seriesOf(job, metric) {
    const k = job + "/" + metric;
    if (!cache.has(k)) {
      cache.set(k, getJSON("/api/jobs/" + job + "/metrics?name=" + encodeURIComponent(metric)).then((r) => r.series));
    }
    return cache.get(k);
  }

  // nearest returns the point of pts (sorted by x) closest to x.
  function nearest(pts, x) {
    let lo = 0, hi = pts.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (pts[mid][0] < x) lo = mid; else hi = mid;
    }
    return Math.abs(pts[lo][0] - x) <= Math.abs(pts[hi][0] - x) ? pts[lo] : pts[hi];
  }

  function setupChart(fig) {
    const tip = fig.querySelector(".tip");
    const box = fig.querySelector(".plotbox");
    for (const key of fig.querySelectorAll(".legend .key")) {
      key.addEventListener("click", () => {
        const off = key.classList.toggle("off");
        for (const p of fig.querySelectorAll('path.line[data-key="' + CSS.escape(key.dataset.key) + '"]')) {
          p.classList.toggle("off", off);
        }
      });
    }
    const logToggle = fig.querySelector(".logtoggle");
    if (logToggle) {
      logToggle.addEventListener("change", () => {
        fig.querySelector(".v.lin").hidden = logToggle.checked;
        fig.querySelector(".v.log").hidden = !logToggle.checked;
      });
    }
    for (const svg of fig.querySelectorAll("svg.plot")) {
      const a = svg.dataset;
      const geo = { x0: +a.x0, x1: +a.x1, l: +a.l, w: +a.w };
      const cursor = svg.querySelector(".cursor");
      svg.addEventListener("mouseleave", () => {
        tip.hidden = true;
        cursor.setAttribute("x1", -10);
        cursor.setAttribute("x2", -10);
      });
      svg.addEventListener("mousemove", async (ev) => {
        const pt = svg.createSVGPoint();
        pt.x = ev.clientX;
        pt.y = ev.clientY;
        const p = pt.matrixTransform(svg.getScreenCTM().inverse());
        if (p.x < geo.l || p.x > geo.l + geo.w) return;
        const x = geo.x0 + ((p.x - geo.l) / geo.w) * (geo.x1 - geo.x0);
        const lines = [];
        let snap = null;
        for (const path of svg.querySelectorAll("path.line:not(.off)")) {
          const d = path.dataset;
          let list;
          try {
            list = await seriesOf(d.job, d.metric);
          } catch (e) {
            continue;
          }
          const s = list.find((s) => s.task === d.task);
          if (!s || !s.points.length) continue;
          const q = nearest(s.points, x);
          if (snap === null || Math.abs(q[0] - x) < Math.abs(snap - x)) snap = q[0];
          lines.push([path.getAttribute("class"), fig.querySelector('.key[data-key="' + CSS.escape(d.key) + '"]').textContent, q]);
        }
        if (!lines.length) return;
        const px = geo.l + ((snap - geo.x0) / (geo.x1 - geo.x0)) * geo.w;
        cursor.setAttribute("x1", px);
        cursor.setAttribute("x2", px);
        tip.textContent = "";
        const head = document.createElement("div");
        head.className = "thead";
        head.textContent = fig.querySelector("figcaption .ctitle").textContent + " at " + fmt(snap);
        tip.append(head);
        for (const [cls, label, q] of lines) {
          const row = document.createElement("div");
          const sw = document.createElement("span");
          sw.className = "sw " + cls.replace("line", "").trim();
          row.append(sw, label + ": " + fmt(q[1]) + (q[0] !== snap ? " (at " + fmt(q[0]) + ")" : ""));
          tip.append(row);
        }
        const rect = box.getBoundingClientRect();
        const left = ev.clientX - rect.left + 14;
        tip.style.left = Math.min(left, rect.width - 220) + "px";
        tip.style.top = ev.clientY - rect.top + 10 + "px";
        tip.hidden = false;
      });
    }
  }

  // ---- sweep page: redrawn (on the server) while its points run ----
  function sweepPage() {
    if (body.dataset.active !== "1") return;
    let seen = null;
    const timer = setInterval(async () => {
      let r;
      try {
        r = await getJSON("/api/sweeps/" + body.dataset.sweep);
      } catch (e) {
        return;
      }
      const sig = r.points.map((p) => p.job + ":" + p.state + ":" + p.best + ":" + p.epochs).join(",");
      if (seen !== null && sig !== seen) location.reload();
      seen = sig;
      if (!r.points.some((p) => p.state === "queued" || p.state === "running")) clearInterval(timer);
    }, 4000);
  }

  // Parameter charts (.pchart) are static: their dots carry titles and links.
  document.querySelectorAll("figure.chart:not(.pchart)").forEach(setupChart);
  if (body.dataset.page === "jobs") jobsPage();
  if (body.dataset.page === "job") jobPage();
  if (body.dataset.page === "sweep") sweepPage();
})();
