// The desk's only script (served from /static: the Content-Security-Policy allows no inline script).
// 1. ID numbers and phone numbers checked as typed, by the server's own functions (POST /check runs
//    archivectl.idcheck), so there is one implementation of each check.
// 2. Scans dropped on a scan row join the files of that row's file input: the form then sends them
//    as if they had been picked, so the server knows one way only.
"use strict";
(function () {
  var csrf = document.querySelector("input[name=csrf]");
  if (!csrf) { return; }
  function check(input) {
    var kind = input.getAttribute("data-check");
    var shown = document.getElementById("p-" + input.name);
    if (!shown) { return; }
    if (kind === "id") {
      var type = document.getElementById("f-" + input.name.replace(/id_number$/, "id_type"));
      if (type && type.value && type.value !== "resident-id") { shown.textContent = ""; return; }
    }
    if (!input.value.trim()) { shown.textContent = ""; return; }
    var body = new URLSearchParams({ kind: kind, value: input.value, csrf: csrf.value });
    fetch("/check", { method: "POST", body: body, credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (answer) { shown.textContent = answer.problem || ""; })
      .catch(function () { shown.textContent = ""; });
  }
  document.querySelectorAll("input[data-check]").forEach(function (input) {
    input.addEventListener("change", function () { check(input); });
    input.addEventListener("blur", function () { check(input); });
  });

  function names(input, hint) {
    var picked = Array.prototype.map.call(input.files, function (f) { return f.name; });
    hint.textContent = picked.length ? picked.join(", ") : hint.getAttribute("data-empty");
  }
  var zones = document.querySelectorAll(".drop-zone");
  zones.forEach(function (zone) {
    var input = document.getElementById(zone.getAttribute("data-input"));
    var hint = zone.querySelector(".drop-hint");
    if (!input || !hint) { return; }
    input.addEventListener("change", function () { names(input, hint); });
    zone.addEventListener("dragover", function (event) {
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragleave", function () { zone.classList.remove("dragging"); });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      zone.classList.remove("dragging");
      var all = new DataTransfer();
      Array.prototype.forEach.call(input.files, function (f) { all.items.add(f); });
      Array.prototype.forEach.call(event.dataTransfer.files, function (f) { all.items.add(f); });
      input.files = all.files;
      names(input, hint);
    });
  });
  if (zones.length) {
    // a file dropped beside a row must not replace the page (and the form typed so far) with the file
    window.addEventListener("dragover", function (event) { event.preventDefault(); });
    window.addEventListener("drop", function (event) { event.preventDefault(); });
  }
})();
