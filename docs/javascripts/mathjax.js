// MathJax for the formulas that pymdownx.arithmatex (generic mode) wraps in
// \( \) and \[ \] inside elements of class "arithmatex".
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
  chtml: {
    displayAlign: "left",
    displayIndent: "1em",
  },
};

// Material's instant navigation replaces the page without a reload.
if (typeof document$ !== "undefined") {
  document$.subscribe(() => {
    // The first page is typeset by MathJax's own startup.
    if (!(MathJax.startup && MathJax.startup.output)) return;
    MathJax.startup.output.clearCache();
    MathJax.typesetClear();
    MathJax.texReset();
    MathJax.typesetPromise();
  });
}
