// A page that comes back with an error summary moves focus to it, so a screen reader reads the
// problems first (the summary's links then move focus to each field).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var summary = document.querySelector(".error-summary");
  if (summary) { summary.focus(); }
});
