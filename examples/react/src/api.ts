/** The eneca-bot HTTP API, as a web front end uses it. */
import { SSEParser } from "./sse";

export type StreamEvent =
  | { type: "metadata"; thread_id: string; visitor_token?: string }
  | { type: "chunk"; content: string }
  | { type: "done"; response: string; thread_id: string; usage?: Record<string, number> }
  | { type: "error"; code: string; message: string; response?: string };

export interface StoredMessage {
  role: string;
  text?: string;
  content?: string;
}

/** A failed request or stream, with the server's error code. */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface Connection {
  /** "" means the page's own origin (or the dev server's proxy). */
  baseUrl: string;
  /** A public key (PUBLIC_KEYS): the only kind of key a web page may hold. */
  apiKey: string;
  /** Who this browser's visitor is: given by the server with the first reply. */
  visitorToken?: string;
}

function url(connection: Connection, path: string): string {
  return connection.baseUrl.trim().replace(/\/+$/, "") + path;
}

function headers(connection: Connection, json: boolean): Record<string, string> {
  const result: Record<string, string> = {};
  if (json) result["Content-Type"] = "application/json";
  if (connection.apiKey.trim()) result["X-API-Key"] = connection.apiKey.trim();
  if (connection.visitorToken) result["X-Visitor-Token"] = connection.visitorToken;
  return result;
}

/** Errors before a stream are JSON: {"success": false, "error": {"code", "message"}}. */
async function errorOf(response: Response): Promise<ApiError> {
  try {
    const body = await response.json();
    if (body?.error) return new ApiError(body.error.code, body.error.message, response.status);
  } catch {
    // not JSON: fall back to the status line
  }
  return new ApiError(`http_${response.status}`, response.statusText || "request failed");
}

/** POST /api/chat/stream; calls onEvent for each event as soon as it arrives. */
export async function streamChat(
  connection: Connection,
  body: { message: string; thread_id?: string },
  onEvent: (event: StreamEvent) => void,
  signal?: AbortSignal,
): Promise<void> {
  const response = await fetch(url(connection, "/api/chat/stream"), {
    method: "POST",
    headers: { ...headers(connection, true), Accept: "text/event-stream" },
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok || !response.body) throw await errorOf(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SSEParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      const events = parser.feed(done ? decoder.decode() : decoder.decode(value, { stream: true }));
      if (done) events.push(...parser.end());
      for (const event of events) onEvent(JSON.parse(event.data) as StreamEvent);
      if (done) return;
    }
  } catch (error) {
    reader.cancel().catch(() => undefined); // the server sees the disconnect and stops
    throw error;
  }
}

/** The stored history of a thread, or null when the server does not know it. */
export async function threadMessages(
  connection: Connection,
  threadId: string,
): Promise<StoredMessage[] | null> {
  const response = await fetch(
    url(connection, `/api/threads/${encodeURIComponent(threadId)}/messages`),
    { headers: headers(connection, false) },
  );
  if (response.status === 404) return null;
  if (!response.ok) throw await errorOf(response);
  const body = await response.json();
  return Array.isArray(body) ? body : (body.messages ?? []);
}

export async function deleteThread(connection: Connection, threadId: string): Promise<void> {
  const response = await fetch(url(connection, `/api/threads/${encodeURIComponent(threadId)}`), {
    method: "DELETE",
    headers: headers(connection, false),
  });
  if (!response.ok && response.status !== 404) throw await errorOf(response);
}
