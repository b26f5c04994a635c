/* tally-audit report: sortable, filterable, paginated sheet table.
 * The rows live in data/sheets-NNN.js files, each calling tallyReport.receive(rows): script tags load from
 * file:// where fetch() of JSON is blocked. Chunks load one after another; the first renders at once. */
(function () {
  "use strict";
  var table = document.getElementById("sheets-table");
  var state = { rows: [], view: [], sortKey: null, sortDir: 1, page: 0, pending: [] };
  window.tallyReport = { receive: function (rows) { state.rows = state.rows.concat(rows); refresh(false); loadNext(); } };
  if (!table) { return; }
  var columns = JSON.parse(table.dataset.columns);
  var pageSize = parseInt(table.dataset.pageSize, 10) || 50;
  var slugIndex = columns.length;
  var $ = function (id) { return document.getElementById(id); };
  var selects = Array.prototype.slice.call(document.querySelectorAll("select[data-filter]"));
  var controls = [$("filter-text"), $("filter-flagged")].concat(selects);
  var colIndex = {};
  columns.forEach(function (c, i) { colIndex[c.key] = i; });

  function loadNext() {
    var src = state.pending.shift();
    if (!src) { return; }
    var s = document.createElement("script");
    s.src = src;
    s.onerror = function () { console.error("could not load " + src); };
    document.body.appendChild(s);
  }

  function fmt(value, col) {
    if (value === null || value === undefined || value === "") { return "–"; }
    if (typeof value === "number" && !Number.isInteger(value)) { return value.toFixed(3); }
    if (typeof value === "number" && col.key !== "section") { return value.toLocaleString("en-US"); }
    return String(value);
  }

  function matches(row) {
    var text = $("filter-text").value.trim().toLowerCase();
    var rejected = selects.some(function (s) {
      return s.value && String(row[colIndex[s.dataset.filter]]) !== s.value;
    });
    if (rejected) { return false; }
    if ($("filter-flagged").checked && !(row[colIndex.n_flags] > 0)) { return false; }
    if (!text) { return true; }
    return ["sheet_id", "verdict", "status", "rules", "severity"].some(function (k) {
      return k in colIndex && String(row[colIndex[k]] || "").toLowerCase().indexOf(text) >= 0;
    });
  }

  function compare(a, b) {
    var i = colIndex[state.sortKey];
    var x = a[i], y = b[i];
    if (x === y) { return 0; }
    if (x === null || x === undefined || x === "") { return 1; }
    if (y === null || y === undefined || y === "") { return -1; }
    if (typeof x === "number" && typeof y === "number") { return (x - y) * state.sortDir; }
    return String(x).localeCompare(String(y), undefined, { numeric: true }) * state.sortDir;
  }

  function cell(row, col, i) {
    var td = document.createElement("td");
    var value = row[i];
    td.className = "col-" + col.key + (col.numeric ? " num" : "");
    if (col.key === "sheet_id") {
      var a = document.createElement("a");
      a.href = "sheets/" + encodeURIComponent(row[slugIndex]) + ".html";
      a.textContent = value;
      td.appendChild(a);
    } else if (col.key === "severity" && value) {
      var b = document.createElement("span");
      b.className = "badge sev-" + value;
      b.textContent = value;
      td.appendChild(b);
    } else if (col.key === "status" || col.key === "verdict") {
      var s = document.createElement("span");
      s.className = col.key + " " + col.key + "-" + value;
      s.textContent = fmt(value, col);
      td.appendChild(s);
    } else if (col.key === "rules") {
      td.textContent = value ? String(value).split(";").join(", ") : "–";
    } else {
      td.textContent = fmt(value, col);
    }
    return td;
  }

  function render() {
    var body = table.tBodies[0];
    var pages = Math.max(1, Math.ceil(state.view.length / pageSize));
    state.page = Math.min(state.page, pages - 1);
    var start = state.page * pageSize;
    var frag = document.createDocumentFragment();
    state.view.slice(start, start + pageSize).forEach(function (row) {
      var tr = document.createElement("tr");
      columns.forEach(function (col, i) { tr.appendChild(cell(row, col, i)); });
      frag.appendChild(tr);
    });
    body.replaceChildren(frag);
    $("table-count").textContent = state.view.length.toLocaleString("en-US") + " of " +
      state.rows.length.toLocaleString("en-US") + " sheets";
    $("page-info").textContent = "page " + (state.page + 1) + " of " + pages;
    $("page-prev").disabled = state.page === 0;
    $("page-next").disabled = state.page >= pages - 1;
  }

  function refresh(resetPage) {
    state.view = state.rows.filter(matches);
    if (state.sortKey) { state.view.sort(compare); }
    if (resetPage) { state.page = 0; }
    render();
  }

  function sortBy(th) {
    var key = th.dataset.key;
    state.sortDir = state.sortKey === key ? -state.sortDir : (th.classList.contains("num") && key !== "rank" ? -1 : 1);
    state.sortKey = key;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.setAttribute("aria-sort", "none"); });
    th.setAttribute("aria-sort", state.sortDir > 0 ? "ascending" : "descending");
    refresh(true);
  }

  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(th); } });
  });
  ["input", "change"].forEach(function (ev) {
    controls.forEach(function (c) { c.addEventListener(ev, function () { refresh(true); }); });
  });
  $("page-prev").addEventListener("click", function () { state.page -= 1; render(); });
  $("page-next").addEventListener("click", function () { state.page += 1; render(); });
  state.pending = JSON.parse(table.dataset.chunks);
  loadNext();
})();
