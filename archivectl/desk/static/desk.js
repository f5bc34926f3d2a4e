// The desk's only script: ID numbers and phone numbers checked as typed, by the server's own functions
// (POST /check runs archivectl.idcheck), so there is one implementation of each check.
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
})();
