// The one API client: typed from Quire's OpenAPI document (schema.d.ts, generated from
// /api/openapi.json and checked against it by the test suite), cookie session with the
// CSRF token echoed on every state-changing call, and one refresh attempt on a 401.
import createClient, { type Middleware } from 'openapi-fetch';
import type { components, paths } from './schema';

export type Schemas = components['schemas'];
export type User = Schemas['User'];
export type Workspace = Schemas['Workspace'];
export type Document = Schemas['Document'];
export type DocumentKind = Schemas['DocumentKind'];

/** An error answered by Quire (`{"error":{"code","message"}}`) or by the network. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field?: string;
  /** Seconds to wait before asking again (a 429's or 503's `Retry-After`). */
  readonly retryAfter?: number;
  constructor(status: number, code: string, message: string, field?: string, retryAfter?: number) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter;
  }
}

/** A server message as a sentence: capitalised, with a full stop. */
export function sentence(message: string): string {
  const text = message.trim();
  if (!text) return text;
  const first = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?]$/.test(first) ? first : first + '.';
}

/** The value of a cookie the page may read (the CSRF token). */
export function readCookie(name: string): string | undefined {
  for (const part of document.cookie.split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return decodeURIComponent(value.join('='));
  }
  return undefined;
}

const unsafe = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

let refreshing: Promise<boolean> | null = null;

/** Exchanges the refresh cookie for new session cookies; one attempt at a time. */
export function refreshSession(fetchImpl: typeof fetch = fetch): Promise<boolean> {
  refreshing ??= fetchImpl('/api/v1/auth/refresh', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'X-CSRF-Token': readCookie('quire_csrf') ?? '' },
  })
    .then((r) => r.ok)
    .catch(() => false)
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

/** Called when the session is gone for good: the app sends the person to sign in. */
let onSignedOut: () => void = () => {};
export function whenSignedOut(f: () => void) {
  onSignedOut = f;
}

const session: Middleware = {
  onRequest({ request }) {
    if (unsafe.has(request.method)) {
      request.headers.set('X-CSRF-Token', readCookie('quire_csrf') ?? '');
    }
    return request;
  },
};

/** fetch with one refresh and retry on a 401 (an expired access cookie). */
async function fetchWithRefresh(input: Request): Promise<Response> {
  const retry = input.clone();
  const response = await fetch(input);
  const isAuth = new URL(input.url).pathname.startsWith('/api/v1/auth/');
  if (response.status !== 401 || isAuth) return response;
  if (await refreshSession()) {
    // The CSRF cookie changed with the session.
    if (unsafe.has(retry.method)) retry.headers.set('X-CSRF-Token', readCookie('quire_csrf') ?? '');
    const again = await fetch(retry);
    if (again.status !== 401) return again;
  }
  onSignedOut();
  return response;
}

export const api = createClient<paths>({
  baseUrl: window.location.origin,
  credentials: 'same-origin',
  fetch: fetchWithRefresh,
});
api.use(session);

/** The data of an openapi-fetch answer, or its error thrown as an `ApiError`. */
export async function unwrap<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  let result;
  try {
    result = await call;
  } catch {
    throw new ApiError(0, 'network', 'Quire could not be reached. Check your connection and try again.');
  }
  const { data, error, response } = result;
  if (error !== undefined || !response.ok) {
    const detail = (error as { error?: { code?: string; message?: string; field?: string } } | undefined)?.error;
    const wait = Number(response.headers.get('retry-after'));
    const retryAfter = Number.isFinite(wait) && wait > 0 ? wait : undefined;
    if (detail?.message) {
      throw new ApiError(response.status, detail.code ?? 'error', sentence(detail.message), detail.field, retryAfter);
    }
    throw new ApiError(response.status, 'http_' + response.status, `The server answered ${response.status}.`);
  }
  return data as T;
}

/** A document's content as text (`text`, or `markdown` for a PRD). */
export function documentText(id: string, format: 'text' | 'markdown'): Promise<string> {
  return unwrap(
    api.GET('/api/v1/documents/{id}/content', { params: { path: { id }, query: { format } }, parseAs: 'text' }),
  ) as Promise<string>;
}

/** Whether a failed query is worth asking again: network trouble, 5xx, and a 429 (after
 * its Retry-After); other 4xx answers will not change. */
export function shouldRetry(count: number, error: unknown): boolean {
  if (!(error instanceof ApiError)) return count < 2;
  if (error.status === 429) return count < 3;
  return (error.status === 0 || error.status >= 500) && count < 2;
}

/** How long to wait before the next try: the server's Retry-After, else a short backoff. */
export function retryDelay(count: number, error: unknown): number {
  if (error instanceof ApiError && error.retryAfter) return Math.min(error.retryAfter, 60) * 1000;
  return Math.min(1000 * 2 ** count, 10_000);
}
