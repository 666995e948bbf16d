// MathJax 3 for two kinds of page.
//  - Markdown pages and API docstrings: pymdownx.arithmatex wraps math in `.arithmatex`
//    elements with \( \) and \[ \] delimiters.
//  - Notebook pages (mkdocs-jupyter via nbconvert): markdown cells keep their raw $…$ and
//    $$…$$, inside `.jp-RenderedMarkdown`. Material's usual recipe scans only `.arithmatex`
//    and misses these, so both classes and both delimiter styles are enabled here.
// Code cells and outputs are not in the processed classes: a `$` in code stays as it is.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
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
