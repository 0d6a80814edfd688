// The metrics page: interactive charts of any logged name over a loop (uPlot, served by flordb).
// Data come from POST /api/series (read-only); the chosen runs live in sessionStorage, not in
// the URL, so any number of runs can be chosen.
(function () {
  "use strict";
  const choices = JSON.parse(document.getElementById("choices").textContent);
  const $ = (id) => document.getElementById(id);
  const KEY = "flordb:chosen-runs:" + choices.project;
  // Runs are named by id everywhere (a list kept from before ids named them is dropped).
  const kept = (JSON.parse(sessionStorage.getItem(KEY) || "null") || []).filter(Number.isInteger);
  const asked = new URLSearchParams(location.search).getAll("run").map(Number).filter(Number.isInteger);
  let chosen = new Set(asked.length ? asked : kept.length ? kept : choices.runs.map((r) => r.run_id));
  let data = null, plot = null, latest = 0;
  const WHOLE = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5,
                 1e6, 2e6, 5e6, 1e7];

  function option(select, value, text, selected) {
    const o = document.createElement("option");
    o.value = value; o.textContent = text; o.selected = selected; select.appendChild(o);
  }
  const params = new URLSearchParams(location.search);
  choices.names.forEach((n) => option($("name"), n, n, n === (params.get("name") || choices.names[0])));
  (choices.args || []).forEach((a) => option($("group"), a, a, a === params.get("group")));

  function fillLoops() {
    $("x").textContent = "";
    option($("x"), "", "innermost", true);
    (choices.loops[$("name").value] || []).forEach((l) => option($("x"), l, l, l === params.get("x")));
  }

  function fillRuns() {
    const box = $("runs"), needle = $("filter").value.toLowerCase();
    box.textContent = "";
    choices.runs.forEach((r) => {
      if (needle && !r.label.toLowerCase().includes(needle) && !r.tstamp.includes(needle)) return;
      const label = document.createElement("label"), input = document.createElement("input");
      input.type = "checkbox"; input.checked = chosen.has(r.run_id); input.value = r.run_id;
      input.addEventListener("change", () => {
        input.checked ? chosen.add(r.run_id) : chosen.delete(r.run_id); save(); load();
      });
      label.appendChild(input); label.appendChild(document.createTextNode(r.label));
      box.appendChild(label);
    });
  }
  function save() { sessionStorage.setItem(KEY, JSON.stringify([...chosen])); }

  async function load() {
    const width = Math.max(400, $("chart").parentElement.clientWidth - 280);
    const body = {name: $("name").value, x: $("x").value || null, runs: [...chosen],
                  group: $("group").value || null, buckets: width};
    $("png").href = "chart.png?" + new URLSearchParams({name: body.name, x: body.x || ""});
    const t0 = performance.now(), mine = ++latest;  // an answer to an older request is dropped
    const resp = await fetch("api/series", {method: "POST", headers: {"Content-Type": "application/json"},
                                            body: JSON.stringify(body)});
    const answer = resp.ok ? await resp.json() : await resp.text();
    if (mine !== latest) return;
    if (!resp.ok) { $("status").textContent = answer; return; }
    data = answer;
    draw();
    $("status").textContent = `${data.runs.length} runs, drawn in ${Math.round(performance.now() - t0)} ms`;
    document.body.dataset.drawn = String(Date.now());
  }

  function ema(ys, alpha) {
    if (!alpha) return ys;
    const out = new Array(ys.length);
    let last = null;
    for (let i = 0; i < ys.length; i++) {
      const y = ys[i];
      if (y === null) { out[i] = null; continue; }
      last = last === null ? y : alpha * last + (1 - alpha) * y;
      out[i] = last;
    }
    return out;
  }

  function palette(n) {
    return Array.from({length: n}, (_, i) => `hsl(${Math.round(360 * i / Math.max(1, n))} 65% 45%)`);
  }

  // Align series on the union of their x values (uPlot draws one x array).
  function aligned(lines) {
    const xs = [...new Set(lines.flatMap((l) => l.x))].sort((a, b) => a - b);
    const at = new Map(xs.map((x, i) => [x, i]));
    const cols = lines.map((l) => {
      const col = new Array(xs.length).fill(null);
      l.x.forEach((x, i) => { col[at.get(x)] = l.y[i]; });
      return col;
    });
    return [xs, cols];
  }

  function draw() {
    const alpha = parseFloat($("ema").value);
    $("ema-value").textContent = alpha.toFixed(2);
    const log = $("log").checked;
    const grouped = data.groups !== null;
    const lines = [], series = [{label: data.x_label}], bands = [];
    if (grouped) {
      const names = Object.keys(data.groups), colors = palette(names.length);
      names.forEach((g, k) => {
        const s = data.groups[g];
        lines.push({x: s.x, y: ema(s.mean, alpha), info: {label: `${g} (mean of up to ${Math.max(...s.n)} runs)`}});
        lines.push({x: s.x, y: s.hi, info: null}); lines.push({x: s.x, y: s.lo, info: null});
        const i = series.length;
        series.push({label: g, stroke: colors[k], width: 2});
        series.push({label: g + " max", stroke: "transparent", width: 0});
        series.push({label: g + " min", stroke: "transparent", width: 0});
        bands.push({series: [i + 1, i + 2], fill: colors[k].replace("45%)", "45% / 0.18)")});
      });
    } else {
      const colors = palette(data.runs.length);
      data.runs.forEach((r, k) => {
        lines.push({x: r.x, y: ema(r.y, alpha), info: r});
        series.push({label: r.label, stroke: colors[k], width: data.runs.length > 20 ? 1 : 1.6,
                     dash: r.replayed ? [6, 4] : undefined});
      });
    }
    const [xs, cols] = aligned(lines);
    if (log) cols.forEach((c) => c.forEach((v, i) => { if (v !== null && v <= 0) c[i] = null; }));
    const opts = {
      width: Math.max(400, $("chart").parentElement.clientWidth - 280), height: 460,
      series, bands, legend: {show: false},
      scales: {x: {time: false}, y: {distr: log ? 3 : 1}},
      // Loop counters are whole: no tick at epoch 1.5.
      axes: [{label: data.x_label, incrs: xs.every(Number.isInteger) ? WHOLE : undefined},
             {label: data.name}],
      cursor: {focus: {prox: 24}, drag: {x: true, y: false}},
      focus: {alpha: 0.25},
      hooks: {setSeries: [tooltipFor], setCursor: [moveTooltip]},
    };
    if (plot) plot.destroy();
    $("chart").textContent = "";
    plot = new uPlot(opts, [xs, ...cols], $("chart"));
    plot.flor = lines;
    window.florChart = {plot, data};  // for scripts and tests driving the page
  }

  let focused = null;
  function tooltipFor(u, idx) { focused = idx; }
  function moveTooltip(u) {
    const tip = $("tooltip"), i = u.cursor.idx;
    const line = focused !== null && focused > 0 ? u.flor[focused - 1] : null;
    if (i === null || i === undefined || !line || !line.info) { tip.hidden = true; return; }
    const y = u.data[focused][i];
    if (y === null || y === undefined) { tip.hidden = true; return; }
    const info = line.info;
    const args = info.args ? Object.entries(info.args).map(([k, v]) => `${k}=${v}`).join(", ") : "";
    tip.textContent = `${info.label}${info.tstamp ? "\n" + info.tstamp : ""}${args ? "\n" + args : ""}` +
      `${info.replayed ? "\n(back-filled by replay)" : ""}\n${data.x_label.split(" ")[0]} ${u.data[0][i]}: ${y}`;
    tip.dataset.run = info.run_id === undefined ? "" : String(info.run_id);
    const rect = u.over.getBoundingClientRect();
    tip.style.left = (rect.left + u.cursor.left + 14) + "px";
    tip.style.top = (rect.top + u.cursor.top + 14) + "px";
    tip.hidden = false;
  }

  $("name").addEventListener("change", () => { fillLoops(); load(); });
  $("x").addEventListener("change", load);
  $("group").addEventListener("change", load);
  $("ema").addEventListener("input", () => data && draw());
  $("log").addEventListener("change", () => data && draw());
  $("filter").addEventListener("input", fillRuns);
  $("all").addEventListener("change", () => {
    document.querySelectorAll("#runs input").forEach((input) => {
      input.checked = $("all").checked;
      input.checked ? chosen.add(Number(input.value)) : chosen.delete(Number(input.value));
    });
    save(); load();
  });
  // Live: fetch again every 3 s while a run records (the store is read, never locked).
  let timer = null;
  $("live").addEventListener("change", () => {
    clearInterval(timer);
    timer = $("live").checked ? setInterval(load, 3000) : null;
  });
  fillLoops(); fillRuns();
  if (choices.names.length) load(); else $("status").textContent = "No numeric value logged yet.";
})();
