// Sortable result tables. A table that ranks (labnorm.experiments.Table with a "#" column, marked
// class "ranked": on the site a <div class="labnorm-table ranked"> around the Markdown table, in a
// notebook's HTML output the <table> itself) sorts by any column whose header a reader clicks:
// first click descending for numbers (best first), ascending for words; a second click reverses.
// A column sorts as numbers when every filled cell starts with one ("91.2 ± 0.4 (n=3)", "+1.3 ▲",
// "3/3", "1.05 ± 0.02"); cells with none ("—", "not run yet", "baseline") go last either way.
(function () {
  const NUMBER = /^\s*([+\-\u2212]?\d[\d,]*(?:\.\d+)?(?:e[+\-]?\d+)?)/i;

  function number(text) {
    const m = NUMBER.exec(text);
    return m ? parseFloat(m[1].replace(/\u2212/g, "-").replace(/,/g, "")) : null;
  }

  function filled(text) {
    return text !== "" && text !== "\u2014";
  }

  function sortBy(table, column, th) {
    const body = table.tBodies[0];
    const rows = [...body.rows];
    const texts = rows.map((r) => (r.cells[column] ? r.cells[column].innerText.trim() : ""));
    const numeric = texts.filter(filled).every((t) => number(t) !== null);
    const previous = th.getAttribute("aria-sort");
    const firstWay = numeric ? "descending" : "ascending";
    const way = previous === firstWay ? (firstWay === "ascending" ? "descending" : "ascending") : firstWay;
    const sign = way === "ascending" ? 1 : -1;
    const keyed = rows.map((row, i) => {
      const t = texts[i];
      return { row, i, key: numeric ? number(t) : t, missing: numeric ? number(t) === null : !filled(t) };
    });
    keyed.sort((a, b) => {
      if (a.missing !== b.missing) return a.missing ? 1 : -1;
      if (a.missing) return a.i - b.i;
      const c = numeric ? a.key - b.key : a.key.localeCompare(b.key, undefined, { numeric: true });
      return c !== 0 ? sign * c : a.i - b.i;
    });
    for (const other of table.querySelectorAll("thead th")) other.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", way);
    for (const k of keyed) body.appendChild(k.row);
  }

  function enable(table) {
    if (table.dataset.sortable || !table.tHead || !table.tBodies.length) return;
    table.dataset.sortable = "1";
    [...table.tHead.rows[0].cells].forEach((th, column) => {
      th.tabIndex = 0;
      th.title = "sort by this column";
      th.addEventListener("click", () => sortBy(table, column, th));
      th.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(table, column, th); }
      });
    });
  }

  function enableAll() {
    document.querySelectorAll(".labnorm-table.ranked table, table.labnorm-table.ranked").forEach(enable);
  }

  if (typeof document$ !== "undefined") document$.subscribe(enableAll);  // Material: every page view
  else if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", enableAll);
  else enableAll();
})();
