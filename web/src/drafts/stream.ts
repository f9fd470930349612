// A draft as its context's event stream tells it (GET /api/v1/contexts/{id}/events):
// status changes, progress, and the text as `chunk` events. The browser's EventSource
// resumes with Last-Event-ID after a dropped connection; a stream that ended for a lapsed
// session is reopened after the last event seen, so no chunk is lost or doubled.
import { refreshSession } from '../api/client';

export type DraftStatus = 'pending' | 'processing' | 'retrying' | 'completed' | 'failed' | 'cancelled';

export interface DraftView {
  status: DraftStatus;
  /** The text written so far (Markdown), and its length in characters (code points). */
  text: string;
  chars: number;
  percent: number;
  message: string;
  /** Why the last attempt failed, when one did (the quality gate's reason, a provider's error). */
  error?: string;
  attempt: number;
  /** The number of the last event taken in. */
  seq: number;
}

export interface ContextEvent {
  seq: number;
  kind: string;
  data: Record<string, unknown>;
}

export const TERMINAL: ReadonlySet<DraftStatus> = new Set(['completed', 'failed', 'cancelled']);

export function emptyView(status: DraftStatus = 'pending'): DraftView {
  return { status, text: '', chars: 0, percent: 0, message: '', attempt: 0, seq: 0 };
}

/** The view after one more event. Events at or before `view.seq` change nothing. */
export function fold(view: DraftView, event: ContextEvent): DraftView {
  if (event.seq <= view.seq) return view;
  const next = { ...view, seq: event.seq };
  const d = event.data;
  switch (event.kind) {
    case 'status': {
      next.status = (d.status as DraftStatus) ?? next.status;
      if (typeof d.attempt === 'number') next.attempt = d.attempt;
      const error = d.error as { message?: string } | undefined;
      if (error?.message) next.error = error.message;
      else if (next.status === 'processing') next.error = undefined;
      if (next.status === 'completed') next.percent = 100;
      return next;
    }
    case 'progress':
      if (typeof d.percent === 'number') next.percent = d.percent;
      if (typeof d.message === 'string') next.message = d.message;
      return next;
    case 'chunk': {
      const offset = typeof d.offset === 'number' ? d.offset : 0;
      const text = typeof d.text === 'string' ? d.text : '';
      const added = [...text].length;
      if (offset === 0) {
        // A new attempt starts the text anew.
        next.text = text;
        next.chars = added;
      } else if (offset === view.chars) {
        next.text = view.text + text;
        next.chars = view.chars + added;
      } else if (offset < view.chars) {
        next.text = [...view.text].slice(0, offset).join('') + text;
        next.chars = offset + added;
      }
      // A chunk past the end (one was missed) waits for the final text from the context.
      return next;
    }
    default:
      return next;
  }
}

/**
 * Follows a context's events until it ends, calling `onEvent` for each. Returns a function
 * that stops following. `after` resumes past events already taken in.
 */
export function follow(
  contextId: string,
  after: number,
  onEvent: (e: ContextEvent) => void,
  onEnd: () => void,
  EventSourceImpl: typeof EventSource = EventSource,
): () => void {
  let source: EventSource | null = null;
  let last = after;
  let stopped = false;
  let refreshed = false;
  const open = () => {
    source = new EventSourceImpl(`/api/v1/contexts/${encodeURIComponent(contextId)}/events?after=${last}`, {
      withCredentials: true,
    });
    const take = (m: MessageEvent<string>) => {
      let event: ContextEvent;
      try {
        event = JSON.parse(m.data) as ContextEvent;
      } catch {
        return;
      }
      last = Math.max(last, event.seq);
      refreshed = false;
      onEvent(event);
      if (event.kind === 'status' && TERMINAL.has(event.data.status as DraftStatus)) {
        source?.close();
        if (!stopped) onEnd();
      }
    };
    for (const kind of ['status', 'progress', 'chunk', 'component', 'log']) {
      source.addEventListener(kind, take as EventListener);
    }
    source.onerror = () => {
      // The browser retries a dropped connection itself (with Last-Event-ID); a refused one
      // (the session lapsed) closes the source: refresh the session once and reopen.
      if (source?.readyState !== 2 || stopped) return;
      if (refreshed) {
        onEnd();
        return;
      }
      refreshed = true;
      void refreshSession().then(() => {
        if (!stopped) open();
      });
    };
  };
  open();
  return () => {
    stopped = true;
    source?.close();
  };
}
