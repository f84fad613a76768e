// Turns typedoc's rendered ```mermaid blocks into diagrams. typedoc renders
// them as highlighted code: <pre><code class="mermaid"><span>line</span><br/>…
// </code><button>Copy</button></pre>. Each becomes a <div class="mermaid">
// holding the diagram source, then mermaid (assets/mermaid.min.js, next to
// this file, loaded only when the page has a diagram) draws them.
(function () {
  'use strict';
  var blocks = document.querySelectorAll('pre > code.mermaid');
  if (blocks.length === 0) return;

  var nodes = [];
  blocks.forEach(function (code) {
    var copy = code.cloneNode(true);
    copy.querySelectorAll('br').forEach(function (br) { br.replaceWith('\n'); });
    var div = document.createElement('div');
    div.className = 'mermaid';
    div.textContent = copy.textContent;
    code.parentElement.replaceWith(div);
    nodes.push(div);
  });

  function dark() {
    var theme = document.documentElement.dataset.theme;
    if (theme === 'dark' || theme === 'light') return theme === 'dark';
    return window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches;
  }

  var script = document.createElement('script');
  // Next to this script; typedoc's <html data-base> (the site root) if it is not known.
  var here = document.currentScript ? document.currentScript.src : new URL((document.documentElement.dataset.base || './') + 'assets/', location.href).href;
  script.src = new URL('mermaid.min.js', here).href;
  script.onload = function () {
    window.mermaid.initialize({ startOnLoad: false, securityLevel: 'strict', theme: dark() ? 'dark' : 'default' });
    window.mermaid.run({ nodes: nodes }).catch(function (error) {
      console.error('mermaid:', error);
    });
  };
  document.head.appendChild(script);
})();
