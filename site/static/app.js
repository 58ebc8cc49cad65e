// Progressive enhancement only: the ballot works without this file (the server shows a
// confirm page). With it: the bar counts ticks ("已选 n/10") for sight and screen readers,
// says why an eleventh tick is undone, recounts when the browser restores ticks (back,
// bfcache), asks for confirmation in a sheet, and counts down to the closing time.
(function () {
  "use strict";
  var form = document.querySelector("form.ballot");
  if (!form) return;
  var max = parseInt(form.getAttribute("data-max"), 10);
  var boxes = form.querySelectorAll("input[name=choice]");
  var counter = form.querySelector("[data-counter]");

  function chosen() {
    var out = [];
    for (var i = 0; i < boxes.length; i++) if (boxes[i].checked) out.push(boxes[i]);
    return out;
  }
  function update(refused) {
    var n = chosen().length;
    counter.textContent = refused
      ? "最多只能选择" + max + "项，这一项没有选上。如要换选，请先取消一项。（已选 " + n + "/" + max + "）"
      : "已选 " + n + "/" + max;
    counter.classList.toggle("ballot__counter--full", n >= max);
    counter.classList.toggle("ballot__counter--refused", !!refused);
  }
  for (var i = 0; i < boxes.length; i++) {
    boxes[i].addEventListener("change", function (event) {
      if (event.target.checked && chosen().length > max) {
        event.target.checked = false;
        update(true);
        return;
      }
      update(false);
    });
  }
  // The browser restores ticks after this script ran (going back, bfcache): count again.
  window.addEventListener("pageshow", function () { update(false); });

  var sheet = document.querySelector("[data-confirm-sheet]");
  var canSheet = sheet && typeof sheet.showModal === "function";
  var sent = false;
  function send() {
    if (sent) return;  // a double tap sends once
    sent = true;
    form.querySelector("button[type=submit]").setAttribute("aria-disabled", "true");
    form.submit();  // without the button's step=review: this stores the ballot
  }
  form.addEventListener("submit", function (event) {
    if (sent) { event.preventDefault(); return; }
    if (!canSheet) {  // the server's confirm page
      sent = true;
      return;
    }
    event.preventDefault();
    var picked = chosen();
    if (!picked.length) {
      counter.textContent = "还没有选择任何项目，请先勾选。";
      counter.classList.add("ballot__counter--refused");
      return;
    }
    var list = sheet.querySelector("[data-sheet-list]");
    list.textContent = "";
    for (var k = 0; k < picked.length; k++) {
      var item = document.createElement("li");
      var name = form.querySelector("label[for='" + picked[k].id + "'] .choice__name");
      item.textContent = name ? name.textContent : picked[k].value;
      list.appendChild(item);
    }
    sheet.querySelector("[data-sheet-count]").textContent = "您选择了 " + picked.length + " 项：";
    sheet.showModal();
  });
  if (canSheet) {
    sheet.querySelector("[data-sheet-confirm]").addEventListener("click", function () {
      sheet.close();
      send();
    });
    sheet.querySelector("[data-sheet-back]").addEventListener("click", function () { sheet.close(); });
  }

  // A countdown from this phone's clock; the server's clock decides, as the page says.
  var countdown = document.querySelector("[data-countdown]");
  var closes = countdown ? Date.parse(countdown.getAttribute("data-countdown")) : NaN;
  function tick() {
    var left = Math.floor((closes - Date.now()) / 60000);
    if (left < 0) { countdown.textContent = "（已到截止时间）"; return; }
    var days = Math.floor(left / 1440), hours = Math.floor(left % 1440 / 60), minutes = left % 60;
    countdown.textContent = "（还剩 " + (days ? days + " 天 " : "") + (days || hours ? hours + " 小时 " : "") +
      minutes + " 分钟）";
  }
  if (!isNaN(closes)) { tick(); setInterval(tick, 30000); }
  update(false);
})();
