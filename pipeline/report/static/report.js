/* tally-audit report: sortable, filterable, paginated sheet table.
 * The rows live in data/sheets-NNN.js files, each calling tallyReport.receive(rows): script tags load from
 * file:// where fetch() of JSON is blocked. Chunks load one after another; the first renders at once. */
(function () {
  "use strict";
  var table = document.getElementById("sheets-table");
  var state = { rows: [], sorted: [], view: [], sortKey: null, sortDir: 1, page: 0, pending: [] };
  /* Tables above this many rows wait for a pause in typing before searching (a 50,000-row search per keystroke
   * would make typing lag); smaller ones search at once. */
  var DEBOUNCE_ROWS = 5000, DEBOUNCE_MS = 150;
  window.tallyReport = { receive: function (rows) {
    rows.forEach(searchText);
    state.rows = state.rows.concat(rows);
    resort();
    refresh(false);
    loadNext();
  } };
  if (!table) { return; }
  var columns = JSON.parse(table.dataset.columns);
  var pageSize = parseInt(table.dataset.pageSize, 10) || 50;
  var slugIndex = columns.length;
  /* A row's link (relative to the index): its own page, or sheets/view.html#... for a sheet drawn from data. */
  function pageOf(row) {
    return row.length > slugIndex + 1 ? row[slugIndex + 1] : "sheets/" + encodeURIComponent(row[slugIndex]) + ".html";
  }
  var $ = function (id) { return document.getElementById(id); };
  var selects = Array.prototype.slice.call(document.querySelectorAll("select[data-filter]"));
  var controls = [$("filter-text"), $("filter-flagged")].concat(selects);
  var colIndex = {};
  columns.forEach(function (c, i) { colIndex[c.key] = i; });
  var verdictLabels = {};
  Array.prototype.forEach.call(document.querySelectorAll("#filter-verdict option"), function (o) {
    if (o.value) { verdictLabels[o.value] = o.textContent; }
  });

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
    if (col.key === "suspicion" && typeof value === "number") { return (Math.floor(value * 1000) / 1000).toFixed(3); }
    if (typeof value === "number" && !Number.isInteger(value)) { return value.toFixed(3); }
    if (typeof value === "number" && !col.plain) { return value.toLocaleString("en-US"); }
    return String(value);
  }

  /* The current filters, read from the controls once per refresh (not once per row). */
  function filters() {
    return {
      text: $("filter-text").value.trim().toLowerCase(),
      flagged: $("filter-flagged").checked,
      selects: selects.filter(function (s) { return s.value; }).map(function (s) {
        return { index: colIndex[s.dataset.filter], value: s.value };
      })
    };
  }

  /* A row's searchable text (id, verdict and its words, reading, reason), lower-cased once and kept. */
  function searchText(row) {
    if (row.q === undefined) {
      row.q = ["sheet_id", "verdict", "reading", "reason"].filter(function (k) { return k in colIndex; })
        .map(function (k) { return String(row[colIndex[k]] || ""); })
        .concat("verdict" in colIndex ? [verdictLabels[row[colIndex.verdict]] || ""] : [])
        .join("\u0001").toLowerCase();
    }
    return row.q;
  }

  function matches(row, f) {
    for (var i = 0; i < f.selects.length; i++) {
      if (String(row[f.selects[i].index]) !== f.selects[i].value) { return false; }
    }
    if (f.flagged && !(row[colIndex.n_flags] > 0)) { return false; }
    return !f.text || searchText(row).indexOf(f.text) >= 0;
  }

  function isMissing(x) { return x === null || x === undefined || x === ""; }

  /* A string's sort key: lower-case, with every run of digits zero-padded so that plain comparison orders
   * "s2" before "s10" (what a numeric collator does, at a fraction of the cost on 50,000 rows). */
  function sortKey(value) {
    return String(value).toLowerCase().replace(/\d+/g, function (d) { return d.length >= 15 ? d : ("000000000000000" + d).slice(-15); });
  }

  /* Rows in the current sort order: sorted once per sort change (or new chunk), never per keystroke. Missing
   * values go last in either direction; ties keep the ranking order (the sort is stable). */
  function resort() {
    if (!state.sortKey) { state.sorted = state.rows; return; }
    var i = colIndex[state.sortKey], dir = state.sortDir;
    var numeric = state.rows.every(function (r) { return isMissing(r[i]) || typeof r[i] === "number"; });
    var decorated = state.rows.map(function (r) {
      return { row: r, missing: isMissing(r[i]), key: isMissing(r[i]) ? null : (numeric ? r[i] : sortKey(r[i])) };
    });
    decorated.sort(function (a, b) {
      if (a.missing || b.missing) { return a.missing === b.missing ? 0 : (a.missing ? 1 : -1); }
      return a.key < b.key ? -dir : a.key > b.key ? dir : 0;
    });
    state.sorted = decorated.map(function (d) { return d.row; });
  }

  function cell(row, col, i) {
    var td = document.createElement("td");
    var value = row[i];
    td.className = "col-" + col.key + (col.numeric ? " num" : "");
    if (col.key === "sheet_id") {
      var a = document.createElement("a");
      a.href = pageOf(row);
      a.textContent = value;
      td.appendChild(a);
    } else if (col.key === "severity" && value) {
      var b = document.createElement("span");
      b.className = "badge sev-" + value;
      b.textContent = value;
      td.appendChild(b);
    } else if (col.key === "verdict") {
      var s = document.createElement("span");
      s.className = "verdict verdict-" + value;
      s.textContent = verdictLabels[value] || fmt(value, col);
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
    var f = filters();
    state.view = state.sorted.filter(function (row) { return matches(row, f); });
    if (resetPage) { state.page = 0; }
    render();
  }

  var timer = null;
  function refreshSoon() {
    if (state.rows.length <= DEBOUNCE_ROWS) { refresh(true); return; }
    clearTimeout(timer);
    timer = setTimeout(function () { refresh(true); }, DEBOUNCE_MS);
  }

  function sortBy(th) {
    var key = th.dataset.key;
    state.sortDir = state.sortKey === key ? -state.sortDir : (th.classList.contains("num") && key !== "rank" ? -1 : 1);
    state.sortKey = key;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.setAttribute("aria-sort", "none"); });
    th.setAttribute("aria-sort", state.sortDir > 0 ? "ascending" : "descending");
    resort();
    refresh(true);
  }

  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(th); } });
  });
  $("filter-text").addEventListener("input", refreshSoon);
  controls.forEach(function (c) { c.addEventListener("change", function () { refresh(true); }); });
  Array.prototype.forEach.call(document.querySelectorAll("#verdict-chips [data-verdict]"), function (chip) {
    chip.addEventListener("click", function () {
      var select = $("filter-verdict");
      if (!select) { return; }
      select.value = chip.dataset.verdict;
      refresh(true);
      $("sheets").scrollIntoView();
    });
  });
  /* One CSV field: quoted when needed; a leading = + - @ is neutralised so that a spreadsheet never runs it. */
  function csvField(value) {
    var text = value === null || value === undefined ? "" : String(value);
    if (/^[=+\-@\t\r]/.test(text)) { text = "'" + text; }
    return /[",\n\r]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  /* The rows the table shows now (every page of the filtered, sorted view) as CSV text. */
  function viewCsv() {
    var lines = [columns.map(function (c) { return csvField(c.key); }).concat("page").join(",")];
    state.view.forEach(function (row) {
      lines.push(columns.map(function (c, i) { return csvField(row[i]); })
        .concat(csvField(pageOf(row))).join(","));
    });
    return lines.join("\r\n") + "\r\n";
  }

  if ($("download-view")) {
    $("download-view").addEventListener("click", function () {
      var url = URL.createObjectURL(new Blob([viewCsv()], { type: "text/csv" }));
      var a = document.createElement("a");
      a.href = url;
      a.download = "sheets-view.csv";
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
    });
  }
  $("page-prev").addEventListener("click", function () { state.page -= 1; render(); });
  $("page-next").addEventListener("click", function () { state.page += 1; render(); });
  state.pending = JSON.parse(table.dataset.chunks);
  loadNext();
})();
