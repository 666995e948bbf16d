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
        Plotly.newPlot(target, spec.data, spec.layout, { responsive: true, displaylogo: false });
      }
    });
  }

  if (typeof document$ !== "undefined") document$.subscribe(drawAll);  // Material: every page view
  else if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawAll);
  else drawAll();
})();
