// One build's log followed live, shared by every panel that shows it: one EventSource per
// build while any panel listens (the browser reconnects with the last line's number and the
// server goes on from the next), the lines turned into HTML once (ANSI colours carry from
// line to line), and the stages as the server reads them from the lines.
import { useEffect, useSyncExternalStore } from 'react';
import { AnsiUp } from 'ansi_up';
import { appendLines, type Line, type Stage } from './builds';

export interface Stream {
  lines: Line[];
  stages: Stage[];
  ended: boolean;
}

interface Entry {
  state: Stream;
  listeners: Set<() => void>;
  users: number;
  close?: () => void;
}

/** Ended builds' logs kept for when they are shown again. */
const KEEP_ENDED = 4;
const EMPTY: Stream = { lines: [], stages: [], ended: false };
const streams = new Map<string, Entry>();

/** Adds stages that are new (by the line they begin on), in line order. */
export function mergeStages(shown: Stage[], fresh: Stage[]): Stage[] {
  const seen = new Set(shown.map((s) => s.line));
  const added = fresh.filter((s) => !seen.has(s.line));
  return added.length ? shown.concat(added).sort((a, b) => a.line - b.line) : shown;
}

function entry(id: string): Entry {
  let e = streams.get(id);
  if (!e) {
    e = { state: EMPTY, listeners: new Set(), users: 0 };
    streams.set(id, e);
  }
  return e;
}

function open(id: string, e: Entry) {
  const ansi = new AnsiUp();
  let last = 0;
  const set = (next: Partial<Stream>) => {
    e.state = { ...e.state, ...next };
    e.listeners.forEach((f) => f());
  };
  const source = new EventSource(`/api/v1/builds/${id}/log`);
  source.addEventListener('stages', (ev) => set({ stages: mergeStages(e.state.stages, JSON.parse((ev as MessageEvent).data) as Stage[]) }));
  source.addEventListener('lines', (ev) => {
    const fresh = (JSON.parse((ev as MessageEvent).data) as Line[]).filter((l) => l[0] > last);
    if (!fresh.length) return;
    last = fresh[fresh.length - 1]![0];
    const html = fresh.map(([n, t, s, text]): Line => [n, t, s, ansi.ansi_to_html(text)]);
    set({ lines: appendLines(e.state.lines, html) });
  });
  source.addEventListener('end', () => {
    source.close();
    set({ ended: true });
  });
  e.close = () => source.close();
}

/** The build's log and stages as they arrive; nothing is followed for `undefined`. */
export function useBuildStream(id: string | undefined): Stream {
  useEffect(() => {
    if (!id) return;
    const e = entry(id);
    if (e.users++ === 0 && !e.state.ended) open(id, e);
    return () => {
      if (--e.users === 0) {
        e.close?.();
        // A build that ended is kept a while (it will not change); one still running is read anew.
        if (!e.state.ended) streams.delete(id);
        const idle = [...streams].filter(([, x]) => x.users === 0);
        for (const [key] of idle.slice(0, Math.max(0, idle.length - KEEP_ENDED))) streams.delete(key);
      }
    };
  }, [id]);
  return useSyncExternalStore(
    (notify) => {
      if (!id) return () => {};
      const e = entry(id);
      e.listeners.add(notify);
      return () => e.listeners.delete(notify);
    },
    () => (id ? (streams.get(id)?.state ?? EMPTY) : EMPTY),
  );
}
