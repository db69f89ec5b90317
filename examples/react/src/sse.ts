/**
 * An incremental Server-Sent Events parser: feed it text in pieces of any size, get back
 * each complete event once its closing blank line has arrived. Comment lines (":" ...)
 * are the server's keep-alive pings and are skipped.
 */
export interface SSEEvent {
  event: string;
  data: string;
}

export class SSEParser {
  private buffer = "";
  private data: string[] = [];
  private event = "message";

  feed(text: string): SSEEvent[] {
    this.buffer += text;
    // Lines end at \n, \r\n or \r; keep the unfinished last line (and a trailing \r whose
    // \n may come in the next read) for later.
    const lines = this.buffer.split(/\r\n|\r(?!$)|\n/);
    this.buffer = lines.pop() ?? "";
    const events: SSEEvent[] = [];
    for (const line of lines) {
      const event = this.line(line);
      if (event) events.push(event);
    }
    return events;
  }

  /** The end of the stream: an event without its closing blank line is dropped. */
  end(): SSEEvent[] {
    const last = this.buffer.endsWith("\r") ? this.line(this.buffer.slice(0, -1)) : null;
    this.buffer = "";
    this.data = [];
    return last ? [last] : [];
  }

  private line(line: string): SSEEvent | null {
    if (line === "") {
      const event = this.data.length ? { event: this.event, data: this.data.join("\n") } : null;
      this.data = [];
      this.event = "message";
      return event;
    }
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    return null;
  }
}
