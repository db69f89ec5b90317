/*
 * eneca-bot chat widget: one tag on any page.
 *
 *   <script src="https://host/widget.js" data-key="PUBLIC_KEY" async></script>
 *
 * Optional: data-title, data-lang (ru|en), data-position (right|left), data-accent (a CSS
 * colour). Talks to the gateway the script came from (so a path prefix such as
 * /ai-webhook is kept), streams replies from /api/chat/stream, keeps the visitor token and
 * the thread in localStorage. Shadow DOM: no style leaks in or out. Replies are text; only
 * http(s) links are made clickable. No framework, no build step.
 */
(() => {
  "use strict";
  const script = document.currentScript;
  if (!script || !script.src) return;
  const base = script.src.replace(/\/widget\.js(?:[?#].*)?$/, "");
  const key = script.dataset.key || "";
  const wanted = (script.dataset.lang || document.documentElement.lang || navigator.language || "en").toLowerCase();
  const lang = wanted.startsWith("ru") ? "ru" : "en";
  const position = script.dataset.position === "left" ? "left" : "right";
  const accentRaw = (script.dataset.accent || "").trim();
  const accent = /^(#[0-9a-fA-F]{3,8}|[a-zA-Z]{3,20}|rgb\(\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*\))$/.test(accentRaw) ? accentRaw : "#2563eb";
  const TEXT = {
    en: {
      title: "Chat with us", open: "Open chat", close: "Close chat", send: "Send",
      placeholder: "Type your message…", input: "Your message", fresh: "New conversation",
      retry: "Retry", you: "You", bot: "Assistant", log: "Conversation",
      limited: (s) => `Too many messages. Please try again in ${s} s.`,
      origin: "This website is not allowed to use the chat.",
      key: "The chat is not set up correctly on this website (key refused).",
      down: "The chat service cannot be reached. Check your connection and try again.",
      long: "The message is too long. Please shorten it.",
      failed: "The reply could not be completed. Please try again.",
      busy: "The chat is busy right now. Please try again in a moment.",
    },
    ru: {
      title: "Напишите нам", open: "Открыть чат", close: "Закрыть чат", send: "Отправить",
      placeholder: "Введите сообщение…", input: "Ваше сообщение", fresh: "Новый диалог",
      retry: "Повторить", you: "Вы", bot: "Ассистент", log: "Диалог",
      limited: (s) => `Слишком много сообщений. Попробуйте через ${s} с.`,
      origin: "Этому сайту не разрешено использовать чат.",
      key: "Чат на этом сайте настроен неверно (ключ не принят).",
      down: "Сервис чата недоступен. Проверьте соединение и попробуйте ещё раз.",
      long: "Сообщение слишком длинное. Сократите его, пожалуйста.",
      failed: "Ответ не удалось получить. Попробуйте ещё раз.",
      busy: "Чат сейчас занят. Попробуйте чуть позже.",
    },
  }[lang];
  const title = script.dataset.title || TEXT.title;
  const storeKey = `eneca-widget:${base}:${key.slice(0, 12)}`;

  const load = () => {
    try { return JSON.parse(localStorage.getItem(storeKey) || "{}") || {}; } catch { return {}; }
  };
  const save = (state) => {
    try { localStorage.setItem(storeKey, JSON.stringify(state)); } catch { /* private mode */ }
  };
  let state = load();

  const host = document.createElement("div");
  host.setAttribute("data-eneca-widget", "");
  const root = host.attachShadow({ mode: "open" });
  const side = position === "left" ? "left" : "right";
  root.innerHTML = `
<style>
  :host { all: initial; }
  * { box-sizing: border-box; }
  .wrap { --accent: ${accent}; --bg: #ffffff; --fg: #111827; --muted: #6b7280; --bubble: #f3f4f6;
    --border: #e5e7eb; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
    color: var(--fg); position: fixed; ${side}: 20px; bottom: 20px; z-index: 2147483000; }
  @media (prefers-color-scheme: dark) {
    .wrap { --bg: #111827; --fg: #f9fafb; --muted: #9ca3af; --bubble: #1f2937; --border: #374151; }
  }
  button { font: inherit; cursor: pointer; }
  .launcher { width: 56px; height: 56px; border-radius: 50%; border: 0; background: var(--accent);
    color: #fff; box-shadow: 0 4px 14px rgba(0,0,0,.25); font-size: 24px; }
  .launcher:focus-visible, button:focus-visible, textarea:focus-visible, a:focus-visible {
    outline: 3px solid var(--accent); outline-offset: 2px; }
  .panel { position: absolute; ${side}: 0; bottom: 72px; width: 370px; height: 540px;
    max-height: calc(100vh - 100px); background: var(--bg); color: var(--fg);
    border: 1px solid var(--border); border-radius: 14px; box-shadow: 0 10px 40px rgba(0,0,0,.25);
    display: flex; flex-direction: column; overflow: hidden; }
  .panel[hidden] { display: none; }
  @media (max-width: 520px) {
    .panel { position: fixed; inset: 0; width: 100vw; height: 100vh; max-height: none;
      border-radius: 0; border: 0; }
  }
  header { display: flex; align-items: center; gap: 8px; padding: 10px 12px;
    background: var(--accent); color: #fff; }
  header h2 { font-size: 16px; margin: 0; flex: 1; font-weight: 600; }
  header button { background: transparent; border: 1px solid rgba(255,255,255,.6); color: #fff;
    border-radius: 8px; padding: 4px 8px; font-size: 13px; }
  .log { flex: 1; overflow-y: auto; padding: 12px; display: flex; flex-direction: column; gap: 8px; }
  .msg { max-width: 85%; padding: 8px 11px; border-radius: 12px; white-space: pre-wrap;
    overflow-wrap: anywhere; }
  .msg[data-role="user"] { align-self: flex-end; background: var(--accent); color: #fff; }
  .msg[data-role="assistant"] { align-self: flex-start; background: var(--bubble); }
  .msg[data-state="error"] { border: 1px solid #dc2626; }
  .msg a { color: inherit; text-decoration: underline; }
  .error { margin: 0 12px 8px; padding: 8px 10px; border-radius: 8px; background: #fef2f2;
    color: #991b1b; display: flex; gap: 8px; align-items: center; font-size: 14px; }
  .error[hidden] { display: none; }
  .error span { flex: 1; }
  .error button { border: 1px solid #991b1b; background: transparent; color: #991b1b;
    border-radius: 6px; padding: 2px 8px; }
  form { display: flex; gap: 8px; padding: 10px; border-top: 1px solid var(--border); }
  textarea { flex: 1; resize: none; height: 42px; padding: 9px 10px; border-radius: 10px;
    border: 1px solid var(--border); background: var(--bg); color: var(--fg); font: inherit; }
  form button { border: 0; border-radius: 10px; background: var(--accent); color: #fff; padding: 0 14px; }
  form button:disabled { opacity: .6; cursor: default; }
  .sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
</style>
<div class="wrap">
  <div class="panel" data-testid="panel" role="dialog" aria-modal="false" hidden>
    <header>
      <h2 id="title"></h2>
      <button type="button" data-testid="new-conversation" class="fresh"></button>
      <button type="button" data-testid="close" class="close">✕</button>
    </header>
    <div class="log" data-testid="log" role="log" aria-live="polite" tabindex="0"></div>
    <div class="sr" data-testid="announce" aria-live="polite"></div>
    <div class="error" data-testid="error" role="alert" hidden><span></span>
      <button type="button" data-testid="retry"></button></div>
    <form>
      <textarea data-testid="input" rows="1"></textarea>
      <button type="submit" data-testid="send"></button>
    </form>
  </div>
  <button type="button" class="launcher" data-testid="launcher" aria-expanded="false">💬</button>
</div>`;
  const $ = (selector) => root.querySelector(selector);
  const panel = $(".panel"), log = $(".log"), launcher = $(".launcher"), input = $("textarea");
  const sendButton = $("form button"), errorBox = $(".error"), announce = $(".sr");
  $("#title").textContent = title;
  panel.setAttribute("aria-labelledby", "title");
  panel.id = "eneca-chat-panel";
  launcher.setAttribute("aria-controls", panel.id);
  launcher.setAttribute("aria-label", TEXT.open);
  $(".close").setAttribute("aria-label", TEXT.close);
  $(".fresh").textContent = TEXT.fresh;
  $(".error button").textContent = TEXT.retry;
  log.setAttribute("aria-label", TEXT.log);
  input.placeholder = TEXT.placeholder;
  input.setAttribute("aria-label", TEXT.input);
  sendButton.textContent = TEXT.send;

  const LINK = /\bhttps?:\/\/[^\s<>"')\]]+[^\s<>"')\].,;:!?]/g;
  // Text only: links become <a> with their text as text; nothing else is interpreted.
  const render = (element, text) => {
    element.textContent = "";
    let last = 0;
    for (const match of text.matchAll(LINK)) {
      element.append(text.slice(last, match.index));
      const a = document.createElement("a");
      a.href = match[0];
      a.textContent = match[0];
      a.target = "_blank";
      a.rel = "noopener noreferrer nofollow";
      element.append(a);
      last = match.index + match[0].length;
    }
    element.append(text.slice(last));
  };
  const bubble = (role, text, stateName = "done") => {
    const element = document.createElement("div");
    element.className = "msg";
    element.dataset.testid = "message";
    element.dataset.role = role;
    element.dataset.state = stateName;
    element.setAttribute("aria-label", role === "user" ? TEXT.you : TEXT.bot);
    render(element, text);
    log.append(element);
    log.scrollTop = log.scrollHeight;
    return element;
  };
  let retryAction = null;
  const showError = (text, retry) => {
    errorBox.querySelector("span").textContent = text;
    errorBox.hidden = false;
    retryAction = retry;
    errorBox.querySelector("button").hidden = !retry;
  };
  const hideError = () => { errorBox.hidden = true; retryAction = null; };
  errorBox.querySelector("button").addEventListener("click", () => {
    const action = retryAction;
    hideError();
    if (action) action();
  });

  const headers = (json) => {
    const h = { "X-API-Key": key };
    if (json) h["Content-Type"] = "application/json";
    if (state.token) h["X-Visitor-Token"] = state.token;
    return h;
  };
  const describe = async (response) => {
    let code = "", message = "";
    try { const body = await response.json(); code = body.error.code; message = body.error.message; } catch { /* not JSON */ }
    if (response.status === 429) return { code, text: TEXT.limited(response.headers.get("Retry-After") || "60") };
    if (code === "origin_not_allowed") return { code, text: TEXT.origin };
    if (response.status === 401 || response.status === 403) return { code, text: TEXT.key };
    if (response.status === 413) return { code, text: TEXT.long };
    if (response.status === 503) return { code, text: TEXT.busy };
    return { code, text: message || TEXT.failed };
  };
  const forgetVisitor = () => { state = {}; save(state); };
  // A request the browser refused to show us: the gateway is down, or it answered but not
  // to this page (CORS: the page's origin is not in PUBLIC_ORIGINS). An opaque request
  // tells the two apart without reading anything.
  const unreachable = async () => {
    const up = await fetch(`${base}/health`, { mode: "no-cors", cache: "no-store" })
      .then(() => true, () => false);
    return up ? TEXT.origin : TEXT.down;
  };

  let loaded = false;
  const restore = async () => {
    loaded = true;
    if (!state.thread || !state.token) return;
    try {
      const url = `${base}/api/threads/${encodeURIComponent(state.thread)}/messages?limit=200`;
      const response = await fetch(url, { headers: headers(false) });
      if (response.status === 401) { forgetVisitor(); return; }
      if (response.status === 404) { delete state.thread; save(state); return; }
      if (!response.ok) { showError((await describe(response)).text, restore); return; }
      const body = await response.json();
      log.textContent = "";
      for (const turn of body.messages) {
        if (turn.role === "user" || turn.role === "assistant") bubble(turn.role, turn.content);
      }
    } catch {
      showError(await unreachable(), restore);
    }
  };

  let sending = false;
  const send = async (text, again = true) => {
    if (sending || !text.trim()) return;
    sending = true;
    sendButton.disabled = true;
    hideError();
    const userBubble = bubble("user", text);
    let reply = null;
    let replyText = "";
    try {
      const body = { message: text };
      if (state.thread) body.thread_id = state.thread;
      const response = await fetch(`${base}/api/chat/stream`, {
        method: "POST", headers: headers(true), body: JSON.stringify(body),
      });
      if (!response.ok) {
        const problem = await describe(response);
        if (problem.code === "invalid_visitor_token" && again) {
          forgetVisitor();
          userBubble.remove();
          sending = false;
          return send(text, false);
        }
        userBubble.dataset.state = "error";
        showError(problem.text, () => { userBubble.remove(); send(text); });
        return;
      }
      const token = response.headers.get("X-Visitor-Token");
      if (token) { state.token = token; save(state); }
      reply = bubble("assistant", "", "streaming");
      reply.setAttribute("aria-busy", "true");
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "", finished = false;
      const handle = (event) => {
        if (event.type === "metadata") {
          state.thread = event.thread_id;
          if (event.visitor_token) state.token = event.visitor_token;
          save(state);
        } else if (event.type === "chunk") {
          replyText += event.content;
          render(reply, replyText);
          log.scrollTop = log.scrollHeight;
        } else if (event.type === "done") {
          replyText = event.response;
          render(reply, replyText);
          reply.dataset.state = "done";
          finished = true;
        } else if (event.type === "error") {
          if (event.response) { replyText = event.response; render(reply, replyText); }
          reply.dataset.state = "error";
          finished = true;
          showError(TEXT.failed, () => { userBubble.remove(); reply.remove(); send(text); });
        }
      };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        const blocks = buffer.split(/\r\n\r\n|\n\n|\r\r/);  // SSE events end with a blank line
        buffer = blocks.pop();
        for (const block of blocks) {
          const data = block.split(/\r\n|\r|\n/).filter((line) => line.startsWith("data:"))
            .map((line) => line.slice(5).replace(/^ /, "")).join("\n");
          if (data) { try { handle(JSON.parse(data)); } catch { /* not an event */ } }
        }
      }
      if (!finished) {
        reply.dataset.state = "error";
        showError(TEXT.failed, () => { userBubble.remove(); reply.remove(); send(text); });
      }
      reply.removeAttribute("aria-busy");
      if (reply.dataset.state === "done") announce.textContent = replyText;
    } catch {
      if (reply) { reply.dataset.state = "error"; reply.removeAttribute("aria-busy"); }
      userBubble.dataset.state = "error";
      const problem = reply ? TEXT.failed : await unreachable();
      showError(problem, () => { userBubble.remove(); if (reply) reply.remove(); send(text); });
    } finally {
      sending = false;
      sendButton.disabled = false;
    }
  };

  const open = async () => {
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    launcher.setAttribute("aria-label", TEXT.close);
    input.focus();
    if (!loaded) await restore();
    panel.dataset.ready = "true";
  };
  const close = () => {
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-label", TEXT.open);
    launcher.focus();
  };
  launcher.addEventListener("click", () => (panel.hidden ? open() : close()));
  $(".close").addEventListener("click", close);
  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { event.preventDefault(); close(); }
  });
  $("form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim() || sending) return;
    input.value = "";
    send(text);
    input.focus();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("form").requestSubmit();
    }
  });
  $(".fresh").addEventListener("click", () => {
    const old = state.thread;
    if (old && state.token) {
      fetch(`${base}/api/threads/${encodeURIComponent(old)}`, { method: "DELETE", headers: headers(false) })
        .catch(() => {});
    }
    delete state.thread;
    save(state);
    log.textContent = "";
    hideError();
    input.focus();
  });

  const mount = () => document.body.append(host);
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
