// MathJax 3 for two kinds of page.
//  - Markdown pages and API docstrings: pymdownx.arithmatex wraps math in `.arithmatex`
//    elements with \( \) and \[ \] delimiters.
//  - Notebook pages (mkdocs-jupyter via nbconvert): markdown cells keep their raw $…$ and
//    $$…$$, inside `.jp-RenderedMarkdown`. Material's usual recipe scans only `.arithmatex`
//    and misses these: its `ignoreHtmlClass: ".*|"` also matches elements with *no* class, so
//    the <p> inside a notebook's markdown cell is ignored again even below a processed class.
//    Here nothing is ignored by default except cell outputs; <pre>/<code> (code cells, printed
//    text) are skipped by MathJax anyway, so a `$` in code stays as it is. On plain pages a
//    literal dollar sign must be written `\$`.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: "tex2jax_ignore|jp-OutputArea",
    processHtmlClass: "arithmatex|jp-RenderedMarkdown",
  },
};

// Material's instant navigation swaps page content without a reload: typeset again.
if (typeof document$ !== "undefined") {
  document$.subscribe(() => {
    if (window.MathJax && MathJax.typesetPromise) {
      MathJax.startup.output.clearCache();
      MathJax.typesetClear();
      MathJax.texReset();
      MathJax.typesetPromise();
    }
  });
}
