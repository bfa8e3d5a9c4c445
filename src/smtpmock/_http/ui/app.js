// smtpmock web UI: plain JavaScript over the public HTTP API (/api/v1/...), no build step.
//
// Safety rules this file keeps:
// * Text from a message (subject, addresses, file names, headers, transcript) only ever reaches
//   the page through textContent / attribute setters, never through innerHTML.
// * The HTML body is never put in this document: it is shown in an <iframe sandbox> whose
//   document is served by the server with its own Content-Security-Policy (no script, no remote
//   content unless the user presses "Load remote images").
// * Only http(s) and mailto links from a message are made clickable.
"use strict";

(function () {
  const API = "api/v1/";
  const PAGE = 50;

  // ------------------------------------------------------------------ small helpers

  const $ = (id) => document.getElementById(id);

  // h("div", {class: "x", onclick: fn}, "text", child, ...): children that are strings become
  // text nodes, so nothing passed here is ever parsed as HTML.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2), value);
      } else if (key === "class") {
        el.className = value;
      } else if (key === "text") {
        el.textContent = value;
      } else {
        el.setAttribute(key, value === true ? "" : String(value));
      }
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  const SVG = "http://www.w3.org/2000/svg";
  const ICONS = {
    clip: "M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6.5H9v9a3 3 0 0 0 6 0V5a4.5 4.5 0 0 0-9 0v11.5a6 6 0 0 0 12 0v-10Z",
    file: "M6 2h8l6 6v13a1 1 0 0 1-1 1H6a1 1 0 0 1-1-1V3a1 1 0 0 1 1-1Zm7 1.5V9h5.5L13 3.5Z",
  };
  function icon(name, size) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", String(size || 14));
    svg.setAttribute("height", String(size || 14));
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("class", `icon icon-${name}`);
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("fill", "currentColor");
    path.setAttribute("d", ICONS[name]);
    svg.append(path);
    return svg;
  }

  // Field access that tolerates both Mailpit's spelling ("Subject") and snake case ("subject").
  function pick(obj, ...names) {
    if (!obj || typeof obj !== "object") return undefined;
    for (const name of names) {
      if (obj[name] !== undefined && obj[name] !== null) return obj[name];
    }
    return undefined;
  }

  function address(a) {
    if (!a) return "";
    if (typeof a === "string") return a;
    const name = pick(a, "Name", "name") || "";
    const addr = pick(a, "Address", "address") || "";
    return name ? `${name} <${addr}>` : addr;
  }

  function shortAddress(a) {
    if (!a) return "";
    if (typeof a === "string") return a;
    return pick(a, "Name", "name") || pick(a, "Address", "address") || "";
  }

  function asList(value) {
    if (value === undefined || value === null) return [];
    return Array.isArray(value) ? value : [value];
  }

  function formatSize(bytes) {
    const n = Number(bytes) || 0;
    if (n < 1000) return `${n} B`;
    if (n < 1000 * 1000) return `${(n / 1000).toFixed(n < 10000 ? 1 : 0)} kB`;
    return `${(n / 1000 / 1000).toFixed(1)} MB`;
  }

  function parseTime(value) {
    if (!value) return null;
    const d = new Date(value);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  function formatTime(value) {
    const d = parseTime(value);
    if (!d) return "";
    const now = new Date();
    if (d.toDateString() === now.toDateString()) {
      return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    }
    return d.toLocaleDateString([], { day: "numeric", month: "short", year: "numeric" });
  }

  function safeHref(url) {
    try {
      const parsed = new URL(url, "http://invalid.invalid/");
      if (["http:", "https:", "mailto:"].includes(parsed.protocol) && /^[a-z]+:/i.test(url)) {
        return parsed.href;
      }
    } catch (_) {
      /* not a URL: shown as text */
    }
    return null;
  }

  async function api(path, options) {
    const response = await fetch(API + path, {
      credentials: "same-origin",
      headers: { Accept: "application/json", ...((options && options.headers) || {}) },
      ...options,
    });
    if (!response.ok) {
      let detail = "";
      try {
        const text = await response.text();
        try {
          const json = JSON.parse(text);
          detail = json.detail || json.error || json.message || text;
          if (typeof detail !== "string") detail = JSON.stringify(detail);
        } catch (_) {
          detail = text;
        }
      } catch (_) {
        /* no body */
      }
      const error = new Error(detail || `${response.status} ${response.statusText}`);
      error.status = response.status;
      throw error;
    }
    const type = response.headers.get("content-type") || "";
    if (type.includes("json")) return response.json();
    return response.text();
  }

  let toastTimer = null;
  function toast(text, isError) {
    const el = $("toast");
    el.textContent = text;
    el.classList.toggle("toast-error", Boolean(isError));
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => {
      el.hidden = true;
    }, 4000);
  }

  // One question at a time. The dialog's "close" event is a queued task, and Chromium may run
  // a later key press first: a close event that arrives while the dialog is open again belongs
  // to an earlier question (already answered "no") and is ignored.
  let answer = null;
  function onDialogClose() {
    const dialog = $("confirm");
    if (dialog.open || !answer) return;
    const resolve = answer;
    answer = null;
    resolve(dialog.returnValue === "ok");
  }

  function confirmDialog(text, okLabel) {
    const dialog = $("confirm");
    if (answer) answer(false);
    $("confirm-text").textContent = text;
    $("confirm-ok").textContent = okLabel || "Delete";
    return new Promise((resolve) => {
      answer = resolve;
      dialog.returnValue = "cancel";
      if (!dialog.open) dialog.showModal();
      $("confirm-ok").focus();
    });
  }

  // ------------------------------------------------------------------ state

  const state = {
    query: "",
    start: 0,
    total: 0,
    matches: 0,
    messages: [],
    cursor: -1, // index of the highlighted row
    openId: null,
    message: null,
    tab: "preview",
    remote: false,
    phone: false,
    loading: null,
  };

  const messageId = (m) => String(pick(m, "ID", "id") || "");

  // ------------------------------------------------------------------ inbox

  async function loadList() {
    const params = new URLSearchParams({ start: String(state.start), limit: String(PAGE) });
    let path = "messages";
    if (state.query) {
      path = "search";
      params.set("query", state.query);
    }
    const token = {};
    state.loading = token;
    let data;
    try {
      data = await api(`${path}?${params}`);
    } catch (error) {
      if (state.loading !== token) return;
      // Never leave the previous results on screen under a search they do not answer.
      const invalid = Boolean(state.query) && error.status === 400;
      $("list-error").textContent = invalid
        ? `Invalid search: ${error.message}`
        : `Could not load messages: ${error.message}`;
      $("list-error").hidden = false;
      $("search").setAttribute("aria-invalid", invalid ? "true" : "false");
      state.messages = [];
      state.matches = 0;
      state.cursor = -1;
      renderList();
      $("count").textContent = invalid ? "invalid search" : "";
      $("empty").hidden = true;
      return;
    }
    if (state.loading !== token) return; // a newer load superseded this one
    $("list-error").hidden = true;
    $("search").setAttribute("aria-invalid", "false");
    const keep = state.messages[state.cursor] ? messageId(state.messages[state.cursor]) : null;
    state.messages = asList(pick(data, "messages", "Messages", "items"));
    state.total = Number(pick(data, "total", "Total") || 0);
    state.matches = Number(
      pick(data, "messages_count", "count", "Count") ?? state.messages.length
    );
    if (!state.query) state.matches = state.total;
    let cursor = keep ? state.messages.findIndex((m) => messageId(m) === keep) : -1;
    if (cursor < 0 && state.openId) {
      cursor = state.messages.findIndex((m) => messageId(m) === state.openId);
    }
    state.cursor = cursor;
    renderList();
  }

  function renderList() {
    const list = $("messages");
    const rows = state.messages.map((m, index) => {
      const id = messageId(m);
      const attachments = Number(pick(m, "Attachments", "attachments") || 0);
      // No To: header (Bcc-only mail, a bare test message): the envelope says who it went to.
      let to = asList(pick(m, "To", "to")).map(shortAddress).filter(Boolean);
      if (!to.length) to = asList(pick(m, "Recipients", "rcpt_tos")).map(String);
      const from = shortAddress(pick(m, "From", "from")) || pick(m, "MailFrom", "mail_from") || "";
      const subject = pick(m, "Subject", "subject") || "";
      const created = pick(m, "Created", "created", "received_at", "Date");
      const unread = pick(m, "Read", "read") === false; // Mailpit's read state: unread in bold
      const tags = asList(pick(m, "Tags", "tags")).map(String);
      const row = h(
        "li",
        {
          class: "row" + (index === state.cursor ? " cursor" : "") + (id === state.openId ? " open" : ""),
          "data-unread": unread,
          role: "option",
          "aria-selected": id === state.openId ? "true" : "false",
          "data-id": id,
          onclick: () => {
            state.cursor = index;
            openMessage(id);
          },
        },
        h(
          "div",
          { class: "row-top" },
          h("span", { class: "from", title: address(pick(m, "From", "from")) }, from || "(no sender)"),
          h("time", { class: "time", datetime: created || "", title: parseTime(created)?.toLocaleString() || "" }, formatTime(created))
        ),
        h(
          "div",
          { class: "row-mid" },
          h("span", { class: "subj" + (subject ? "" : " none") }, subject || "(no subject)"),
          ...tags.map((tag) => h("span", { class: "tag", title: "tag" }, tag)),
          attachments
            ? h("span", { class: "clip", title: `${attachments} attachment(s)`, "aria-label": "has attachments" }, icon("clip"))
            : null
        ),
        h(
          "div",
          { class: "row-bottom" },
          h("span", { class: "to" }, to.length ? "to " + to.join(", ") : ""),
          h("span", { class: "size" }, formatSize(pick(m, "Size", "size")))
        ),
        h("div", { class: "snippet" }, pick(m, "Snippet", "snippet") || "")
      );
      return row;
    });
    list.replaceChildren(...rows);
    const shown = state.messages.length;
    let count;
    if (state.query) {
      count = `${state.matches} of ${state.total} message${state.total === 1 ? "" : "s"} match`;
    } else {
      count = `${state.total} message${state.total === 1 ? "" : "s"}`;
    }
    $("count").textContent = count;
    $("empty").hidden = shown > 0;
    $("empty-text").textContent = state.query
      ? "Nothing matches this search."
      : "Mail sent to this server appears here as it arrives.";
    $("delete-matches").hidden = !state.query || state.matches === 0;
    const pages = state.matches > PAGE;
    $("pager").hidden = !pages;
    if (pages) {
      $("page-info").textContent = `${state.start + 1}–${state.start + shown} of ${state.matches}`;
      $("prev-page").disabled = state.start === 0;
      $("next-page").disabled = state.start + PAGE >= state.matches;
    }
    document.title = state.total ? `(${state.total}) smtpmock` : "smtpmock";
  }

  function moveCursor(delta) {
    if (!state.messages.length) return;
    let next = state.cursor + delta;
    if (state.cursor < 0) next = delta > 0 ? 0 : state.messages.length - 1;
    next = Math.max(0, Math.min(state.messages.length - 1, next));
    state.cursor = next;
    renderList();
    const row = $("messages").children[next];
    if (row) row.scrollIntoView({ block: "nearest" });
    if (state.openId && !isPhone()) openMessage(messageId(state.messages[next]));
  }

  // ------------------------------------------------------------------ live updates

  // Bursts of events (a test suite sending hundreds of messages) become one reload per 50 ms.
  let refreshQueued = false;
  function scheduleRefresh() {
    if (refreshQueued) return;
    refreshQueued = true;
    setTimeout(() => {
      refreshQueued = false;
      loadList();
    }, 50);
  }

  function setLive(on, text) {
    const el = $("live");
    el.classList.toggle("on", on);
    el.querySelector(".live-text").textContent = text;
  }

  let events = null;
  function connectEvents() {
    if (!window.EventSource) {
      setLive(false, "no live updates");
      return;
    }
    events = new EventSource(API + "events");
    events.onopen = () => {
      setLive(true, "live");
      scheduleRefresh(); // catch up on anything that arrived while disconnected
    };
    events.onerror = () => setLive(false, "reconnecting");
    const onChange = (event) => {
      scheduleRefresh();
      let data = null;
      try {
        data = JSON.parse(event.data);
      } catch (_) {
        /* not JSON: a refresh is all we need */
      }
      const gone = new Set(asList(Array.isArray(data) ? data : pick(data, "IDs", "ids")).map(String));
      if (state.openId && (event.type === "cleared" || gone.has(state.openId))) {
        showPlaceholder();
      }
    };
    events.onmessage = onChange;
    for (const name of ["new", "added", "message", "deleted", "delete", "cleared", "prune", "stats"]) {
      events.addEventListener(name, onChange);
    }
    // Read state or tags changed (opening a message marks it read): the list is redrawn, the
    // open message stays open.
    events.addEventListener("updated", () => scheduleRefresh());
  }

  // ------------------------------------------------------------------ message view

  function isPhone() {
    return window.matchMedia("(max-width: 760px)").matches;
  }

  function showPane(which) {
    $("view").hidden = which !== "view";
    $("server").hidden = which !== "server";
    $("placeholder").hidden = which !== "placeholder";
    $("layout").classList.toggle("reading", which !== "placeholder");
  }

  function showPlaceholder() {
    state.openId = null;
    state.message = null;
    showPane("placeholder");
    if (location.hash) history.replaceState(null, "", location.pathname + location.search);
    renderList();
  }

  async function openMessage(id, fromHash) {
    if (!id) return;
    state.openId = id;
    if (!fromHash && location.hash !== `#/message/${encodeURIComponent(id)}`) {
      history.replaceState(null, "", `#/message/${encodeURIComponent(id)}`);
    }
    renderList();
    let message;
    try {
      const path = `message/${encodeURIComponent(id)}`;
      const [detail, links, transcript] = await Promise.all([
        api(path),
        api(`${path}/links`).catch(() => null),
        api(`${path}/transcript`).catch(() => null),
      ]);
      message = detail;
      if (links && message && message.Links === undefined) message.Links = pick(links, "Links", "links");
      if (transcript && message && !message.Transcript) message.Transcript = transcript;
    } catch (error) {
      if (state.openId !== id) return;
      if (error.status === 404) {
        toast("That message is gone.", true);
        showPlaceholder();
      } else {
        toast(`Could not open the message: ${error.message}`, true);
      }
      return;
    }
    if (state.openId !== id) return;
    if (state.message && messageId(state.message) !== id) state.remote = false;
    state.message = message;
    const hasHtml = Boolean(pick(message, "HTML", "html"));
    if (!hasHtml && state.tab === "preview") state.tab = "text";
    if (hasHtml && state.tab === "text" && !pick(message, "Text", "text")) state.tab = "preview";
    renderMessage();
    showPane("view");
  }

  function renderMessage() {
    const m = state.message;
    const id = messageId(m);
    const base = `${API}message/${encodeURIComponent(id)}`;
    $("v-subject").textContent = pick(m, "Subject", "subject") || "(no subject)";
    const fields = [
      ["From", [pick(m, "From", "from")]],
      ["To", asList(pick(m, "To", "to"))],
      ["Cc", asList(pick(m, "Cc", "cc"))],
      ["Bcc", asList(pick(m, "Bcc", "bcc"))],
      ["Reply-To", asList(pick(m, "ReplyTo", "reply_to"))],
    ];
    const headerTo = [...fields[1][1], ...fields[2][1]].map(address).filter(Boolean);
    if (!headerTo.length) {
      fields.splice(1, 0, ["Envelope to", asList(pick(m, "Recipients", "rcpt_tos")).map(String)]);
    }
    const dl = [];
    for (const [label, values] of fields) {
      const text = values.map(address).filter(Boolean).join(", ");
      if (!text) continue;
      dl.push(h("dt", {}, label), h("dd", {}, text));
    }
    const date = pick(m, "Date", "date", "Created", "created");
    if (date) {
      dl.push(h("dt", {}, "Date"), h("dd", {}, parseTime(date)?.toLocaleString() || String(date)));
    }
    dl.push(h("dt", {}, "Size"), h("dd", {}, formatSize(pick(m, "Size", "size"))));
    $("v-addresses").replaceChildren(...dl);
    $("v-download").href = `${base}/raw`;
    $("v-download").setAttribute("download", `${id}.eml`);

    const attachments = [
      ...asList(pick(m, "Attachments", "attachments")),
      ...asList(pick(m, "Inline", "inline")),
    ];
    const defects = asList(pick(m, "Defects", "defects"));
    const links = messageLinks(m);
    const tabs = [];
    if (pick(m, "HTML", "html")) tabs.push(["preview", "Preview"]);
    tabs.push(["text", "Text"], ["headers", "Headers"], ["raw", "Raw"]);
    tabs.push(["attachments", `Attachments (${attachments.length})`]);
    tabs.push(["envelope", "Envelope & session"]);
    tabs.push(["links", `Links (${links.length})`]);
    if (defects.length) tabs.push(["defects", `Defects (${defects.length})`]);
    if (!tabs.some(([key]) => key === state.tab)) state.tab = tabs[0][0];
    $("tabs").replaceChildren(
      ...tabs.map(([key, label]) =>
        h(
          "button",
          {
            type: "button",
            role: "tab",
            class: "tab" + (key === state.tab ? " active" : "") + (key === "defects" ? " warn" : ""),
            "aria-selected": key === state.tab ? "true" : "false",
            "data-tab": key,
            onclick: () => {
              state.tab = key;
              renderMessage();
            },
          },
          label
        )
      )
    );
    const body = $("tab-body");
    body.replaceChildren();
    const render = {
      preview: () => renderPreview(base),
      text: () => renderText(m),
      headers: () => renderHeaders(base),
      raw: () => renderRaw(base),
      attachments: () => renderAttachments(base, attachments),
      envelope: () => renderEnvelope(m),
      links: () => renderLinks(links),
      defects: () => h("ul", { class: "defects" }, defects.map((d) => h("li", {}, typeof d === "string" ? d : JSON.stringify(d)))),
    }[state.tab];
    const content = render();
    if (content instanceof Promise) {
      body.append(h("p", { class: "muted" }, "Loading…"));
      content.then(
        (node) => body.replaceChildren(node),
        (error) => body.replaceChildren(h("p", { class: "error" }, `Could not load: ${error.message}`))
      );
    } else {
      body.append(content);
    }
  }

  function renderPreview(base) {
    const src = `${base}/html${state.remote ? "?remote=1" : ""}`;
    const frame = h("iframe", {
      class: "preview" + (state.phone ? " phone" : ""),
      id: "preview",
      title: "HTML body (sandboxed)",
      // No allow-scripts, no allow-same-origin: the body runs nothing and reaches nothing of
      // this page. Popups are allowed so that links open in a new tab, outside the sandbox.
      sandbox: "allow-popups allow-popups-to-escape-sandbox",
      referrerpolicy: "no-referrer",
      loading: "eager",
      src,
    });
    const toolbar = h(
      "div",
      { class: "toolbar" },
      h(
        "div",
        { class: "segmented", role: "group", "aria-label": "Preview width" },
        h("button", { type: "button", class: "seg" + (state.phone ? "" : " active"), id: "width-desktop", onclick: () => { state.phone = false; renderMessage(); } }, "Desktop"),
        h("button", { type: "button", class: "seg" + (state.phone ? " active" : ""), id: "width-phone", onclick: () => { state.phone = true; renderMessage(); } }, "Phone")
      ),
      state.remote
        ? h("span", { class: "notice", id: "remote-state" }, "Remote content loaded")
        : h(
            "span",
            { class: "notice blocked", id: "remote-state" },
            "Remote images and fonts are blocked. ",
            h("button", { type: "button", class: "linkish", id: "load-remote", onclick: () => { state.remote = true; renderMessage(); } }, "Load remote images")
          )
    );
    return h("div", { class: "preview-wrap" }, toolbar, h("div", { class: "frame-box" + (state.phone ? " phone" : "") }, frame));
  }

  function renderText(m) {
    const text = pick(m, "Text", "text");
    if (!text) return h("p", { class: "muted" }, "This message has no plain-text body.");
    return h("pre", { class: "text-body", id: "text-body" }, text);
  }

  async function renderHeaders(base) {
    let headers = pick(state.message, "Headers", "headers");
    if (!headers) headers = await api(`${base.slice(API.length)}/headers`);
    const rows = [];
    if (Array.isArray(headers)) {
      for (const item of headers) {
        const [name, value] = Array.isArray(item) ? item : [pick(item, "Name", "name"), pick(item, "Value", "value")];
        rows.push(h("tr", {}, h("th", {}, String(name)), h("td", {}, String(value))));
      }
    } else {
      for (const [name, values] of Object.entries(headers || {})) {
        for (const value of asList(values)) {
          rows.push(h("tr", {}, h("th", {}, name), h("td", {}, String(value))));
        }
      }
    }
    return h("table", { class: "headers" }, h("tbody", {}, rows));
  }

  const RAW_SHOWN = 512 * 1024;
  async function renderRaw(base) {
    const response = await fetch(`${base}/raw`, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    const text = await response.text();
    const cut = text.length > RAW_SHOWN;
    return h(
      "div",
      {},
      h(
        "div",
        { class: "toolbar" },
        h("a", { class: "btn", href: `${base}/raw`, download: `${messageId(state.message)}.eml`, id: "raw-download" }, "Download .eml"),
        cut ? h("span", { class: "notice" }, `Showing the first ${formatSize(RAW_SHOWN)}; download for the whole message.`) : null
      ),
      h("pre", { class: "raw", id: "raw-body" }, cut ? text.slice(0, RAW_SHOWN) : text)
    );
  }

  function renderAttachments(base, attachments) {
    if (!attachments.length) return h("p", { class: "muted" }, "No attachments.");
    return h(
      "ul",
      { class: "attachments" },
      attachments.map((a) => {
        const part = pick(a, "PartID", "part_id", "index", "Index");
        const name = pick(a, "FileName", "filename", "Filename") || "(no name)";
        const cid = pick(a, "ContentID", "content_id");
        return h(
          "li",
          { class: "attachment" },
          h("span", { class: "att-icon", "aria-hidden": "true" }, icon("file", 22)),
          h(
            "div",
            { class: "att-main" },
            h("div", { class: "att-name" }, name),
            h(
              "div",
              { class: "att-meta" },
              [pick(a, "ContentType", "content_type") || "", formatSize(pick(a, "Size", "size")), cid ? `cid:${cid}` : ""]
                .filter(Boolean)
                .join(" · ")
            )
          ),
          part === undefined
            ? null
            : h("a", { class: "btn", href: `${base}/part/${encodeURIComponent(part)}`, download: "" }, "Download")
        );
      })
    );
  }

  function renderEnvelope(m) {
    const envelope = pick(m, "Envelope", "envelope") || {};
    const transcript = pick(m, "Transcript", "transcript");
    const get = (...names) => pick(envelope, ...names) ?? pick(m, ...names);
    const rows = [];
    const add = (label, text) => {
      if (text === undefined || text === null || text === "") return;
      rows.push(h("dt", {}, label), h("dd", {}, String(text)));
    };
    const sender = get("mail_from", "MailFrom", "ReturnPath");
    add("MAIL FROM", sender === "" ? "<> (null sender)" : sender);
    add("RCPT TO", asList(get("rcpt_tos", "RcptTo", "Recipients")).join(", "));
    add("HELO / EHLO", get("helo", "Helo"));
    const peer = get("peer", "Peer");
    add("Client", Array.isArray(peer) ? `${peer[0]}:${peer[1]}` : peer);
    const tls = get("tls", "TLS");
    if (tls !== undefined) add("TLS", tls ? `yes${get("tls_version", "TLSVersion") ? ` (${get("tls_version", "TLSVersion")})` : ""}` : "no");
    add("AUTH user", get("auth_user", "Username") || (rows.length ? "none" : ""));
    add("MAIL parameters", asList(get("mail_options", "MailOptions")).join(" "));
    const rcptOptions = get("rcpt_options", "RcptOptions");
    if (rcptOptions && typeof rcptOptions === "object") {
      const withOptions = Object.entries(rcptOptions).filter(([, opts]) => asList(opts).length);
      add("RCPT parameters", withOptions.map(([rcpt, opts]) => `${rcpt}: ${asList(opts).join(" ")}`).join("; "));
    }
    const utf8 = get("smtputf8", "SMTPUTF8");
    if (utf8 !== undefined) add("SMTPUTF8", utf8 ? "yes" : "no");
    const received = get("received_at", "Created");
    add("Received", parseTime(received)?.toLocaleString() || received);
    add("Session", get("session_id", "SessionID"));
    const parts = [h("dl", { class: "kv", id: "envelope" }, rows.length ? rows : [h("dt", {}, "Envelope"), h("dd", {}, "not reported by the server")])];
    parts.push(h("h2", { class: "section" }, "SMTP session"));
    const lines = asList(pick(transcript, "entries", "Entries", "lines") ?? (Array.isArray(transcript) ? transcript : undefined));
    if (!lines.length) {
      parts.push(h("p", { class: "muted" }, "No transcript recorded for this message."));
    } else {
      parts.push(
        h(
          "ol",
          { class: "transcript", id: "transcript" },
          lines.map((line) => {
            if (typeof line === "string") return h("li", {}, line);
            const kind = String(pick(line, "kind", "Kind", "direction") || "");
            const text = pick(line, "text", "Text", "line") ?? JSON.stringify(line);
            const when = parseTime(pick(line, "time", "Time"));
            const who = { client: "C:", server: "S:" }[kind] || "--";
            return h(
              "li",
              { class: kind || "event" },
              h("time", { class: "when", datetime: when ? when.toISOString() : "" }, when ? when.toLocaleTimeString([], { hour12: false }) + "." + String(when.getMilliseconds()).padStart(3, "0") : ""),
              h("span", { class: "who" }, who),
              h("span", { class: "line" }, String(text))
            );
          })
        )
      );
    }
    return h("div", {}, parts);
  }

  function messageLinks(m) {
    const fromServer = pick(m, "Links", "links");
    if (Array.isArray(fromServer)) return fromServer.map((l) => (typeof l === "string" ? l : pick(l, "URL", "url", "href") || ""));
    // Fallback: collect links from the bodies without rendering them. DOMParser builds an inert
    // document: no script runs and nothing is fetched.
    const found = [];
    const html = pick(m, "HTML", "html");
    if (html) {
      const doc = new DOMParser().parseFromString(html, "text/html");
      for (const a of doc.querySelectorAll("a[href], area[href]")) found.push(a.getAttribute("href").trim());
    }
    const text = pick(m, "Text", "text") || "";
    for (const match of text.matchAll(/\bhttps?:\/\/[^\s<>"']+/gi)) found.push(match[0].replace(/[.,;:!?)\]}'"]+$/, ""));
    return [...new Set(found.filter(Boolean))];
  }

  function renderLinks(links) {
    if (!links.length) return h("p", { class: "muted" }, "No links in this message.");
    return h(
      "ul",
      { class: "links", id: "links" },
      links.map((url) => {
        const href = safeHref(url);
        return h(
          "li",
          {},
          href
            ? h("a", { href, target: "_blank", rel: "noopener noreferrer" }, url)
            : h("span", { class: "unsafe", title: "Not a web link: shown as text only" }, url)
        );
      })
    );
  }

  async function deleteOpen() {
    const m = state.message;
    if (!m) return;
    await deleteOne(messageId(m), pick(m, "Subject", "subject"));
  }

  async function deleteOne(id, subject) {
    const ok = await confirmDialog(`Delete “${subject || "(no subject)"}”?`);
    if (!ok) return;
    // Decided before the request: the event stream may report the deletion (and close the
    // view) before the request's answer arrives.
    const wasOpen = state.openId === id;
    const index = state.messages.findIndex((x) => messageId(x) === id);
    const next = state.messages[index + 1] || state.messages[index - 1];
    try {
      await api("messages", {
        method: "DELETE",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ IDs: [id] }),
      });
    } catch (error) {
      toast(`Delete failed: ${error.message}`, true);
      return;
    }
    toast("Message deleted.");
    await loadList();
    const nextId = next ? messageId(next) : null;
    state.cursor = nextId ? state.messages.findIndex((x) => messageId(x) === nextId) : -1;
    if (wasOpen && nextId && state.cursor >= 0 && !isPhone()) {
      openMessage(nextId); // the next message opens, as in a mail client
    } else if (wasOpen) {
      showPlaceholder();
    } else {
      renderList();
    }
  }

  async function deleteMatches() {
    if (!state.query) return;
    const ok = await confirmDialog(`Delete the ${state.matches} message(s) matching “${state.query}”?`);
    if (!ok) return;
    try {
      await api(`search?${new URLSearchParams({ query: state.query })}`, { method: "DELETE" });
    } catch (error) {
      toast(`Delete failed: ${error.message}`, true);
      return;
    }
    toast("Matching messages deleted.");
    showPlaceholder();
    loadList();
  }

  async function deleteAll() {
    const ok = await confirmDialog(`Delete all ${state.total} message(s)? This cannot be undone.`, "Delete all");
    if (!ok) return;
    try {
      await api("messages", {
        method: "DELETE",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ All: true }),
      });
    } catch (error) {
      toast(`Delete failed: ${error.message}`, true);
      return;
    }
    toast("All messages deleted.");
    state.start = 0;
    showPlaceholder();
    loadList();
  }

  // ------------------------------------------------------------------ server panel

  function renderValue(value) {
    if (value === null || value === undefined) return h("span", { class: "muted" }, "—");
    if (Array.isArray(value)) {
      if (!value.length) return h("span", { class: "muted" }, "none");
      if (value.every((v) => typeof v !== "object" || v === null)) return h("span", {}, value.join(", "));
      return h("ul", { class: "plain" }, value.map((v) => h("li", {}, renderValue(v))));
    }
    if (typeof value === "object") {
      const rows = Object.entries(value).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, renderValue(v))]);
      return h("dl", { class: "kv" }, rows);
    }
    if (typeof value === "boolean") return h("span", {}, value ? "yes" : "no");
    return h("span", {}, String(value));
  }

  const OPTION_LABELS = {
    hostname: "Greeting name",
    tls: "TLS",
    tls_cert: "Certificate file given",
    tls_key: "Key file given",
    tls_ca: "CA file given",
    auth: "AUTH accounts",
    auth_required: "AUTH required",
    auth_allow_plaintext: "AUTH without TLS",
    smtputf8: "SMTPUTF8",
    max_message_size: "Largest message",
    max_recipients: "Recipients per message",
    max_connections: "Connections",
    max_command_length: "Longest command line",
    max_line_length: "Longest DATA line",
    idle_timeout: "Idle timeout",
  };
  const SIZES = new Set(["max_message_size", "MaxBytes", "Bytes"]);

  function optionText(key, value) {
    if (value === null || value === undefined) {
      if (key === "tls") return "off";
      return key.startsWith("max_") || key.startsWith("Max") ? "no limit" : "—";
    }
    if (typeof value === "boolean") return value ? "yes" : "no";
    if (SIZES.has(key) && typeof value === "number") return `${formatSize(value)} (${value.toLocaleString()} bytes)`;
    if (key === "idle_timeout" || key === "MaxAge") return `${value} s`;
    return String(value);
  }

  function kvList(entries, id) {
    const rows = entries.flatMap(([label, text]) => [h("dt", {}, label), h("dd", {}, text)]);
    return h("dl", { class: "kv", id }, rows);
  }

  function describeRule(rule) {
    if (!rule || typeof rule !== "object") return String(rule);
    const stages = asList(pick(rule, "stages", "stage")).join(", ") || "any stage";
    const when = [];
    for (const key of ["sender", "recipient", "subject"]) {
      const v = rule[key];
      if (v) when.push(`${key} ${typeof v === "string" ? v : JSON.stringify(v)}`);
    }
    if (rule.predicate) when.push(`where ${rule.predicate}`);
    let what = "";
    if (rule.greylist) what = `greylist (retry after ${rule.greylist} s)`;
    else if (rule.drop) what = "drop the connection";
    else if (rule.code) what = `reply ${rule.code}${rule.text ? " " + rule.text : ""}`;
    if (rule.delay) what += `${what ? ", " : ""}delay ${rule.delay} s`;
    if (rule.throttle) what += `${what ? ", " : ""}throttle ${asList(rule.throttle).join("–")} B/s`;
    const how = [];
    if (rule.times !== null && rule.times !== undefined) how.push(`the next ${rule.times} time(s)`);
    if (rule.nth) how.push(`only occurrence #${rule.nth}`);
    if (rule.probability !== null && rule.probability !== undefined) how.push(`${Math.round(rule.probability * 1000) / 10}% of the time`);
    const counters = `fired ${rule.fired ?? 0} of ${rule.seen ?? 0} seen`;
    const name = rule.name ? `${rule.name}: ` : "";
    return `${name}at ${stages}${when.length ? " when " + when.join(", ") : ""} → ${what || "no action"}${how.length ? ", " + how.join(", ") : ""} (${counters})`;
  }

  async function openServer() {
    state.openId = null;
    showPane("server");
    renderList();
    if (location.hash !== "#/server") history.replaceState(null, "", "#/server");
    const body = $("server-body");
    body.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    const [server, info, faults] = await Promise.allSettled([api("server"), api("info"), api("faults")]);
    const failed = (result) => h("p", { class: "error" }, `Could not load: ${result.reason.message}`);
    const card = (title, ...content) => h("section", { class: "card" }, h("h2", { class: "section" }, title), ...content);
    const cards = [];

    const smtp = server.status === "fulfilled" ? server.value.SMTP : info.status === "fulfilled" ? info.value.SMTP : null;
    const address = smtp ? `${pick(smtp, "Host", "host")}:${pick(smtp, "Port", "port") ?? "(not running)"}` : "unknown";
    cards.push(card("Addresses", kvList([["SMTP", address], ["HTTP", location.origin]], "server-addresses")));

    if (server.status === "fulfilled") {
      const options = server.value.Options || {};
      const security = ["tls", "tls_cert", "tls_key", "tls_ca", "auth", "auth_required", "auth_allow_plaintext"];
      const pickOptions = (keys) => keys.filter((k) => k in options).map((k) => [OPTION_LABELS[k] || k, optionText(k, options[k])]);
      const retention = server.value.Retention || {};
      const store = server.value.Store || {};
      cards.push(
        card(
          "Store and retention",
          kvList(
            [
              ["Store", String(store.Kind || "—")],
              ["Messages", String(store.Messages ?? "—")],
              ["Size", optionText("Bytes", store.Bytes)],
              ["Most messages", retention.MaxMessages ? String(retention.MaxMessages) : "no limit"],
              ["Most bytes", optionText("MaxBytes", retention.MaxBytes)],
              ["Evict after", retention.MaxAge ? `${retention.MaxAge} s` : "never"],
            ],
            "server-info"
          )
        )
      );
      cards.push(card("TLS and AUTH", kvList(pickOptions(security), "server-security")));
      cards.push(card("Limits and protocol", kvList(pickOptions(Object.keys(options).filter((k) => !security.includes(k))), "server-limits")));
    } else {
      cards.push(card("Server", failed(server), info.status === "fulfilled" ? h("div", { id: "server-info" }, renderValue(info.value)) : null));
    }

    const faultParts = [];
    if (faults.status === "fulfilled") {
      const rules = asList(pick(faults.value, "rules", "Rules") ?? (Array.isArray(faults.value) ? faults.value : []));
      faultParts.push(
        rules.length
          ? h("ol", { class: "rules", id: "fault-rules" }, rules.map((r) => h("li", {}, describeRule(r))))
          : h("p", { class: "muted", id: "fault-rules" }, "No fault rules: every command is answered normally.")
      );
      const input = h("input", {
        type: "text",
        id: "fault-input",
        placeholder: 'Mailpit chaos "Recipient:550:100", or a rule as JSON {"stage": "RCPT", "code": 451}',
        "aria-label": "Fault rule",
        spellcheck: "false",
      });
      faultParts.push(
        h(
          "form",
          {
            class: "fault-form",
            id: "fault-form",
            onsubmit: async (event) => {
              event.preventDefault();
              const text = input.value.trim();
              if (!text) return;
              let payload;
              try {
                payload = text.startsWith("{") ? JSON.parse(text) : { chaos: text };
              } catch (error) {
                toast(`Not valid JSON: ${error.message}`, true);
                return;
              }
              try {
                await api("faults", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });
              } catch (error) {
                toast(`Could not add the rule: ${error.message}`, true);
                return;
              }
              toast("Fault rule added.");
              openServer();
            },
          },
          input,
          h("button", { class: "btn", type: "submit", id: "fault-add" }, "Add rule"),
          h(
            "button",
            {
              class: "btn danger",
              type: "button",
              id: "fault-clear",
              disabled: rules.length === 0,
              onclick: async () => {
                if (!(await confirmDialog("Remove every fault rule?", "Clear rules"))) return;
                try {
                  await api("faults", { method: "DELETE" });
                } catch (error) {
                  toast(`Could not clear: ${error.message}`, true);
                  return;
                }
                toast("Fault rules cleared.");
                openServer();
              },
            },
            "Clear rules"
          )
        )
      );
      const log = asList(pick(faults.value, "log", "Log"));
      if (log.length) {
        faultParts.push(h("h2", { class: "section" }, `Faults that fired (${log.length})`));
        faultParts.push(
          h(
            "ol",
            { class: "transcript", id: "fault-log" },
            log.slice(-200).reverse().map((e) => {
              const when = parseTime(e.time);
              return h(
                "li",
                {},
                h("time", { class: "when" }, when ? when.toLocaleTimeString([], { hour12: false }) : ""),
                h("span", { class: "line" }, `${e.stage || ""} ${e.action || ""}${e.reply ? " → " + e.reply : ""}${e.rule_name ? " (" + e.rule_name + ")" : ""}`)
              );
            })
          )
        );
      }
    } else {
      faultParts.push(failed(faults));
    }
    const faultCard = card("Fault rules", ...faultParts);
    faultCard.classList.add("wide");
    cards.push(faultCard);
    body.replaceChildren(h("div", { class: "cards" }, cards));
  }

  // ------------------------------------------------------------------ wiring

  function route() {
    const hash = location.hash;
    const match = /^#\/message\/(.+)$/.exec(hash);
    if (match) openMessage(decodeURIComponent(match[1]), true);
    else if (hash === "#/server") openServer();
  }

  function onKey(event) {
    const target = event.target;
    const typing = target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement;
    if ($("confirm").open) return;
    if (typing) {
      if (event.key === "Escape") target.blur();
      if (event.key === "ArrowDown" && target.id === "search") {
        event.preventDefault();
        target.blur();
        $("messages").focus();
        moveCursor(1);
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    switch (event.key) {
      case "ArrowDown":
      case "j":
        event.preventDefault();
        moveCursor(1);
        break;
      case "ArrowUp":
      case "k":
        event.preventDefault();
        moveCursor(-1);
        break;
      case "Enter":
      case "o":
        if (state.cursor >= 0 && state.messages[state.cursor]) {
          event.preventDefault();
          openMessage(messageId(state.messages[state.cursor]));
        }
        break;
      case "Delete":
      case "#":
      case "d": {
        const row = state.messages[state.cursor];
        const id = state.openId || (row && messageId(row));
        if (id) {
          event.preventDefault();
          const m = state.messages.find((x) => messageId(x) === id) || state.message;
          deleteOne(id, pick(m, "Subject", "subject"));
        }
        break;
      }
      case "/":
        event.preventDefault();
        $("search").focus();
        $("search").select();
        break;
      case "Escape":
      case "u":
        if (state.openId || !$("server").hidden) {
          event.preventDefault();
          showPlaceholder();
          $("messages").focus();
        }
        break;
      default:
    }
  }

  function init() {
    let typingTimer = null;
    const search = $("search");
    const applySearch = () => {
      const query = search.value.trim();
      if (query === state.query) return;
      state.query = query;
      state.start = 0;
      state.cursor = -1;
      loadList();
    };
    search.addEventListener("input", () => {
      clearTimeout(typingTimer);
      typingTimer = setTimeout(applySearch, 200);
    });
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      clearTimeout(typingTimer);
      applySearch();
    });
    $("brand").addEventListener("click", (event) => {
      event.preventDefault();
      search.value = "";
      applySearch();
      showPlaceholder();
    });
    $("confirm").addEventListener("close", onDialogClose);
    $("delete-all").addEventListener("click", deleteAll);
    $("delete-matches").addEventListener("click", deleteMatches);
    $("v-delete").addEventListener("click", deleteOpen);
    $("back").addEventListener("click", showPlaceholder);
    $("server-back").addEventListener("click", showPlaceholder);
    $("server-button").addEventListener("click", openServer);
    $("prev-page").addEventListener("click", () => {
      state.start = Math.max(0, state.start - PAGE);
      loadList();
    });
    $("next-page").addEventListener("click", () => {
      state.start += PAGE;
      loadList();
    });
    document.addEventListener("keydown", onKey);
    window.addEventListener("hashchange", route);
    loadList().then(route);
    connectEvents();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

// Release (issue 27): send the open message on through the relay configured with
// `smtpmock serve --relay-host` (Mailpit's POST /api/v1/message/{ID}/release). The button shows
// only when a relay is configured; the server's allowlist decides where mail may go.
(function release() {
  "use strict";
  const button = document.getElementById("v-release");
  if (!button) return;
  function openId() {
    const match = /^#\/message\/(.+)$/.exec(location.hash);
    return match ? decodeURIComponent(match[1]) : null;
  }
  async function run() {
    const id = openId();
    if (!id) return;
    const input = window.prompt(`Release to (addresses, comma-separated) via ${button.dataset.server}:`);
    if (!input) return;
    const to = input.split(",").map((s) => s.trim()).filter(Boolean);
    const response = await fetch(`api/v1/message/${encodeURIComponent(id)}/release`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ To: to }),
    });
    const text = await response.text();
    button.title = response.ok ? `Released to ${to.join(", ")}` : `Release failed: ${text}`;
    button.textContent = response.ok ? "Released ✓" : "Release failed";
    window.setTimeout(() => {
      button.textContent = "Release…";
    }, 4000);
  }
  fetch("api/v1/webui", { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then((response) => (response.ok ? response.json() : null))
    .then((config) => {
      const relay = config && config.MessageRelay;
      if (!relay || !relay.Enabled) return;
      button.dataset.server = relay.SMTPServer;
      button.hidden = false;
      button.addEventListener("click", () => {
        run().catch((error) => {
          button.title = `Release failed: ${error}`;
        });
      });
    })
    .catch(() => {
      /* no relay information: the button stays hidden */
    });
})();

// Mailbox switcher (docs/mailboxes.md). The page served under /m/NAME/ is mailbox NAME's: its
// relative API paths, list, search and live events are that mailbox's only. The switcher lists
// the server's mailboxes (shown when there is more than the default one) and moves between them.
(function () {
  const select = document.getElementById("mailbox-switch");
  if (!select) return;
  const match = window.location.pathname.match(/^(.*?)\/m\/([A-Za-z0-9][A-Za-z0-9._-]{0,63})\/$/);
  const root = match ? `${match[1]}/` : window.location.pathname.replace(/[^/]*$/, "");
  const current = match ? match[2] : "";
  fetch(`${root}api/v1/mailboxes`, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  })
    .then((response) => (response.ok ? response.json() : null))
    .then((data) => {
      if (!data) return;
      const boxes = data.mailboxes.slice();
      if (current && !boxes.some((box) => box.Name === current)) {
        boxes.push({ Name: current, Messages: 0 });
      }
      if (!current && boxes.every((box) => box.Name === "default")) return;
      const all = document.createElement("option");
      all.value = "";
      all.textContent = "All mailboxes";
      select.append(all);
      for (const box of boxes) {
        const option = document.createElement("option");
        option.value = box.Name;
        option.textContent = `${box.Name} (${box.Messages})`;
        select.append(option);
      }
      select.value = current;
      select.hidden = false;
      select.addEventListener("change", () => {
        const name = select.value;
        window.location.href = name ? `${root}m/${encodeURIComponent(name)}/` : root;
      });
    })
    .catch(() => {
      /* no mailbox list: the switcher stays hidden */
    });
})();
