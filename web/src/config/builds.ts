// A build as the screens read it: its context's fields, its artifacts and stages, and its log
// lines as the server streams them (`GET /api/v1/builds/{id}/log`).

/** One line: [number, time ms, "out" | "err", text with ANSI colours]. */
export type Line = [number, number, 'out' | 'err', string];

export interface Artifact {
  name: string;
  kind: 'image' | 'image_xz' | 'image_zst' | 'info' | 'checksum';
  size: number;
  sha256: string;
  verified: boolean | null;
}

export interface Stage {
  name: string;
  at: number;
  line: number;
}

export interface BuildView {
  id: string;
  status: string;
  created_at: string;
  updated_at: string;
  queue_position?: number | null;
  /** Each artifact's URL that needs no session until `artifact_urls_expire_at`, by name. */
  artifact_urls?: Record<string, string>;
  artifact_urls_expire_at?: number | null;
  progress?: { percent: number; message: string } | null;
  error?: { code?: string; message: string } | null;
  data: {
    config?: Record<string, unknown>;
    schema_version?: string;
    requested_by?: string;
    duration_ms?: number;
    stages?: Stage[];
    warnings?: number;
    errors?: number;
    log_lines?: number;
    artifacts?: Artifact[];
  };
}

export const ENDED = new Set(['completed', 'failed', 'cancelled']);

/** Most lines the log view keeps on screen; the whole log is a download. */
export const SHOWN_LINES = 5_000;

/** Adds lines that follow on (a repeat after a reconnect is dropped), keeping the last `keep`. */
export function appendLines(shown: Line[], batch: Line[], keep = SHOWN_LINES): Line[] {
  const last = shown.length ? shown[shown.length - 1]![0] : 0;
  const fresh = batch.filter((l) => l[0] > last);
  if (!fresh.length) return shown;
  const all = shown.concat(fresh);
  return all.length > keep ? all.slice(all.length - keep) : all;
}

/** A duration as a person reads it: 42 s, 3 min 5 s, 1 h 12 min. */
export function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** Bytes as a person reads them. */
export function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** What a build's status says to a person. */
export function statusWords(b: Pick<BuildView, 'status' | 'queue_position'>): string {
  switch (b.status) {
    case 'pending':
      return b.queue_position == null ? 'Queued' : b.queue_position === 0 ? 'Next in the queue' : `Queued, ${b.queue_position} ahead`;
    case 'retrying':
      return 'Waiting to try again';
    case 'processing':
      return 'Building';
    case 'completed':
      return 'Built';
    case 'failed':
      return 'Failed';
    case 'cancelled':
      return 'Cancelled';
    default:
      return b.status;
  }
}
