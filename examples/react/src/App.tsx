import { type FormEvent, useCallback, useEffect, useRef, useState } from "react";
import { ApiError, type Connection, deleteThread, streamChat, threadMessages } from "./api";
import { useStoredState } from "./useStoredState";

interface ChatMessage {
  id: number;
  role: "user" | "assistant";
  text: string;
  state: "streaming" | "done" | "error" | "stopped";
}

let nextId = 0;
const message = (role: ChatMessage["role"], text: string, state: ChatMessage["state"] = "done") => ({
  id: nextId++,
  role,
  text,
  state,
});

function describe(error: unknown): string {
  if (error instanceof ApiError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

export default function App() {
  const [baseUrl, setBaseUrl] = useStoredState("eneca.baseUrl", import.meta.env.VITE_ENECA_URL ?? "");
  const [apiKey, setApiKey] = useStoredState("eneca.apiKey");
  const [threadId, setThreadId] = useStoredState("eneca.threadId");
  const [visitorToken, setVisitorToken] = useStoredState("eneca.visitorToken");
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  const [draft, setDraft] = useState("");
  const [error, setError] = useState<string | null>(null);
  const inFlight = useRef<AbortController | null>(null);
  const [busy, setBusy] = useState(false);
  const connection: Connection = { baseUrl, apiKey, visitorToken };

  // On load (and when the server changes), show the stored history of the kept thread.
  useEffect(() => {
    if (!threadId) return;
    let current = true;
    threadMessages({ baseUrl, apiKey, visitorToken }, threadId)
      .then((turns) => {
        if (!current) return;
        if (turns === null) return setThreadId(""); // the server forgot it: start afresh
        setMessages(
          turns
            .filter((turn) => turn.role === "user" || turn.role === "assistant")
            .map((turn) => message(turn.role as ChatMessage["role"], turn.text ?? turn.content ?? "")),
        );
      })
      .catch((e: unknown) => current && setError(describe(e)));
    return () => {
      current = false;
    };
    // Only on start and on a new server: a thread id set by a reply must not reload it.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [baseUrl]);

  const update = (id: number, change: (m: ChatMessage) => Partial<ChatMessage>) =>
    setMessages((all) => all.map((m) => (m.id === id ? { ...m, ...change(m) } : m)));

  const send = useCallback(
    async (text: string) => {
      setError(null);
      const reply = message("assistant", "", "streaming");
      setMessages((all) => [...all, message("user", text), reply]);
      const controller = new AbortController();
      inFlight.current = controller;
      setBusy(true);
      let finished = false;
      try {
        await streamChat(
          connection,
          threadId ? { message: text, thread_id: threadId } : { message: text },
          (event) => {
            if (event.type === "metadata") {
              setThreadId(event.thread_id);
              if (event.visitor_token) setVisitorToken(event.visitor_token);
            }
            else if (event.type === "chunk") update(reply.id, (m) => ({ text: m.text + event.content }));
            else if (event.type === "done") {
              finished = true;
              setThreadId(event.thread_id);
              update(reply.id, () => ({ text: event.response, state: "done" }));
            } else if (event.type === "error") {
              // The server may send its fallback text along: show it in the bubble.
              if (event.response) update(reply.id, () => ({ text: event.response ?? "" }));
              throw new ApiError(event.code, event.message);
            }
          },
          controller.signal,
        );
        if (!finished) throw new ApiError("stream_ended", "the stream ended before the reply was complete");
      } catch (e) {
        const stopped = e instanceof DOMException && e.name === "AbortError";
        update(reply.id, () => ({ state: stopped ? "stopped" : "error" }));
        if (e instanceof ApiError && e.code === "invalid_visitor_token") {
          setVisitorToken(""); // expired or from another server: the next message starts afresh
          setThreadId("");
        }
        if (!stopped) setError(describe(e));
      } finally {
        inFlight.current = null;
        setBusy(false);
      }
    },
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [baseUrl, apiKey, threadId, visitorToken],
  );

  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    const text = draft.trim();
    if (!text || busy) return;
    setDraft("");
    void send(text);
  };

  const newConversation = async () => {
    setError(null);
    try {
      if (threadId) await deleteThread(connection, threadId);
      setThreadId("");
      setMessages([]);
    } catch (e) {
      setError(describe(e));
    }
  };

  return (
    <main>
      <h1>eneca-bot chat (React)</h1>
      <fieldset>
        <label>
          Server base URL (empty = this origin)
          <input data-testid="base-url" value={baseUrl} onChange={(e) => setBaseUrl(e.target.value)} />
        </label>
        <label>
          Public key (PUBLIC_KEYS; never an API or admin key)
          <input data-testid="api-key" type="password" value={apiKey} onChange={(e) => setApiKey(e.target.value)} />
        </label>
        <button type="button" className="secondary" disabled={busy} onClick={newConversation}>
          New conversation
        </button>
        <span className="thread" data-testid="thread-id">
          {threadId ? `thread ${threadId}` : "new thread"}
        </span>
      </fieldset>

      {error && (
        <div className="error" role="alert" data-testid="error">
          {error}
        </div>
      )}

      <div className="messages" aria-live="polite">
        {messages
          .filter((m) => m.text || m.state === "streaming")
          .map((m) => (
            <div key={m.id} className={`msg ${m.role}`} data-testid="message" data-role={m.role} data-state={m.state}>
              {m.text}
            </div>
          ))}
      </div>

      <form onSubmit={onSubmit}>
        <textarea
          data-testid="message-input"
          value={draft}
          placeholder="Type a message; Enter sends, Shift+Enter adds a line"
          onChange={(e) => setDraft(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) onSubmit(e);
          }}
        />
        <button type="submit" disabled={busy}>
          Send
        </button>
        <button type="button" className="secondary" disabled={!busy} onClick={() => inFlight.current?.abort()}>
          Stop
        </button>
      </form>
    </main>
  );
}
