// The what-if editor: every change of a value asks the server to measure the edited
// matrix on the champion's holdout, and shows the answer. No library, nothing fetched
// but this server's /ui/matrix/what-if.
(function () {
  "use strict";
  const form = document.getElementById("matrix-form");
  if (!form) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const lang = document.documentElement.lang;
  const error = document.getElementById("whatif-error");
  const percent = (v, digits) =>
    (100 * v).toLocaleString(lang === "ru" ? "ru-RU" : "en-US",
      { minimumFractionDigits: digits, maximumFractionDigits: digits }) + "\u00a0%";
  const number = (v, digits) =>
    Number.isFinite(v) ? v.toLocaleString(lang === "ru" ? "ru-RU" : "en-US",
      { minimumFractionDigits: digits, maximumFractionDigits: digits }) : "–";
  let pending = null;
  let sequence = 0;

  function edit() {
    const rules = {};
    form.querySelectorAll("input.points, input.cap").forEach((input) => {
      const [kind, name] = input.name.split("::");
      rules[name] = rules[name] || {};
      rules[name][kind] = input.value === "" ? null : input.value;
      input.classList.toggle("changed", input.value !== input.dataset.initial);
    });
    const threshold = document.getElementById("mql_threshold");
    threshold.classList.toggle("changed", threshold.value !== threshold.dataset.initial);
    return { mql_threshold: threshold.value, rules: rules };
  }

  async function measure() {
    const mine = ++sequence;
    const response = await fetch("/ui/matrix/what-if", {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify(edit()),
    });
    const body = await response.json();
    if (mine !== sequence) return; // a newer edit is on its way
    if (!response.ok) {
      error.textContent = body.detail || response.statusText;
      error.hidden = false;
      return;
    }
    error.hidden = true;
    const share = document.getElementById("edited-share");
    share.textContent = percent(body.mql_share, 2);
    share.dataset.value = String(body.mql_share);
    document.getElementById("edited-mql").textContent = number(body.mql, 0);
    document.getElementById("edited-precision").textContent = percent(body.precision, 1);
    document.getElementById("edited-recall").textContent = percent(body.recall, 1);
    document.getElementById("edited-auc").textContent = number(body.roc_auc, 3);
    form.dataset.measured = String(mine);
  }

  form.addEventListener("input", () => {
    clearTimeout(pending);
    pending = setTimeout(measure, 150);
  });
  document.getElementById("reset").addEventListener("click", () => {
    form.querySelectorAll("input.num").forEach((input) => { input.value = input.dataset.initial; });
    measure();
  });
})();
