/* dlc-teach: the ipywidgets embed script (@jupyter-widgets/html-manager 1.x) typesets widget labels
 * through the MathJax 2 API, MathJax.Hub.Queue(["Typeset", MathJax.Hub, element]); this book loads MathJax 3,
 * which has no Hub, so every widget label raised "Cannot read properties of undefined (reading 'Queue')".
 * This bridges that one call to MathJax 3's typesetPromise. It installs itself as soon as MathJax 3 exists. */
(function () {
  "use strict";
  function install() {
    var mj = window.MathJax;
    if (!mj || !mj.startup || mj.Hub) return Boolean(mj && mj.Hub);
    mj.Hub = {
      Queue: function () {
        var elements = [];
        Array.prototype.forEach.call(arguments, function (job) {
          if (Array.isArray(job) && job[0] === "Typeset" && job[2]) elements.push(job[2]);
        });
        mj.startup.promise.then(function () {
          return mj.typesetPromise(elements.length ? elements : undefined);
        });
      }
    };
    return true;
  }
  if (install()) return;
  document.addEventListener("DOMContentLoaded", install);
  var tries = 0, timer = setInterval(function () {
    if (install() || ++tries > 200) clearInterval(timer);
  }, 25);
})();
