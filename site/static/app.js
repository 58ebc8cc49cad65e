// Progressive enhancement only: the ballot works without this file.
// Counts ticks, announces "已选 n/10" to screen readers, and stops the eleventh tick.
(function () {
  "use strict";
  var form = document.querySelector("form.ballot");
  if (!form) return;
  var max = parseInt(form.getAttribute("data-max"), 10);
  var boxes = form.querySelectorAll("input[name=choice]");
  var counter = form.querySelector("[data-counter]");

  function count() {
    var n = 0;
    for (var i = 0; i < boxes.length; i++) if (boxes[i].checked) n++;
    return n;
  }
  function update(refused) {
    var n = count();
    counter.textContent = refused
      ? "最多只能选择" + max + "项，已选 " + n + "/" + max
      : "已选 " + n + "/" + max;
    counter.classList.toggle("ballot__counter--full", n >= max);
    counter.classList.toggle("ballot__counter--refused", !!refused);
  }
  for (var i = 0; i < boxes.length; i++) {
    boxes[i].addEventListener("change", function (event) {
      if (event.target.checked && count() > max) {
        event.target.checked = false;
        update(true);
        return;
      }
      update(false);
    });
  }
  var sent = false;
  form.addEventListener("submit", function (event) {
    if (sent) { event.preventDefault(); return; }  // a double tap sends once
    sent = true;
    form.querySelector("button[type=submit]").setAttribute("aria-disabled", "true");
  });
  update(false);
})();
