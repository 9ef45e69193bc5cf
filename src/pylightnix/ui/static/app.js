// The pages of the pylightnix web view: each reads its records from /api and draws them.
// Text always goes in through textContent (never as HTML); the only markup inserted is
// the graph's SVG, which the server drew with Graphviz from refs and stage names.
"use strict";

const PAGE_SIZE = 100;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") e.textContent = v;
    else if (k === "onclick") e.addEventListener("click", v);
    else if (k === "onchange") e.addEventListener("change", v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const k of kids) {
    if (k === null || k === undefined) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

async function api(url) {
  const r = await fetch(url, { headers: { Accept: "application/json" } });
  let body;
  try {
    body = await r.json();
  } catch (err) {
    throw new Error(`${url}: HTTP ${r.status}`);
  }
  if (!r.ok) throw new Error(body.error || `${url}: HTTP ${r.status}`);
  return body;
}

const enc = encodeURIComponent;
const main = () => document.getElementById("main");
const short = (ref) => ref.split(":")[1].slice(0, 12);

function fmtTime(t) {
  if (t === null || t === undefined) return "-";
  const d = new Date(t * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function fmtSize(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let x = n;
  for (const u of units) {
    if (Math.abs(x) < 1024 || u === "TiB") return u === "B" ? `${x} B` : `${x.toFixed(1)} ${u}`;
    x /= 1024;
  }
  return `${n} B`;
}

function fmtValue(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(+v.toPrecision(5));
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

function refLink(ref, label) {
  const kind = ref.startsWith("rref:") ? "rref" : "dref";
  return el("a", { href: `/${kind}/${ref}`, class: "ref", title: ref }, label || ref);
}

function setTitle(text, ...extra) {
  const m = main();
  m.replaceChildren(el("h1", {}, text, ...extra));
  document.title = `${text} - pylightnix`;
  return m;
}

function showError(err) {
  const box = el("p", { class: "error", role: "alert" }, String(err.message || err));
  main().append(box);
}

function section(title, ...kids) {
  return el("section", {}, el("h2", {}, title), ...kids);
}

function jsonBlock(obj) {
  return el("pre", { class: "json" }, JSON.stringify(obj, null, 2));
}

function pager(total, offset, limit, go) {
  const last = Math.min(offset + limit, total);
  return el(
    "div", { class: "pager" },
    el("button", { onclick: () => go(Math.max(0, offset - limit)), disabled: offset === 0 }, "previous"),
    ` ${total === 0 ? 0 : offset + 1}-${last} of ${total} `,
    el("button", { onclick: () => go(offset + limit), disabled: last >= total }, "next"),
  );
}

function table(headers, rows, attrs) {
  return el(
    "table", attrs || {},
    el("thead", {}, el("tr", {}, ...headers.map((h) => (h instanceof Node ? h : el("th", {}, h))))),
    el("tbody", {}, ...rows),
  );
}

// ---- pages ----------------------------------------------------------------------------

async function pageHome(data) {
  const params = new URLSearchParams(location.search);
  const m = setTitle("Stages");
  const q = el("input", { type: "search", placeholder: "filter by stage name", value: params.get("q") || "" });
  const box = el("div", {});
  m.append(el("form", { class: "filter" }, q), box);
  async function load(offset) {
    const r = await api(`/api/stages?q=${enc(q.value)}&offset=${offset}&limit=${PAGE_SIZE}`);
    const rows = r.items.map((x) =>
      el("tr", {},
        el("td", {}, el("a", { href: `/dref/${x.dref}` }, x.name)),
        el("td", { class: "mono" }, refLink(x.dref, short(x.dref))),
        el("td", { class: "num" }, x.realizations),
        el("td", {},
          el("a", { href: `/runs/${enc(x.name)}` }, "runs"), " ",
          el("a", { href: `/graph/${x.dref}` }, "graph")),
      ));
    box.replaceChildren(
      table(["stage", "derivation", "realizations", ""], rows, { class: "list" }),
      pager(r.total, offset, PAGE_SIZE, load),
    );
  }
  q.form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    history.replaceState(null, "", `/?q=${enc(q.value)}`);
    load(0).catch(showError);
  });
  await load(0);
}

async function pageDref(data) {
  const first = await api(`/api/dref/${data.ref}?limit=0`);
  const m = setTitle(first.name, " ", el("span", { class: "mono muted" }, data.ref));
  m.append(
    el("p", { class: "links" },
      el("a", { href: `/runs/${data.ref}` }, "runs of this derivation"), " · ",
      el("a", { href: `/runs/${enc(first.name)}` }, `runs of every '${first.name}'`), " · ",
      el("a", { href: `/graph/${data.ref}` }, "graph")),
    section("Config", jsonBlock(first.config)),
    section("Depends on", first.deps.length
      ? el("ul", {}, ...first.deps.map((d) => el("li", {}, refLink(d))))
      : el("p", { class: "muted" }, "nothing")),
  );
  const box = el("div", {});
  const compare = el("button", { disabled: true }, "compare the two checked");
  m.append(section(`Realizations (${first.total}, ${first.failed} failed)`, compare, box));
  const picked = new Set();
  compare.addEventListener("click", () => {
    const [a, b] = [...picked];
    location.href = `/diff?a=${enc(a)}&b=${enc(b)}`;
  });
  async function load(offset) {
    const r = await api(`/api/dref/${data.ref}?offset=${offset}&limit=${PAGE_SIZE}`);
    const rows = r.realizations.map((x) => {
      const cb = el("input", { type: "checkbox", "aria-label": `pick ${x.rref}` });
      cb.checked = picked.has(x.rref);
      cb.addEventListener("change", () => {
        if (cb.checked) picked.add(x.rref); else picked.delete(x.rref);
        compare.disabled = picked.size !== 2;
      });
      return el("tr", { class: x.failed ? "failed" : "" },
        el("td", {}, cb),
        el("td", { class: "mono" }, refLink(x.rref)),
        el("td", {}, fmtTime(x.build_start)),
        el("td", {}, x.failed ? "failed" : "realized"));
    });
    box.replaceChildren(table(["", "realization", "built", "status"], rows, { class: "list" }),
      pager(r.total, offset, PAGE_SIZE, load));
  }
  await load(0);
}

function logView(url, initialRunning) {
  const pre = el("pre", { class: "log", id: "log" });
  const state = el("p", { class: "muted", id: "log-state" }, "loading…");
  let offset = 0;
  async function poll() {
    const r = await api(`${url}?offset=${offset}`);
    if (r.text) {
      const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.append(document.createTextNode(r.text));
      if (stick) pre.scrollTop = pre.scrollHeight;
    }
    offset = r.next;
    if (r.next < r.size) return poll();
    if (r.running) {
      state.textContent = "building… (the log grows live)";
      setTimeout(() => poll().catch(showError), 1000);
    } else {
      pre.setAttribute("data-complete", "1");
      if (initialRunning) state.textContent = "the build has ended: its realization holds the whole log";
      else state.textContent = r.exists ? `complete, ${fmtSize(r.size)}` : "no build log";
    }
    return undefined;
  }
  poll().catch(showError);
  return el("div", {}, state, pre);
}

async function pageRref(data) {
  const r = await api(`/api/rref/${data.ref}`);
  const status = r.failure ? "failed" : "realized";
  const m = setTitle(r.name, " ", el("span", { class: `badge ${status}` }, status));
  const other = el("input", { type: "text", name: "b", placeholder: "rref:… to compare with", size: 60 });
  m.append(
    el("p", { class: "mono" }, r.rref),
    el("p", { class: "links" },
      el("a", { href: `/dref/${r.dref}` }, "derivation"), " · ",
      el("a", { href: `/graph/${r.rref}` }, "graph"), " · ",
      el("a", { href: `/runs/${enc(r.name)}` }, `runs of '${r.name}'`)),
    el("form", { action: "/diff", class: "filter" },
      el("input", { type: "hidden", name: "a", value: r.rref }), other, el("button", {}, "diff")),
    table(["built", "stopped", "took", "host"], [el("tr", {},
      el("td", {}, fmtTime(r.build_start)), el("td", {}, fmtTime(r.build_stop)),
      el("td", {}, r.build_stop && r.build_start ? `${(r.build_stop - r.build_start).toFixed(2)} s` : "-"),
      el("td", {}, r.host || "-"))]),
  );
  if (r.failure) {
    m.append(section("Failure",
      el("p", {}, el("b", {}, r.failure.error), ": ", r.failure.message),
      r.failure.dependency ? el("p", {}, "because this dependency failed: ", refLink(r.failure.dependency)) : null,
      r.failure.traceback ? el("pre", { class: "log" }, r.failure.traceback) : null));
  }
  const files = el("div", {}, el("p", { class: "muted" }, "loading…"));
  m.append(section("Files", files));
  m.append(section("Build log", r.has_log ? logView(`/api/rref/${r.rref}/log`, false)
    : el("p", { class: "muted" }, "the build printed nothing (no build log)")));
  m.append(section("Config", jsonBlock(r.config)));
  const ctx = Object.entries(r.context);
  m.append(section("Context", ctx.length
    ? el("ul", {}, ...ctx.map(([d, rs]) => el("li", {}, refLink(d, short(d)), " → ",
      ...rs.flatMap((x, i) => [i ? ", " : "", refLink(x)]))))
    : el("p", { class: "muted" }, "no dependencies")));
  const fs = await api(`/api/rref/${r.rref}/files`);
  const rows = fs.items.map((f) => {
    const url = f.path.split("/").map(enc).join("/");
    return el("tr", {},
      el("td", { class: "mono" }, f.kind === "link" ? `${f.path} → ${f.target}`
        : el("a", { href: `/file/${r.rref}/${url}` }, f.path)),
      el("td", {}, f.kind),
      el("td", { class: "num" }, fmtSize(f.size)),
      el("td", {}, f.kind === "link" ? "" : el("a", { href: `/raw/${r.rref}/${url}?download=1` }, "download")));
  });
  files.replaceChildren(
    rows.length ? table(["path", "kind", "size", ""], rows, { class: "list", id: "files" })
      : el("p", { class: "muted" }, "no files"),
    ...(fs.total > fs.items.length ? [el("p", { class: "muted" }, `first ${fs.items.length} of ${fs.total} files`)] : []),
  );
}

async function pageFile(data) {
  const url = data.path;
  let title = url;
  try {
    title = decodeURIComponent(url);
  } catch (err) {
    // a malformed escape: show the path as it was asked for; the preview says what is wrong
  }
  const m = setTitle(title);
  m.append(el("p", { class: "links" }, "of ", refLink(data.ref), " · ",
    el("a", { href: `/raw/${data.ref}/${url}?download=1` }, "download")));
  const p = await api(`/api/rref/${data.ref}/preview/${url}`);
  if (p.kind === "image") {
    m.append(el("img", { src: `/raw/${data.ref}/${url}`, alt: p.path, class: "preview" }));
  } else if (p.kind === "text") {
    m.append(el("pre", { class: "log" }, p.text));
    if (p.truncated) m.append(el("p", { class: "muted" }, `first ${fmtSize(p.limit)} of ${fmtSize(p.size)}`));
  } else {
    m.append(el("p", { class: "muted" }, `a binary file of ${fmtSize(p.size)}: download it to look inside`));
  }
}

async function pageGraph(data) {
  const g = await api(`/api/graph/${data.ref}`);
  const m = setTitle("Graph", " ", el("span", { class: "mono muted" }, data.ref));
  const legend = el("p", { class: "legend" },
    ...Object.entries(g.colours).map(([k, c]) => {
      const sw = el("span", { class: "swatch" });
      sw.style.background = c;
      return el("span", {}, sw, k === "none" ? "not realized" : k, " ");
    }));
  const box = el("div", { class: "graph" });
  box.innerHTML = g.svg; // drawn by the server's Graphviz from refs and names only
  m.append(legend, ...(g.cut ? [el("p", { class: "error" }, "the graph was cut: too many nodes")] : []), box);
}

async function pageDiff(data) {
  const m = setTitle("Diff");
  const a = el("input", { name: "a", value: data.a, size: 70, placeholder: "rref:…" });
  const b = el("input", { name: "b", value: data.b, size: 70, placeholder: "rref:…" });
  m.append(el("form", { action: "/diff", class: "filter" }, a, " ", b, " ", el("button", {}, "compare")));
  if (!data.a || !data.b) return;
  const d = await api(`/api/diff?a=${enc(data.a)}&b=${enc(data.b)}`);
  const cfgRows = [
    ...d.config.changed.map((x) => el("tr", { class: "changed" }, el("td", {}, "~ " + x.key), el("td", {}, fmtValue(x.old)), el("td", {}, fmtValue(x.new)))),
    ...d.config.removed.map((x) => el("tr", { class: "removed" }, el("td", {}, "- " + x.key), el("td", {}, fmtValue(x.value)), el("td", {}, ""))),
    ...d.config.added.map((x) => el("tr", { class: "added" }, el("td", {}, "+ " + x.key), el("td", {}, ""), el("td", {}, fmtValue(x.value)))),
  ];
  const list = (xs) => (xs.length ? el("ul", { class: "mono" }, ...xs.map((x) => el("li", {}, x))) : el("p", { class: "muted" }, "none"));
  m.append(
    el("p", {}, "a: ", refLink(d.a), el("br"), "b: ", refLink(d.b)),
    section("Config", cfgRows.length ? table(["key", "a", "b"], cfgRows, { class: "list" }) : el("p", { class: "muted" }, "the same config")),
    el("p", {}, d.context_same ? "built in the same context" : "built in different contexts"),
    section("Files changed", list(d.files.changed)),
    section("Files only in a", list(d.files.only_in_a)),
    section("Files only in b", list(d.files.only_in_b)),
  );
}

async function pageStore() {
  const m = setTitle("Store");
  const size = el("div", {}, el("p", { class: "muted" }, "measuring… (reads every file once)"));
  const roots = el("div", {});
  m.append(section("Size", size), section("GC roots", roots));
  api("/api/roots").then((r) => {
    roots.replaceChildren(r.items.length
      ? table(["result link", "keeps alive"], r.items.map((x) =>
        el("tr", {}, el("td", { class: "mono" }, x.link), el("td", {}, x.stale ? "(stale: link gone or moved)" : refLink(x.rref)))), { class: "list" })
      : el("p", { class: "muted" }, "no registered roots"));
  }).catch(showError);
  const s = await api("/api/size");
  size.replaceChildren(
    el("p", {}, el("b", {}, fmtSize(s.total)), ` in ${s.derivations} derivations and ${s.realizations} realizations ` +
      `(measured ${fmtTime(s.computed_at)} in ${s.seconds.toFixed(2)} s)`),
    table(["derivation", "size"], s.largest.map((x) =>
      el("tr", {}, el("td", {}, refLink(x.dref, x.name)), el("td", { class: "num" }, fmtSize(x.bytes)))), { class: "list" }),
  );
}

async function pageBuilding() {
  const m = setTitle("Builds running");
  const box = el("div", {});
  m.append(box);
  async function load() {
    const r = await api("/api/building");
    box.replaceChildren(r.items.length
      ? table(["stage", "pid", "started", "log"], r.items.map((x) => el("tr", {},
        el("td", {}, el("a", { href: `/building/${x.id}` }, x.name)), el("td", {}, x.pid),
        el("td", {}, fmtTime(x.started)), el("td", { class: "num" }, fmtSize(x.log_size)))), { class: "list" })
      : el("p", { class: "muted" }, "no build is running in this store"));
    setTimeout(() => load().catch(showError), 2000);
  }
  await load();
}

async function pageBuildlog(data) {
  const name = data.id.replace(/^build-/, "").replace(/-\d+-[A-Za-z0-9_]{8}$/, "");
  const m = setTitle(`Building ${name}`);
  m.append(el("p", { class: "links" }, el("a", { href: `/?q=${enc(name)}` }, `stages named '${name}'`)),
    logView(`/api/building/${data.id}/log`, true));
}

// ---- runs: a sortable table and a plot ----------------------------------------------------

function runValue(run, col) {
  if (col.kind === "param") return run.params[col.key];
  if (col.kind === "metric") return run.metrics[col.key];
  return run[col.key];
}

// Order of two cell values in direction dir (1 or -1); missing values go last either way.
function compareValues(x, y, dir) {
  const nx = x === null || x === undefined;
  const ny = y === null || y === undefined;
  if (nx || ny) return nx === ny ? 0 : nx ? 1 : -1;
  if (typeof x === "number" && typeof y === "number") return dir * (x - y);
  return dir * String(fmtValue(x)).localeCompare(String(fmtValue(y)));
}

async function pageRuns(data) {
  const m = setTitle(`Runs of ${data.what}`);
  let r;
  try {
    r = await api(`/api/runs/${enc(data.what)}`);
    performance.mark("runs-fetched");
  } catch (err) {
    showError(err);
    return;
  }
  const cols = [
    { kind: "run", key: "chosen", label: "chosen" },
    { kind: "run", key: "rref", label: "realization" },
    { kind: "run", key: "status", label: "status" },
    { kind: "run", key: "build_start", label: "built" },
    { kind: "run", key: "duration", label: "took (s)" },
    ...r.params.map((k) => ({ kind: "param", key: k, label: k })),
    ...r.metrics.map((k) => ({ kind: "metric", key: k, label: k })),
  ];
  const nChosen = r.runs.filter((x) => x.chosen).length;
  m.append(el("p", { class: "muted" },
    `${r.runs.length} runs; ${nChosen} chosen by the matcher (★); click a column to sort, a row or a point to open the run`));
  const plotBox = el("section", { class: "plot-section" });
  const tableBox = el("div", {});
  m.append(plotBox, tableBox);
  let sortCol = null;
  let sortDir = 1;
  let runs = r.runs.slice();

  // Rows are made with plain DOM calls (a thousand rows of a dozen cells each): one
  // text node or link per cell, and one click listener on the table body for all rows.
  function td(cls, text) {
    const e = document.createElement("td");
    if (cls) e.className = cls;
    e.textContent = text;
    return e;
  }

  function cell(run, col) {
    const v = runValue(run, col);
    switch (col.key) {
      case "chosen": return td("chosen", v ? "★" : "");
      case "rref": {
        const e = td("mono", "");
        e.append(refLink(v, short(v)));
        return e;
      }
      case "build_start": return td("time", fmtTime(v));
      case "duration": return td("num", v === null ? "" : v.toFixed(3));
      case "status": {
        const e = td(`${v} status`, run.error ? `${v}: ${run.error}` : v);
        if (run.error) e.title = run.error;
        return e;
      }
      default: return td(typeof v === "number" ? "num" : "", fmtValue(v));
    }
  }

  function drawTable() {
    const heads = cols.map((c) => {
      const mark = sortCol === c ? (sortDir > 0 ? " ▲" : " ▼") : "";
      return el("th", { class: `sortable ${c.kind}`, "data-col": c.label, onclick: () => {
        sortDir = sortCol === c ? -sortDir : 1;
        sortCol = c;
        runs.sort((a, b) => compareValues(runValue(a, c), runValue(b, c), sortDir));
        drawTable();
      } }, c.label + mark);
    });
    const body = document.createElement("tbody");
    for (const run of runs) {
      const tr = document.createElement("tr");
      tr.className = `run ${run.chosen ? "is-chosen" : ""} ${run.status}`;
      tr.dataset.rref = run.rref;
      for (const c of cols) tr.append(cell(run, c));
      body.append(tr);
    }
    body.addEventListener("click", (ev) => {
      const tr = ev.target.closest("tr");
      if (tr && !ev.target.closest("a")) location.href = `/rref/${tr.dataset.rref}`;
    });
    const t = el("table", { class: "list runs", id: "runs" }, el("thead", {}, el("tr", {}, ...heads)), body);
    tableBox.replaceChildren(t);
  }

  const xs = [{ v: "__time", label: "build time" }, ...r.params.map((k) => ({ v: k, label: k }))];
  const xSel = el("select", { id: "plot-x", "aria-label": "x axis" }, ...xs.map((o) => el("option", { value: o.v }, o.label)));
  const ySel = el("select", { id: "plot-y", "aria-label": "y axis" }, ...r.metrics.map((k) => el("option", { value: k }, k)));
  // Plot against the numeric parameter with the most distinct values (the swept one).
  const spread = (k) => new Set(r.runs.map((run) => run.params[k]).filter((v) => typeof v === "number")).size;
  const swept = r.params.filter((k) => spread(k) > 1).sort((a, b) => spread(b) - spread(a));
  if (swept.length) xSel.value = swept[0];
  const plot = el("div", { id: "plot" });
  const plotNote = el("p", { class: "muted", id: "plot-note" });
  plotBox.append(el("h2", {}, "Plot"), el("p", { class: "filter" }, "metric ", ySel, " against ", xSel),
    plotNote, plot);

  function drawPlot() {
    if (!r.metrics.length) {
      plotNote.textContent = "these runs record no metrics";
      plot.hidden = true;
      return;
    }
    const x = xSel.value;
    const y = ySel.value;
    const pts = r.runs.filter((run) => typeof run.metrics[y] === "number");
    const xv = (run) => (x === "__time" ? new Date(run.build_start * 1000) : run.params[x]);
    const nums = pts.map(xv).filter((v) => typeof v === "number");
    const logX = nums.length > 1 && Math.min(...nums) > 0 && Math.max(...nums) / Math.min(...nums) >= 100;
    plotNote.textContent = `${pts.length} runs with ${y}${logX ? "; x on a log scale" : ""}`;
    const trace = (sel, name, color, size, symbol) => {
      const ps = pts.filter(sel);
      return {
        type: "scatter", mode: "markers", name,
        x: ps.map(xv), y: ps.map((run) => run.metrics[y]), customdata: ps.map((run) => run.rref),
        text: ps.map((run) => short(run.rref)),
        hovertemplate: `%{text}<br>${x === "__time" ? "built" : x}=%{x}<br>${y}=%{y}<extra></extra>`,
        marker: { color, size, symbol, line: { width: 1, color: "#333" } },
      };
    };
    Plotly.react(plot, [
      trace((run) => !run.chosen, "run", "#6c8ebf", 10, "circle"),
      trace((run) => run.chosen, "chosen by the matcher", "#f0a202", 16, "star"),
    ], {
      margin: { t: 20, r: 20, b: 50, l: 60 }, height: 360,
      xaxis: { title: { text: x === "__time" ? "build time" : x }, type: logX ? "log" : "-" },
      yaxis: { title: { text: y } },
      hovermode: "closest", paper_bgcolor: "rgba(0,0,0,0)",
    }, { displayModeBar: false, responsive: true });
    plot.removeAllListeners?.("plotly_click");
    plot.on("plotly_click", (ev) => {
      const p = ev.points && ev.points[0];
      if (p && p.customdata) location.href = `/rref/${p.customdata}`;
    });
  }
  xSel.addEventListener("change", drawPlot);
  ySel.addEventListener("change", drawPlot);
  drawTable();
  performance.mark("runs-table");
  document.body.setAttribute("data-table", "1");
  // The chart library is large: load it after the table is on the screen.
  if (r.metrics.length) {
    plotNote.textContent = "loading the plot…";
    await loadScript("/static/plotly.min.js");
  }
  drawPlot();
}

function loadScript(src) {
  if (typeof Plotly !== "undefined") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const s = el("script", { src });
    s.addEventListener("load", resolve);
    s.addEventListener("error", () => reject(new Error(`${src} did not load: pip install 'pylightnix-ng[ui]' (in a checkout: pip install -e '.[ui]')`)));
    document.head.append(s);
  });
}

const PAGES = {
  home: pageHome, dref: pageDref, rref: pageRref, runs: pageRuns, graph: pageGraph, file: pageFile,
  diff: pageDiff, store: pageStore, building: pageBuilding, buildlog: pageBuildlog,
  error: async (data) => {
    setTitle(`Error ${data.status}`);
    showError(new Error(data.message));
  },
};

document.addEventListener("DOMContentLoaded", () => {
  const data = { ...document.body.dataset };
  const fn = PAGES[data.page];
  fn(data).then(() => document.body.setAttribute("data-ready", "1")).catch((err) => {
    showError(err);
    document.body.setAttribute("data-ready", "error");
  });
});
