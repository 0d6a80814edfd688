// Args against metrics: one point per run (uPlot in scatter mode), hover names the run.
(function () {
  "use strict";
  const choices = JSON.parse(document.getElementById("choices").textContent);
  const $ = (id) => document.getElementById(id);
  let plot = null, latest = 0;
  const fill = (select, values) => values.forEach((v) => {
    const o = document.createElement("option"); o.value = v; o.textContent = v; select.appendChild(o);
  });
  fill($("x"), choices.args); fill($("name"), choices.names);

  async function load() {
    const body = {x: $("x").value, name: $("name").value, summary: $("summary").value, q: $("q").value};
    const mine = ++latest;  // an answer to an older request is dropped
    const resp = await fetch("api/scatter", {method: "POST", headers: {"Content-Type": "application/json"},
                                             body: JSON.stringify(body)});
    const answer = resp.ok ? await resp.json() : await resp.text();
    if (mine !== latest) return;
    if (!resp.ok) { $("status").textContent = answer; return; }
    const data = answer;
    const pts = data.points;
    const opts = {
      mode: 2, width: Math.max(400, $("chart").parentElement.clientWidth - 40), height: 460,
      legend: {show: false}, scales: {x: {time: false}},
      series: [{}, {label: data.y, stroke: "hsl(215 65% 45%)", fill: "hsl(215 65% 45% / 0.5)",
                    paths: () => null, points: {show: true, size: 8}}],
      axes: [{label: data.x, values: data.categories ? (u, ticks) => ticks.map(
                (t) => Number.isInteger(t) && data.categories[t] !== undefined ? data.categories[t] : "") : undefined},
             {label: data.y}],
      hooks: {setCursor: [(u) => {
        const tip = $("tooltip"), i = nearest(u, pts);
        if (i === null) { tip.hidden = true; return; }
        const p = pts[i], rect = u.over.getBoundingClientRect();
        tip.textContent = `run ${p.run_id} (${p.tstamp})\n${data.x} = ${data.categories ? data.categories[p.x] : p.x}\n${data.y} = ${p.y}`;
        tip.dataset.run = String(p.run_id);
        tip.style.left = (rect.left + u.cursor.left + 14) + "px";
        tip.style.top = (rect.top + u.cursor.top + 14) + "px";
        tip.hidden = false;
      }]},
    };
    if (plot) plot.destroy();
    $("chart").textContent = "";
    plot = new uPlot(opts, [null, [pts.map((p) => p.x), pts.map((p) => p.y)]], $("chart"));
    window.florScatter = {plot, data};
    $("status").textContent = `${pts.length} runs`;
    document.body.dataset.drawn = String(Date.now());
  }
  // The point under the cursor: the nearest within 12 pixels.
  function nearest(u, pts) {
    const cx = u.cursor.left, cy = u.cursor.top;
    if (cx === undefined || cx < 0) return null;
    let best = null, dist = 144;
    pts.forEach((p, i) => {
      const dx = u.valToPos(p.x, "x") - cx, dy = u.valToPos(p.y, "y") - cy;
      if (dx * dx + dy * dy < dist) { dist = dx * dx + dy * dy; best = i; }
    });
    return best;
  }

  ["x", "name", "summary"].forEach((id) => $(id).addEventListener("change", load));
  $("q").addEventListener("change", load);
  if (choices.args.length && choices.names.length) load();
  else $("status").textContent = "Needs runs with args and numeric values.";
})();
