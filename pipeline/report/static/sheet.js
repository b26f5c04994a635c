/* tally-audit report: sheets/view.html draws any sheet without a page of its own.
 * The link names the sheet after "#": b (its bucket, data/detail-NNN.js), at (its place in the ranking) and id
 * (its slug). Buckets, crop packs (data/crops-NNN.js) and table chunks are script files that call back into
 * window.tallySheet / window.tallyReport, because Chromium blocks fetch() from file://. Everything shown is set
 * with textContent, never parsed as HTML. A link with only "at" (previous/next) finds the sheet in the ranked
 * table and goes to its page, whether that is a page of its own or this one. */
(function () {
  "use strict";
  var root = document.getElementById("sheet-view");
  if (!root) { return; }
  var cfg = JSON.parse(root.dataset.config);
  var $ = function (id) { return document.getElementById(id); };
  var records = {}, packs = {}, loading = {}, waiting = null;
  var baseTitle = document.title.replace(/^sheet · /, "");

  function pad(b) { return ("00" + b).slice(-3); }
  function params() { return new URLSearchParams(location.hash.slice(1)); }
  function num(n) { return Number(n).toLocaleString("en-US"); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = text; }
    return e;
  }
  function fail(message) {
    $("view-error").textContent = message;
    $("view-error").hidden = false;
  }
  function load(src, key) {
    if (loading[key]) { return; }
    loading[key] = true;
    var s = document.createElement("script");
    s.src = src;
    s.onerror = function () { fail("Could not load " + src + "; is the report folder complete?"); };
    document.body.appendChild(s);
  }

  window.tallySheet = {
    receive: function (b, recs) { records[b] = recs; show(); },
    crops: function (b, pack) { packs[b] = pack; show(); }
  };
  window.tallyReport = {
    receive: function (rows) {
      if (!waiting) { return; }
      var row = rows[waiting.offset], at = waiting.at;
      waiting = null;
      if (!row) { fail("No sheet ranked " + at + "."); return; }
      location.replace(String(row[row.length - 1]).replace(/^sheets\//, ""));
    }
  };

  function resolve(at) {
    var chunk = Math.floor((at - 1) / cfg.chunk_rows);
    if (!(at >= 1 && at <= cfg.total) || !cfg.chunks[chunk]) { fail("No sheet ranked " + at + "."); return; }
    waiting = { at: at, offset: (at - 1) % cfg.chunk_rows };
    delete loading["t" + chunk];
    load(cfg.chunks[chunk], "t" + chunk);
  }

  function box(node, b) {
    node.style.left = b.left.toFixed(3) + "%";
    node.style.top = b.top.toFixed(3) + "%";
    node.style.width = b.width.toFixed(3) + "%";
    node.style.height = b.height.toFixed(3) + "%";
  }

  /* The geometry a sheet is drawn with: its own form's on a run of several forms (rec.form names it in
   * cfg.forms), else the run's one form. */
  function formOf(rec) {
    return (rec.form && cfg.forms && cfg.forms[rec.form]) || cfg;
  }

  function drawScan(rec) {
    var scan = $("scan-box"), form = formOf(rec);
    scan.replaceChildren();
    $("no-scan").hidden = !!rec.scan;
    scan.hidden = !rec.scan;
    if (!rec.scan) {
      $("no-scan").textContent = "No registered scan for this sheet" + (rec.status ? " (reader status: " + rec.status + ")" : "") + ".";
      return;
    }
    scan.style.paddingTop = form.aspect.toFixed(3) + "%";
    var img = el("img");
    img.id = "scan-image";
    img.alt = "registered scan of sheet " + rec.id;
    img.src = rec.scan;
    scan.appendChild(img);
    form.fields.forEach(function (f, i) {
      var r = rec.f[i], d = el("div", "box " + r[2] + (r[5] ? " flagged" : ""));
      d.dataset.field = f.name;
      d.title = f.label + ": " + (r[0] || "empty") + (r[1] ? " (confidence " + r[1] + ")" : "");
      box(d, f.box);
      d.appendChild(el("span", "tag", r[0] || "·"));
      scan.appendChild(d);
    });
    form.ticks.forEach(function (t, i) {
      var r = rec.t[i], d = el("div", "tick" + (r[0] ? " on" : "") + (r[1] ? "" : " unknown"));
      d.dataset.field = t.name;
      d.title = t.label + ": " + (r[0] ? "ticked" : "not ticked");
      box(d, t.box);
      scan.appendChild(d);
    });
  }

  /* The audit's own wording of a flag and its rule, as the sheet page writes it. */
  function wording(f, cls, before, after) {
    var p = el("p", cls, f.reason + before);
    p.appendChild(el("code", null, f.rule));
    p.appendChild(document.createTextNode(after));
    return p;
  }

  /* A flag's evidence tables (f.ev: [[[key, value]...], [column...], [[field, [value...]]...]], formatted by the
   * build), folded under the same summary as on a page of its own. */
  function evidence(f) {
    var det = el("details", "evidence-details"), items = f.ev[0], cols = f.ev[1], rows = f.ev[2];
    det.appendChild(el("summary", null, "Evidence and the audit's wording"));
    var p = el("p", "reason small", f.reason + " "), rule = el("span", "muted", "(rule ");
    rule.appendChild(el("code", null, f.rule));
    rule.appendChild(document.createTextNode(")"));
    p.appendChild(rule);
    det.appendChild(p);
    if (items.length) {
      var table = el("table", "compact evidence"), body = el("tbody");
      items.forEach(function (kv) {
        var tr = el("tr");
        tr.appendChild(el("th", null, kv[0]));
        tr.appendChild(el("td", null, kv[1]));
        body.appendChild(tr);
      });
      table.appendChild(body);
      det.appendChild(table);
    }
    if (rows.length) {
      var wrap = el("div", "table-wrap"), fields = el("table", "compact evidence-fields");
      var head = el("tr"), tbody = el("tbody"), thead = el("thead");
      head.appendChild(el("th", null, "field"));
      cols.forEach(function (c) { head.appendChild(el("th", "num", c)); });
      thead.appendChild(head);
      rows.forEach(function (r) {
        var tr = el("tr");
        tr.appendChild(el("td", null, r[0]));
        r[1].forEach(function (v) { tr.appendChild(el("td", "num", v)); });
        tbody.appendChild(tr);
      });
      fields.appendChild(thead);
      fields.appendChild(tbody);
      wrap.appendChild(fields);
      det.appendChild(wrap);
    }
    return det;
  }

  function drawFlags(rec, pack) {
    var list = $("flag-list");
    list.replaceChildren();
    if (!rec.flags.length) { list.appendChild(el("p", "muted", "No finding on this sheet.")); }
    rec.flags.forEach(function (f) {
      var art = el("article", "flag sev-border-" + f.severity);
      art.dataset.rule = f.rule;
      var head = el("header");
      head.appendChild(el("span", "badge sev-" + f.severity, f.severity));
      head.appendChild(document.createTextNode(" "));
      head.appendChild(el("span", "verdict verdict-" + f.verdict, f.label));
      art.appendChild(head);
      art.appendChild(el("p", "reason plain", f.plain));
      if (f.causes.length) {
        art.appendChild(el("p", "causes", (f.causes.length === 1 ? "Field" : "Fields") + " to look at: " + f.causes.join(", ")));
      }
      if (f.crops.length) {
        var crops = el("div", "crops");
        f.crops.forEach(function (c) {
          var fig = el("figure", "crop"), img = el("img");
          img.alt = c[1] + " as scanned";
          if (pack && pack[c[0]]) { img.src = pack[c[0]]; }
          fig.appendChild(img);
          var cap = el("figcaption", null, c[1] + " · read ");
          cap.appendChild(el("span", "pill " + c[3], c[2] || "–"));
          if (c[4]) { cap.appendChild(document.createTextNode(" (" + c[4] + ")")); }
          fig.appendChild(cap);
          crops.appendChild(fig);
        });
        art.appendChild(crops);
      }
      art.appendChild(f.ev ? evidence(f) : wording(f, "reason small muted", " (rule ", ")"));
      list.appendChild(art);
    });
    var passed = $("passed-checks");
    passed.replaceChildren();
    rec.passed.forEach(function (line) { passed.appendChild(el("li", null, "✓ " + line)); });
    passed.hidden = $("passed-head").hidden = !rec.passed.length;
  }

  function drawReads(rec) {
    var body = $("reads-table").tBodies[0];
    body.replaceChildren();
    formOf(rec).fields.forEach(function (f, i) {
      var r = rec.f[i], tr = el("tr", r[5] ? "flagged-row" : "");
      tr.appendChild(el("td", null, f.label));
      var read = el("td", "num");
      read.appendChild(el("span", "pill " + r[2], r[0] || "–"));
      if (r[3]) { var q = el("span", "review", "?"); q.title = "needs review"; read.appendChild(document.createTextNode(" ")); read.appendChild(q); }
      tr.appendChild(read);
      tr.appendChild(el("td", "num", r[1] || "–"));
      tr.appendChild(el("td", "muted small", r[4]));
      body.appendChild(tr);
    });
  }

  function nav(id, none, at) {
    var ok = at >= 1 && at <= cfg.total;
    $(id).hidden = !ok;
    $(none).hidden = ok;
    if (ok) { $(id).href = "#at=" + at; }
  }

  function draw(rec, at, pack) {
    document.title = rec.id + " · " + baseTitle;
    $("sheet-id").textContent = rec.id;
    $("sheet-verdict").className = "verdict verdict-" + rec.verdict;
    $("sheet-verdict").textContent = rec.label;
    var reason = $("rank-reason");
    reason.replaceChildren(document.createTextNode((at ? "Ranked " + num(at) + " of " + num(cfg.total) + ": " : "") + rec.basis + " "));
    var rule = el("a", null, "The ranking rule");
    rule.href = "../index.html#ranking-rule";
    reason.appendChild(rule);
    reason.appendChild(document.createTextNode("."));
    $("position").textContent = at ? num(at) + " of " + num(cfg.total) + " in the ranking" : "";
    nav("prev-sheet", "no-prev", at ? at - 1 : 0);
    nav("next-sheet", "no-next", at ? at + 1 : 0);
    var meta = $("sheet-meta");
    meta.replaceChildren();
    rec.meta.forEach(function (kv) { meta.appendChild(el("dt", null, kv[0])); meta.appendChild(el("dd", null, kv[1])); });
    $("reader-note").hidden = !rec.note;
    $("reader-note").textContent = rec.note;
    drawScan(rec);
    drawFlags(rec, pack);
    drawReads(rec);
  }

  function show() {
    var p = params(), id = p.get("id"), at = parseInt(p.get("at"), 10) || 0, b = parseInt(p.get("b"), 10);
    $("view-error").hidden = true;
    if (!id) { if (at) { resolve(at); } else { fail("No sheet named in the link."); } return; }
    if (!(b >= 0)) { fail("The link does not say where sheet " + id + " is."); return; }
    if (!records[b]) { load(cfg.detail + pad(b) + ".js", "d" + b); return; }
    var rec = records[b][id];
    if (!rec) { fail("Sheet " + id + " is not in this report."); return; }
    var hasCrops = rec.flags.some(function (f) { return f.crops.length > 0; });
    if (hasCrops && !packs[b]) { load(cfg.crops + pad(b) + ".js", "c" + b); }
    draw(rec, at, packs[b] ? packs[b][id] : null);
  }

  window.addEventListener("hashchange", show);
  show();
})();
