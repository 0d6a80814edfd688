// The runs table: sort by a column, select runs (all shown at once), chart or compare them.
// The chart's selection goes to sessionStorage (the metrics page reads it), not the URL.
(function () {
  "use strict";
  const meta = JSON.parse(document.getElementById("runs-meta").textContent);
  const table = document.getElementById("runs"), body = table.tBodies[0];
  const picks = () => [...body.querySelectorAll("input.pick")];
  const chosen = () => picks().filter((p) => p.checked).map((p) => p.closest("tr"));

  function count() {
    document.getElementById("selected-count").textContent = `${chosen().length} selected`;
  }
  document.getElementById("select-all").addEventListener("change", (e) => {
    picks().forEach((p) => { p.checked = e.target.checked; }); count();
  });
  body.addEventListener("change", count);

  [...table.tHead.rows[0].cells].forEach((th, col) => {
    if (col === 0) return;
    th.style.cursor = "pointer";
    th.addEventListener("click", () => {
      const numeric = th.dataset.sort === "num", up = th.dataset.dir !== "asc";
      th.dataset.dir = up ? "asc" : "desc";
      const key = (tr) => tr.cells[col].textContent.trim();
      const rows = [...body.rows].sort((a, b) => {
        let x = key(a), y = key(b);
        if (numeric) {
          x = x === "" ? NaN : parseFloat(x); y = y === "" ? NaN : parseFloat(y);
          if (isNaN(x) !== isNaN(y)) return isNaN(x) ? 1 : -1;  // blanks last
          return up ? x - y : y - x;
        }
        return up ? x.localeCompare(y) : y.localeCompare(x);
      });
      rows.forEach((tr) => body.appendChild(tr));
    });
  });

  document.getElementById("chart-selected").addEventListener("click", () => {
    const runs = chosen().map((tr) => Number(tr.dataset.run));
    if (!runs.length) return;
    sessionStorage.setItem("flordb:chosen-runs:" + meta.project, JSON.stringify(runs));
    location.href = "metrics";
  });
  document.getElementById("compare-selected").addEventListener("click", () => {
    const ids = chosen().map((tr) => tr.dataset.run);
    if (ids.length < 2) return;
    location.href = "compare?" + ids.slice(0, 12).map((i) => "run=" + i).join("&");
  });
  count();
})();
