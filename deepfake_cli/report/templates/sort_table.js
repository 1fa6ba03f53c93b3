// Sort the table by the clicked column (numbers highest first, text A to Z); a second click
// reverses. Cells carry their sort keys in data-value, so numbers sort as numbers and missing
// scores sort below every score.
document.querySelectorAll("th[data-sort]").forEach(function (heading, column) {
  heading.addEventListener("click", function () {
    var body = heading.closest("table").tBodies[0];
    var numeric = heading.dataset.sort === "number";
    var descending = heading.dataset.order ? heading.dataset.order !== "desc" : numeric;
    heading.dataset.order = descending ? "desc" : "asc";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[column].dataset.value, y = b.cells[column].dataset.value;
      if (numeric) { x = x === "" ? -1 : parseFloat(x); y = y === "" ? -1 : parseFloat(y); }
      var order = x < y ? -1 : x > y ? 1 : 0;
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
