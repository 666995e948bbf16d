// Interactive figures (labnorm.experiments.plots.Plot): each <div class="labnorm-plot"> holds its
// plotly.js figure as JSON in a <script type="application/json">. This script loads plotly.js from
// the site itself (assets/plotly/, copied from node_modules by scripts/mkdocs_hooks.py; no CDN), only
// on a page that has such a figure, and draws each one. Works the same for a notebook's saved output.
(function () {
  const here = document.currentScript && document.currentScript.src;
  const PLOTLY = here ? here.replace(/javascripts\/figures\.js(\?.*)?$/, "assets/plotly/plotly.min.js") : null;
  let loading = null;

  function plotly() {
    if (window.Plotly) return Promise.resolve(window.Plotly);
    if (!loading) {
      loading = new Promise((resolve, reject) => {
        const s = document.createElement("script");
        s.src = PLOTLY;
        s.onload = () => resolve(window.Plotly);
        s.onerror = () => reject(new Error("plotly.js did not load from " + PLOTLY));
        document.head.appendChild(s);
      });
    }
    return loading;
  }

  // A narrow screen (a phone): the title wrapped to the width, smaller type, colour bar and legend below.
  function fit(spec, width) {
    if (width >= 640) return;
    const layout = spec.layout;
    const perLine = Math.max(20, Math.floor(width / 8));
    if (layout.title && layout.title.text) {
      const lines = [];
      for (const word of layout.title.text.split(" ")) {
        const last = lines.length - 1;
        if (last >= 0 && (lines[last] + " " + word).length <= perLine) lines[last] += " " + word;
        else lines.push(word);
      }
      layout.title.text = lines.join("<br>");
      layout.title.font = { size: 12 };
      layout.margin = Object.assign({}, layout.margin, { t: 24 + 16 * lines.length, l: 40, r: 10 });
    }
    layout.font = Object.assign({}, layout.font, { size: 11 });
    layout.legend = Object.assign({}, layout.legend, { orientation: "h", y: -0.25 });
    for (const trace of spec.data) {
      if (trace.colorbar) {
        Object.assign(trace.colorbar, { orientation: "h", y: -0.3, thickness: 12, len: 1, lenmode: "fraction" });
        trace.colorbar.title = Object.assign({}, trace.colorbar.title, { side: "top" });
      }
    }
  }

  function drawAll() {
    const boxes = [...document.querySelectorAll(".labnorm-plot:not([data-drawn])")];
    if (!boxes.length || !PLOTLY) return;
    plotly().then((Plotly) => {
      for (const box of boxes) {
        const spec = JSON.parse(box.querySelector("script.labnorm-plot-spec").textContent);
        const fallback = box.querySelector(".labnorm-plot-fallback");
        if (fallback) fallback.remove();
        box.dataset.drawn = "1";
        const target = document.createElement("div");
        box.appendChild(target);
        fit(spec, box.clientWidth);
        Plotly.newPlot(target, spec.data, spec.layout, { responsive: true, displaylogo: false });
      }
    });
  }

  if (typeof document$ !== "undefined") document$.subscribe(drawAll);  // Material: every page view
  else if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawAll);
  else drawAll();
})();
